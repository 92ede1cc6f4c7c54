"""Decoding images from files or bytes with clear errors, before anything else looks at them.

The size is read from the header first, so a 10000 x 10000 image (or a decompression bomb) is refused
without allocating it. Arrays are returned in OpenCV's BGR order, the convention at every API boundary
of the project (camera frames are BGR too).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edge.errors import InputError

DEFAULT_MAX_PIXELS = 40_000_000


def load_image(source: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode `source` (a path or the file's bytes) into an H x W x 3 uint8 BGR array.

    Raises InputError with codes input.not_found, input.unreadable, input.empty, input.not_an_image,
    input.image_too_large or input.corrupt_image. EXIF orientation is applied (phone photos).
    """
    name = "image bytes"
    if isinstance(source, (str, Path)):
        name = str(source)
        data = _read_file(Path(source))
    else:
        data = bytes(source)
    if not data:
        raise InputError(f"{name}: empty file", code="input.empty")
    img = _open_header(data, name)
    width, height = img.size
    if width == 0 or height == 0:
        raise InputError(f"{name}: image has no pixels", code="input.corrupt_image")
    if width * height > max_pixels:
        raise InputError(f"{name}: {width}x{height} is larger than the {max_pixels:,}-pixel limit",
                         code="input.image_too_large", details={"width": width, "height": height})
    try:
        img.load()  # full decode: a truncated or corrupt file fails here, not later
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{name}: corrupt image ({exc})", code="input.corrupt_image") from None
    img = _upright(img)
    rgb = np.asarray(_as_8bit_rgb(img), dtype=np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file", code="input.not_found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not an image", code="input.not_an_image") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})", code="input.unreadable") from None


def _open_header(data: bytes, name: str) -> Image.Image:
    """Identify the format and read the size, without decoding any pixel.

    Pillow has its own decompression-bomb guard inside Image.open: a warning above MAX_IMAGE_PIXELS (89 M)
    and an error above twice that. Our limit (configurable, 40 M by default) is the one that decides, so
    the warning is silenced here and the size check in load_image reports the image's real dimensions;
    Pillow's error (which gives no dimensions) still refuses anything beyond its hard limit.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise InputError(f"{name}: larger than {limit:,} pixels (refused before decoding)",
                         code="input.image_too_large", details={"limit_pixels": limit}) from None
    except UnidentifiedImageError:
        raise InputError(f"{name}: not a recognised image format", code="input.not_an_image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{name}: corrupt image header ({exc})", code="input.corrupt_image") from None


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag. A damaged EXIF block only loses the rotation, never the image."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - Pillow raises many kinds on malformed EXIF; the pixels are fine
        return img


def _as_8bit_rgb(img: Image.Image) -> Image.Image:
    """RGB with 8 bits per channel; 16-bit grey is scaled down rather than clipped to white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        grey = np.asarray(img, dtype=np.int64)
        grey = (np.clip(grey, 0, 65535) >> 8).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    return img.convert("RGB")


def as_rgb(image_bgr: np.ndarray) -> np.ndarray:
    """Validate a BGR frame and return it as contiguous RGB (what the models were trained on)."""
    if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8:
        raise InputError("image must be a uint8 numpy array", code="input.not_an_image")
    if image_bgr.ndim == 2:
        return np.ascontiguousarray(np.repeat(image_bgr[:, :, None], 3, axis=2))
    if image_bgr.ndim != 3 or image_bgr.shape[2] not in (3, 4) or min(image_bgr.shape[:2]) < 1:
        raise InputError(f"image must be H x W x 3, got shape {image_bgr.shape}", code="input.not_an_image")
    return np.ascontiguousarray(image_bgr[:, :, 2::-1])

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
from PIL import Image, UnidentifiedImageError

from edge.errors import InputError

DEFAULT_MAX_PIXELS = 40_000_000


def load_image(source: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode `source` (a path or the file's bytes) into an H x W x 3 uint8 BGR array.

    Raises InputError with codes input.not_found, input.empty, input.not_an_image,
    input.image_too_large or input.corrupt_image.
    """
    name = "image bytes"
    if isinstance(source, (str, Path)):
        name = str(source)
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError:
            raise InputError(f"{name}: no such file", code="input.not_found") from None
        except IsADirectoryError:
            raise InputError(f"{name}: is a directory, not an image", code="input.not_an_image") from None
        except OSError as exc:
            raise InputError(f"{name}: cannot be read ({exc.strerror})", code="input.unreadable") from None
    else:
        data = bytes(source)
    if not data:
        raise InputError(f"{name}: empty file", code="input.empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise InputError(
                    f"{name}: {width}x{height} is larger than the {max_pixels:,}-pixel limit",
                    code="input.image_too_large",
                    details={"width": width, "height": height},
                )
            img.load()  # full decode: a truncated or corrupt file fails here, not later
    except InputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{name}: not a recognised image format", code="input.not_an_image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{name}: corrupt image ({exc})", code="input.corrupt_image") from None
    if width == 0 or height == 0:
        raise InputError(f"{name}: image has no pixels", code="input.corrupt_image")
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def as_rgb(image_bgr: np.ndarray) -> np.ndarray:
    """Validate a BGR frame and return it as contiguous RGB (what the models were trained on)."""
    if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8:
        raise InputError("image must be a uint8 numpy array", code="input.not_an_image")
    if image_bgr.ndim == 2:
        return np.ascontiguousarray(np.repeat(image_bgr[:, :, None], 3, axis=2))
    if image_bgr.ndim != 3 or image_bgr.shape[2] not in (3, 4) or min(image_bgr.shape[:2]) < 1:
        raise InputError(f"image must be H x W x 3, got shape {image_bgr.shape}", code="input.not_an_image")
    return np.ascontiguousarray(image_bgr[:, :, 2::-1])

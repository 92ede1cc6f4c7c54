"""What the virtual sensor "sees": fitting any greyscale print to the sensor, and where prints come from.

The documented path from a source image to the bytes UpImage sends (the quantisation check in
tests/simulator relies on it, pixel for pixel):

1. greyscale: BGR(A) images are converted with OpenCV's BGR->GRAY; 16-bit images keep their high byte;
2. resample to the sensor's 500 dpi: scale = 500 / source_dpi, `cv2.INTER_AREA` when shrinking,
   `cv2.INTER_LINEAR` when enlarging (no resampling at all when source_dpi is 500);
3. centre-crop each axis that is too large (offset (size - sensor) // 2) and pad each axis that is
   too small with white (255), the extra pixel of an odd margin going right / bottom;
4. quantise to 4 bits with `drivers.fingerprint.protocol.quantize_to_nibbles` (nearest level,
   level x 17 = the 8-bit value clients such as pyfingerprint reconstruct).

Image sources hand the module one 8-bit print per capture request (or None: no finger):
`FolderImageSource` (real prints in turn, e.g. FVC2000 DB1_B), `FixedImageSource`, `SyntheticFingerSource`
(deterministic prints with minutiae, no data set needed), `MessyImageSource` (Img2Tz answers 0x06) and
`NoFingerSource`; `make_image_source` builds one from a scenario's spec.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Protocol, Sequence, runtime_checkable

import cv2
import numpy as np

from drivers.fingerprint.protocol import quantize_to_nibbles
from edge.errors import InputError
from edge.evaluation.synthetic import synthetic_print  # noqa: F401  (re-exported: the simulator's prints)

SENSOR_DPI = 500.0
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".bmp", ".jpg", ".jpeg", ".pgm")


# --------------------------------------------------------------------------------------------------
# Fitting a print to the sensor
# --------------------------------------------------------------------------------------------------


def to_grey(image: np.ndarray) -> np.ndarray:
    """Any uint8/uint16 greyscale or BGR(A) array -> 2-D uint8."""
    img = np.asarray(image)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.dtype != np.uint8:
        raise InputError(f"fingerprint image must be uint8 or uint16, got {img.dtype}", code="input.image_type")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    elif img.ndim == 3 and img.shape[2] in (3, 4):
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    if img.ndim != 2 or min(img.shape) < 1:
        raise InputError(f"fingerprint image must be 2-D greyscale, got shape {img.shape}", code="input.image_shape")
    return img


def read_image(path: str | Path) -> np.ndarray:
    """Read a print from disk as 2-D uint8 (typed error when unreadable)."""
    p = Path(path)
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"cannot read image file {p.name}", code="input.unreadable_image", details={"path": str(p)})
    return to_grey(img)


def fit_to_sensor(image: np.ndarray, width: int, height: int, source_dpi: float = SENSOR_DPI) -> np.ndarray:
    """Steps 1-3 of the module docstring: 8-bit print at the sensor's geometry (height x width)."""
    img = to_grey(image)
    if source_dpi <= 0:
        raise InputError(f"source_dpi must be positive, got {source_dpi}", code="input.dpi")
    scale = SENSOR_DPI / float(source_dpi)
    if abs(scale - 1.0) > 1e-9:
        new_w = max(1, int(round(img.shape[1] * scale)))
        new_h = max(1, int(round(img.shape[0] * scale)))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, (new_w, new_h), interpolation=interp)
    return _crop_or_pad(_crop_or_pad(img, height, axis=0), width, axis=1)


def _crop_or_pad(img: np.ndarray, size: int, axis: int) -> np.ndarray:
    have = img.shape[axis]
    if have > size:
        start = (have - size) // 2
        return img[start : start + size, :] if axis == 0 else img[:, start : start + size]
    if have < size:
        before = (size - have) // 2
        after = size - have - before
        pad = ((before, after), (0, 0)) if axis == 0 else ((0, 0), (before, after))
        return np.pad(img, pad, mode="constant", constant_values=255)
    return img


def sensor_levels(image: np.ndarray, width: int, height: int, source_dpi: float = SENSOR_DPI) -> np.ndarray:
    """The whole documented path: (height, width) array of 4-bit levels 0..15."""
    return quantize_to_nibbles(fit_to_sensor(image, width, height, source_dpi))


def levels_to_grey(levels: np.ndarray) -> np.ndarray:
    """4-bit levels -> the 8-bit image a client reconstructs (level x 17)."""
    return (np.asarray(levels, dtype=np.uint8) * np.uint8(17)).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# Image sources
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Presentation:
    """One finger on the sensor: the 8-bit print, its resolution and a label (never the pixels in logs)."""

    image: np.ndarray
    source_dpi: float = SENSOR_DPI
    label: str = ""


@runtime_checkable
class ImageSource(Protocol):
    """Asked once per capture request (GenImg); returns the finger now on the sensor or None."""

    def capture(self) -> Presentation | None: ...


@dataclass
class NoFingerSource:
    """Never a finger (only `place_finger` puts one on the sensor)."""

    def capture(self) -> Presentation | None:
        return None


@dataclass
class FixedImageSource:
    """The same print on every capture."""

    image: np.ndarray
    source_dpi: float = SENSOR_DPI
    label: str = "fixed"

    def __post_init__(self) -> None:
        self.image = to_grey(self.image)

    def capture(self) -> Presentation | None:
        return Presentation(self.image, self.source_dpi, self.label)


@dataclass
class FolderImageSource:
    """Cycles through the prints of a folder (sorted by name), one per capture request.

    `absent_polls` capture requests answer "no finger" before each presentation, as a person who
    needs a moment to put the finger down (0 = a finger on every request, the default).
    """

    folder: str | Path
    source_dpi: float = SENSOR_DPI
    absent_polls: int = 0
    pattern: str = "*"
    _files: list[Path] = field(default_factory=list, init=False, repr=False)
    _index: int = field(default=0, init=False, repr=False)
    _waited: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        root = Path(self.folder)
        if not root.is_dir():
            raise InputError(f"image folder does not exist: {root}", code="input.no_folder", details={"path": str(root)})
        self._files = sorted(p for p in root.glob(self.pattern) if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise InputError(f"no images in {root}", code="input.empty_folder", details={"path": str(root)})

    @property
    def files(self) -> list[Path]:
        return list(self._files)

    def capture(self) -> Presentation | None:
        if self._waited < self.absent_polls:
            self._waited += 1
            return None
        self._waited = 0
        path = self._files[self._index % len(self._files)]
        self._index += 1
        return Presentation(read_image(path), self.source_dpi, path.name)


@dataclass
class SyntheticFingerSource:
    """Deterministic synthetic prints, so the simulator works without any data set.

    Finger `f` has its own ridge flow (core position, pattern type, low-frequency warp) and its own
    30-44 minutiae, all drawn from `seed` and `f`; impression `i` of it moves, rotates and re-inks it.
    `fingers` lists the finger ids presented in turn, each `impressions_per_finger` times.
    """

    fingers: Sequence[int] = (0, 1, 2, 3, 4)
    impressions_per_finger: int = 1
    seed: int = 0
    absent_polls: int = 0
    _count: int = field(default=0, init=False, repr=False)
    _waited: int = field(default=0, init=False, repr=False)

    def capture(self) -> Presentation | None:
        if self._waited < self.absent_polls:
            self._waited += 1
            return None
        self._waited = 0
        n = self._count
        self._count += 1
        finger = self.fingers[(n // self.impressions_per_finger) % len(self.fingers)]
        impression = n % self.impressions_per_finger + (n // (self.impressions_per_finger * len(self.fingers))) * self.impressions_per_finger
        return Presentation(synthetic_print(finger, impression, seed=self.seed), SENSOR_DPI, f"synthetic-{finger}-{impression}")


@dataclass
class MessyImageSource:
    """A finger on every capture, but smeared: wet or moving, its ridges mostly lost in smudge.

    Each capture is a synthetic print of which only about `clear` of the area keeps its ridges; the
    rest is a smudge whose ridge direction changes every few pixels. Enough ridge area remains to
    count as a finger, too little flow is coherent to code it: Img2Tz answers "image too messy" (0x06).
    """

    clear: float = 0.2
    seed: int = 0
    _count: int = field(default=0, init=False, repr=False)

    def capture(self) -> Presentation | None:
        n = self._count
        self._count += 1
        return Presentation(smudged_print(n, seed=self.seed, clear=self.clear), SENSOR_DPI, f"messy-{n}")


def smudged_print(n: int, *, seed: int = 0, clear: float = 0.2, size: tuple[int, int] = (300, 300)) -> np.ndarray:
    """Synthetic print `n` with all but `clear` of its area replaced by an incoherent smudge."""
    base = synthetic_print(n, 0, seed=seed, size=size)
    rng = np.random.default_rng([seed, n, 0x5E])
    h, w = base.shape
    # smudge: ridges of the right period whose direction and phase wander within a few pixels
    theta = cv2.GaussianBlur(rng.uniform(0, 2 * math.pi, (h, w)).astype(np.float32), (0, 0), 3)
    theta = (theta - theta.mean()) / max(float(theta.std()), 1e-6) * 3.0
    phase = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 3) * 200
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    smudge = 150 - 90 * np.cos(2 * math.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / 9.0 + phase)
    smudge += rng.normal(0, 12, (h, w))
    # the clear islands: the top `clear` quantile of a smooth random field
    field_ = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 25)
    keep = field_ > np.quantile(field_, 1 - clear)
    return np.clip(np.where(keep, base.astype(np.float32), smudge), 0, 255).astype(np.uint8)


PRESSES = ("normal", "wet", "dry", "partial")


def pressed_print(image: np.ndarray, press: str, rng: np.random.Generator) -> np.ndarray:
    """How one press of a finger reaches the sensor (8-bit grey, dark ridges on light ground).

    wet: moisture fills the valleys, ridges merge into dark blotches; dry: too little contact, faint and
    broken ridges; partial: only the finger's tip touches, the lower two thirds of the print are missing.
    """
    img = to_grey(image).astype(np.float32)
    h, w = img.shape
    if press == "wet":
        merged = cv2.erode(img, np.ones((7, 7), np.uint8))   # dark ridges spread over the valleys
        blotch = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 12)
        wet = blotch > np.quantile(blotch, 0.2)
        img = np.where(wet, cv2.GaussianBlur(merged, (0, 0), 4) * 0.5, img)
    elif press == "dry":
        faded = 255 - (255 - img) * 0.25                       # little ink: low contrast
        gaps = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.5)
        img = np.where(gaps > -0.3, 250.0, faded) + rng.normal(0, 4, (h, w))
    elif press == "partial":
        img = img.copy()
        img[h // 3:, :] = 255.0
    elif press != "normal":
        raise InputError(f"unknown press {press!r}; known: {', '.join(PRESSES)}", code="input.unknown_press")
    return np.clip(img, 0, 255).astype(np.uint8)


@dataclass
class PressedSource:
    """Another source's prints, each as a `press` leaves it on the sensor (`pressed_print`)."""

    inner: ImageSource
    press: str = "normal"
    seed: int = 0
    _rng: np.random.Generator = field(default=None, init=False, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.press not in PRESSES:
            raise InputError(f"unknown press {self.press!r}; known: {', '.join(PRESSES)}", code="input.unknown_press")
        self._rng = np.random.default_rng([self.seed, 0x9E55])

    def capture(self) -> Presentation | None:
        shown = self.inner.capture()
        if shown is None or self.press == "normal":
            return shown
        return Presentation(pressed_print(shown.image, self.press, self._rng), shown.source_dpi,
                            f"{shown.label}-{self.press}")


def make_image_source(spec: object, *, seed: int = 0) -> ImageSource:
    """Build a source from a user-friendly spec.

    - an `ImageSource` object: used as is;
    - None or "none": no finger unless `place_finger` is called;
    - "synthetic": `SyntheticFingerSource(seed=seed)`;
    - "messy": `MessyImageSource(seed=seed)` (a finger whose image is too messy to code, 0x06);
    - "default": the FVC2000 DB1_B folder of the shared data when present, else "synthetic";
    - a folder path: `FolderImageSource`; a file path: `FixedImageSource` of that print;
    - a numpy array: `FixedImageSource`;
    - a dict: {"kind": "folder"|"synthetic"|"file"|"none", ...the class's fields}.
    """
    if isinstance(spec, np.ndarray):  # first: an array cannot be compared with a string
        return FixedImageSource(spec)
    if spec is None or spec == "none":
        return NoFingerSource()
    if isinstance(spec, ImageSource):
        return spec
    if spec == "synthetic":
        return SyntheticFingerSource(seed=seed)
    if spec == "messy":
        return MessyImageSource(seed=seed)
    if spec == "default":
        folder = default_print_folder()
        return FolderImageSource(folder) if folder is not None else SyntheticFingerSource(seed=seed)
    if isinstance(spec, (str, Path)):
        p = Path(spec)
        if p.is_dir():
            return FolderImageSource(p)
        if p.is_file():
            return FixedImageSource(read_image(p), label=p.name)
        raise InputError(f"image source not found: {p}", code="input.image_source", details={"path": str(p)})
    if isinstance(spec, dict):
        opts = dict(spec)
        kind = opts.pop("kind", "folder" if "folder" in opts else "synthetic")
        if kind == "folder":
            return FolderImageSource(**opts)
        if kind == "synthetic":
            opts.setdefault("seed", seed)
            if "fingers" in opts:
                opts["fingers"] = tuple(opts["fingers"])
            return SyntheticFingerSource(**opts)
        if kind == "file":
            path = Path(opts.pop("path"))
            return FixedImageSource(read_image(path), label=path.name, **opts)
        if kind == "none":
            return NoFingerSource()
        if kind == "messy":
            opts.setdefault("seed", seed)
            return MessyImageSource(**opts)
        raise InputError(f"unknown image source kind {kind!r}", code="input.image_source")
    raise InputError(f"cannot make an image source from {type(spec).__name__}", code="input.image_source")


def finger_source(finger: object, *, source_dpi: float | None = None, seed: int = 0) -> ImageSource:
    """What a finger put on the sensor shows: an image array, an image file, a folder (cycled one
    print per capture), a Presentation or any ImageSource (see `make_image_source`); `source_dpi`
    overrides the resolution the print was scanned at."""
    if isinstance(finger, Presentation):
        return FixedImageSource(finger.image, finger.source_dpi, finger.label or "placed")
    if isinstance(finger, np.ndarray) and source_dpi is not None:
        return FixedImageSource(finger, source_dpi, "placed")
    source = make_image_source(finger, seed=seed)
    if source_dpi is not None and hasattr(source, "source_dpi"):
        source.source_dpi = source_dpi  # type: ignore[attr-defined]
    return source


def iter_prints(folder: str | Path) -> Iterable[Path]:
    """The print files of a folder in the order FolderImageSource presents them."""
    return FolderImageSource(folder).files


def default_print_folder(data_dir: str | Path | None = None) -> Path | None:
    """FVC2000 DB1_B in the shared data folder (`<repo>/../shared/data` unless given), or None."""
    from edge.config import REPO_ROOT

    root = Path(data_dir) if data_dir is not None else REPO_ROOT.parent / "shared" / "data"
    folder = root / "fingerprints" / "fvc2000" / "DB1_B"
    return folder if folder.is_dir() else None

"""Minutiae extraction: greyscale image in, FingerTemplate out.

Pipeline: normalise -> segment -> orientation field -> ridge period -> Gabor enhancement ->
binarise -> thin -> crossing-number minutiae -> spurious-minutia removal -> qualities.
The image stages live in `enhance`, the skeleton stages in `skeleton`; this module strings them
together and turns pixels into ISO-convention minutiae.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.biometrics.finger import enhance, skeleton
from edge.biometrics.finger.template import FLOW_BLOCK, FLOW_CODES, FLOW_NONE, FingerTemplate
from edge.errors import InputError, QualityError

MIN_SIDE_PX = 64              # smaller images cannot hold a usable fingerprint area
MAX_SIDE_PX = 4096
MAX_FILE_BYTES = 64 * 1024 * 1024
MIN_CONTRAST = 4.0            # grey-level standard deviation below which the image is blank
MIN_AREA_IN2 = 0.03           # fingerprint area below this (0.17 x 0.17 inch, ~7,500 px at 500 dpi) is unusable
MIN_MINUTIAE = 6              # fewer minutiae cannot be compared meaningfully
MIN_CLARITY = 0.35            # ridge clarity (0..1) below which there is no ridge pattern, only texture or
                              # noise: FVC2000 prints measure 0.47 and more, white noise about 0.25
MAX_MINUTIAE = 120            # keep the best ones: bounds matching cost, enough for any print
BORDER_PERIODS = 1.2          # minutiae closer than this many ridge periods to the mask edge are dropped
FLOW_MIN_FOREGROUND = 0.75    # a flow block is on the print when this share of its pixels is


def load_image(path: str | Path) -> np.ndarray:
    """Read a fingerprint image file as 8-bit greyscale; InputError if missing, empty, huge or unreadable."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"fingerprint image not found: {p}", code="input.not_found")
    size = p.stat().st_size
    if size == 0:
        raise InputError(f"fingerprint image file is empty: {p.name}", code="input.empty")
    if size > MAX_FILE_BYTES:
        raise InputError(f"fingerprint image file is {size} bytes, more than {MAX_FILE_BYTES}", code="input.too_large")
    # Read the dimensions from the header before decoding, so a huge image is refused unallocated.
    try:
        from PIL import Image

        with Image.open(p) as probe:
            width, height = probe.size
    except Exception:
        raise InputError(f"not a readable image file: {p.name}", code="input.unreadable_image") from None
    if max(width, height) > MAX_SIDE_PX:
        raise InputError(f"fingerprint image {width}x{height} exceeds {MAX_SIDE_PX} px per side",
                         code="input.bad_image_size")
    data = np.fromfile(str(p), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise InputError(f"cannot decode fingerprint image: {p.name}", code="input.unreadable_image")
    return image


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise InputError("fingerprint image must be a numpy array", code="input.bad_image")
    if image.size == 0:
        raise InputError("fingerprint image is empty", code="input.bad_image")
    if image.dtype == bool or not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise InputError(f"fingerprint image has unsupported pixel type {image.dtype}", code="input.bad_image")
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = cv2.cvtColor(image[:, :, :3].astype(np.uint8), cv2.COLOR_BGR2GRAY)
    if image.ndim != 2:
        raise InputError(f"fingerprint image must be 2-D greyscale, got shape {image.shape}",
                         code="input.bad_image")
    h, w = image.shape
    if min(h, w) < MIN_SIDE_PX or max(h, w) > MAX_SIDE_PX:
        raise InputError(f"fingerprint image size {w}x{h} outside {MIN_SIDE_PX}..{MAX_SIDE_PX} px",
                         code="input.bad_image_size")
    if image.dtype != np.uint8:
        if not np.all(np.isfinite(image)):
            raise InputError("fingerprint image holds NaN or infinite values", code="input.bad_image")
        lo, hi = float(image.min()), float(image.max())
        image = ((image - lo) * (255.0 / max(hi - lo, 1e-9))).astype(np.uint8)
    return image


def _clarity(field: enhance.RidgeField) -> float:
    """0..1: how clearly oriented the ridges are over the print (mean coherence, 0.6 and more counts as 1)."""
    if not field.mask.any():
        return 0.0
    return float(np.clip(np.mean(field.coherence[field.mask]) / 0.6, 0, 1))


def _print_quality(field: enhance.RidgeField, dpi: int) -> int:
    """0..100 from ridge clarity and usable area."""
    if not field.mask.any():
        return 0
    clarity = _clarity(field)
    area_in2 = field.mask.sum() / float(dpi * dpi)
    area = float(np.clip(area_in2 / 0.16, 0, 1))  # 0.4 x 0.4 inch is a fully usable capture
    return int(round(100 * clarity * np.sqrt(area)))


def extract(image: np.ndarray, dpi: int = 500) -> FingerTemplate:
    """Minutiae of a greyscale fingerprint image of any size (`dpi` = its resolution).

    InputError (input.*) for arrays that are not an image; QualityError for prints that cannot be
    compared: quality.finger_blank, quality.finger_small_area, quality.finger_unclear (texture or noise,
    no ridge pattern), quality.finger_too_few_minutiae.
    """
    if not isinstance(dpi, int) or not 250 <= dpi <= 2000:
        raise InputError(f"resolution must be 250..2000 dpi, got {dpi!r}", code="input.bad_resolution")
    image = _check_image(image)
    h, w = image.shape
    if float(image.std()) < MIN_CONTRAST:
        raise QualityError("the fingerprint image is blank (no ridge contrast)", code="quality.finger_blank")
    field = enhance.analyse(image, dpi)
    try:
        return _minutiae(field, w, h, dpi)
    finally:  # the intermediate images are biometric samples too: zeroise them
        for arr in (field.normalised, field.enhanced, field.orientation, field.coherence, field.mask):
            arr.fill(0)


def _minutiae(field: enhance.RidgeField, w: int, h: int, dpi: int) -> FingerTemplate:
    area_in2 = field.mask.sum() / float(dpi * dpi)
    if area_in2 < MIN_AREA_IN2:
        raise QualityError(f"fingerprint area {area_in2:.3f} sq in is below the usable {MIN_AREA_IN2} sq in",
                           code="quality.finger_small_area")
    if _clarity(field) < MIN_CLARITY:
        raise QualityError("no clear ridge pattern in the image", code="quality.finger_unclear")
    ridges = skeleton.binarise(field.enhanced, field.mask)
    skel = skeleton.thin(ridges)
    ridges.fill(0)
    # distance to the background, with the image frame counted as background too
    framed = field.mask.astype(np.uint8)
    framed[[0, -1], :] = 0
    framed[:, [0, -1]] = 0
    distance = cv2.distanceTransform(framed, cv2.DIST_L2, 3)
    raw = skeleton.find_minutiae(skel, distance, field.orientation, field.period,
                                 border=BORDER_PERIODS * field.period)
    skel.fill(0)
    if len(raw) < MIN_MINUTIAE:
        raise QualityError(f"only {len(raw)} minutiae found, at least {MIN_MINUTIAE} are needed",
                           code="quality.finger_too_few_minutiae")
    xs = np.array([m.x for m in raw])
    ys = np.array([m.y for m in raw])
    image_angle = np.array([m.angle for m in raw])
    kinds = np.array([m.kind for m in raw])
    # Minutia quality: local ridge clarity, lowered near the edge of the print.
    coh = cv2.GaussianBlur(field.coherence, (0, 0), field.period)[ys, xs]
    edge = np.clip(distance[ys, xs] / (4.0 * field.period), 0.3, 1.0)
    q = np.clip(np.round(100 * np.clip(coh / 0.7, 0, 1) * edge), 1, 100).astype(np.uint8)
    if xs.size > MAX_MINUTIAE:
        best = np.argsort(-q.astype(np.int32), kind="stable")[:MAX_MINUTIAE]
        xs, ys, image_angle, kinds, q = xs[best], ys[best], image_angle[best], kinds[best], q[best]
    # image angles have y pointing down; ISO angles turn counter-clockwise as seen on screen
    iso_angle = np.mod(-image_angle, 2 * np.pi)
    return FingerTemplate(xs, ys, iso_angle, kinds, q, w, h, dpi, _print_quality(field, dpi),
                          ridge_period=float(field.period), flow=_block_flow(field))


def _block_flow(field: enhance.RidgeField) -> np.ndarray:
    """The ridge orientation per FLOW_BLOCK-pixel block (template.FLOW_* codes): the coherence-
    weighted mean of the doubled angles, so clear ridges outweigh noisy ones and directions modulo
    180 degrees average correctly."""
    h, w = field.orientation.shape
    rows, cols = h // FLOW_BLOCK, w // FLOW_BLOCK

    def block_mean(a: np.ndarray) -> np.ndarray:
        return a[:rows * FLOW_BLOCK, :cols * FLOW_BLOCK].reshape(rows, FLOW_BLOCK, cols, FLOW_BLOCK).mean(axis=(1, 3))

    doubled = 2.0 * field.orientation
    c2 = block_mean(np.cos(doubled) * field.coherence)
    s2 = block_mean(np.sin(doubled) * field.coherence)
    on_print = block_mean(field.mask.astype(np.float32)) >= FLOW_MIN_FOREGROUND
    # image angles have y pointing down: negate for the counter-clockwise convention of the template
    degrees = np.rad2deg(np.mod(-np.arctan2(s2, c2) / 2.0, np.pi))
    codes = np.rint(degrees).astype(np.int64) % FLOW_CODES
    return np.where(on_print, codes, FLOW_NONE).astype(np.uint8)

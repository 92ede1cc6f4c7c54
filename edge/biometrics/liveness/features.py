"""Colour-texture features of one face for passive presentation-attack detection (passive PAD).

Why these features (Boulkenafet, Komulainen and Hadid, "Face spoofing detection using colour texture
analysis", IEEE TIFS 2016): a printed photo or a screen shows the face through a second imaging step
(printer gamut, paper grain, halftone, screen pixels, the camera's second capture). That step changes the
fine texture of the *chroma* far more than that of the luminance, where a live face and its photo look
alike. So the face is described by local binary pattern (LBP) histograms computed separately on each
channel of two colour spaces that split luminance from chroma differently, HSV and YCbCr, at two radii.

Feature version 1 (grey LBP, Fourier bands, colour statistics, margin lines) separated the subjects it
was trained on but shifted its scores from one person to the next, so a threshold learnt on some people
let through half the photos of another (MODEL_CARD.md, PAD section). The colour-texture histograms hold
across people much better under leave-one-subject-out cross-validation.

The crop is aligned on the eyes (rotation and scale normalised) so the features do not depend on which
detector found the face, how far the person stood, or a tilted photo. Everything is deterministic: the
same image and geometry give the same vector, bit for bit.
"""
from __future__ import annotations

import cv2
import numpy as np

from edge.biometrics.liveness.geometry import FaceGeometry, check_image

FEATURE_VERSION = 2

FACE_SIZE = 128          # face crop side, pixels
FACE_IOD = 48.0          # inter-ocular distance in the face crop
FACE_EYE_Y = 40.0        # eye line height in the face crop

CHANNELS = (("hsv", ("h", "s", "v")), ("ycrcb", ("y", "cr", "cb")))  # colour space -> its channels, in order
LBP_RADII = (1, 2)
LBP_NEIGHBOURS = 8


def _uniform_codes() -> np.ndarray:
    """Table from an 8-bit LBP code to its histogram bin: the 58 'uniform' codes (at most two 0/1 transitions
    around the circle) get a bin each, in increasing code order, and every other code shares bin 58."""
    table = np.full(256, 58, dtype=np.intp)
    uniform = 0
    for code in range(256):
        bits = [(code >> i) & 1 for i in range(LBP_NEIGHBOURS)]
        if sum(bits[i] != bits[(i + 1) % LBP_NEIGHBOURS] for i in range(LBP_NEIGHBOURS)) <= 2:
            table[code] = uniform
            uniform += 1
    return table


UNIFORM_BIN = _uniform_codes()
LBP_BINS = 59


def aligned_crop(image_bgr: np.ndarray, geom: FaceGeometry, size: int, iod: float, eye_y: float) -> np.ndarray:
    """A `size` x `size` crop with the eyes level, `iod` apart, their midpoint at (size/2, eye_y)."""
    scale = iod / max(geom.inter_ocular, 1e-6)
    centre = geom.eye_mid
    image = image_bgr
    if scale < 0.8:
        # Shrink with area averaging first: warpAffine alone would alias fine texture into false patterns.
        image = cv2.resize(image_bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        shrink = image.shape[1] / image_bgr.shape[1]  # the rounded factor resize really applied
        centre = centre * shrink
        scale = iod / max(geom.inter_ocular * shrink, 1e-6)
    angle = geom.roll_rad
    cos, sin = np.cos(-angle) * scale, np.sin(-angle) * scale
    # Similarity transform: rotate by -roll and scale about the eye midpoint, then move it into place.
    m = np.array([[cos, -sin, 0.0], [sin, cos, 0.0]])
    m[:, 2] = np.array([size / 2.0, eye_y]) - m[:, :2] @ centre
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def lbp_histogram(channel: np.ndarray, radius: int) -> np.ndarray:
    """Uniform LBP (8 neighbours on a square of side 2*radius, 59 bins), normalised histogram."""
    g = channel.astype(np.int16)
    r = radius
    h, w = g.shape
    centre = g[r:h - r, r:w - r]
    ring = [(-r, -r), (-r, 0), (-r, r), (0, r), (r, r), (r, 0), (r, -r), (0, -r)]  # circular order
    codes = np.zeros(centre.shape, dtype=np.uint8)
    for bit, (dy, dx) in enumerate(ring):
        codes |= (g[r + dy:h - r + dy, r + dx:w - r + dx] >= centre).astype(np.uint8) << bit
    hist = np.bincount(UNIFORM_BIN[codes].ravel(), minlength=LBP_BINS).astype(np.float64)
    return hist / hist.sum()


def feature_names() -> list[str]:
    return [f"lbp_{ch}_r{r}_{b}" for _, channels in CHANNELS for ch in channels for r in LBP_RADII
            for b in range(LBP_BINS)]


def passive_features(image_bgr: np.ndarray, geom: FaceGeometry) -> np.ndarray:
    """The feature vector (float32, len(feature_names())) of the face `geom` in `image_bgr`."""
    image_bgr = check_image(image_bgr)
    face = aligned_crop(image_bgr, geom, FACE_SIZE, FACE_IOD, FACE_EYE_Y)
    spaces = {"hsv": cv2.cvtColor(face, cv2.COLOR_BGR2HSV), "ycrcb": cv2.cvtColor(face, cv2.COLOR_BGR2YCrCb)}
    parts = [lbp_histogram(spaces[space][:, :, k], r) for space, channels in CHANNELS
             for k in range(len(channels)) for r in LBP_RADII]
    return np.concatenate(parts).astype(np.float32)

"""Hand-crafted presentation-attack features of one face (passive PAD).

Why these features: a printed photo or a screen shows the face through a second imaging step, which
leaves traces a live face does not have:
- micro-texture changes (paper grain, halftone dots, screen pixels) -> LBP histograms at several radii,
  on grey and on the chroma channels, where recapture shifts the colour texture most;
- moire and the loss of fine detail -> radial bands of the Fourier spectrum, sharpness;
- flat, gamut-limited colour and a different highlight pattern -> saturation and chroma statistics,
  specular highlight fractions;
- the medium's border or bezel in the margin around the face -> edge and straight-line density in a
  wider crop.

Both crops are aligned on the eyes (rotation and scale normalised) so the features do not depend on
which detector found the face, how far the person stood, or a tilted/rotated photo. Everything here is
deterministic: the same image and geometry give the same vector, bit for bit.
"""
from __future__ import annotations

import cv2
import numpy as np

from edge.biometrics.liveness.geometry import FaceGeometry, check_image

FEATURE_VERSION = 1

FACE_SIZE = 128          # face crop side, pixels
FACE_IOD = 48.0          # inter-ocular distance in the face crop
FACE_EYE_Y = 40.0        # eye line height in the face crop
CONTEXT_SIZE = 128       # face + margin crop side
CONTEXT_IOD = 24.0
CONTEXT_EYE_Y = 52.0

LBP_BINS = 10            # rotation-invariant uniform LBP with 8 neighbours: 9 uniform codes + 1 other
SPECTRUM_BANDS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.71)  # radial bands, fraction of the sampling rate


def aligned_crop(image_bgr: np.ndarray, geom: FaceGeometry, size: int, iod: float, eye_y: float) -> np.ndarray:
    """A `size` x `size` crop with the eyes level, `iod` apart, their midpoint at (size/2, eye_y)."""
    scale = iod / max(geom.inter_ocular, 1e-6)
    centre = geom.eye_mid
    image = image_bgr
    if scale < 0.8:
        # Shrink with area averaging first: warpAffine alone would alias fine texture into false moire.
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
    """Rotation-invariant uniform LBP (8 neighbours on a square of side 2*radius), normalised histogram."""
    g = channel.astype(np.int16)
    r = radius
    h, w = g.shape
    centre = g[r:h - r, r:w - r]
    ring = [(-r, -r), (-r, 0), (-r, r), (0, r), (r, r), (r, 0), (r, -r), (0, -r)]  # circular order
    bits = np.stack([g[r + dy:h - r + dy, r + dx:w - r + dx] >= centre for dy, dx in ring]).astype(np.int8)
    ones = bits.sum(axis=0)
    transitions = np.abs(bits - np.roll(bits, 1, axis=0)).sum(axis=0)
    codes = np.where(transitions <= 2, ones, LBP_BINS - 1)
    hist = np.bincount(codes.ravel(), minlength=LBP_BINS).astype(np.float64)
    return hist / hist.sum()


def spectrum_features(gray: np.ndarray) -> np.ndarray:
    """Log energy fraction per radial band, plus a moire peakiness measure in the high bands."""
    g = gray.astype(np.float64)
    g = g - g.mean()
    n = g.shape[0]
    window = np.outer(np.hanning(n), np.hanning(n))
    power = np.abs(np.fft.fftshift(np.fft.fft2(g * window))) ** 2
    yy, xx = np.mgrid[0:n, 0:n]
    radius = np.hypot(yy - n / 2, xx - n / 2) / n
    total = power.sum() + 1e-9
    bands = []
    for lo, hi in zip(SPECTRUM_BANDS[:-1], SPECTRUM_BANDS[1:]):
        sel = (radius >= lo) & (radius < hi)
        bands.append(np.log(power[sel].sum() / total + 1e-9))
    high = power[radius >= 0.2]
    peakiness = np.log((np.percentile(high, 99.9) + 1e-9) / (np.median(high) + 1e-9))
    return np.array(bands + [peakiness])


def colour_and_light_features(face_bgr: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(face_bgr, cv2.COLOR_BGR2HSV).astype(np.float64)
    ycc = cv2.cvtColor(face_bgr, cv2.COLOR_BGR2YCrCb).astype(np.float64)
    s, v = hsv[:, :, 1] / 255.0, hsv[:, :, 2] / 255.0
    y, cr, cb = ycc[:, :, 0] / 255.0, ycc[:, :, 1] / 255.0, ycc[:, :, 2] / 255.0
    specular = np.mean((v > 0.92) & (s < 0.2))
    bright = np.mean(v > 0.85)
    top = np.sort(v.ravel())[-max(1, v.size // 100):].mean()
    return np.array([
        s.mean(), s.std(), np.percentile(s, 90),
        cr.mean(), cr.std(), cb.mean(), cb.std(),
        y.std(), np.percentile(y, 99) - np.percentile(y, 1),
        np.log(specular + 1e-4), np.log(bright + 1e-4), top,
    ])


def sharpness_features(face_gray: np.ndarray, context_gray: np.ndarray) -> np.ndarray:
    lap_face = cv2.Laplacian(face_gray, cv2.CV_64F).var()
    lap_ctx = cv2.Laplacian(context_gray, cv2.CV_64F).var()
    gx = cv2.Sobel(face_gray, cv2.CV_64F, 1, 0)
    gy = cv2.Sobel(face_gray, cv2.CV_64F, 0, 1)
    tenengrad = np.mean(gx ** 2 + gy ** 2)
    return np.array([np.log(lap_face + 1e-3), np.log(lap_ctx + 1e-3), np.log(tenengrad + 1e-3),
                     np.log((lap_face + 1e-3) / (lap_ctx + 1e-3))])


def margin_features(context_gray: np.ndarray) -> np.ndarray:
    """Edges and long straight lines in the ring around the face: photo borders, screen bezels, fingers."""
    edges = cv2.Canny(context_gray, 60, 150)
    n = context_gray.shape[0]
    ring = np.ones_like(edges, dtype=bool)
    q = n // 4
    ring[q:n - q // 2, q:n - q] = False  # the face itself sits in the middle
    edge_density = np.mean(edges[ring] > 0)
    lines = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=30, minLineLength=n // 4, maxLineGap=3)
    # OpenCV 4 returns (N, 1, 4), OpenCV 5 (N, 4): flatten to segments either way.
    seg = np.zeros((0, 4)) if lines is None else np.asarray(lines, dtype=np.float64).reshape(-1, 4)
    line_count = len(seg)
    line_length = float(np.sum(np.hypot(seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1])))
    return np.array([edge_density, np.log1p(line_count), np.log1p(line_length / n)])


def feature_names() -> list[str]:
    names: list[str] = []
    for ch, radii in (("face_grey", (1, 2, 3)), ("face_cr", (1, 2)), ("face_cb", (1, 2)), ("face_s", (1, 2)),
                      ("ctx_grey", (1, 2))):
        names += [f"lbp_{ch}_r{r}_{b}" for r in radii for b in range(LBP_BINS)]
    names += [f"spectrum_band{i}" for i in range(len(SPECTRUM_BANDS) - 1)] + ["spectrum_peakiness"]
    names += ["sat_mean", "sat_std", "sat_p90", "cr_mean", "cr_std", "cb_mean", "cb_std", "y_std", "y_range",
              "log_specular", "log_bright", "top1pct_v"]
    names += ["log_lap_face", "log_lap_ctx", "log_tenengrad", "log_lap_ratio"]
    names += ["margin_edge_density", "margin_log_lines", "margin_log_line_length"]
    return names


def passive_features(image_bgr: np.ndarray, geom: FaceGeometry) -> np.ndarray:
    """The feature vector (float32, len(feature_names())) of the face `geom` in `image_bgr`."""
    image_bgr = check_image(image_bgr)
    face = aligned_crop(image_bgr, geom, FACE_SIZE, FACE_IOD, FACE_EYE_Y)
    context = aligned_crop(image_bgr, geom, CONTEXT_SIZE, CONTEXT_IOD, CONTEXT_EYE_Y)
    face_grey = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    ctx_grey = cv2.cvtColor(context, cv2.COLOR_BGR2GRAY)
    ycc = cv2.cvtColor(face, cv2.COLOR_BGR2YCrCb)
    sat = cv2.cvtColor(face, cv2.COLOR_BGR2HSV)[:, :, 1]
    parts: list[np.ndarray] = []
    for channel, radii in ((face_grey, (1, 2, 3)), (ycc[:, :, 1], (1, 2)), (ycc[:, :, 2], (1, 2)),
                           (sat, (1, 2)), (ctx_grey, (1, 2))):
        parts += [lbp_histogram(channel, r) for r in radii]
    parts.append(spectrum_features(face_grey))
    parts.append(colour_and_light_features(face))
    parts.append(sharpness_features(face_grey, ctx_grey))
    parts.append(margin_features(ctx_grey))
    return np.concatenate(parts).astype(np.float32)

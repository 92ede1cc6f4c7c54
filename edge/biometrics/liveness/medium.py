"""Physical tests on the moving picture: a frozen image, and a face carried by a flat medium.

Still image: a camera always adds read noise, so consecutive frames of a real scene differ. A sequence
whose frames barely differ (median grey change below `static_max_change`) is a still image fed to the
camera input, or a camera staring at a printed page with nothing moving: `liveness.static_sequence`.

Flat medium: when a live customer moves (steps closer, sways), the face moves and the room behind stays.
A photo or a screen carries the face *and its surroundings* together: its border, the hand holding it,
the scene printed around the face. Between a reference frame and the frame where the face has moved
most, each frame is mapped into face coordinates (eyes fixed). There, what moves with the face stands
still and the room moves; in image coordinates it is the other way round. Two measures follow:

- `edge_iod`: the longest straight edge (line segment detector) that moved with the face, outside the
  head. A head has no straight edge several eye distances long; a photo's or a tablet's border has.
- `surround_fraction`: of the textured pixels beside and above the head (where a head never is), the
  share better explained by "moves with the face" than by "stays where it was". A photo or tablet that
  fills the view moves its whole surroundings; a real room does not move.

Either one above its configured bar (`medium_edge_iod`, `medium_surround_fraction`) means
`liveness.planar_motion`. The test needs motion: below MIN_SCALE_CHANGE and MIN_SHIFT_IOD it abstains.

Depth: whatever a photo or a screen does (tilt, bend a little, rotate, come closer), the picture of the
face moves as one plane, i.e. by a homography. A head that turns does not: its nose, standing in front,
swings further than the cheeks and eyes (parallax). `nonplanar_motion` measures the dense optical flow
of the face between the start pose and the turned pose and how far it is from the best homography
(RMS, in IOD). A turn must show it (`turn_nonplanar`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from edge.biometrics.config import LivenessConfig

CROP = 200            # face-coordinate crop side, pixels
CROP_IOD = 20.0       # eye distance in the crop: the crop spans 10 eye distances
CROP_EYE_Y = 0.42     # eye line height in the crop (fraction of the side)
HEAD_HALF_WIDTH = 1.6  # the head (and hair) in face coordinates, IOD: an ellipse around the face
HEAD_HALF_HEIGHT = 2.1
HEAD_CENTRE_Y = 0.5   # below the eye line
SURROUND_MAX_Y = 1.0  # the surround test looks beside and above the head, not down at the shoulders
MIN_SEGMENT_IOD = 1.5
MIN_INFORMATIVE = 200  # surround pixels needed before the fraction means anything
MIN_SCALE_CHANGE = 1.1
MIN_SHIFT_IOD = 0.5


@dataclass(frozen=True)
class MediumEvidence:
    scale: float               # face size ratio peak / reference
    shift_iod: float           # eye-midpoint displacement, IOD
    edge_iod: float            # longest straight edge moving with the face, IOD
    surround_fraction: float   # nan when too few surround pixels could tell the motions apart
    informative: int

    @property
    def moved(self) -> bool:
        return max(self.scale, 1 / self.scale) >= MIN_SCALE_CHANGE or self.shift_iod >= MIN_SHIFT_IOD

    def flat(self, cfg: LivenessConfig) -> bool:
        if not self.moved:
            return False
        return self.edge_iod >= cfg.medium_edge_iod or (
            np.isfinite(self.surround_fraction) and self.surround_fraction >= cfg.medium_surround_fraction)


def is_static(changes: Sequence[float], cfg: LivenessConfig, minimum: int = 3) -> bool:
    """True when the frame-to-frame grey change stays below `static_max_change` (needs `minimum` values)."""
    values = np.asarray([c for c in changes if np.isfinite(c)], dtype=np.float64)
    return values.size >= minimum and float(np.median(values)) < cfg.static_max_change


def face_motion(ref_eyes: tuple[np.ndarray, np.ndarray], peak_eyes: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """(size ratio, eye-midpoint shift in reference IOD) between two frames, from the eye centres."""
    ref_iod = float(np.linalg.norm(ref_eyes[1] - ref_eyes[0]))
    peak_iod = float(np.linalg.norm(peak_eyes[1] - peak_eyes[0]))
    shift = float(np.linalg.norm((peak_eyes[0] + peak_eyes[1]) / 2 - (ref_eyes[0] + ref_eyes[1]) / 2))
    return peak_iod / max(ref_iod, 1e-6), shift / max(ref_iod, 1e-6)


def _to_face(eyes: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """2 x 3 similarity: image -> face coordinates (eyes level, CROP_IOD apart, midpoint at a fixed place)."""
    left, right = eyes
    axis = right - left
    scale = CROP_IOD / max(float(np.linalg.norm(axis)), 1e-6)
    angle = np.arctan2(axis[1], axis[0])
    c, s = np.cos(-angle) * scale, np.sin(-angle) * scale
    m = np.array([[c, -s, 0.0], [s, c, 0.0]])
    m[:, 2] = np.array([CROP / 2, CROP * CROP_EYE_Y]) - m[:, :2] @ ((left + right) / 2)
    return m


def _edges(grey: np.ndarray) -> np.ndarray:
    return cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), 40, 100) > 0


def medium_evidence(ref_grey: np.ndarray, ref_eyes: tuple[np.ndarray, np.ndarray], peak_grey: np.ndarray,
                    peak_eyes: tuple[np.ndarray, np.ndarray]) -> MediumEvidence:
    """Compare a reference frame and the frame where the face moved most (grey images, BlazeFace eyes)."""
    scale, shift = face_motion(ref_eyes, peak_eyes)
    to_ref, to_peak = _to_face(ref_eyes), _to_face(peak_eyes)
    size = (CROP, CROP)
    ref_moving = cv2.warpAffine(ref_grey, to_ref, size, flags=cv2.INTER_AREA)    # "it moved with the face"
    peak = cv2.warpAffine(peak_grey, to_peak, size, flags=cv2.INTER_AREA)
    ref_static = cv2.warpAffine(ref_grey, to_peak, size, flags=cv2.INTER_AREA)   # "it stayed in the room"
    inside = np.full(ref_grey.shape, 255, np.uint8)
    valid = ((cv2.warpAffine(inside, to_ref, size) > 0) & (cv2.warpAffine(inside, to_peak, size) > 0))

    ys, xs = np.mgrid[0:CROP, 0:CROP].astype(np.float32)
    x = (xs - CROP / 2) / CROP_IOD
    y = (ys - CROP * CROP_EYE_Y) / CROP_IOD
    head = (x / HEAD_HALF_WIDTH) ** 2 + ((y - HEAD_CENTRE_Y) / HEAD_HALF_HEIGHT) ** 2 < 1.0

    # Straight edges that moved with the face: present in the peak frame and in the reference mapped
    # with the face, but not in the reference left where it was.
    near = np.ones((5, 5), np.uint8)
    moving_edges = _edges(peak) & (cv2.dilate(_edges(ref_moving).astype(np.uint8), near) > 0) \
        & ~(cv2.dilate(_edges(ref_static).astype(np.uint8), near) > 0) & valid & ~head
    moving_edges = cv2.dilate(moving_edges.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    segments = cv2.createLineSegmentDetector().detect(peak)[0]
    longest = 0.0
    for x0, y0, x1, y1 in (np.zeros((0, 4)) if segments is None else segments.reshape(-1, 4)):
        length = float(np.hypot(x1 - x0, y1 - y0))
        if length < MIN_SEGMENT_IOD * CROP_IOD:
            continue
        t = np.linspace(0.0, 1.0, int(length))
        px = np.clip(np.rint(x0 + (x1 - x0) * t).astype(int), 0, CROP - 1)
        py = np.clip(np.rint(y0 + (y1 - y0) * t).astype(int), 0, CROP - 1)
        if moving_edges[py, px].mean() >= 0.6:
            longest = max(longest, length / CROP_IOD)

    # The surroundings beside and above the head: which motion explains them?
    blur = lambda img: cv2.GaussianBlur(img.astype(np.float32), (0, 0), 1.5)  # noqa: E731
    b_moving, b_peak, b_static = blur(ref_moving), blur(peak), blur(ref_static)
    informative = (np.abs(b_moving - b_static) > 12.0) & valid & ~head & (y <= SURROUND_MAX_Y)
    count = int(informative.sum())
    with_face = np.abs(b_peak - b_moving) < np.abs(b_peak - b_static)
    fraction = float(with_face[informative].mean()) if count >= MIN_INFORMATIVE else float("nan")
    return MediumEvidence(scale=scale, shift_iod=shift, edge_iod=longest, surround_fraction=fraction,
                          informative=count)


FLOW_IOD = 32.0      # face coordinates for the flow: eye distance in pixels,
FLOW_SIZE = 128      # crop side,
FLOW_EYE_Y = 44.0    # eye line height
FLOW_GRID = 4        # flow sampled every 4 pixels over the face (eyes to mouth, cheek to cheek)


def _flow_crop(grey: np.ndarray, eyes: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    left, right = eyes
    axis = right - left
    scale = FLOW_IOD / max(float(np.linalg.norm(axis)), 1e-6)
    angle = np.arctan2(axis[1], axis[0])
    c, s = np.cos(-angle) * scale, np.sin(-angle) * scale
    m = np.array([[c, -s, 0.0], [s, c, 0.0]])
    m[:, 2] = np.array([FLOW_SIZE / 2, FLOW_EYE_Y]) - m[:, :2] @ ((left + right) / 2)
    return cv2.warpAffine(grey, m, (FLOW_SIZE, FLOW_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def nonplanar_motion(ref_grey: np.ndarray, ref_eyes: tuple[np.ndarray, np.ndarray], grey: np.ndarray,
                     eyes: tuple[np.ndarray, np.ndarray]) -> float:
    """RMS distance (IOD) of the face's dense motion from the best plane motion (homography, RANSAC).

    Both frames are first brought to face coordinates by their eyes, so the flow is what remains of the
    motion once size, roll and position are taken out: small for any flat picture, large where a real
    nose and cheeks turned. nan when no homography can be fitted."""
    a, b = _flow_crop(ref_grey, ref_eyes), _flow_crop(grey, eyes)
    flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 13, 4, 5, 1.1, 0)
    xs = np.arange(FLOW_SIZE / 2 - 1.2 * FLOW_IOD, FLOW_SIZE / 2 + 1.2 * FLOW_IOD, FLOW_GRID)
    ys = np.arange(FLOW_EYE_Y - 0.6 * FLOW_IOD, FLOW_EYE_Y + 1.6 * FLOW_IOD, FLOW_GRID)
    gx, gy = np.meshgrid(xs, ys)
    points = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    moved = flow[points[:, 1].astype(int), points[:, 0].astype(int)]
    homography, _ = cv2.findHomography(points, points + moved, cv2.RANSAC, 1.0)
    if homography is None:
        return float("nan")
    planar = cv2.perspectiveTransform(points[None], homography)[0] - points
    return float(np.sqrt(np.mean(np.sum((moved - planar) ** 2, axis=1)))) / FLOW_IOD

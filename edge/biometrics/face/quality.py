"""Quality gates for a detected face, each with an explicit reason code.

Measured on the aligned chip (so the figures do not depend on the frame's size) and on the landmarks.
Which findings block a comparison is the caller's choice: the product (enrolment, ATM verification)
blocks on all of them; the LFW evaluation only on "no face".
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.biometrics.config import FaceConfig


@dataclass(frozen=True)
class QualityFinding:
    code: str
    message: str
    value: float | None = None

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "value": self.value}


@dataclass(frozen=True)
class QualityMeasures:
    face_px: float       # face box width in frame pixels
    brightness: float    # mean grey level of the chip's central face area, 0-255
    sharpness: float     # share of that area's grey-level variance in its finest detail (contrast-free)
    yaw_deg: float       # + = subject turned to their left (nose towards image right)
    roll_deg: float
    motion_blur: float = 0.0  # 0 = detail in every direction; towards 1 = detail left in one direction only

    def to_dict(self) -> dict:
        return {k: round(float(v), 4) for k, v in self.__dict__.items()}


def measure(chip_rgb: np.ndarray, landmarks5: np.ndarray, face_px: float) -> QualityMeasures:
    grey = cv2.cvtColor(chip_rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    centre = grey[30:120, 30:120]  # the face proper; the padding holds background and hair
    # Sharpness: the share of the face's contrast in its finest detail (what a 1-px Gaussian removes). It
    # does not depend on contrast, so a dark or washed-out face is reported as such, not as blurred; and it
    # falls steadily with blur (a ratio between two frequency bands would not: both vanish into noise).
    finest = grey - cv2.GaussianBlur(grey, (0, 0), 1.0)
    sharpness = float(finest[30:120, 30:120].var() / max(centre.var(), 1e-6))
    # dlib 5-point order: 0,1 right eye (outer, inner); 2,3 left eye (outer, inner); 4 nose base.
    right_eye = landmarks5[0:2].mean(axis=0)
    left_eye = landmarks5[2:4].mean(axis=0)
    eye_vec = right_eye - left_eye if right_eye[0] > left_eye[0] else left_eye - right_eye
    eye_dist = max(float(np.linalg.norm(eye_vec)), 1e-6)
    roll = float(np.degrees(np.arctan2(eye_vec[1], eye_vec[0])))
    # Nose offset from the eye midpoint, along the eye line, relative to half the eye distance.
    eye_mid = (right_eye + left_eye) / 2
    offset = float(np.dot(landmarks5[4] - eye_mid, eye_vec / eye_dist)) / (eye_dist / 2)
    yaw = float(np.degrees(np.arcsin(np.clip(offset, -1.0, 1.0))))
    return QualityMeasures(face_px, float(centre.mean()), sharpness, yaw, roll, directional_blur(finest[30:120, 30:120]))


# Directions (dx, dy) of the fine-detail differences compared by `directional_blur`.
_DIRECTIONS = ((1, 0), (0, 1), (1, 1), (1, -1))


def directional_blur(detail: np.ndarray) -> float:
    """How much of the fine detail is gone in one direction only: 1 - (weakest / strongest) mean squared difference
    of neighbouring pixels over four directions. Moving during the exposure smears detail along the motion and
    keeps it across; a still face has detail in more than one direction (LFW chips: median 0.57, 95th percentile
    0.71; smeared over 5-25 px: median 0.82-0.85), and an
    out-of-focus face loses it evenly (the sharpness measure's job)."""
    energies = []
    for dx, dy in _DIRECTIONS:
        a = detail[max(0, dy):detail.shape[0] + min(0, dy), :detail.shape[1] - dx]
        b = detail[max(0, -dy):detail.shape[0] + min(0, -dy), dx:]
        energies.append(float(np.mean((a - b) ** 2)))
    strongest = max(energies)
    return 0.0 if strongest <= 1e-9 else 1.0 - min(energies) / strongest


# What the terminal asks of the customer for each capture finding (the prompt codes of the console catalogues,
# `prompt.<code>`): the customer can fix these, so the terminal asks instead of deciding on a poor sample.
PROMPTS = {
    "quality.face_too_small": "move_closer",
    "quality.too_dark": "more_light",
    "quality.overexposed": "avoid_bright_light",
    "quality.blurred": "hold_still",
    "quality.motion_blurred": "hold_still",
}


def capture_score(m: QualityMeasures, cfg: FaceConfig) -> float:
    """How good a frame is as the probe, for choosing among the frames of one capture (higher is better): each
    measure as a share of its gate, so no one measure dominates, capped where more stops helping."""
    size = min(m.face_px / max(cfg.min_face_px, 1), 2.0)
    exposure = 1.0 - abs(m.brightness - 128.0) / 128.0
    sharp = min(m.sharpness / max(cfg.min_sharpness, 1e-9), 3.0) / 3.0
    still = 1.0 - min(m.motion_blur / max(cfg.max_motion_blur, 1e-9), 1.0)
    frontal = 1.0 - min((abs(m.yaw_deg) + abs(m.roll_deg)) / 45.0, 1.0)
    return size + exposure + sharp + still + 2.0 * frontal


def findings(m: QualityMeasures, cfg: FaceConfig) -> list[QualityFinding]:
    out: list[QualityFinding] = []
    if m.face_px < cfg.min_face_px:
        out.append(QualityFinding("quality.face_too_small",
                                  f"face is {m.face_px:.0f} px wide, at least {cfg.min_face_px} needed", m.face_px))
    if m.brightness < cfg.min_brightness:
        out.append(QualityFinding("quality.too_dark", f"face too dark (mean level {m.brightness:.0f})", m.brightness))
    if m.brightness > cfg.max_brightness:
        out.append(QualityFinding("quality.overexposed", f"face overexposed (mean level {m.brightness:.0f})",
                                  m.brightness))
    if m.sharpness < cfg.min_sharpness:
        out.append(QualityFinding("quality.blurred", f"face too blurred (sharpness {m.sharpness:.4f})", m.sharpness))
    if m.motion_blur > cfg.max_motion_blur:
        out.append(QualityFinding("quality.motion_blurred", f"face smeared by motion (directional blur "
                                  f"{m.motion_blur:.2f})", m.motion_blur))
    if abs(m.yaw_deg) > cfg.max_yaw_deg or abs(m.roll_deg) > cfg.max_roll_deg:
        out.append(QualityFinding("quality.strong_pose",
                                  f"head turned too far (yaw {m.yaw_deg:.0f} deg, roll {m.roll_deg:.0f} deg)",
                                  max(abs(m.yaw_deg), abs(m.roll_deg))))
    return out

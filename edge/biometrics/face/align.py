"""Alignment: dlib's 5-point landmarks (CC0 model) and the 150 x 150 chip the embedder expects.

dlib's shape predictor was trained from the boxes of dlib's HOG detector. BlazeFace's boxes sit lower
and tighter, and starting the predictor from them gives chips zoomed on the mouth or nose. So the box
handed to the predictor is rebuilt from BlazeFace's eye and mouth keypoints with a mapping fitted to
HOG boxes on development images (`python -m edge.evaluation.fit_face_box`, constants below). A HOG
detection (the fallback detector) is handed over as it is.

Only the region around the face is converted to RGB and given to dlib, so the cost does not grow with
the frame: the chip is the same as from the whole frame (the region holds every pixel the predictor
and the chip sample).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import dlib
import numpy as np

from edge.biometrics.face.detector import Detection
from edge.models import DEFAULT_MODELS_DIR, model_path

CHIP_SIZE = 150
CHIP_PADDING = 0.25

# HOG-like box from BlazeFace keypoints:
#   centre = eye_mid + CENTRE_ALONG * (mouth - eye_mid) + CENTRE_ACROSS * (left_eye - right_eye)
#   side   = SIDE_EYES * |left_eye - right_eye| + SIDE_MOUTH * |mouth - eye_mid|
# Fitted by `python -m edge.evaluation.fit_face_box --limit 5000` on the LFW development images where both
# detectors found one face (890 of 987); median side residual 5.6 px. See models/MODEL_CARD.md.
CENTRE_ALONG = 0.3887
CENTRE_ACROSS = -0.0761
SIDE_EYES = 1.4741
SIDE_MOUTH = 0.8759
# Half-width of the region handed to dlib, in predictor-box sides: the chip (padding 0.25 around the
# landmarks' face) and the predictor's pixel samples stay well inside 1.5 sides of the box centre.
REGION_HALF_SIDES = 1.5


@dataclass(frozen=True)
class AlignedFace:
    landmarks: np.ndarray  # 5 x 2 in frame pixels (dlib order: one eye's corners, the other's, nose base)
    chip: np.ndarray       # 150 x 150 x 3 RGB uint8


def keypoint_box(keypoints: np.ndarray) -> tuple[float, float, float, float]:
    """The HOG-like box (x0, y0, x1, y1) that dlib's 5-point predictor expects, from BlazeFace keypoints."""
    kp = np.asarray(keypoints, dtype=np.float64)
    eye_mid = (kp[0] + kp[1]) / 2
    down = kp[3] - eye_mid
    across = kp[1] - kp[0]
    centre = eye_mid + CENTRE_ALONG * down + CENTRE_ACROSS * across
    side = SIDE_EYES * np.linalg.norm(across) + SIDE_MOUTH * np.linalg.norm(down)
    x0, y0 = centre - side / 2
    return float(x0), float(y0), float(x0 + side), float(y0 + side)


LANDMARK_MODEL = "face_landmarks_5"  # manifest name of shape_predictor_5_face_landmarks.dat


class Aligner:
    """dlib 5-point landmarks + chip extraction. The 68-point model is non-commercial: never used here.

    The predictor file is the manifest-checked artefact in `models_dir` (default: the configured default
    models directory). dlib's predictor is not thread-safe: callers sharing one Aligner serialise calls.
    """

    def __init__(self, models_dir: Path | None = None) -> None:
        self.predictor = dlib.shape_predictor(str(model_path(LANDMARK_MODEL, models_dir or DEFAULT_MODELS_DIR)))

    @staticmethod
    def predictor_box(det: Detection) -> tuple[float, float, float, float]:
        return det.box if det.keypoints is None else keypoint_box(det.keypoints)

    def align(self, image_rgb: np.ndarray, det: Detection) -> AlignedFace:
        """Align a face of an RGB frame (the whole frame goes to dlib)."""
        return self._align(image_rgb, self.predictor_box(det), 0, 0)

    def align_bgr(self, image_bgr: np.ndarray, det: Detection) -> AlignedFace:
        """Align a face of a BGR frame: only the region around it is converted to RGB."""
        x0, y0, x1, y1 = self.region(image_bgr.shape, det)
        return self.align_region(image_bgr[y0:y1, x0:x1], det, x0, y0)

    def region(self, shape: tuple[int, ...], det: Detection) -> tuple[int, int, int, int]:
        """The part of a frame of this shape that alignment reads for a face: (x0, y0, x1, y1)."""
        box = self.predictor_box(det)
        h, w = shape[:2]
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half = REGION_HALF_SIDES * max(box[2] - box[0], box[3] - box[1])
        x0, y0 = max(0, int(np.floor(cx - half))), max(0, int(np.floor(cy - half)))
        x1, y1 = min(w, int(np.ceil(cx + half))), min(h, int(np.ceil(cy + half)))
        if x1 <= x0 or y1 <= y0:  # a box entirely outside the frame: let dlib see the whole frame
            x0, y0, x1, y1 = 0, 0, w, h
        return x0, y0, x1, y1

    def align_region(self, region_bgr: np.ndarray, det: Detection, x0: int, y0: int) -> AlignedFace:
        """Align a face from the BGR region of the frame that `region` names (its top left corner at x0, y0): the
        region may be a restored copy of those pixels (edge.biometrics.face.restore)."""
        box = self.predictor_box(det)
        region = cv2.cvtColor(region_bgr, cv2.COLOR_BGR2RGB)
        shifted = (box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0)
        return self._align(region, shifted, x0, y0)

    def _align(self, rgb: np.ndarray, box: tuple[float, float, float, float], off_x: int, off_y: int) -> AlignedFace:
        rect = dlib.rectangle(*(int(round(v)) for v in box))
        shape = self.predictor(rgb, rect)
        landmarks = np.array([[p.x + off_x, p.y + off_y] for p in shape.parts()], dtype=np.float32)
        chip = dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        return AlignedFace(landmarks, np.asarray(chip, dtype=np.uint8))

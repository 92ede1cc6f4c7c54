"""Alignment: dlib's 5-point landmarks (CC0 model) and the 150 x 150 chip the embedder expects.

dlib's shape predictor was trained from the boxes of dlib's HOG detector. BlazeFace's boxes sit lower
and tighter, and starting the predictor from them gives chips zoomed on the mouth or nose. So the box
handed to the predictor is rebuilt from BlazeFace's eye and mouth keypoints with a mapping fitted to
HOG boxes on development images (`python -m edge.evaluation.fit_face_box`, constants below).
"""
from __future__ import annotations

from dataclasses import dataclass

import dlib
import face_recognition_models
import numpy as np

from edge.biometrics.face.detector import Detection

CHIP_SIZE = 150
CHIP_PADDING = 0.25

# HOG-like box from keypoints: centre = eye_mid + CENTRE_ALONG * (mouth - eye_mid)
#                                       + CENTRE_ACROSS * (eye-line unit vector scaled by eye distance),
# side = SIDE_EYES * eye_distance + SIDE_MOUTH * |mouth - eye_mid|.
# Fitted by edge.evaluation.fit_face_box on LFW development images (see models/MODEL_CARD.md).
CENTRE_ALONG = 0.55
CENTRE_ACROSS = 0.0
SIDE_EYES = 1.35
SIDE_MOUTH = 1.35


@dataclass(frozen=True)
class AlignedFace:
    landmarks: np.ndarray  # 5 x 2 (dlib order: right eye outer, right eye inner, left eye outer, left eye inner, nose)
    chip: np.ndarray       # 150 x 150 x 3 RGB uint8


class Aligner:
    """dlib 5-point landmarks + chip extraction. The 68-point model is non-commercial: never used here."""

    def __init__(self) -> None:
        self.predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())

    @staticmethod
    def predictor_box(det: Detection) -> dlib.rectangle:
        kp = det.keypoints.astype(np.float64)
        eye_mid = (kp[0] + kp[1]) / 2
        down = kp[3] - eye_mid
        across = kp[1] - kp[0]
        centre = eye_mid + CENTRE_ALONG * down + CENTRE_ACROSS * across
        side = SIDE_EYES * np.linalg.norm(across) + SIDE_MOUTH * np.linalg.norm(down)
        x0, y0 = centre - side / 2
        return dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x0 + side)), int(round(y0 + side)))

    def align(self, image_rgb: np.ndarray, det: Detection) -> AlignedFace:
        shape = self.predictor(image_rgb, self.predictor_box(det))
        landmarks = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
        chip = dlib.get_face_chip(image_rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        return AlignedFace(landmarks, np.asarray(chip, dtype=np.uint8))

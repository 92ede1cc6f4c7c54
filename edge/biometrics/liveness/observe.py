"""What the liveness check reads from each frame: where the face is, its keypoints, and a small grey patch.

`FaceObserver.observe(frame)` runs the product's face detector (BlazeFace: eyes, nose tip, mouth, ear
tragions) and dlib's 5-point landmarks (eye corners, nose base) through the face pipeline's public classes,
and keeps only what the challenge needs (`FrameObservation`): the keypoints, a grey patch of the face
region at a fixed scale (for the blink measure) and how much the frame changed since the previous one.
Full frames are not kept here; the checker keeps the few it needs and wipes them.

Only commercially usable landmark models are used: BlazeFace's keypoints (Apache-2.0) and dlib's 5-point
predictor (CC0). dlib's 68-point model is trained on non-commercial data and is never loaded.

Signs: `yaw_signal` grows when the nose moves toward the image's right, i.e. an unmirrored camera sees the
customer turn to THEIR left.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.biometrics.face.detector import most_prominent
from edge.biometrics.liveness.geometry import FaceGeometry, check_image

PATCH_SIZE = 192        # side of the grey face patch, pixels
PATCH_FACE_WIDTH = 96   # the detector's face box width in the patch
STRIDE = 4              # frame change is measured on every STRIDE-th pixel (no averaging: sensor noise stays)


@dataclass
class FrameObservation:
    """One frame as the challenge sees it. Coordinates are image pixels unless named otherwise."""

    index: int
    faces: int                                # faces detected in the frame
    change: float                             # mean |grey difference| to the previous frame (nan for the first)
    box: tuple[float, float, float, float] | None = None
    score: float = 0.0
    keypoints: np.ndarray | None = None       # BlazeFace 6 x 2: right eye, left eye, nose, mouth, right ear, left ear
    landmarks: np.ndarray | None = None       # dlib 5 x 2: eye corners (2 + 2), nose base
    patch: np.ndarray | None = None           # grey face region, PATCH_SIZE square, uint8
    patch_transform: np.ndarray | None = None  # 2 x 3 affine: image -> patch
    depth: float = float("nan")               # turn challenge: motion away from a plane (set by the checker)

    @property
    def has_face(self) -> bool:
        return self.keypoints is not None

    def eyes(self) -> tuple[np.ndarray, np.ndarray]:
        """BlazeFace eye centres in image order: (the one with the smaller x, the other)."""
        a, b = self.keypoints[0], self.keypoints[1]
        return (a, b) if a[0] <= b[0] else (b, a)

    @property
    def iod(self) -> float:
        left, right = self.eyes()
        return float(np.linalg.norm(right - left))

    @property
    def yaw_signal(self) -> float:
        """Nose and ears against the eyes, along the eye line, in IOD; grows as the nose moves image-right.

        Three readings of one thing, averaged because each is noisy on its own: BlazeFace's nose tip and
        dlib's nose base relative to their own eye midpoints (the nose stands in front of the eyes, so it
        swings further in a turn), and the eye midpoint relative to the ears (the ears are behind them).
        A flat photo tilted like a door keeps all three near their start values.
        """
        left, right = self.eyes()
        mid, axis = (left + right) / 2, right - left
        iod = max(float(np.linalg.norm(axis)), 1e-6)
        axis = axis / iod
        nose_bf = float(np.dot(self.keypoints[2] - mid, axis)) / iod
        ears = float(np.dot(mid - (self.keypoints[4] + self.keypoints[5]) / 2, axis)) / iod
        eye_a, eye_b = self.landmarks[0:2].mean(axis=0), self.landmarks[2:4].mean(axis=0)
        l5, r5 = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
        iod5 = max(float(np.linalg.norm(r5 - l5)), 1e-6)
        nose_5 = float(np.dot(self.landmarks[4] - (l5 + r5) / 2, (r5 - l5) / iod5)) / iod5
        return (nose_bf + nose_5 + ears) / 3.0

    def eye_corners(self) -> tuple[np.ndarray, np.ndarray]:
        """dlib's corner pairs (2 x 2 each) of the eye on the image's left, then the other."""
        a, b = self.landmarks[0:2], self.landmarks[2:4]
        return (a, b) if a[:, 0].mean() <= b[:, 0].mean() else (b, a)

    def geometry(self) -> FaceGeometry:
        """The face as the passive detector's features want it."""
        left, right = self.eyes()
        return FaceGeometry(box=self.box, eye_left_img=tuple(map(float, left)), eye_right_img=tuple(map(float, right)),
                            nose=tuple(map(float, self.keypoints[2])), mouth=tuple(map(float, self.keypoints[3])),
                            score=self.score, source="blazeface")

    def wipe(self) -> None:
        if self.patch is not None:
            self.patch.fill(0)


class FaceObserver:
    """Turns frames into `FrameObservation`s; keeps the previous frame's thumbnail to measure change.

    `detector` is the face pipeline's BlazeFace (`detect(rgb) -> [Detection]`), `aligner` its 5-point
    aligner (`align(rgb, detection) -> AlignedFace`). Use `reset()` between checks.
    """

    def __init__(self, detector: Any, aligner: Any):
        self.detector = detector
        self.aligner = aligner
        self._previous: np.ndarray | None = None

    @classmethod
    def from_pipeline(cls, face_pipeline: Any = None, models_dir: Path | None = None, threads: int = 1,
                      min_score: float = 0.5) -> "FaceObserver":
        """Share the face pipeline's detector and aligner, or build them from the models directory."""
        if face_pipeline is not None:
            return cls(face_pipeline.detector, face_pipeline.aligner)
        from edge.biometrics.face import FaceDetector
        from edge.biometrics.face.align import Aligner

        return cls(FaceDetector(models_dir, threads, min_score), Aligner())

    def reset(self) -> None:
        if self._previous is not None:
            self._previous.fill(0)
        self._previous = None

    def observe(self, frame_bgr: np.ndarray, index: int) -> FrameObservation:
        frame_bgr = check_image(frame_bgr)
        grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        thumb = grey[::STRIDE, ::STRIDE].astype(np.int16)
        if self._previous is not None and self._previous.shape == thumb.shape:
            change = float(np.abs(thumb - self._previous).mean())
            self._previous.fill(0)
        else:
            change = float("nan")
        self._previous = thumb

        rgb = np.ascontiguousarray(frame_bgr[:, :, ::-1])
        detections = self.detector.detect(rgb)
        if not detections:
            return FrameObservation(index=index, faces=0, change=change)
        h, w = grey.shape
        face = most_prominent(detections, w, h)
        aligned = self.aligner.align(rgb, face)
        landmarks = np.asarray(aligned.landmarks, dtype=np.float64).copy()
        aligned.chip.fill(0)  # the chip is a biometric sample we do not need
        patch, transform = face_patch(grey, face.box)
        return FrameObservation(index=index, faces=len(detections), change=change,
                                box=tuple(float(v) for v in face.box), score=float(face.score),
                                keypoints=np.asarray(face.keypoints, dtype=np.float64).copy(),
                                landmarks=landmarks, patch=patch, patch_transform=transform)


def face_patch(grey: np.ndarray, box: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The grey region around a face box at a fixed scale (box width -> PATCH_FACE_WIDTH), and its transform."""
    x0, y0, x1, y1 = box
    scale = PATCH_FACE_WIDTH / max(x1 - x0, 1.0)
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    transform = np.array([[scale, 0.0, PATCH_SIZE / 2 - scale * centre[0]],
                          [0.0, scale, PATCH_SIZE / 2 - scale * centre[1]]])
    patch = cv2.warpAffine(grey, transform, (PATCH_SIZE, PATCH_SIZE), flags=cv2.INTER_AREA,
                           borderMode=cv2.BORDER_REPLICATE)
    return patch, transform

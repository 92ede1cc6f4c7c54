"""Where the face is in a frame, reduced to what liveness needs: a box and a few keypoints.

Liveness reads faces through one small type, `FaceGeometry`, so the passive features and the challenge
do not care which detector found the face:

- at run time the product's detector (`edge.biometrics.face`, BlazeFace keypoints) is used;
- where it is not available (models not built yet, or early development), dlib's HOG detector plus the
  5-point landmark model (CC0) gives the same points.

Only commercially usable landmarks are used: BlazeFace's 6 keypoints and dlib's 5-point model. dlib's
68-point model is trained on non-commercial data (iBUG 300-W) and must never be loaded here.

Eyes are kept in *image* order (`eye_left_img` is the eye with the smaller x), which is what the
geometry below needs; which of the subject's eyes that is depends on mirroring and does not matter.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edge.biometrics.config import FaceConfig
from edge.errors import InputError, ModelError
from edge.models import DEFAULT_MODELS_DIR

Point = tuple[float, float]


@dataclass(frozen=True)
class FaceGeometry:
    """One face: box (x0, y0, x1, y1) in pixels, eye centres, nose, optional mouth centre."""

    box: tuple[float, float, float, float]
    eye_left_img: Point
    eye_right_img: Point
    nose: Point
    mouth: Point | None = None
    score: float = 1.0
    source: str = "unknown"

    @property
    def eye_mid(self) -> np.ndarray:
        return (np.asarray(self.eye_left_img) + np.asarray(self.eye_right_img)) / 2.0

    @property
    def inter_ocular(self) -> float:
        return float(np.hypot(self.eye_right_img[0] - self.eye_left_img[0],
                              self.eye_right_img[1] - self.eye_left_img[1]))

    @property
    def roll_rad(self) -> float:
        """Angle of the eye line against the image x axis."""
        return float(np.arctan2(self.eye_right_img[1] - self.eye_left_img[1],
                                self.eye_right_img[0] - self.eye_left_img[0]))

    def points(self) -> np.ndarray:
        """Keypoints as an (N, 2) array: eyes, nose, and the mouth when known."""
        pts = [self.eye_left_img, self.eye_right_img, self.nose]
        if self.mouth is not None:
            pts.append(self.mouth)
        return np.asarray(pts, dtype=np.float64)


class FaceLocator(Protocol):
    name: str

    def locate(self, image_bgr: np.ndarray) -> FaceGeometry | None:
        """The most prominent face in the frame, or None."""


def check_image(image_bgr: Any) -> np.ndarray:
    """A usable BGR uint8 image or a typed error (never a crash deep inside OpenCV)."""
    if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8:
        raise InputError("image must be a uint8 numpy array", code="input.bad_image")
    if image_bgr.ndim == 2:
        import cv2

        image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or min(image_bgr.shape[:2]) < 16:
        raise InputError(f"image must be H x W x 3 with sides >= 16 px, got {image_bgr.shape}",
                         code="input.bad_image")
    return image_bgr


def _ordered_eyes(a: Point, b: Point) -> tuple[Point, Point]:
    return (a, b) if a[0] <= b[0] else (b, a)


class DlibFaceLocator:
    """dlib HOG detector + 5-point landmarks (both licence-clean). Slower than BlazeFace, no mouth point."""

    name = "dlib-hog-5pt"

    def __init__(self, upsample: int = 0):
        try:
            import dlib
            import face_recognition_models
        except ImportError as exc:  # pragma: no cover - both are hard dependencies
            raise ModelError(f"dlib face locator unavailable: {exc}", code="model.missing") from None
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
        self._upsample = upsample

    def locate(self, image_bgr: np.ndarray) -> FaceGeometry | None:
        image_bgr = check_image(image_bgr)
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        rects, scores, _ = self._detector.run(rgb, self._upsample, 0.0)
        if not rects:
            return None
        best = max(range(len(rects)), key=lambda i: rects[i].area())  # the customer is the biggest face
        r = rects[best]
        shape = self._shape(rgb, r)
        p = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)
        # 5-point model: points 0-1 and 2-3 are the corners of the two eyes, 4 is below the nose tip.
        eye_a, eye_b = tuple(p[0:2].mean(axis=0)), tuple(p[2:4].mean(axis=0))
        left, right = _ordered_eyes(eye_a, eye_b)
        return FaceGeometry(box=(float(r.left()), float(r.top()), float(r.right()), float(r.bottom())),
                            eye_left_img=left, eye_right_img=right, nose=tuple(p[4]),
                            score=float(scores[best]), source=self.name)


class DetectorFaceLocator:
    """Adapter over the product's face detector (`detect(image_rgb) -> list[Detection]`, BlazeFace
    keypoints: right eye, left eye, nose tip, mouth centre, right ear, left ear)."""

    name = "blazeface"

    def __init__(self, detector: Any):
        self._detector = detector

    def locate(self, image_bgr: np.ndarray) -> FaceGeometry | None:
        image_bgr = check_image(image_bgr)
        detections = list(self._detector.detect(np.ascontiguousarray(image_bgr[:, :, ::-1])))  # it wants RGB
        if not detections:
            return None
        def area(d: Any) -> float:
            x0, y0, x1, y1 = d.box
            return (x1 - x0) * (y1 - y0)
        d = max(detections, key=area)
        k = np.asarray(d.keypoints, dtype=np.float64).reshape(-1, 2)
        left, right = _ordered_eyes(tuple(k[0]), tuple(k[1]))
        return FaceGeometry(box=tuple(float(v) for v in d.box), eye_left_img=left, eye_right_img=right,
                            nose=tuple(k[2]), mouth=tuple(k[3]), score=float(d.score), source=self.name)


def make_locator(config: Any = None, prefer: str = "auto") -> FaceLocator:
    """The product's detector when it can be built; dlib HOG + 5-point otherwise.

    `config`: anything with `paths.models_dir` and a `face` section (`edge.config.Config`), or None for the
    shipped defaults.

    `prefer`: "auto", "product" (fail if unavailable) or "dlib".
    """
    if prefer in ("auto", "product"):
        try:
            detector = _build_product_detector(config)
            return DetectorFaceLocator(detector)
        except Exception as exc:  # missing module or model: fall back unless the caller insisted
            if prefer == "product":
                raise ModelError(f"face detector unavailable: {exc}", code="model.missing") from None
    return DlibFaceLocator()


def _build_product_detector(config: Any) -> Any:
    from edge.biometrics.face import FaceDetector  # the face pipeline's BlazeFace (needs the built model)

    if config is None:  # the shipped defaults: the default models folder and the [face] section's defaults
        face = FaceConfig()
        return FaceDetector(DEFAULT_MODELS_DIR, face.threads, face.detector_score)
    return FaceDetector(config.paths.models_dir, config.face.threads, config.face.detector_score)

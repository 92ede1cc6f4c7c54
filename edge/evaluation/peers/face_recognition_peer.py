"""face_recognition 1.3.0 (dlib-bin), the reference our face path is benchmarked against.

Benchmark-only. `import face_recognition` loads all four dlib models, the non-commercial 68-point
landmark predictor among them, so this module must only be imported lazily by `biogate bench face`
(tests/models/test_manifest.py checks that no runtime module imports it at load time).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edge.errors import ModelError


def _face_recognition() -> Any:
    try:
        import face_recognition
    except ImportError:
        raise ModelError("the face_recognition peer is not installed (the Makefile's `make setup` installs it "
                         "with --no-deps on top of dlib-bin)", code="model.peer_missing") from None
    return face_recognition


class FaceRecognitionPeer:
    """face_recognition's own pipeline: HOG detector (upsample 0) + face_encodings (5-point, 1 jitter)."""

    def __init__(self) -> None:
        self.api = _face_recognition()
        import dlib
        import face_recognition_models

        # dlib's own ResNet, for timing the embedding model alone against our ONNX conversion.
        self.resnet = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())

    def encodings(self, image_rgb: np.ndarray) -> list[np.ndarray]:
        """128-d descriptors of every face in an RGB frame, as an application using face_recognition gets them."""
        locations = self.api.face_locations(image_rgb, number_of_times_to_upsample=0, model="hog")
        return self.api.face_encodings(image_rgb, locations, num_jitters=1, model="small")

    def descriptor(self, chip_rgb: np.ndarray) -> np.ndarray:
        """dlib's descriptor of one 150 x 150 RGB chip (no jitter)."""
        return np.asarray(self.resnet.compute_face_descriptor(chip_rgb, 1), dtype=np.float32)

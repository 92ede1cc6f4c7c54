"""Builder of shape_predictor_5_face_landmarks.dat: dlib's 5-point landmark model (CC0), copied unchanged.

It is an artefact like the ONNX files so that the runtime loads it through edge.models (manifest hash check)
instead of straight from the installed package. The copy is checked to be a dlib shape predictor first: dlib
serializes a shape_predictor as a version integer (1), then the initial shape matrix; a wrong file (the 68-point
model has the same header) is caught by the manifest's source sha256, which the build checks before calling this.
"""
from __future__ import annotations

from models.manifest import Artifact


def build(source: bytes, artifact: Artifact) -> bytes:
    if len(source) < 1024 or source[:2] != b"\x01\x01":  # dlib integer 1: control byte 0x01, value byte 0x01
        raise ValueError(f"{artifact.source.member} does not look like a dlib shape predictor")
    return source

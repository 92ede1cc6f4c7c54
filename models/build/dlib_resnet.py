"""Builder of face_embedder.onnx: dlib's face-recognition ResNet converted by our own reader and graph writer."""
from __future__ import annotations

from models.build.dlib_format import read_dlib_resnet
from models.build.dlib_to_onnx import build_onnx
from models.manifest import Artifact


def build(source: bytes, artifact: Artifact) -> bytes:
    net = read_dlib_resnet(source)
    doc = (f"dlib_face_recognition_resnet_model_v1 ({artifact.source.package} {artifact.source.version}, "
           f"sha256 {artifact.source.sha256}), converted by biogate models.build.dlib_resnet. "
           f"Same-person threshold stored in the file: {net.distance_threshold:.3f} (Euclidean).")
    return build_onnx(net, doc=doc).SerializeToString()

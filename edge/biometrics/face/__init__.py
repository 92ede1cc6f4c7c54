"""Face verification: detect, align, embed, compare; quality gates with explicit reasons.

    pipeline = FacePipeline(config.face, config.paths.models_dir)
    a = pipeline.analyze(load_image("a.jpg"))      # BGR in, FaceAnalysis out
    d = pipeline.distance(a.require(), b.require())

May import: as edge.biometrics.
"""
from edge.biometrics.face.detector import Detection, FaceDetector, HogFaceDetector
from edge.biometrics.face.embedder import FaceEmbedder, face_distance
from edge.biometrics.face.image import load_image
from edge.biometrics.face.pipeline import FaceAnalysis, FacePipeline
from edge.biometrics.face.quality import QualityFinding

__all__ = ["Detection", "FaceAnalysis", "FaceDetector", "FaceEmbedder", "FacePipeline", "HogFaceDetector",
           "QualityFinding", "face_distance", "load_image"]

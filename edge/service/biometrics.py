"""The daemon's one door to the biometric core: face, finger, liveness and calibration, loaded once.

The service layers (enrolment, verification) speak in samples, templates and scores through this
class and never touch a model or an algorithm directly, so what runs at an ATM is exactly what the
command line measures (`biogate eval ...`).

Score conventions handed to edge.decision: face score = minus the smallest Euclidean distance to the
enrolled embeddings (higher = more alike), finger score = the largest matcher similarity.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

import cv2
import numpy as np

from edge.config import Config
from edge.decision.calibration import Calibration, load_calibration
from edge.store.base import StoredTemplate

FINGER_TEMPLATE_FORMAT = "iso19794-2:2005"


@dataclass
class FaceSample:
    """A usable face from one frame: its embedding, the evidence crop (JPEG) and what quality found."""

    embedding: np.ndarray
    crop_jpeg: bytes
    quality: dict
    findings: list[str] = field(default_factory=list)

    def wipe(self) -> None:
        self.embedding.fill(0)
        self.crop_jpeg = b""


def _evidence_crop(frame_bgr: np.ndarray, box: Sequence[float], margin: float = 0.35, side: int = 224) -> bytes:
    """The face with a margin, resized to a fixed side and JPEG-encoded: what an auditor needs to see."""
    h, w = frame_bgr.shape[:2]
    x0, y0, x1, y1 = [float(v) for v in box]
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    xa, ya = int(max(0, x0 - mx)), int(max(0, y0 - my))
    xb, yb = int(min(w, x1 + mx)), int(min(h, y1 + my))
    crop = frame_bgr[ya:yb, xa:xb]
    if crop.size == 0:
        crop = frame_bgr
    scale = side / max(crop.shape[:2])
    crop = cv2.resize(crop, (max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale))),
                      interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes() if ok else b""


class BiometricCore:
    def __init__(self, cfg: Config, calibration: Calibration | None = None):
        from edge.biometrics.face import FacePipeline

        self.cfg = cfg
        self.face = FacePipeline(cfg.face, cfg.paths.models_dir)
        self.calibration = calibration or load_calibration(cfg.policy.calibration_file)
        self._liveness = None
        self._lock = threading.Lock()   # onnxruntime sessions are thread-safe; dlib's predictor is not

    # -- face -----------------------------------------------------------------------------------------
    def face_sample(self, frame_bgr: np.ndarray, *, strict: bool) -> FaceSample:
        """Embedding of the most prominent face; QualityError naming the first blocking finding."""
        with self._lock:
            analysis = self.face.analyze(frame_bgr)
        try:
            embedding = analysis.require(strict).copy()
            crop = _evidence_crop(frame_bgr, analysis.face.box)
            return FaceSample(embedding, crop, analysis.measures.to_dict() if analysis.measures else {},
                              [f.code for f in analysis.findings])
        finally:
            analysis.wipe()

    def has_face(self, frame_bgr: np.ndarray) -> bool:
        """Whether a usable face (an embedding) can be had from this frame."""
        with self._lock:
            analysis = self.face.analyze(frame_bgr)
        found = analysis.acquired
        analysis.wipe()
        return found

    def face_template(self, sample: FaceSample) -> bytes:
        from edge.biometrics.face.template import encode_face_template

        return encode_face_template(sample.embedding)

    def face_score(self, probe: np.ndarray, references: list[StoredTemplate]) -> float:
        """Minus the distance from the probe to the customer's face centroid.

        The enrolled embeddings are averaged (and the mean rescaled to their common length): one
        comparison instead of one per sample, so no multiple-comparison allowance is needed and the
        centroid is steadier than any single sample. The calibration was fitted on single-image pairs;
        against a centroid, genuine distances shrink and impostor ones do not, so it errs on the safe side.
        """
        from edge.biometrics.face.template import decode_face_template

        if not references:
            return -np.inf
        vecs = np.stack([decode_face_template(ref.payload).astype(np.float64) for ref in references])
        try:
            centroid = vecs.mean(axis=0)
            norm = float(np.linalg.norm(centroid))
            if norm > 0:
                centroid *= float(np.linalg.norm(vecs, axis=1).mean()) / norm
            return -float(np.linalg.norm(probe.astype(np.float64) - centroid))
        finally:
            vecs.fill(0)

    # -- finger ---------------------------------------------------------------------------------------
    def finger_template(self, image: np.ndarray):
        """Minutiae of a captured print; QualityError when the print cannot be used."""
        from edge.biometrics import finger

        template = finger.extract(image)
        return template

    def finger_record(self, template) -> bytes:
        from edge.biometrics import finger

        return finger.encode_iso(template)

    def finger_score(self, probe, references: list[StoredTemplate]) -> float:
        from edge.biometrics import finger

        if not references:
            return -np.inf
        refs = [finger.decode_iso(bytes(ref.payload)) for ref in references]
        try:
            return float(finger.compare_many(probe, refs).max())
        finally:
            for r in refs:
                finger.wipe(r)

    def wipe_finger(self, template) -> None:
        from edge.biometrics import finger

        finger.wipe(template)

    # -- liveness -------------------------------------------------------------------------------------
    @property
    def liveness(self):
        if self._liveness is None:
            from edge.biometrics.liveness import LivenessChecker

            self._liveness = LivenessChecker(self.cfg.liveness, self.cfg.paths.models_dir, self.face)
        return self._liveness

    def check_liveness(self, camera, prompt: Callable[[str], None], rng: np.random.Generator):
        return self.liveness.check(camera, prompt, rng)

    # -- start-up -------------------------------------------------------------------------------------
    def warm_up(self, modalities: set[str]) -> None:
        """Pay one-time costs (library imports, JIT compilation, first inference) before a customer does."""
        blank = np.zeros((240, 320, 3), np.uint8)
        with self._lock:
            self.face.analyze(blank)
        if "finger" in modalities:
            from edge.biometrics import finger

            finger.warm_up()
        if self.cfg.policy.liveness_required and "face" in modalities:
            _ = self.liveness

    # -- calibration ----------------------------------------------------------------------------------
    def llr(self, modality: str, score: float) -> float:
        return self.calibration.modality(modality).llr(score)


def calibrated_bridge_engine(core: BiometricCore, target_fmr: float):
    """The XFS4IoT bridge's engine, scoring with this deployment's calibration.

    The bridge reports confidenceLevel = round(100 * score) with 50 = the operating point; here the score
    is logistic(LLR - threshold LLR at `target_fmr`) for the modality, so Match threshold 50 means the same
    false-match rate as the daemon's own decisions, and each 10 points above it is a further factor of
    e^(~0.4) in likelihood ratio (a readable, monotone scale).
    """
    from xfs4iot_bridge.engine import BiogateEngine, logistic

    calibration = core.calibration
    thresholds = {m: calibration.threshold([m], target_fmr) for m in calibration.modalities}

    class CalibratedEngine(BiogateEngine):
        def compare(self, modality, probe, reference) -> float:
            if modality == "face":
                score = -float(np.linalg.norm(np.asarray(probe, np.float64) - np.asarray(reference, np.float64)))
            else:
                score = float(self._finger().compare(probe, reference))
            return logistic(calibration.modality(modality).llr(score) - thresholds[modality])

    return CalibratedEngine(core.face)

"""The daemon's one door to the biometric core: face, finger, liveness and scoring, loaded once.

The service layers (enrolment, verification) speak in samples, stored templates and scores through this
class and never touch a model, a codec or an algorithm directly, so what runs at an ATM is exactly what the
command line measures (`biogate eval ...`). Scores and their calibrated meaning come from
`edge.decision.scoring`, the same module the XFS4IoT bridge scores with (`bridge_engine`).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

import cv2
import numpy as np

from edge.biometrics import finger
from edge.biometrics.config import LivenessConfig
from edge.biometrics.face import FacePipeline
from edge.biometrics.face.template import FACE_TEMPLATE_FORMAT, decode_face_template, encode_face_template
from edge.biometrics.finger import FINGER_TEMPLATE_FORMAT, FingerTemplate
from edge.biometrics.liveness import LivenessChecker, LivenessResult
from edge.config import Config
from edge.decision.calibration import Calibration, load_calibration
from edge.decision.scoring import Scorer, face_scores, finger_scores
from edge.store.base import StoredTemplate
from xfs4iot_bridge.engine import BiogateEngine

# The storage format of each modality's templates (one name per format, defined by its codec).
TEMPLATE_FORMATS = {"face": FACE_TEMPLATE_FORMAT, "finger": FINGER_TEMPLATE_FORMAT}


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


class Gallery:
    """Decoded stored templates of one modality, scored against new records at once (duplicate checks).
    `wipe()` zeroises the decoded references."""

    def __init__(self, core: "BiometricCore", modality: str, stored: Sequence[StoredTemplate]):
        self.core, self.modality, self.stored = core, modality, list(stored)
        if modality == "face":
            self._refs = np.stack([decode_face_template(t.payload).astype(np.float64) for t in self.stored])
        else:
            self._refs = [finger.prepare(finger.decode_iso(bytes(t.payload))) for t in self.stored]

    def llrs(self, record: bytes) -> np.ndarray:
        """The calibrated LLR of one new record (in this modality's storage format) against every reference."""
        if self.modality == "face":
            scores = face_scores(decode_face_template(record), self._refs)
        else:
            scores = finger_scores(finger.decode_iso(record), self._refs)
        return self.core.scorer.llrs(self.modality, scores)

    def wipe(self) -> None:
        if self.modality == "face":
            self._refs.fill(0)
        else:
            for r in self._refs:
                finger.wipe(r)


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
        self.cfg = cfg
        self.face = FacePipeline(cfg.face, cfg.paths.models_dir)
        self.calibration = calibration or load_calibration(cfg.policy.calibration_file)
        self.scorer = Scorer(self.calibration)
        self._liveness: LivenessChecker | None = None
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

    def best_face_sample(self, frames_bgr: list[np.ndarray], reference: np.ndarray | None = None
                         ) -> tuple[FaceSample, list[str]] | None:
        """The probe from the best of several frames of one capture (FacePipeline.analyze_best) and its capture
        findings (too small, dark, bright, blurred, smeared: the customer can fix them). With `reference` (the
        embedding of the frame the liveness check kept), the best frame whose face is that same face: a better
        frame of someone else (or of a face the embedder cannot tell is the same) is passed over, not taken and
        not allowed to end the capture. None when no frame shows a usable face."""
        def same_face(embedding: np.ndarray) -> bool:
            return self.face.is_same(self.face.distance(embedding, reference))

        with self._lock:
            chosen = self.face.analyze_best(frames_bgr, accept=same_face if reference is not None else None)
        if chosen is None:
            return None
        index, analysis = chosen
        try:
            crop = _evidence_crop(frames_bgr[index], analysis.face.box)
            sample = FaceSample(analysis.embedding.copy(), crop, analysis.measures.to_dict(),
                                [f.code for f in analysis.findings])
            return sample, [f.code for f in analysis.capture_findings()]
        finally:
            analysis.wipe()

    def face_overlay(self, frame_bgr: np.ndarray) -> tuple[list[tuple[tuple[float, ...], bool]], list[str]]:
        """What a live preview draws: every face's box (True for the most prominent one, the one captured) and
        the quality finding codes of that face ("quality.multiple_faces" first when more than one is seen)."""
        with self._lock:
            analysis = self.face.analyze(frame_bgr)
        try:
            faces = [(tuple(float(v) for v in d.box), d is analysis.face) for d in analysis.faces]
            findings = [f.code for f in analysis.findings]
            if len(analysis.faces) > 1:
                findings.insert(0, "quality.multiple_faces")
            return faces, findings
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
        return encode_face_template(sample.embedding)

    def face_score(self, probe: np.ndarray, references: list[StoredTemplate]) -> float:
        """The probe against the customer's enrolled face samples (edge.decision.scoring: their centroid)."""
        if not references:
            return -np.inf
        vecs = np.stack([decode_face_template(ref.payload).astype(np.float64) for ref in references])
        try:
            return self.scorer.face(probe, vecs)
        finally:
            vecs.fill(0)

    def same_face(self, a: np.ndarray, b: np.ndarray) -> bool:
        """Two samples of one sitting are the same person when their comparison favours it (LLR > 0)."""
        return self.scorer.llr("face", self.scorer.face(a, b[None, :])) > 0

    # -- finger ---------------------------------------------------------------------------------------
    def finger_template(self, image: np.ndarray) -> FingerTemplate:
        """Minutiae of a captured print; QualityError when the print cannot be used."""
        return finger.extract(image)

    def finger_record(self, template: FingerTemplate) -> bytes:
        return finger.encode_iso(template)

    def finger_score(self, probe: FingerTemplate, references: list[StoredTemplate]) -> float:
        """The probe against the enrolled impressions of one finger (the best of them)."""
        if not references:
            return -np.inf
        refs = [finger.decode_iso(bytes(ref.payload)) for ref in references]
        try:
            return self.scorer.finger(probe, refs)
        finally:
            for r in refs:
                finger.wipe(r)

    def same_finger(self, a: FingerTemplate, b: FingerTemplate) -> bool:
        """Two impressions of one sitting are the same finger when their comparison favours it (LLR > 0)."""
        return self.scorer.llr("finger", self.scorer.finger(a, [b])) > 0

    def wipe_finger(self, template: FingerTemplate) -> None:
        finger.wipe(template)

    # -- stored records ---------------------------------------------------------------------------------
    def check_record(self, modality: str, data: bytes) -> None:
        """Decode a template record with its modality's codec (InputError if malformed), then wipe it."""
        if modality == "face":
            decode_face_template(data).fill(0)
        else:
            finger.wipe(finger.decode_iso(data))

    def gallery(self, modality: str, stored: Sequence[StoredTemplate]) -> Gallery:
        return Gallery(self, modality, stored)

    # -- liveness -------------------------------------------------------------------------------------
    @property
    def liveness(self) -> LivenessChecker:
        if self._liveness is None:
            self._liveness = LivenessChecker(self.liveness_config, self.cfg.paths.models_dir, self.face)
        return self._liveness

    @property
    def liveness_config(self) -> LivenessConfig:
        return self.cfg.liveness

    def check_liveness(self, camera, prompt: Callable[[str], None], rng: np.random.Generator) -> LivenessResult:
        return self.liveness.check(camera, prompt, rng)

    # -- start-up -------------------------------------------------------------------------------------
    def warm_up(self, modalities: set[str]) -> None:
        """Pay one-time costs (library imports, JIT compilation, first inference) before a customer does."""
        blank = np.zeros((240, 320, 3), np.uint8)
        with self._lock:
            self.face.analyze(blank)
        if "finger" in modalities:
            finger.warm_up()
        if self.cfg.policy.liveness_required and "face" in modalities:
            _ = self.liveness

    # -- calibration ----------------------------------------------------------------------------------
    def llr(self, modality: str, score: float) -> float:
        return self.scorer.llr(modality, score)

    def bridge_engine(self, target_fmr: float) -> BiogateEngine:
        """The XFS4IoT bridge's engine on this deployment's face pipeline and scorer: its Match threshold 50
        is the single-factor operating point at `target_fmr`, the false-match rate of the daemon's decisions."""
        return BiogateEngine(self.face, scorer=self.scorer,
                             operating_llr={m: self.scorer.operating_llr(m, target_fmr)
                                            for m in self.calibration.modalities})

"""The biometric engine the Biometric service delegates to, so the bridge hard-codes no algorithm.

The service only moves bytes and events; an engine turns device output into templates and
compares templates into calibrated scores:

    class BiometricEngine(Protocol):
        formats: dict[str, Modality]            # XFS4IoT data format -> "face" | "finger"
        def face_template(frame) -> bytes | None     # None: no face in this frame (keep looking)
                                                     # QualityError: a face, but not usable
        def finger_template(image) -> bytes          # ISO/IEC 19794-2 record of one impression
        def parse_template(fmt, data) -> object      # InputError when `data` is not a valid `fmt`
        def compare(modality, probe, reference) -> float   # calibrated score in [0, 1]
        def wipe(parsed) -> None                     # zeroise what parse_template returned

Calibration contract: `compare` returns a score in [0, 1] that is 0.5 exactly at the engine's
configured operating point for that modality, higher for more similar. The service reports
confidenceLevel = round(100 * score), and a Match threshold T (0..100) accepts confidenceLevel >= T,
so the default threshold 50 is the configured operating point. Scores and their calibrated meaning come
from `edge.decision.scoring` (the daemon's own decisions use the same module): confidence =
logistic(LLR(score) - operating LLR).

Data formats on the wire (XFS4IoT `format` values) and the biogate storage format each one carries:
    isoFmd             ISO/IEC 19794-2:2005 finger minutiae record (finger.FINGER_TEMPLATE_FORMAT)
    reservedTemplate1  biogate face template (face.template.FACE_TEMPLATE_FORMAT)

The biogate face template is the record of `edge.biometrics.face.template` (the same bytes the daemon
stores and exports): magic "BGFT", version, value type, dimension, embedder name, float32 values.
"""
from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from edge.biometrics import finger
from edge.biometrics.face.template import decode_face_template, encode_face_template
from edge.decision.calibration import load_calibration
from edge.decision.scoring import Scorer, face_score, finger_score
from edge.errors import InputError

Modality = Literal["face", "finger"]
XFS_FINGER_FORMAT = "isoFmd"
XFS_FACE_FORMAT = "reservedTemplate1"


@runtime_checkable
class BiometricEngine(Protocol):
    formats: dict[str, Modality]

    def face_template(self, frame: np.ndarray) -> bytes | None: ...

    def finger_template(self, image: np.ndarray) -> bytes: ...

    def parse_template(self, fmt: str, data: bytes) -> Any: ...

    def compare(self, modality: Modality, probe: Any, reference: Any) -> float: ...

    def wipe(self, parsed: Any) -> None: ...


def wipe_object(parsed: Any) -> None:
    """Zeroise numpy arrays and bytearrays held by `parsed` (itself or its attributes)."""
    items = [parsed] + (list(vars(parsed).values()) if hasattr(parsed, "__dict__") else [])
    for item in items:
        if isinstance(item, np.ndarray) and item.flags.writeable:
            item.fill(0)
        elif isinstance(item, bytearray):
            item[:] = bytes(len(item))


class BiogateEngine:
    """The real engine: biogate's face pipeline and fingerprint matcher, scored by `edge.decision.scoring`.

    face:   `edge.biometrics.face.FacePipeline` (detect, align, embed); templates are biogate face records.
    finger: `edge.biometrics.finger` (extract, prepare, compare); templates travel as ISO/IEC 19794-2 records.
    `scorer`: the calibration to score with (default: the shipped one); `operating_llr`: per modality, the
    LLR at which confidence is 0.5 (default: the modality's own accept point, `FaceConfig.threshold` and the
    matcher's DEFAULT_THRESHOLD; the daemon passes its target-FMR points). A modality whose part is missing
    (no face pipeline given, `finger=False`) is left out of `formats`, so the service reports it as
    unsupported instead of failing later.
    """

    def __init__(self, face_pipeline: Any | None = None, *, scorer: Scorer | None = None,
                 operating_llr: dict[str, float] | None = None, strict_face_quality: bool = True,
                 finger: bool = True):
        self.face = face_pipeline
        self.scorer = scorer or Scorer(load_calibration())
        self.finger_api = finger_api() if finger else None
        self.strict_face_quality = strict_face_quality
        self.formats: dict[str, Modality] = {}
        if self.finger_api is not None:
            self.formats[XFS_FINGER_FORMAT] = "finger"
        if face_pipeline is not None:
            self.formats[XFS_FACE_FORMAT] = "face"
        self.operating_llr = dict(operating_llr) if operating_llr is not None else self._accept_points()

    def _accept_points(self) -> dict[str, float]:
        points = {}
        if self.face is not None:
            points["face"] = self.scorer.llr("face", -float(self.face.cfg.threshold))
        if self.finger_api is not None:
            points["finger"] = self.scorer.llr("finger", float(self.finger_api.DEFAULT_THRESHOLD))
        return points

    # face
    def face_template(self, frame: np.ndarray) -> bytes | None:
        if self.face is None:
            raise InputError("this engine has no face pipeline", code="input.format")
        analysis = self.face.analyze(frame)
        try:
            if analysis.face is None:
                return None
            embedding = analysis.require(strict=self.strict_face_quality)  # QualityError if unusable
            return encode_face_template(embedding)
        finally:
            analysis.wipe()

    # finger
    def _finger(self) -> Any:
        if self.finger_api is None:
            raise InputError("this engine has no fingerprint matcher", code="input.format")
        return self.finger_api

    def finger_template(self, image: np.ndarray) -> bytes:
        api = self._finger()
        template = api.extract(image)
        try:
            return bytes(api.encode_iso(template))
        finally:
            api.wipe(template)

    def parse_template(self, fmt: str, data: bytes) -> Any:
        if fmt == XFS_FACE_FORMAT and self.face is not None:
            return decode_face_template(data, expected_dim=128)
        if fmt == XFS_FINGER_FORMAT and self.finger_api is not None:
            api = self.finger_api
            try:
                template = api.decode_iso(bytes(data))
            except InputError:
                raise
            except Exception as exc:  # codec errors of any kind are bad input here
                raise InputError(f"not an ISO/IEC 19794-2 record: {type(exc).__name__}",
                                 code="input.finger_template") from None
            return api.prepare(template)
        raise InputError(f"format {fmt} is not supported", code="input.format")

    def compare(self, modality: Modality, probe: Any, reference: Any) -> float:
        if modality == "face":
            score = face_score(probe, reference)
        else:
            self._finger()
            score = finger_score(probe, reference)
        return self.scorer.confidence(modality, score, self.operating_llr[modality])

    def warm_up(self) -> None:
        """Pay one-time costs (the finger matcher's JIT compilation, seconds) before a customer does:
        compares a synthetic minutiae set with itself."""
        api = self.finger_api
        if api is None:
            return
        rng = np.random.default_rng(0)
        n = 24
        synthetic = api.FingerTemplate(x=rng.integers(40, 260, n), y=rng.integers(40, 260, n),
                                       angle=rng.uniform(0, 2 * np.pi, n), kind=np.ones(n, np.uint8),
                                       minutia_quality=np.full(n, 60, np.uint8), width=300, height=300)
        prepared = api.prepare(synthetic)
        api.compare(prepared, prepared)
        api.wipe(prepared)

    def wipe(self, parsed: Any) -> None:
        api = self.finger_api
        if api is not None and isinstance(parsed, (api.PreparedTemplate, api.FingerTemplate)):
            api.wipe(parsed)
        else:
            wipe_object(parsed)


def finger_api() -> Any:
    """The fingerprint package's public API (extract, prepare, compare, ISO codecs, wipe, DEFAULT_THRESHOLD)."""
    return finger

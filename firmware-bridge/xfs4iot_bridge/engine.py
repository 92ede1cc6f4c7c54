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
configured operating threshold for that modality, higher for more similar. The service reports
confidenceLevel = round(100 * score), and a Match threshold T (0..100) accepts confidenceLevel >= T,
so the default threshold 50 is the configured operating point.

Data formats (XFS4IoT `format` values):
    isoFmd             fingerprint minutiae, ISO/IEC 19794-2 finger minutiae record
    reservedTemplate1  biogate face template (layout below; `FACE_TEMPLATE_FORMAT`)

The biogate face template is the record of `edge.biometrics.face.template` (the same bytes the daemon
stores and exports): magic "BGFT", version, value type, dimension, embedder name, float32 values.
"""
from __future__ import annotations

import math
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from edge.biometrics.face.template import decode_face_template, encode_face_template
from edge.errors import InputError

Modality = Literal["face", "finger"]
FINGER_TEMPLATE_FORMAT = "isoFmd"
FACE_TEMPLATE_FORMAT = "reservedTemplate1"


@runtime_checkable
class BiometricEngine(Protocol):
    formats: dict[str, Modality]

    def face_template(self, frame: np.ndarray) -> bytes | None: ...

    def finger_template(self, image: np.ndarray) -> bytes: ...

    def parse_template(self, fmt: str, data: bytes) -> Any: ...

    def compare(self, modality: Modality, probe: Any, reference: Any) -> float: ...

    def wipe(self, parsed: Any) -> None: ...


def logistic(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def wipe_object(parsed: Any) -> None:
    """Zeroise numpy arrays and bytearrays held by `parsed` (itself or its attributes)."""
    items = [parsed] + (list(vars(parsed).values()) if hasattr(parsed, "__dict__") else [])
    for item in items:
        if isinstance(item, np.ndarray) and item.flags.writeable:
            item.fill(0)
        elif isinstance(item, bytearray):
            item[:] = bytes(len(item))


class BiogateEngine:
    """The real engine: biogate's face pipeline and fingerprint matcher.

    face:   `edge.biometrics.face.FacePipeline` (detect, align, embed); the face score is
            logistic((face_threshold - distance) / face_scale), 0.5 at `FaceConfig.threshold`.
    finger: the public API of `edge.biometrics.finger` (extract, prepare, compare, encode_iso,
            decode_iso, DEFAULT_THRESHOLD); templates travel as ISO/IEC 19794-2 records and the
            score is logistic((similarity - finger_threshold) / finger_scale), 0.5 at the finger
            package's DEFAULT_THRESHOLD unless `finger_threshold` is given. The finger similarity
            is unbounded above, so the default scale is relative: 15 % of the threshold.
    A modality whose part is missing (no face pipeline given; the finger package not importable)
    is left out of `formats`, so the service reports it as unsupported instead of failing later.
    """

    def __init__(self, face_pipeline: Any | None = None, *, face_threshold: float | None = None,
                 face_scale: float = 0.05, finger_threshold: float | None = None, finger_scale: float | None = None,
                 strict_face_quality: bool = True, finger: bool = True):
        self.face = face_pipeline
        self.face_threshold = face_threshold if face_threshold is not None else (
            face_pipeline.cfg.threshold if face_pipeline is not None else 0.6)
        self.face_scale = face_scale
        self.finger_api = finger_api() if finger else None
        self.finger_threshold = finger_threshold if finger_threshold is not None else (
            float(self.finger_api.DEFAULT_THRESHOLD) if self.finger_api is not None else 0.0)
        self.finger_scale = finger_scale if finger_scale is not None else max(0.01, 0.15 * self.finger_threshold)
        self.strict_face_quality = strict_face_quality
        self.formats: dict[str, Modality] = {}
        if self.finger_api is not None:
            self.formats[FINGER_TEMPLATE_FORMAT] = "finger"
        if face_pipeline is not None:
            self.formats[FACE_TEMPLATE_FORMAT] = "face"

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
        if fmt == FACE_TEMPLATE_FORMAT and self.face is not None:
            return decode_face_template(data, expected_dim=128)
        if fmt == FINGER_TEMPLATE_FORMAT and self.finger_api is not None:
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
            distance = float(np.linalg.norm(np.asarray(probe, np.float64) - np.asarray(reference, np.float64)))
            return logistic((self.face_threshold - distance) / self.face_scale)
        similarity = float(self._finger().compare(probe, reference))
        return logistic((similarity - self.finger_threshold) / self.finger_scale)

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


def finger_api() -> Any | None:
    """The fingerprint package's public API, or None while it is not available."""
    try:
        from edge.biometrics import finger
        for name in ("extract", "prepare", "compare", "encode_iso", "decode_iso", "wipe", "DEFAULT_THRESHOLD",
                     "FingerTemplate", "PreparedTemplate"):
            getattr(finger, name)
    except (ImportError, AttributeError):
        return None
    return finger

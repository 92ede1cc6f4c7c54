"""The one typed configuration: built-in defaults, then a TOML file, then environment overrides.

Read once at start-up (`load_config`) and passed down; no other module reads the environment.
Environment overrides use `BIOGATE_<SECTION>__<KEY>` (double underscore between levels), e.g.
`BIOGATE_FACE__THRESHOLD=0.58`. Each section belongs to the part of the code named in its docstring.

Which environment variables are configuration (the loader owns exactly these):
- `BIOGATE_CONFIG`: the TOML file;
- `BIOGATE_<FIELD>[__<KEY>...]` where FIELD is a field of `Config` (a section such as FACE, or TERMINAL_ID).
`BIOGATE_TEST_*` belongs to the test suite (`make soak` sets `BIOGATE_TEST_SOAK=1`) and is never read here.
Any other `BIOGATE_*` name is refused with `config.invalid`, so a mistyped override cannot pass unnoticed.
"""
from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "BIOGATE_"
# Switches that steer the test suite, not the product (tests/conftest.py reads them; this loader skips them).
TEST_ENV_PREFIX = ENV_PREFIX + "TEST_"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PathsConfig(Section):
    """Where models are read from and where state (database, keys, logs) is written."""

    models_dir: Path = REPO_ROOT / "models" / "artifacts"
    state_dir: Path = REPO_ROOT / "var"
    # Shared evaluation data (LFW, FVC2000, NUAA) lives beside the repository, never inside it.
    data_dir: Path = REPO_ROOT.parent / "shared" / "data"


class FaceConfig(Section):
    """edge.biometrics.face: detection, alignment, embedding and the same-person threshold."""

    # Euclidean distance between 128-d embeddings below which two faces are "same".
    # Chosen on development data (LFW View 2 folds 1-5 in ../shared/data) by `biogate eval face-threshold`:
    # best accuracy on all development folds (cross-validated accuracy in models/MODEL_CARD.md, ## Face);
    # never recomputed on the pairs being evaluated.
    threshold: float = 0.5926
    threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads per session")
    flip_augment: bool = True  # embed each chip and its mirror image, average the two descriptors
    detector_score: float = Field(0.5, ge=0.0, le=1.0)
    hog_fallback: bool = Field(True, description="when BlazeFace finds no face, try dlib's HOG detector (slower)")
    min_face_px: int = Field(48, ge=8, description="smallest accepted face (detector box width, pixels)")
    max_image_px: int = Field(40_000_000, description="images with more pixels are refused before decoding")
    min_brightness: float = 40.0
    max_brightness: float = 215.0
    # Share of the face's grey-level variance in its finest detail (edge.biometrics.face.quality), chosen on
    # LFW development faces against blurred copies of them (models/MODEL_CARD.md, ## Face).
    min_sharpness: float = 0.0012
    max_yaw_deg: float = 35.0
    max_roll_deg: float = 30.0


class StorageConfig(Section):
    """edge.store: the SQLite file under paths.state_dir and how durable each commit is."""

    db_file: str = Field("biogate.sqlite", description="file name under paths.state_dir (or an absolute path)")
    # WAL + synchronous=FULL: every COMMIT fsyncs the WAL, so a power cut loses nothing committed.
    # NORMAL would only survive process crashes (the last commits could vanish on power loss).
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    busy_timeout_ms: int = Field(5000, ge=0)
    evidence_retention_days: int = Field(180, ge=1, description="NBK: ATM face images kept >= 180 days")
    purge_interval_s: float = Field(3600.0, gt=0, description="how often the daemon purges expired evidence")


class KeysConfig(Section):
    """edge.store / edge.service secrets: data keys (AES-256-GCM at rest), API keys per role, token HMAC key.

    Everything not given here is read from (or created once in) `secrets_file`, 0600, under state_dir.
    Environment: BIOGATE_KEYS__DATA_KEY=<base64 32 bytes>, BIOGATE_KEYS__API_KEYS='{"teller": "..."}', ...
    """

    secrets_file: str = Field("secrets.json", description="file name under paths.state_dir (or absolute)")
    data_key: str | None = Field(None, description="base64 AES-256 key; overrides the secrets file's active key")
    api_keys: dict[str, str] = Field(default_factory=dict, description="role -> API key (terminal/teller/auditor/admin)")
    dispense_hmac_key: str | None = Field(None, description="hex HMAC-SHA256 key shared with the dispenser")
    template_signing_key: str | None = Field(None, description="hex HMAC key signing exported face templates")


class DeviceSpec(Section):
    backend: str
    options: dict[str, Any] = Field(default_factory=dict)


class DevicesConfig(Section):
    """edge.service: which driver backend serves each device (see drivers.base.open_device)."""

    camera: DeviceSpec | None = None
    fingerprint: DeviceSpec | None = None
    dispenser: DeviceSpec | None = None
    capture_timeout_s: float = Field(10.0, gt=0)


class ServiceConfig(Section):
    """edge.service: the HTTP daemon."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    session_ttl_s: float = Field(300.0, gt=0, description="an open verification session expires after this")
    token_ttl_s: float = Field(60.0, gt=0, description="a dispense token must be used within this")
    log_level: str = "INFO"
    max_upload_bytes: int = Field(8_000_000, ge=1024)
    enrol_face_samples: int = Field(3, ge=1, le=10)
    enrol_finger_impressions: int = Field(3, ge=1, le=10)
    enrol_fingers: list[str] = Field(default_factory=lambda: ["right_index", "right_middle"])
    enrol_min_finger_quality: int = Field(30, ge=0, le=100, description="print quality 0-100 an enrolment "
                                                                            "impression must reach")
    capture_retries: int = Field(3, ge=1, le=10, description="captures per sample before the quality gate gives up")
    duplicate_llr: float = Field(6.9, description="face log-LR above which another customer is flagged as a duplicate")


class OperationPolicy(Section):
    """What one operation needs: `factors`, or `factors_above` when the amount exceeds `threshold_usd`."""

    factors: Literal["none", "face", "face+finger", "refuse"] = "face+finger"
    threshold_usd: float | None = Field(None, ge=0)
    factors_above: Literal["none", "face", "face+finger", "refuse"] | None = None
    target_fmr: float | None = Field(None, gt=0, lt=1, description="overrides PolicyConfig.target_fmr")
    dispenses: bool = Field(False, description="allow issues an XFS4IoT dispense token for the amount")


def _default_operations() -> dict[str, "OperationPolicy"]:
    return {
        "cash_withdrawal": OperationPolicy(factors="face+finger", dispenses=True),
        "cash_deposit": OperationPolicy(factors="none"),
        "balance_inquiry": OperationPolicy(factors="none"),
        # Identity verification for card loads above 913 USD equivalent (edge.decision.policy).
        "card_load": OperationPolicy(factors="none", threshold_usd=913.0, factors_above="face+finger"),
    }


class PolicyConfig(Section):
    """edge.decision: which factors each operation needs, attempt limits, fusion threshold."""

    operations: dict[str, OperationPolicy] = Field(default_factory=_default_operations)
    # USD per one unit of the currency (configurable; used only to compare against thresholds).
    usd_rates: dict[str, float] = Field(default_factory=lambda: {
        "USD": 1.0, "EUR": 1.08, "GBP": 1.27, "KZT": 0.0020, "RUB": 0.011, "CNY": 0.14})
    attempts_per_session: int = Field(3, ge=1, le=10)
    lockout_base_s: float = Field(30.0, ge=0, description="first lockout; NIST 800-63B-4: >= 30 s")
    lockout_growth: float = Field(2.0, ge=1.0)
    lockout_max_s: float = Field(86400.0, ge=0)
    total_failure_cap: int = Field(50, ge=1, description="then biometrics are disabled for the card (NIST cap 50)")
    target_fmr: float = Field(1e-5, gt=0, lt=1, description="combined false-match rate the fused threshold targets")
    calibration_file: str | None = Field(None, description="fitted LR calibration JSON (default: edge/decision/calibration.json)")
    liveness_required: bool = True
    min_factor_llr: float = Field(0.0, description="each required factor must on its own reach this log-LR "
                                                     "(0 = its evidence favours the claim)")


class LivenessConfig(Section):
    """edge.biometrics.liveness: the active challenge's tolerances and the passive PAD threshold.

    Durations are seconds; a camera that declares its frame rate (`fps`) is timed in its own frames, so a
    simulated camera that is not paced in real time still gets the same number of frames per second.
    Face measures are in inter-ocular distances (IOD) so they do not depend on how far the customer stands.
    """

    passive_model: str = Field("pad_passive", description="artefact name of the passive PAD classifier")
    # Bona fide probability below which the face is taken for an attack. Default: the threshold the training
    # chose at APCER 5 % on out-of-fold scores of its training subjects (models/pad/weights.json "threshold").
    passive_threshold: float = Field(0.346067, ge=0.0, le=1.0)
    passive_frames: int = Field(5, ge=1, le=30, description="frontal frames before the prompt scored by the "
                                                            "passive detector (their mean score is compared)")
    challenges: list[Literal["blink", "turn_left", "turn_right", "move_closer"]] = Field(
        default_factory=lambda: ["blink", "turn_left", "turn_right", "move_closer"], min_length=1)
    face_wait_s: float = Field(6.0, gt=0, description="how long the check waits for a face before prompting")
    prompt_delay_min_s: float = Field(0.6, gt=0, description="the prompt comes a random time (between min and "
                                                             "max) after the face appears: it cannot be timed")
    prompt_delay_max_s: float = Field(1.2, gt=0)
    challenge_timeout_s: float = Field(6.0, gt=0, description="the action must be seen within this after the prompt")
    frame_rate: float = Field(15.0, gt=0, description="frames per second assumed when the camera declares none "
                                                      "and for check_frames")
    camera_mirrored: bool = Field(False, description="frames are mirror images (selfie view): swaps left/right")
    min_face_fraction: float = Field(0.6, ge=0.0, le=1.0, description="share of frames, from the first face on, "
                                                                      "that must show a face")
    blink_change: float = Field(0.25, gt=0, description="change of both eye regions against the open-eye "
                                                        "baseline (in eye-region contrast units, minus the change "
                                                        "of the nose bridge) that counts as eyes shut")
    blink_min_s: float = Field(0.1, ge=0, description="eyes must stay shut at least this long, then reopen")
    turn_offset: float = Field(0.05, gt=0, description="yaw signal shift (nose and ears relative to the eyes, "
                                                       "IOD) from the start pose, held for turn_hold_s")
    turn_hold_s: float = Field(0.3, ge=0)
    turn_nonplanar: float = Field(0.075, gt=0, description="the turned face's motion must leave the best plane "
                                                           "motion by this much (RMS, IOD): a photo cannot")
    closer_growth: float = Field(1.15, gt=1, description="inter-ocular distance growth for move_closer, held "
                                                         "for closer_hold_s")
    closer_hold_s: float = Field(0.2, ge=0)
    static_max_change: float = Field(0.6, ge=0, description="median grey-level change (0-255) between frames "
                                                            "below which the sequence is a still image")
    medium_edge_iod: float = Field(3.0, gt=0, description="a straight edge this long (IOD) that moves with the "
                                                          "face is the border of a photo or screen")
    medium_surround_fraction: float = Field(0.5, gt=0, le=1, description="share of the surroundings beside "
                                                                         "and above the head that moves with "
                                                                         "the face above which a flat medium "
                                                                         "carries it")

    @field_validator("prompt_delay_max_s")
    @classmethod
    def _delay_range(cls, value: float, info) -> float:
        if value < info.data.get("prompt_delay_min_s", 0.0):
            raise ValueError("prompt_delay_max_s must not be below prompt_delay_min_s")
        return value


class BridgeConfig(Section):
    """firmware-bridge (xfs4iot_bridge): the XFS4IoT Biometric service for the ATM application."""

    enabled: bool = True
    host: str = "127.0.0.1"
    # The first port of the list that is free is used. XFS4IoT reserves 5846-5856; 0 = any free port.
    ports: list[int] = Field(default_factory=lambda: list(range(5846, 5857)), min_length=1)
    service_name: str = Field("Biometric1", pattern=r"^[A-Za-z][A-Za-z0-9]*$")
    vendor_name: str = "biogate"
    max_requests: int = Field(16, ge=1, le=1000, description="unfinished commands per connection (tooManyRequests)")
    template_capacity: int = Field(64, ge=1, le=100_000, description="imported templates held at once")
    capture_timeout_s: float = Field(15.0, gt=0, description="Biometric.Read waits this long for a subject")
    max_captures: int = Field(10, ge=1, le=100, description="rejected captures before Read fails (numCaptures 0)")
    subject_removed_timeout_s: float = Field(30.0, gt=0, description="watch for the finger lifting this long")
    data_persistence: Literal["persist", "clear"] = Field(
        "clear", description="initial Biometric data persistence mode (clear: captured data is dropped once used)")

    @field_validator("ports")
    @classmethod
    def _ports_in_range(cls, ports: list[int]) -> list[int]:
        if any(not 0 <= p <= 65535 for p in ports):
            raise ValueError("ports must be 0..65535")
        return ports


class Config(Section):
    terminal_id: str = "ATM-0001"
    paths: PathsConfig = PathsConfig()
    face: FaceConfig = FaceConfig()
    storage: StorageConfig = StorageConfig()
    keys: KeysConfig = KeysConfig()
    devices: DevicesConfig = DevicesConfig()
    service: ServiceConfig = ServiceConfig()
    policy: PolicyConfig = PolicyConfig()
    liveness: LivenessConfig = LivenessConfig()
    bridge: BridgeConfig = BridgeConfig()


def _deep_merge(base: dict, override: Mapping[str, Any]) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_overrides(env: Mapping[str, str]) -> dict:
    tree: dict = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG" or name.startswith(TEST_ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
        if path[0] not in Config.model_fields:
            raise ConfigError(
                f"environment variable {name} is not a configuration override: overrides are "
                f"{ENV_PREFIX}<SECTION>__<KEY> with a section of {', '.join(sorted(Config.model_fields))}; "
                f"test-suite switches are {TEST_ENV_PREFIX}*")
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        try:  # numbers, booleans, lists as JSON; anything else stays a string
            node[path[-1]] = json.loads(raw)
        except json.JSONDecodeError:
            node[path[-1]] = raw
    return tree


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Defaults <- TOML file (argument, or $BIOGATE_CONFIG) <- BIOGATE_* environment variables."""
    env = os.environ if env is None else env
    data: dict = {}
    path = path or env.get(ENV_PREFIX + "CONFIG")
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"configuration file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
    data = _deep_merge(data, _env_overrides(env))
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None

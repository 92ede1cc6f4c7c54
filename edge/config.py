"""The one typed configuration: built-in defaults, then a TOML file, then environment overrides.

Each section is declared beside the code that reads it (`edge.biometrics.config.FaceConfig`,
`edge.decision.config.PolicyConfig`, `edge.store.config`, `xfs4iot_bridge.config.BridgeConfig`,
`edge.fleet.config`) and
re-exported here; this module assembles them into `Config`. The sections of the service itself (paths,
devices, service) live here.

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

from pydantic import Field, ValidationError

from edge.biometrics.config import FaceConfig, LivenessConfig
from edge.decision.config import OperationPolicy, PolicyConfig
from edge.errors import ConfigError
from edge.fleet.config import FleetConfig, RegistryConfig
from edge.models import DEFAULT_MODELS_DIR
from edge.search.config import SearchConfig
from edge.sections import Section
from edge.store.config import KeysConfig, StorageConfig
from xfs4iot_bridge.config import BridgeConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "BIOGATE_"
# Switches that steer the test suite, not the product (tests/conftest.py reads them; this loader skips them).
TEST_ENV_PREFIX = ENV_PREFIX + "TEST_"


class PathsConfig(Section):
    """Where models are read from and where state (database, keys, logs) is written."""

    models_dir: Path = DEFAULT_MODELS_DIR
    state_dir: Path = REPO_ROOT / "var"
    # Shared evaluation data (LFW, FVC2000, NUAA) lives beside the repository, never inside it.
    data_dir: Path = REPO_ROOT.parent / "shared" / "data"


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


class ConsoleConfig(Section):
    """edge.service.console: the operators' web console at /console (edge.service.operators: accounts)."""

    enabled: bool = True
    idle_timeout_s: float = Field(900.0, gt=0, description="a console session idle this long is signed out")
    max_failed_logins: int = Field(5, ge=1, le=100, description="wrong passwords in a row that lock an account")
    login_lock_s: float = Field(900.0, ge=0, description="how long that lock lasts (0: until an admin resets "
                                                          "the password)")
    secure_cookie: bool = Field(False, description="mark the session cookie Secure (set it when TLS fronts the "
                                                   "daemon)")
    default_language: Literal["en", "ru", "kk"] = "en"


class Config(Section):
    terminal_id: str = "ATM-0001"
    paths: PathsConfig = PathsConfig()
    face: FaceConfig = FaceConfig()
    storage: StorageConfig = StorageConfig()
    keys: KeysConfig = KeysConfig()
    devices: DevicesConfig = DevicesConfig()
    service: ServiceConfig = ServiceConfig()
    console: ConsoleConfig = ConsoleConfig()
    policy: PolicyConfig = PolicyConfig()
    liveness: LivenessConfig = LivenessConfig()
    bridge: BridgeConfig = BridgeConfig()
    fleet: FleetConfig = FleetConfig()
    registry: RegistryConfig = RegistryConfig()
    search: SearchConfig = SearchConfig()


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


__all__ = [
    "Config", "load_config", "REPO_ROOT", "ENV_PREFIX", "TEST_ENV_PREFIX", "Section", "PathsConfig", "DeviceSpec",
    "DevicesConfig", "ServiceConfig", "FaceConfig", "LivenessConfig", "OperationPolicy", "PolicyConfig",
    "StorageConfig", "KeysConfig", "BridgeConfig", "FleetConfig", "RegistryConfig", "SearchConfig",
]

"""The one typed configuration: built-in defaults, then a TOML file, then environment overrides.

Read once at start-up (`load_config`) and passed down; no other module reads the environment.
Environment overrides use `BIOGATE_<SECTION>__<KEY>` (double underscore between levels), e.g.
`BIOGATE_FACE__THRESHOLD=0.58`. Each section belongs to the part of the code named in its docstring.
"""
from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "BIOGATE_"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PathsConfig(Section):
    """Where models are read from and where state (database, keys, logs) is written."""

    models_dir: Path = REPO_ROOT / "models" / "artifacts"
    state_dir: Path = REPO_ROOT / "var"


class FaceConfig(Section):
    """edge.biometrics.face: detection, alignment, embedding and the same-person threshold."""

    # Euclidean distance between 128-d embeddings below which two faces are "same".
    # Chosen on development data (LFW View 2 pairs in ../shared/data, see models/MODEL_CARD.md);
    # never recomputed on the pairs being evaluated.
    threshold: float = 0.6
    threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads per session")
    detector_score: float = Field(0.5, ge=0.0, le=1.0)
    min_face_px: int = Field(48, ge=8, description="smallest accepted face (inter-ocular box side, pixels)")
    max_image_px: int = Field(40_000_000, description="images with more pixels are refused before decoding")
    min_brightness: float = 40.0
    max_brightness: float = 215.0
    min_sharpness: float = 25.0
    max_yaw_deg: float = 35.0
    max_roll_deg: float = 30.0


class Config(Section):
    terminal_id: str = "ATM-0001"
    paths: PathsConfig = PathsConfig()
    face: FaceConfig = FaceConfig()


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
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
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

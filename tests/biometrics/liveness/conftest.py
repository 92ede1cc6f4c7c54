"""Fixtures for liveness: the real checker on the built models, and simulator subjects from the shared data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.config import load_config
from tests.conftest import data_dir

REPO = Path(__file__).resolve().parents[3]
MODELS_DIR = REPO / "models" / "artifacts"


@pytest.fixture(scope="session")
def liveness_models_dir() -> Path:
    needed = ("face_detector.onnx", "face_embedder.onnx", "pad_passive.onnx")
    missing = [n for n in needed if not (MODELS_DIR / n).is_file()]
    if missing:
        pytest.fail(f"model artefacts {missing} missing in {MODELS_DIR}; run `make models` first", pytrace=False)
    return MODELS_DIR


@pytest.fixture(scope="session")
def config():
    return load_config(env={})


@pytest.fixture(scope="session")
def checker(config, liveness_models_dir):
    from edge.biometrics.liveness import LivenessChecker

    return LivenessChecker(config.liveness, liveness_models_dir)


def lfw_people(count: int, seed: int) -> list[str]:
    """`count` LFW people (simulator specs `lfw:<Name>`) drawn reproducibly from the shared data."""
    names = sorted(p.name for p in (data_dir() / "faces" / "lfw" / "images").iterdir() if p.is_dir())
    rng = np.random.default_rng(seed)
    return ["lfw:" + str(n) for n in rng.choice(names, size=count, replace=False)]


def nuaa_subjects() -> list[str]:
    listing = data_dir() / "pad" / "nuaa" / "live.txt"
    return sorted({line.split("/")[1] for line in listing.read_text().splitlines() if line.strip()})

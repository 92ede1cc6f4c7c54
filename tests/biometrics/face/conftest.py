"""Fixtures for the face path: the real pipeline on the built models and the bundled example photos."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.config import load_config

REPO = Path(__file__).resolve().parents[3]
MODELS_DIR = REPO / "models" / "artifacts"


@pytest.fixture(scope="session")
def face_models_dir() -> Path:
    if not (MODELS_DIR / "face_detector.onnx").is_file() or not (MODELS_DIR / "examples" / "obama.jpg").is_file():
        pytest.fail(f"model artefacts missing in {MODELS_DIR}; run `make models` first", pytrace=False)
    return MODELS_DIR


@pytest.fixture(scope="session")
def face_config():
    return load_config(env={})


@pytest.fixture(scope="session")
def pipeline(face_config, face_models_dir):
    from edge.biometrics.face import FacePipeline

    return FacePipeline(face_config.face, face_models_dir)


@pytest.fixture(scope="session")
def example(face_models_dir):
    """example("obama") -> BGR frame of models/artifacts/examples/obama.jpg (a fresh copy each call)."""
    from edge.biometrics.face import load_image

    cache: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = load_image(face_models_dir / "examples" / f"{name}.jpg")
        return cache[name].copy()

    return get

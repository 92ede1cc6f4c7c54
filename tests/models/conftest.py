"""Fixtures for the model artefact tests: `make test` builds the models first, so missing artefacts fail loudly."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.models import clear_caches
from models.manifest import load_manifest

REPO = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO / "models" / "artifacts"


@pytest.fixture(scope="session")
def models_dir() -> Path:
    manifest = load_manifest()
    missing = [a.file for a in manifest.artifacts.values() if not (MODELS_DIR / a.file).is_file()]
    if missing:
        pytest.fail(f"model artefacts missing in {MODELS_DIR}: {missing}; run `make models` "
                    f"(or `.venv/bin/python -m models.build`) before these tests", pytrace=False)
    return MODELS_DIR


@pytest.fixture(autouse=True)
def _fresh_loader_caches():
    clear_caches()
    yield
    clear_caches()


def read_rgb(path: Path) -> np.ndarray:
    """An RGB uint8 image (drops alpha, expands grey), as the face pipeline hands images to dlib."""
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))

"""Real FVC2000 prints for the fingerprint tests (skipped when ../shared/data is absent)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_data

FVC = ("fingerprints", "fvc2000")


def fvc_file(db: str, finger: int, impression: int) -> Path:
    return require_data(*FVC, db, f"{finger}_{impression}.tif")


@pytest.fixture(scope="session")
def fvc_root() -> Path:
    return require_data(*FVC)

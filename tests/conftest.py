"""Shared fixtures: the repository's configuration and where the shared evaluation data lives."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.config import Config, load_config

REPO = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """../shared/data beside the repository (BIOGATE_TEST_DATA_DIR overrides, for tests only)."""
    return Path(os.environ.get("BIOGATE_TEST_DATA_DIR", REPO.parent / "shared" / "data"))


def require_data(*parts: str) -> Path:
    """The shared data path, or skip the test with a clear reason when it is absent."""
    path = data_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared evaluation data not present: {path} (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def config() -> Config:
    return load_config(env={})

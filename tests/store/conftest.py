from __future__ import annotations

import pytest

from edge.config import load_config
from edge.store import open_store


@pytest.fixture
def cfg(tmp_path):
    return load_config(env={"BIOGATE_PATHS__STATE_DIR": str(tmp_path)})


@pytest.fixture
def store(cfg):
    s = open_store(cfg)
    yield s
    s.close()

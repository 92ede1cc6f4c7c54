"""Fixtures for the daemon: a configuration in a temporary state directory, runtimes and live servers."""
from __future__ import annotations

import httpx
import pytest

from edge.config import Config, _deep_merge


def make_config(tmp_path, overrides: dict | None = None) -> Config:
    """The shipped defaults, state in tmp_path, fixed API keys, plus `overrides` (nested dicts)."""
    base = {
        "terminal_id": "ATM-TEST",
        "paths": {"state_dir": str(tmp_path / "state")},
        "keys": {"api_keys": {"terminal": "terminal-key-0123456789", "teller": "teller-key-0123456789",
                              "auditor": "auditor-key-0123456789", "admin": "admin-key-0123456789"}},
        "storage": {"synchronous": "NORMAL"},
        "service": {"port": 0},
        "bridge": {"enabled": False},
    }
    return Config.model_validate(_deep_merge(base, overrides or {}))


KEYS = {"terminal": "terminal-key-0123456789", "teller": "teller-key-0123456789",
        "auditor": "auditor-key-0123456789", "admin": "admin-key-0123456789"}


def client(url: str, role: str, **kw) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"X-API-Key": KEYS[role]}, timeout=kw.pop("timeout", 60), **kw)


@pytest.fixture
def examples_required(config):
    path = config.paths.models_dir / "examples"
    if not path.is_dir():
        pytest.skip(f"example images not built: {path} (run `make models`)")
    return path



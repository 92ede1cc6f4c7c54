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


# -- PostgreSQL ------------------------------------------------------------------------------------------
# `make test` sets BIOGATE_TEST_REQUIRE_POSTGRES=1 (and installs the server with apt where it is missing):
# there a test that needs PostgreSQL fails instead of skipping.
REQUIRE_POSTGRES = os.environ.get("BIOGATE_TEST_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL server for the test session (its own folder and port, removed after)."""
    from edge.errors import ConfigError
    from simulator.pgserver import ThrowawayPostgres

    try:
        server = ThrowawayPostgres().start()
    except ConfigError as exc:
        if REQUIRE_POSTGRES:
            raise
        pytest.skip(f"PostgreSQL server not available: {exc.message}")
    yield server
    server.close()


@pytest.fixture
def postgres_dsn(postgres_server, request) -> str:
    """A fresh, empty database on the session's server for one test."""
    import re
    import uuid

    name = "t_" + re.sub(r"[^a-z0-9]", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:6]
    postgres_server.psql("postgres", f"CREATE DATABASE {name} OWNER biogate")
    return postgres_server.dsn.replace("dbname=biogate", f"dbname={name}")

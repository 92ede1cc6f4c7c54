"""Which environment variables are configuration (issue 17): the test suite's own switches are not.

`make soak` once failed before measuring anything because the loader took its `BIOGATE_SOAK=1` for a
configuration section. These tests run the loader and the real CLI under the exact environment `make soak`
sets (read from the Makefile, so a new switch there is covered here in CI too).
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from edge.config import load_config
from edge.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
BIOGATE = REPO / ".venv" / "bin" / "biogate"


def soak_environment() -> dict[str, str]:
    """The variables `make soak` puts in front of pytest (the Makefile's SOAK_ENV)."""
    out = subprocess.run(["make", "-s", "--no-print-directory", "soak-env"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    pairs = [word.split("=", 1) for word in shlex.split(out)]
    assert pairs and all(len(p) == 2 for p in pairs), f"SOAK_ENV should be NAME=value words, got {out!r}"
    return dict(pairs)


def test_soak_switches_are_test_switches_not_configuration():
    env = soak_environment()
    assert all(name.startswith("BIOGATE_TEST_") for name in env), env
    cfg = load_config(env=env)
    assert cfg == load_config(env={})


def test_overrides_still_apply_beside_test_switches():
    cfg = load_config(env={"BIOGATE_TEST_SOAK": "1", "BIOGATE_FACE__THRESHOLD": "0.55",
                           "BIOGATE_TERMINAL_ID": "ATM-0042"})
    assert cfg.face.threshold == 0.55 and cfg.terminal_id == "ATM-0042"


@pytest.mark.parametrize("name", ["BIOGATE_SOAK", "BIOGATE_FACE_THRESHOLD", "BIOGATE_NOSUCH__KEY"])
def test_a_name_that_is_neither_is_refused_with_the_rule(name):
    with pytest.raises(ConfigError) as err:
        load_config(env={name: "1"})
    assert name in err.value.message and "BIOGATE_TEST_" in err.value.message


def test_a_misspelt_key_of_a_real_section_is_still_refused():
    with pytest.raises(ConfigError, match="face.threshhold"):
        load_config(env={"BIOGATE_FACE__THRESHHOLD": "0.5"})


def test_the_cli_runs_under_the_soak_environment(tmp_path):
    """The real console script, as `make soak`'s tests call it, with nothing but PATH and the soak switches."""
    if not BIOGATE.exists():
        pytest.skip(f"console script not installed: {BIOGATE} (run `make setup`)")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), **soak_environment()}
    done = subprocess.run([str(BIOGATE), "policy", "cash_withdrawal", "200", "EUR", "--json"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["factors"] == ["face", "finger"]

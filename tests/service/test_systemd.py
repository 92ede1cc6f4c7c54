"""The systemd units (edge/systemd/) pass `systemd-analyze verify`, and the services speak sd_notify: READY=1
once listening, WATCHDOG=1 pings at half the watchdog interval, STOPPING=1 on the way out."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.service.conftest import KEYS

REPO = Path(__file__).resolve().parents[2]
UNITS = sorted((REPO / "edge" / "systemd").glob("*.service"))
BIOGATE = REPO / ".venv" / "bin" / "biogate"


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_verifies(unit, tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    text = unit.read_text()
    for key in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "StateDirectoryMode=0700", "UMask=0077"):
        assert key in text, f"{unit.name} lacks {key}"
    local = tmp_path / unit.name   # the installed path of biogate is the one thing that differs here
    local.write_text(text.replace("/opt/biogate/.venv/bin/biogate", str(BIOGATE)))
    done = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (done.stdout + done.stderr).splitlines() if str(local) in line or "rror" in line]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr


def test_the_daemon_notifies_ready_and_pings_the_watchdog(tmp_path, examples_required):
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.settimeout(60)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BIOGATE_", "NOTIFY_", "WATCHDOG_"))}
    env.update({"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000",
                "BIOGATE_PATHS__STATE_DIR": str(tmp_path / "state"), "BIOGATE_BRIDGE__ENABLED": "false",
                "BIOGATE_KEYS__API_KEYS": json.dumps(KEYS), "BIOGATE_SERVICE__LOG_LEVEL": "WARNING"})
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli.main", "serve", "--port", "0"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        messages = []
        deadline = time.monotonic() + 60
        while sum(m == "WATCHDOG=1" for m in messages) < 2 and time.monotonic() < deadline:
            messages.append(listener.recv(4096).decode())
        assert messages[0].startswith("READY=1\nSTATUS=listening on http://127.0.0.1:"), messages
        assert messages.count("WATCHDOG=1") >= 2
        proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in messages:
            messages.append(listener.recv(4096).decode())
        assert proc.wait(timeout=30) == 0      # a SIGTERM is a clean stop, not a death by signal
        import sqlite3
        with sqlite3.connect(tmp_path / "state" / "biogate.sqlite") as conn:
            assert conn.execute("SELECT event FROM audit ORDER BY seq DESC LIMIT 1").fetchone()[0] == "daemon.stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()

"""`biogate bench registry` runs end to end on a small fleet and prints what the issue asks for (the figures
themselves are measured by `make bench`, not asserted here)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_registry_smoke(postgres_dsn):
    done = subprocess.run([sys.executable, "-m", "edge.cli.main", "bench", "registry", "--terminals", "3",
                           "--customers", "300", "--seconds", "1", "--batch", "10", "--dsn", postgres_dsn, "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["customers"] == 300 and out["terminals"] == 3
    assert out["template_fetches"] > 0 and 0 < out["template_fetch_p50_ms"] <= out["template_fetch_p99_ms"]
    assert out["ingest_decisions"] > 0 and out["ingest_decisions_per_s"] > 0

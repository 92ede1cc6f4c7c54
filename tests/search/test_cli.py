"""The commands: `biogate bench search` (smoke, small), `biogate mules scan` (investigators only, audited)."""
from __future__ import annotations

import json
import subprocess
import sys

from edge.service.operators import OperatorAccounts
from edge.store import open_store
from tests.search.helpers import People, attempt, enrol
from tests.service.conftest import make_config

CONTRACT_KEYS = {"templates", "index_mb", "build_s", "p50_ms", "p99_ms", "recall_at_10"}


def _biogate(*args, env=None, stdin=None):
    return subprocess.run([sys.executable, "-m", "edge.cli.main", *args], capture_output=True, text=True,
                          input=stdin, env=env, timeout=600)


def test_bench_search_prints_the_contract_keys():
    out = _biogate("bench", "search", "--templates", "3000", "--queries", "50", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert CONTRACT_KEYS <= set(result) and result["templates"] == 3000
    assert 0.0 < result["index_mb"] < 3000 * 512 / 2 ** 20          # quantised: below float32's size
    assert result["p50_ms"] <= result["p99_ms"] and 0.5 <= result["recall_at_10"] <= 1.0


def test_mules_scan_only_for_investigators(tmp_path):
    cfg = make_config(tmp_path)
    (tmp_path / "biogate.toml").write_text(f'[paths]\nstate_dir = "{cfg.paths.state_dir}"\n')
    store = open_store(cfg)
    people = People()
    holders = [enrol(store, people, f"n{i}", [f"CARD-{i}"]) for i in range(3)]
    for i, h in enumerate(holders):
        attempt(store, people, "mule", f"CARD-{i}", h)
    accounts = OperatorAccounts(store, cfg.console)
    accounts.add("ivan", "investigator", "correct horse battery 1", actor="admin:test")
    accounts.add("tina", "teller", "correct horse battery 2", actor="admin:test")
    store.close()
    args = ["mules", "scan", "--purpose", "AML referral about card sharing", "--case-ref", "CASE-7",
            "--password-stdin", "--json", "--config", str(tmp_path / "biogate.toml")]
    refused = _biogate(*args, "--operator", "tina", stdin="correct horse battery 2\n")
    assert refused.returncode != 0 and json.loads(refused.stdout)["error"]["code"] == "auth.forbidden_role"
    done = _biogate(*args, "--operator", "ivan", stdin="correct horse battery 1\n")
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    assert len(view["networks"]) == 1 and view["case_ref"] == "CASE-7"
    assert not any(h in done.stdout for h in holders)
    with open_store(cfg) as store, store.transaction() as tx:
        scans = [e for e in tx.audit_entries(0, 1000) if e.event == "search.scan"]
    assert [e.actor for e in scans] == ["investigator:ivan"]

"""The shipped scenarios, played in CI through the real drivers: the daemon over HTTP on 127.0.0.1, the
fingerprint module on a pseudo-terminal (zfm driver), the camera over MJPEG (opencv driver), the
dispenser over XFS4IoT WebSockets. Every expectation written in the scenario file must hold, and the
dispenser's own ledger must show exactly what the scenario expects to be paid out."""
from __future__ import annotations

import pytest

from edge.config import load_config
from simulator.scenario import load_scenario, run_scenario, shipped_scenarios
from tests.conftest import require_data

SCENARIOS = {p.stem: p for p in shipped_scenarios()}


def test_the_issue_list_of_scenarios_ships():
    assert {"genuine", "impostor", "printed_photo", "static_replay", "scanner_unplugged", "garbage_on_line",
            "lockout", "token_replay", "card_load"} <= set(SCENARIOS)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(name, tmp_path):
    require_data("faces", "lfw", "images")
    require_data("fingerprints", "fvc2000", "DB1_B")
    if name == "printed_photo":
        require_data("pad", "nuaa")
    result = run_scenario(SCENARIOS[name], base=load_config(env={}), state_dir=tmp_path)
    assert result.ok, result.timeline()
    expected = [s["expect_dispensed"] for s in load_scenario(SCENARIOS[name])["steps"]
                if s.get("expect_dispensed", "none") != "none"]
    assert result.ledger == expected, result.timeline()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["genuine", "printed_photo"])
def test_scenarios_play_without_the_shared_data(name, tmp_path):
    """`make run` on a fresh machine: the scenarios fall back to the example photos and synthetic prints."""
    from edge.config import Config, _deep_merge

    base = load_config(env={})
    base = Config.model_validate(_deep_merge(base.model_dump(mode="json"),
                                             {"paths": {"data_dir": str(tmp_path / "no-shared-data")}}))
    assert not base.paths.data_dir.exists()
    result = run_scenario(SCENARIOS[name], base=base, state_dir=tmp_path / "state")
    assert result.ok, result.timeline()

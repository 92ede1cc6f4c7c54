"""The fleet scenarios `biogate demo --fleet` (make fleet) plays, on a throwaway PostgreSQL each."""
from __future__ import annotations

import pytest

from simulator.scenario import fleet_scenarios, load_scenario, run_scenario
from tests.conftest import require_data
from tests.service.conftest import make_config

pytestmark = pytest.mark.timeout(600)


@pytest.mark.parametrize("path", fleet_scenarios(), ids=lambda p: p.stem)
def test_fleet_scenario_behaves_as_described(path, tmp_path, postgres_server, examples_required):
    for needed in load_scenario(path).get("requires_data", []):   # e.g. mule_network: five LFW people
        require_data(*needed.split("/"))
    result = run_scenario(path, base=make_config(tmp_path), state_dir=tmp_path / "run",
                          rig_options={"camera_transport": "inprocess"})
    assert result.ok, result.timeline()
    assert len(result.checks) >= 4

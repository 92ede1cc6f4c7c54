"""Full FVC2000 DB1_B-DB3_B protocol against NBIS on the same pairs (slow: a few minutes per database)."""
from __future__ import annotations

import numpy as np
import pytest

from edge.evaluation import fvc
from edge.evaluation.metrics import equal_error_rate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def eers(fvc_root) -> dict[str, tuple[float, float]]:
    from edge.evaluation.peers.nbis import nbis_matcher

    out = {}
    for db in ("DB1_B", "DB2_B", "DB3_B"):
        g, i, fte = fvc.score_db(fvc_root / db)
        ng, ni, _ = fvc.score_db(fvc_root / db, nbis_matcher())
        assert g.size == 280 and i.size == 2880 and fte <= 2
        out[db] = (equal_error_rate(g, i), equal_error_rate(ng, ni))
        print(f"{db}: biogate EER {100 * out[db][0]:.2f}%, NBIS {100 * out[db][1]:.2f}%")
    return out


@pytest.mark.timeout(1800)
def test_each_db_beats_nbis_and_mean_eer_at_most_5_percent(eers):
    for db, (ours, nbis) in eers.items():
        assert ours < nbis, (db, ours, nbis)
    assert np.mean([ours for ours, _ in eers.values()]) <= 0.05, eers

"""Full FVC2000 DB1_B-DB4_B protocol: cross-validated figures, and NBIS on the same pairs (slow: a few
minutes per database; `make soak`)."""
from __future__ import annotations

import numpy as np
import pytest

from edge.evaluation import fvc
from edge.evaluation.metrics import equal_error_rate

pytestmark = pytest.mark.slow
DBS = ("DB1_B", "DB2_B", "DB3_B", "DB4_B")


@pytest.fixture(scope="module")
def cross_validated(fvc_root) -> dict[str, dict]:
    """Leave-one-database-out: each DB scored by a calibration fitted on the other three only."""
    parts = {}
    for db in DBS:
        genuine, impostor, fte = fvc.score_parts_db(fvc_root / db)
        assert fte == 0 and len(genuine) == 280 and len(impostor) == 2880
        parts[db] = (genuine, impostor)
    out = fvc.leave_one_db_out(parts)
    # the same comparisons without the ridge field: what records of other extractors get
    out["minutiae_only"] = fvc.leave_one_db_out({db: (g[:, :5], i[:, :5]) for db, (g, i) in parts.items()})
    for db, r in out.items():
        if db == "minutiae_only":
            continue
        print(f"{db} (cross-validated): EER {100 * r['eer']:.2f}%  FMR100 {100 * r['fmr100']:.2f}%  "
              f"FMR1000 {100 * r['fmr1000']:.2f}%")
    return out


@pytest.mark.timeout(1800)
def test_cross_validated_figures_hold(cross_validated):
    # Measured 2026-12-03 (see models/MODEL_CARD.md): EER 1.43 / 2.50 / 2.50 / 2.13 %, FMR1000 4.64 / 6.79 / 7.50 /
    # 5.71 % (DB1-4_B; minutiae only: EER 1.8-4.3 %, FMR1000 7.1-12.1 %). Issue 15's EER target (2.5 % on every
    # DB) is held here, with a margin of a fraction of one genuine pair for the two DBs that sit on it; the
    # FMR1000 target (5 %) is met on DB1_B only, so FMR1000 keeps a regression bound.
    with_field = {db: r for db, r in cross_validated.items() if db != "minutiae_only"}
    for db, r in with_field.items():
        assert r["eer"] <= 0.0255 and r["fmr1000"] <= 0.08, (db, r)
    assert np.mean([r["eer"] for r in with_field.values()]) <= 0.0225, with_field
    assert np.mean([r["fmr1000"] for r in with_field.values()]) <= 0.065, with_field
    for db, r in cross_validated["minutiae_only"].items():
        assert r["eer"] <= 0.05 and r["fmr1000"] <= 0.22, (db, r)


@pytest.fixture(scope="module")
def eers(fvc_root) -> dict[str, tuple[float, float]]:
    from edge.evaluation.peers.nbis import nbis_matcher

    out = {}
    for db in DBS:
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

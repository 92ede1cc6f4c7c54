import numpy as np
import pytest

from edge.evaluation.metrics import (equal_error_rate, error_curve, fnmr_at_fmr, rates_at, threshold_at_fmr,
                                     det_plot)


def test_perfect_separation_has_zero_error():
    assert equal_error_rate([0.9, 0.8, 0.95], [0.1, 0.2, 0.3]) == 0.0
    assert fnmr_at_fmr([0.9, 0.8, 0.95], [0.1, 0.2, 0.3], 0.0) == 0.0


def test_known_overlap():
    # 4 genuine, 4 impostor; one of each on the wrong side: EER 25%.
    genuine = [0.9, 0.8, 0.7, 0.2]
    impostor = [0.1, 0.15, 0.3, 0.75]
    assert equal_error_rate(genuine, impostor) == pytest.approx(0.25)
    # At FMR 0, the threshold must exceed 0.75: genuine 0.7 and 0.2 are rejected.
    assert fnmr_at_fmr(genuine, impostor, 0.0) == pytest.approx(0.5)
    assert threshold_at_fmr(genuine, impostor, 0.0) == pytest.approx(0.8)
    assert rates_at(genuine, impostor, 0.5) == (0.25, 0.25)


def test_failures_are_rejected_at_every_threshold():
    c = error_curve([1.0, -np.inf], [0.0, -np.inf])
    assert c.fnmr.min() == 0.5  # the failed genuine comparison is never accepted
    assert c.fmr[-1] == 0.0


def test_det_plot_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    out = det_plot(tmp_path / "det.png", {"x": (rng.normal(2, 1, 200), rng.normal(0, 1, 400))})
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""The passive PAD training procedure: the logistic fit is the textbook one, the threshold never sees the
test subject, and the cross-validation counts every presentation once."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from edge.errors import InputError
from edge.evaluation.pad_training import fit_pad, loso, out_of_fold_scores


def _people(n_subjects: int, per_class: int, seed: int = 0, shift: float = 1.5):
    """Gaussian 'features': each subject has its own offset, live and attack differ by `shift` on 3 axes."""
    rng = np.random.default_rng(seed)
    xs, ys, ss = [], [], []
    for k in range(n_subjects):
        offset = rng.normal(0, 0.5, 6)
        for label in (1, 0):
            x = rng.normal(0, 1, (per_class, 6)) + offset
            x[:, :3] += shift * label
            xs.append(x)
            ys += [label] * per_class
            ss += [f"{k:04d}"] * per_class
    return np.vstack(xs), np.array(ys), np.array(ss)


def test_fit_equals_scikit_learn_logistic_regression():
    x, y, _ = _people(4, 40)
    ours = fit_pad(x, y, C=0.1)
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    ref = LogisticRegression(C=0.1, tol=1e-10, max_iter=10000).fit(z, y)
    assert np.allclose(ours.weight, ref.coef_[0], atol=1e-4)
    assert ours.bias == pytest.approx(ref.intercept_[0], abs=1e-4)
    assert np.allclose(ours.score(x), ref.predict_proba(z)[:, 1], atol=1e-5)


def test_out_of_fold_scores_never_come_from_a_model_that_saw_the_subject():
    x, y, s = _people(3, 30)
    oof = out_of_fold_scores(x, y, s)
    test = s == "0001"
    alone = fit_pad(x[~test], y[~test]).score(x[test])
    assert np.array_equal(oof[test], alone)


def test_loso_threshold_comes_from_the_training_subjects_only():
    x, y, s = _people(4, 30, seed=3)
    report = loso(x, y, s)
    assert [split.subject for split in report.splits] == ["0000", "0001", "0002", "0003"]
    # Changing the test subject's own data must not move the threshold its split was tested at.
    moved = x.copy()
    moved[s == "0002"] += 5.0
    again = loso(moved, y, s)
    assert again.splits[2].threshold == report.splits[2].threshold
    assert sum(split.rates.live for split in report.splits) == report.pooled.live == 120
    assert 0.0 <= report.pooled.apcer <= 1.0 and report.pooled.bpcer20 <= 0.5  # separable by construction


def test_no_face_rows_count_as_refused():
    x, y, s = _people(3, 20)
    found = np.ones(len(y), dtype=bool)
    found[:5] = False  # live rows of subject 0000
    report = loso(x, y, s, found)
    assert np.isneginf(report.oof_scores[:5]).all()
    assert report.splits[0].rates.bpcer >= 5 / 20


def test_too_few_subjects_is_a_clear_error():
    x, y, s = _people(2, 10)
    with pytest.raises(InputError) as exc:
        loso(x, y, s)
    assert exc.value.code == "input.empty_list"

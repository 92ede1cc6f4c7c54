"""Comparison scores on real prints: mated above non-mated, invariance to pose, crop and padding."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.biometrics import finger
from edge.biometrics.finger import FingerTemplate

from .conftest import fvc_file


def _template(db: str, f: int, i: int) -> FingerTemplate:
    return finger.extract(finger.load_image(fvc_file(db, f, i)))


@pytest.fixture(scope="module")
def db1() -> dict[tuple[int, int], FingerTemplate]:
    return {(f, i): _template("DB1_B", f, i) for f in (101, 102, 103, 104) for i in (1, 2, 3)}


def test_mated_scores_above_non_mated(db1):
    keys = sorted(db1)
    mated = [finger.compare(db1[a], db1[b]) for a in keys for b in keys if a < b and a[0] == b[0]]
    non_mated = [finger.compare(db1[a], db1[b]) for a in keys for b in keys if a < b and a[0] != b[0]]
    assert np.median(mated) > np.median(non_mated) + 3  # log10 LR: a thousand times more likely
    assert np.mean(np.array(mated)[:, None] > np.array(non_mated)[None, :]) > 0.9  # AUC on this subset
    assert max(non_mated) < finger.DEFAULT_THRESHOLD < np.median(mated)


def test_compare_is_symmetric_enough_and_self_match_is_high(db1):
    a, b = db1[(101, 1)], db1[(101, 2)]
    assert finger.compare(a, a) > finger.compare(a, b) > finger.DEFAULT_THRESHOLD
    assert abs(finger.compare(a, b) - finger.compare(b, a)) < 1.0


def _warp(image: np.ndarray, angle_deg: float, shift: tuple[int, int], pad: int = 80) -> np.ndarray:
    """Rotate about the centre and shift, on a canvas grown by `pad` filled with the background grey."""
    background = int(np.median(image[:8, :]))
    big = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=background)
    h, w = big.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, 1.0)
    m[:, 2] += shift
    return cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=background)


@pytest.mark.parametrize("angle,shift", [(0, (0, 0)), (25, (10, -15)), (-40, (-20, 5)), (60, (0, 30))])
def test_score_is_invariant_to_rotation_and_translation(angle, shift):
    probe = finger.load_image(fvc_file("DB1_B", 105, 1))
    mate = _template("DB1_B", 105, 3)
    other = _template("DB1_B", 106, 3)
    base = finger.compare(finger.extract(_warp(probe, 0, (0, 0))), mate)
    moved = finger.extract(_warp(probe, angle, shift))
    score = finger.compare(moved, mate)
    assert score >= finger.DEFAULT_THRESHOLD
    assert abs(score - base) <= 2.0  # log10 LR units (steep above +4): resampling moves a few minutiae
    assert finger.compare(moved, other) < finger.DEFAULT_THRESHOLD


def test_score_is_stable_across_crop_and_padding():
    image = finger.load_image(fvc_file("DB2_B", 103, 1))  # 256 x 364
    mate = _template("DB2_B", 103, 2)
    background = int(np.median(image[:6, :]))
    variants = {
        "as is": image,
        "padded to DB3 size": cv2.copyMakeBorder(image, 57, 57, 111, 111, cv2.BORDER_CONSTANT, value=background),
        "padded off-centre": cv2.copyMakeBorder(image, 0, 120, 200, 0, cv2.BORDER_CONSTANT, value=background),
        "sensor frame 256x288": image[38:326, :],
    }
    scores = {name: finger.compare(finger.extract(img), mate) for name, img in variants.items()}
    reference = scores["as is"]
    for name, score in scores.items():
        assert score >= finger.DEFAULT_THRESHOLD, (name, scores)
        if name.startswith("padded"):  # same print content: nearly the same score
            assert abs(score - reference) <= 1.0, (name, scores)


def test_prepare_is_cached_and_compare_many_agrees(db1):
    probe = db1[(102, 1)]
    prepared = finger.prepare(probe)
    assert finger.prepare(probe) is prepared and finger.prepare(prepared) is prepared
    refs = [db1[(102, 2)], finger.prepare(db1[(103, 1)]), db1[(104, 2)]]
    many = finger.compare_many(probe, refs)
    assert many.shape == (3,)
    assert np.allclose(many, [finger.compare(prepared, r) for r in refs])


def test_iso_template_scores_like_the_original(db1):
    a, b = db1[(103, 1)], db1[(103, 2)]
    a_iso = finger.decode_iso(finger.encode_iso(a))
    b_ansi = finger.decode_ansi(finger.encode_ansi(b))
    original = finger.compare(a, b)
    assert abs(finger.compare(a_iso, b_ansi) - original) <= 0.5


def test_wipe_zeroises_template_and_precomputation():
    t = _template("DB1_B", 107, 1)
    prepared = finger.prepare(t)
    finger.wipe(t)
    assert not t.x.any() and not t.y.any() and not t.angle.any() and not t.minutia_quality.any()
    assert not t.flow.any() and t.ridge_period == 0.0
    assert not prepared.cylinders.bits.any() and not prepared.cylinders.all_xy.any()
    assert not prepared.cylinders.flow_cos2.any() and not prepared.cylinders.flow_on.any()
    assert "prepared" not in t._cache


def test_empty_templates_score_lowest():
    empty = FingerTemplate([], [], [], [], [], 300, 300)
    score = finger.compare(empty, empty)
    assert np.isfinite(score) and score < finger.DEFAULT_THRESHOLD - 3


def test_warm_up_runs():
    finger.warm_up()  # compiles or loads the kernels; must not raise on its synthetic template


def test_score_parts_pairs_lie_inside_the_overlap(db1):
    """Every paired minutia is within 10 px of a minutia of the other print, so it lies inside that
    print's hull (give or take the 10 px margin): paired <= both overlap counts, for mates and others."""
    keys = sorted(db1)
    for a, b in [(keys[0], keys[1]), (keys[0], keys[4]), (keys[5], keys[9]), (keys[3], keys[2])]:
        parts = finger.score_parts(db1[a], db1[b])
        assert 0 <= parts.paired <= min(parts.inside_a, parts.inside_b), (a, b, parts)
        assert parts.inside_a <= db1[a].count and parts.inside_b <= db1[b].count
        assert 0 <= parts.paired_similarity <= parts.paired


def test_self_comparison_pairs_every_minutia_with_full_similarity(db1):
    t = db1[(101, 1)]
    parts = finger.score_parts(t, t)
    assert parts.paired == parts.inside_a == parts.inside_b == t.count
    usable = int((finger.prepare(t).cylinders.cylinder_of >= 0).sum())
    assert abs(parts.paired_similarity - usable) < 1e-6  # each usable cylinder matches itself exactly


def test_mates_pair_with_agreeing_neighbourhoods_others_by_chance(db1):
    """The reason for the local-similarity features: a chance alignment of another finger pairs many
    minutiae too, but their cylinders disagree."""
    keys = sorted(db1)
    mated = [finger.score_parts(db1[a], db1[b]) for a in keys for b in keys if a < b and a[0] == b[0]]
    other = [finger.score_parts(db1[a], db1[b]) for a in keys for b in keys if a < b and a[0] != b[0]]
    share = lambda p: p.paired_similarity / max(p.paired, 1)  # noqa: E731
    assert np.median([share(p) for p in mated]) > np.median([share(p) for p in other]) + 0.1


def test_inside_hull_with_margin():
    from edge.biometrics.finger.mcc import _hull, _inside_hull

    square = _hull(np.array([[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0], [50.0, 50.0]]))
    assert square.shape == (4, 2)
    assert _inside_hull(50.0, 50.0, square, 0.0) and _inside_hull(0.0, 100.0, square, 0.0)
    assert not _inside_hull(105.0, 50.0, square, 0.0) and _inside_hull(105.0, 50.0, square, 10.0)
    assert not _inside_hull(50.0, -11.0, square, 10.0)
    assert not _inside_hull(1.0, 1.0, np.zeros((0, 2)), 10.0)  # fewer than 3 minutiae: no area


def test_extracted_templates_carry_a_ridge_field(db1):
    t = db1[(101, 1)]
    assert t.flow.shape == (t.height // 16, t.width // 16) and 5 < t.ridge_period < 15
    on = t.flow != 255
    assert 0.2 < on.mean() < 1.0 and t.flow[on].max() < 180


def test_self_comparison_flow_agrees_everywhere(db1):
    t = db1[(101, 1)]
    parts = finger.score_parts(t, t)
    assert parts.flow_agreement > 0.999 and parts.period_ratio == 1.0
    assert parts.flow_overlap == int((t.flow != 255).sum())


def test_mates_keep_the_ridge_flow_parallel_others_do_not(db1):
    """The reason for the ridge-field features: a chance alignment of another finger pairs minutiae,
    but the flows drift apart somewhere in the overlap."""
    keys = sorted(db1)
    mated = [finger.score_parts(db1[a], db1[b]) for a in keys for b in keys if a < b and a[0] == b[0]]
    other = [finger.score_parts(db1[a], db1[b]) for a in keys for b in keys if a < b and a[0] != b[0]]
    assert np.median([p.flow_agreement for p in mated]) > 0.9
    assert np.median([p.flow_agreement for p in other]) < np.median([p.flow_agreement for p in mated]) - 0.2


def test_templates_without_ridge_field_use_the_minutiae_calibration(db1):
    from edge.biometrics.finger import matcher

    a, b = db1[(103, 1)], db1[(103, 2)]
    bare = FingerTemplate(b.x, b.y, b.angle, b.kind, b.minutia_quality, b.width, b.height, b.dpi, b.quality)
    parts = finger.score_parts(a, bare)
    assert parts.period_ratio == 0.0 and parts.flow_overlap == 0.0 and parts.flow_agreement == 0.0
    x = matcher.features([parts])[0, :matcher.N_MINUTIAE_FEATURES]
    expected = float(x @ np.asarray(matcher.MINUTIAE_WEIGHTS) + matcher.MINUTIAE_BIAS)
    assert finger.compare(a, bare) == pytest.approx(expected)
    assert finger.compare(a, bare) >= finger.DEFAULT_THRESHOLD  # mates still match on minutiae alone

"""The LFW pairs protocol: parsing, error rates with failures, threshold choice, cached development distances."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.config import load_config
from edge.errors import InputError
from edge.evaluation import lfw
from edge.evaluation.lfw import (Pair, PairScores, accuracy_at, choose_threshold, cross_validate, pair_distances,
                                 protocol_report, read_pairs, score_pairs)
from tests.conftest import require_data

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "models" / "artifacts" / "examples"


# -- parsing -------------------------------------------------------------------------------------------------

def test_pairs_file_with_header_gets_folds_and_default_image_folder(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("2\t1\nA\t1\t2\nA\t1\tB\t3\nC\t2\t4\nC\t2\tD\t10\n")
    pairs = read_pairs(path)
    assert [(p.same, p.fold) for p in pairs] == [(True, 0), (False, 0), (True, 1), (False, 1)]
    assert pairs[1].b == tmp_path / "images" / "B" / "B_0003.jpg"
    assert read_pairs(path, tmp_path / "elsewhere")[3].b == tmp_path / "elsewhere" / "D" / "D_0010.jpg"


@pytest.mark.parametrize("content, code", [
    ("A 1\n", "input.bad_pairs_file"),           # not a header (only first line) and not a pair
    ("A 1 2\nA x 2\n", "input.bad_pairs_file"),   # a non-numeric image index
    ("\n\n", "input.bad_pairs_file"),             # no pairs
    (b"\xff\xfe\x00binary", "input.bad_pairs_file"),
])
def test_malformed_pairs_files(tmp_path, content, code):
    path = tmp_path / "pairs.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(InputError) as err:
        read_pairs(path)
    assert err.value.code == code


def test_missing_pairs_file(tmp_path):
    with pytest.raises(InputError) as err:
        read_pairs(tmp_path / "nope.txt")
    assert err.value.code == "input.not_found"


# -- error rates and threshold choice ------------------------------------------------------------------------

def scores_of(distances, same, folds=None) -> PairScores:
    folds = folds if folds is not None else [0] * len(same)
    pairs = [Pair(Path(f"a{i}"), Path(f"b{i}"), bool(s), int(f)) for i, (s, f) in enumerate(zip(same, folds))]
    return PairScores(pairs, np.asarray(distances, dtype=np.float64))


def test_failures_are_errors_for_both_kinds_of_pair():
    same = np.array([True, True, False, False])
    assert accuracy_at(np.array([0.1, np.inf, 0.9, np.inf]), same, 0.5) == 0.5
    report = protocol_report(scores_of([0.1, np.inf, 0.9, np.inf], same), 0.5)
    assert list(report) == ["pairs", "accuracy", "eer", "fnmr_at_fmr_1e-3", "threshold", "failures_to_acquire"]
    assert report["accuracy"] == 0.5 and report["fnmr_at_fmr_1e-3"] == 0.5


def test_threshold_is_the_middle_of_the_widest_best_gap():
    same = np.array([True, True, True, False, False, False])
    assert choose_threshold(np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]), same) == 0.5
    # Two best runs: (0.2, 0.5) and (0.65, 0.8); the wider one wins.
    d = np.array([0.1, 0.2, 0.65, 0.5, 0.8, 0.9])
    assert choose_threshold(d, same) == 0.35
    assert accuracy_at(d, same, 0.35) == pytest.approx(5 / 6)


def test_cross_validation_chooses_on_the_other_folds():
    # Fold 0 separates at 0.4-0.6, fold 1 at 0.6-0.8; each fold is measured at the other's threshold.
    d = [0.3, 0.35, 0.65, 0.7, 0.5, 0.55, 0.85, 0.9]
    same = [True, True, False, False, True, True, False, False]
    cv = cross_validate(scores_of(d, same, [0, 0, 0, 0, 1, 1, 1, 1]))
    assert [f["threshold"] for f in cv.folds] == [0.7, 0.5]
    assert [f["accuracy"] for f in cv.folds] == [0.75, 0.5]
    assert cv.accuracy == 0.625 and cv.threshold == 0.6
    with pytest.raises(InputError):
        cross_validate(scores_of(d, same))


# -- the real pipeline on a small LFW-shaped folder -----------------------------------------------------------

@pytest.fixture
def mini_lfw(tmp_path) -> Path:
    """images/<Name>/<Name>_NNNN.jpg from the bundled example photos, and a 2-fold pairs file."""
    if not (EXAMPLES / "obama.jpg").is_file():
        pytest.fail("example photos missing: run `make models`", pytrace=False)
    layout = {"Barack_Obama": ["obama.jpg", "obama2.jpg", "obama3.jpg"], "Joe_Biden": ["biden.jpg"]}
    for name, files in layout.items():
        (tmp_path / "images" / name).mkdir(parents=True)
        for i, f in enumerate(files, 1):
            shutil.copy(EXAMPLES / f, tmp_path / "images" / name / f"{name}_{i:04d}.jpg")
    (tmp_path / "pairs.txt").write_text(
        "2\t2\n"
        "Barack_Obama\t1\t2\nBarack_Obama\t1\t3\nBarack_Obama\t1\tJoe_Biden\t1\nBarack_Obama\t2\tJoe_Biden\t1\n"
        "Barack_Obama\t2\t3\nBarack_Obama\t3\t1\nBarack_Obama\t3\tJoe_Biden\t1\nJoe_Biden\t1\tBarack_Obama\t1\n")
    return tmp_path


@pytest.fixture(scope="module")
def pipeline():
    from edge.biometrics.face import FacePipeline

    cfg = load_config(env={})
    return FacePipeline(cfg.face, cfg.paths.models_dir)


@pytest.mark.timeout(120)
def test_score_pairs_with_the_real_pipeline(mini_lfw, pipeline):
    cfg = load_config(env={})
    scores = score_pairs(read_pairs(mini_lfw / "pairs.txt"), pipeline, cfg.face.max_image_px)
    assert not scores.failures and np.isfinite(scores.distances).all()
    assert protocol_report(scores, cfg.face.threshold)["accuracy"] == 1.0


@pytest.mark.timeout(120)
def test_a_corrupt_image_is_a_failure_to_acquire_not_a_crash(mini_lfw, pipeline):
    broken = mini_lfw / "images" / "Joe_Biden" / "Joe_Biden_0001.jpg"
    broken.write_bytes(broken.read_bytes()[:300])
    scores = score_pairs(read_pairs(mini_lfw / "pairs.txt"), pipeline, 40_000_000)
    assert scores.failures == {broken: "input.corrupt_image"}
    assert np.isinf(scores.distances).sum() == 4  # every pair with Biden
    assert protocol_report(scores, 0.6)["accuracy"] == 0.5


@pytest.mark.timeout(180)
def test_pair_distances_are_cached_by_what_they_depend_on(mini_lfw, monkeypatch):
    cfg = load_config(env={"BIOGATE_PATHS__STATE_DIR": str(mini_lfw / "var")})
    genuine, impostor, failures = pair_distances(mini_lfw / "pairs.txt", cfg=cfg)
    assert genuine.shape == (4,) and impostor.shape == (4,) and failures == 0
    assert genuine.max() < cfg.face.threshold < impostor.min()
    [cached] = list((mini_lfw / "var" / "cache").glob("lfw-*.npz"))
    monkeypatch.setattr(lfw, "_memory", {})
    monkeypatch.setattr(lfw, "score_pairs", lambda *a, **k: pytest.fail("should have come from the cache"))
    again = pair_distances(mini_lfw / "pairs.txt", cfg=cfg)
    assert np.array_equal(again[0], genuine) and np.array_equal(again[1], impostor)
    # A changed image is a different key: recomputed (here: refused by the patched scorer).
    image = mini_lfw / "images" / "Joe_Biden" / "Joe_Biden_0001.jpg"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    with pytest.raises(pytest.fail.Exception, match="cache"):
        pair_distances(mini_lfw / "pairs.txt", cfg=cfg)
    assert cached.is_file()


@pytest.mark.parametrize("embedder, model", [
    ("int8", "face_detector"), ("int8", "face_detector_full_range"), ("int8", "face_landmarks_5"),
    ("int8", "face_embedder_int8"), ("float32", "face_embedder")])
def test_the_cache_key_follows_every_face_model_file(tmp_path, monkeypatch, embedder, model):
    """The defect: the full-range detector and the landmark model were not in the key, so a new file of either
    kept serving the distances of the old one. The embedder in the key is the configured build."""
    import dataclasses

    from edge import models

    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text("A 1 2\n")
    pairs = lfw.read_pairs(pairs_file)
    cfg = load_config(env={"BIOGATE_FACE__EMBEDDER": embedder})
    before = lfw.cache_key(pairs, pairs_file, cfg)
    real = models.manifest_entry

    def changed(name, *args, **kwargs):
        entry = real(name, *args, **kwargs)
        return dataclasses.replace(entry, sha256="0" * 64) if name == model else entry

    monkeypatch.setattr(models, "manifest_entry", changed)
    assert lfw.cache_key(pairs, pairs_file, cfg) != before


# -- the development data --------------------------------------------------------------------------------------

def dev_subset(tmp_path: Path, same: int, different: int) -> Path:
    """The first `same` and `different` pairs of fold 1 of the development pairs, images in place."""
    pairs = require_data("faces", "lfw", "pairs.txt")
    lines = pairs.read_text().splitlines()
    per_class = int(lines[0].split()[1])
    subset = tmp_path / "pairs.txt"
    subset.write_text("\n".join(lines[1:1 + same] + lines[1 + per_class:1 + per_class + different]) + "\n")
    return subset


@pytest.mark.timeout(300)
def test_accuracy_on_part_of_the_development_pairs(tmp_path):
    subset = dev_subset(tmp_path, 60, 60)
    cfg = load_config(env={"BIOGATE_PATHS__STATE_DIR": str(tmp_path / "var")})
    images = require_data("faces", "lfw", "images")
    genuine, impostor, failures = pair_distances(subset, images, cfg, use_cache=False)
    assert failures == 0
    accuracy = (np.sum(genuine < cfg.face.threshold) + np.sum(impostor >= cfg.face.threshold)) / 120
    assert accuracy >= 0.97


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(not os.environ.get("BIOGATE_TEST_SOAK"), reason="full LFW development run: `make soak` (BIOGATE_TEST_SOAK=1)")
def test_full_development_pairs_meet_the_bar():
    from edge.biometrics.face import FacePipeline

    cfg = load_config(env={})
    scores = score_pairs(read_pairs(require_data("faces", "lfw", "pairs.txt")),
                         FacePipeline(cfg.face, cfg.paths.models_dir), cfg.face.max_image_px)
    report = protocol_report(scores, cfg.face.threshold)
    assert report["failures_to_acquire"] == 0 and report["accuracy"] >= 0.99
    assert cross_validate(scores).accuracy >= 0.985


def test_errors_by_fold_counts_wrong_decisions_and_failures_per_fold():
    p = Path("x.jpg")
    pairs = [Pair(p, p, True, 0), Pair(p, p, False, 0), Pair(p, p, True, 1), Pair(p, p, False, 1), Pair(p, p, True, 2)]
    # fold 1: right, wrong (an impostor under the threshold); fold 2: a failure to acquire, right; fold 3: wrong
    distances = np.array([0.3, 0.4, np.inf, 0.9, 0.8])
    scores = PairScores(pairs, distances, {}, {})
    assert lfw.errors_by_fold(scores, 0.6) == {"1": 1, "2": 1, "3": 1}
    assert lfw.errors_by_fold(scores, 0.35) == {"1": 0, "2": 1, "3": 1}

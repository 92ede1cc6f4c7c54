"""The cross-validation that chooses which restored faces the fine-tuned network gets (models.restored.crossval):
its accounting of pairs fixed and broken, on real LFW development pairs. The full run (two trainings) is a
command, not a test: models/MODEL_CARD.md quotes it."""
from __future__ import annotations

import hashlib

import numpy as np
import onnx
import pytest

from models.restored import crossval, weights
from tests.conftest import require_data

pytestmark = pytest.mark.timeout(240)


def test_sign_test_is_exact_and_two_sided():
    assert crossval.sign_test(20, 9) == pytest.approx(0.0614, abs=1e-4)  # the model card's JPEG q12 split
    assert crossval.sign_test(9, 20) == crossval.sign_test(20, 9)
    assert crossval.sign_test(5, 5) == 1.0 and crossval.sign_test(0, 0) == 1.0
    assert crossval.sign_test(10, 0) == pytest.approx(2 / 1024)


def test_tallies_add_up_across_splits():
    total = crossval.Tally()
    total.add(crossval.Tally(600, 10, 8, 3, 1, {"deblocked": 590}))
    total.add(crossval.Tally(1200, 20, 21, 2, 3, {"deblocked": 1180, "deblocked,deblurred": 2}))
    assert (total.pairs, total.main_errors, total.tuned_errors, total.fixed, total.broken) == (1800, 30, 29, 5, 4)
    assert total.restored == {"deblocked": 1770, "deblocked,deblurred": 2}


@pytest.fixture(scope="module")
def scoring(models_dir):
    """The main-network face path, 24 pairs of LFW fold 3 (12 same, 12 different) and their enrolments."""
    from edge.biometrics.face import FacePipeline
    from edge.biometrics.face.image import load_image
    from edge.config import load_config
    from edge.evaluation.lfw import read_pairs

    cfg = load_config(env={})
    pipeline = FacePipeline(cfg.face.model_copy(update={"restored_embedder_for": ()}), cfg.paths.models_dir)
    pairs = read_pairs(require_data("faces", "lfw", "pairs.txt"))
    subset = ([p for p in pairs if p.fold == 2 and p.same][:12] + [p for p in pairs if p.fold == 2 and not p.same][:12])
    enrolled = {p.a: pipeline.analyze(load_image(p.a, cfg.face.max_image_px)).embedding for p in subset}
    return pipeline, subset, enrolled, cfg.face.threshold


def test_the_main_network_as_its_own_candidate_fixes_and_breaks_nothing(scoring):
    from edge.evaluation.conditions import parse_condition

    pipeline, pairs, enrolled, threshold = scoring
    tally = crossval.score_condition(pipeline, pipeline.embedder, pairs, parse_condition("jpeg12"), threshold,
                                     enrolled)
    assert tally.pairs == 24 and tally.fixed == tally.broken == 0
    assert tally.tuned_errors == tally.main_errors
    assert sum(tally.restored.values()) >= 20 and "deblocked" in tally.restored  # JPEG q12 frames are deblocked
    clean = crossval.score_condition(pipeline, pipeline.embedder, pairs, parse_condition("clean"), threshold,
                                     enrolled)
    assert clean.restored == {}  # nothing restored: the candidate is never asked


def test_a_damaged_candidate_is_counted_as_breaking_pairs(scoring):
    """The last layer's matrix overwritten with noise: its probes land anywhere, so right pairs break, and the
    counts agree with each other (tuned errors = main errors - fixed + broken)."""
    from edge.config import load_config
    from edge.evaluation.conditions import parse_condition
    from edge.models import model_path

    pipeline, pairs, enrolled, threshold = scoring
    float_bytes = model_path("face_embedder", load_config(env={}).paths.models_dir).read_bytes()
    model = onnx.load_from_string(float_bytes)
    last = next(n for n in reversed(model.graph.node) if n.op_type == "MatMul").input[1]
    original = next(onnx.numpy_helper.to_array(i) for i in model.graph.initializer if i.name == last)
    noise = np.random.default_rng(0).normal(0, 1, original.shape).astype(np.float32) - original
    damaged = weights.encode({last: (noise, 1)}, hashlib.sha256(float_bytes).hexdigest(), {"data": "test"})
    tally = crossval.score_condition(pipeline, crossval.candidate_embedder(damaged), pairs,
                                     parse_condition("jpeg12"), threshold, enrolled)
    assert tally.broken >= 6
    assert tally.tuned_errors == tally.main_errors - tally.fixed + tally.broken

"""The embedder fine-tuned on restored faces (models/restored, `[face] restored_embedder_for`): its weights file,
its reproducible build, which faces it embeds, and that it embeds into the main network's template space."""
from __future__ import annotations

import hashlib

import numpy as np
import onnx
import pytest

from models.build import embedder_restored
from models.build.embedder_int8 import float_embedder_bytes
from models.build.pipeline import DEFAULT_CACHE_DIR
from models.build.sources import source_bytes
from models.manifest import load_manifest
from models.restored import weights

pytestmark = pytest.mark.timeout(240)
PHOTOS = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"]


def test_weights_round_trip_within_half_a_step_and_give_the_same_bytes_each_time():
    rng = np.random.default_rng(0)
    changes = {"W_1": (rng.normal(0, 1e-3, (8, 3, 3, 3)).astype(np.float32), 0),
               "fc_W": (rng.normal(0, 1e-3, (16, 4)).astype(np.float32), 1),
               "b_1": (rng.normal(0, 1e-3, 8).astype(np.float32), 0)}
    data = weights.encode(changes, "ab" * 32, {"data": "test"})
    assert data == weights.encode(changes, "ab" * 32, {"data": "test"})
    decoded, sha, training = weights.decode(data)
    assert sha == "ab" * 32 and training == {"data": "test"}
    np.testing.assert_array_equal(decoded["b_1"], changes["b_1"][0])  # biases stay float
    for name, axis in (("W_1", 0), ("fc_W", 1)):
        change = changes[name][0]
        other = tuple(a for a in range(change.ndim) if a != axis)
        half_step = np.abs(change).max(axis=other, keepdims=True) / weights.DELTA_QMAX / 2
        assert np.all(np.abs(decoded[name] - change) <= half_step * 1.0001)


def test_weights_for_another_float_graph_or_unknown_tensors_are_refused():
    float_bytes = float_embedder_bytes()
    sha = hashlib.sha256(float_bytes).hexdigest()
    wrong_graph = weights.encode({}, "0" * 64, {"data": "test"})
    with pytest.raises(weights.WeightsError, match="retrain"):
        weights.apply(float_bytes, *weights.decode(wrong_graph)[:2])
    unknown = weights.encode({"no_such_tensor": (np.zeros((2, 2), np.float32), 0)}, sha, {"data": "test"})
    with pytest.raises(weights.WeightsError, match="does not have"):
        weights.apply(float_bytes, *weights.decode(unknown)[:2])
    conv_weight = onnx.load_from_string(float_bytes).graph.node[4].input[1]
    misshapen = weights.encode({conv_weight: (np.zeros((2, 2), np.float32), 0)}, sha, {"data": "test"})
    with pytest.raises(weights.WeightsError, match="float embedder"):
        weights.apply(float_bytes, *weights.decode(misshapen)[:2])


def test_the_build_gives_the_manifests_bytes(models_dir):
    artifact = load_manifest().artifacts["face_embedder_restored"]
    built = embedder_restored.build(source_bytes(artifact.source, DEFAULT_CACHE_DIR / "downloads"), artifact)
    assert hashlib.sha256(built).hexdigest() == artifact.sha256
    assert built == (models_dir / artifact.file).read_bytes()
    # Fine-tuned: every convolution changed, nothing else in the graph did.
    tuned = onnx.load_from_string(built)
    original = onnx.load_from_string(float_embedder_bytes())
    assert [n.op_type for n in tuned.graph.node] == [n.op_type for n in original.graph.node]
    differ = {a.name for a, b in zip(tuned.graph.initializer, original.graph.initializer)
              if a.raw_data != b.raw_data}
    assert {n.input[1] for n in original.graph.node if n.op_type == "Conv"} <= differ


@pytest.fixture(scope="module")
def face_path():
    from edge.biometrics.face import FacePipeline, load_image
    from edge.config import load_config

    cfg = load_config(env={})
    photos = {p: load_image(cfg.paths.models_dir / "examples" / p) for p in PHOTOS}
    return FacePipeline(cfg.face, cfg.paths.models_dir), photos, cfg


def _jpeg12(image: np.ndarray) -> np.ndarray:
    from edge.evaluation.conditions import jpeg

    return jpeg(image, 0, 12)


def test_only_deblocked_faces_go_to_the_restored_embedder_by_default(face_path):
    from edge.evaluation.conditions import dark

    pipeline, photos, cfg = face_path
    assert cfg.face.restored_embedder_for == ("deblocked",)
    clean = pipeline.analyze(photos["obama.jpg"])
    blocky = pipeline.analyze(_jpeg12(photos["obama.jpg"]))
    noisy = pipeline.analyze(dark(photos["obama.jpg"], 1, 20))
    assert not clean.restoration.any and pipeline.embedder_for(clean) is pipeline.embedder
    assert blocky.restoration.deblocked and pipeline.embedder_for(blocky) is pipeline.restored_embedder
    assert noisy.restoration.undone == {"denoised"} and pipeline.embedder_for(noisy) is pipeline.embedder
    # The embedding of the deblocked face is the fine-tuned network's, not the main one's.
    main = pipeline.embedder.embed(blocky.aligned.chip[None])[0]
    tuned = pipeline.restored_embedder.embed(blocky.aligned.chip[None])[0]
    np.testing.assert_allclose(blocky.embedding, tuned, atol=1e-5)
    assert np.linalg.norm(main - tuned) > 0.01
    # Asked for denoised faces too, the dark frame goes to it; asked for none, the network is not even loaded.
    from edge.biometrics.face import FacePipeline

    both = FacePipeline(cfg.face.model_copy(update={"restored_embedder_for": ("denoised", "deblocked")}),
                        cfg.paths.models_dir)
    assert both.embedder_for(both.analyze(dark(photos["obama.jpg"], 1, 20))) is both.restored_embedder
    off = FacePipeline(cfg.face.model_copy(update={"restored_embedder_for": ()}), cfg.paths.models_dir)
    assert off.restored_embedder is None and off.embedder_for(off.analyze(_jpeg12(photos["obama.jpg"]))) is off.embedder
    assert "face_embedder_restored" in cfg.face.model_artifacts
    assert "face_embedder_restored" not in off.cfg.model_artifacts


def test_the_fine_tuned_network_embeds_into_the_main_networks_template_space(face_path):
    """Templates enrolled by the main network are compared with probes embedded by the fine-tuned one: every JPEG
    q12 probe of the example photos (which took no part in training: LFW folds 1-2 did) is decided against every
    clean template as the main network decides it, well inside the threshold for the same photo."""
    pipeline, photos, cfg = face_path
    templates = {name: pipeline.analyze(image).embedding for name, image in photos.items()}
    same_person = {"obama.jpg": "obama", "obama2.jpg": "obama", "obama3.jpg": "obama", "biden.jpg": "biden"}
    for name, image in photos.items():
        probe = pipeline.locate(_jpeg12(image))
        assert probe.restoration.deblocked
        main = pipeline.embedder.embed(probe.aligned.chip[None])[0]
        tuned = pipeline.restored_embedder.embed(probe.aligned.chip[None])[0]
        assert np.linalg.norm(tuned - templates[name]) < cfg.face.threshold / 2
        for other, template in templates.items():
            tuned_same = np.linalg.norm(tuned - template) < cfg.face.threshold
            assert tuned_same == (np.linalg.norm(main - template) < cfg.face.threshold)
            assert tuned_same == (same_person[name] == same_person[other]), (name, other)

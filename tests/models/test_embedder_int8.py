"""The int8 face embedder (models/build/embedder_int8.py): built reproducibly from the committed ranges, run by
onnxruntime as integer convolutions, and close to the float build on real chips of the example photos."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from models.build import embedder_int8
from models.build.pipeline import DEFAULT_CACHE_DIR
from models.build.sources import source_bytes
from models.manifest import load_manifest

pytestmark = pytest.mark.timeout(180)


def test_the_build_gives_the_manifests_bytes(models_dir):
    artifact = load_manifest().artifacts["face_embedder_int8"]
    built = embedder_int8.build(source_bytes(artifact.source, DEFAULT_CACHE_DIR / "downloads"), artifact)
    assert hashlib.sha256(built).hexdigest() == artifact.sha256
    assert built == (models_dir / artifact.file).read_bytes()


def test_onnxruntime_runs_every_convolution_in_8_bits(models_dir, tmp_path):
    """The speed comes from onnxruntime fusing each DequantizeLinear -> Conv -> QuantizeLinear into QLinearConv; a
    graph it could not fuse would run float convolutions on dequantised values, as slow as the float build."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(str(models_dir / "face_embedder_int8.onnx"), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(tmp_path / "optimised.onnx").graph.node]
    convolutions = [n for n in onnx.load(models_dir / "face_embedder.onnx").graph.node if n.op_type == "Conv"]
    assert ops.count("QLinearConv") == len(convolutions) == 29
    assert "Conv" not in ops and "FusedConv" not in ops


@pytest.fixture(scope="module")
def example_embeddings():
    """Fixed-length embeddings of the example photos' faces, by the int8 and the float build, on the same chips."""
    from edge.biometrics.face import FacePipeline, load_image
    from edge.biometrics.face.embedder import FaceEmbedder
    from edge.config import load_config

    cfg = load_config(env={})
    pipeline = FacePipeline(cfg.face, cfg.paths.models_dir)
    photos = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"]
    analyses = pipeline.analyze_many([load_image(cfg.paths.models_dir / "examples" / p) for p in photos])
    chips = np.stack([a.aligned.chip for a in analyses])
    as_float = FaceEmbedder(cfg.paths.models_dir, artifact="face_embedder").embed(chips)
    as_int8 = FaceEmbedder(cfg.paths.models_dir, artifact="face_embedder_int8").embed(chips)
    return dict(zip(photos, as_int8)), dict(zip(photos, as_float)), cfg.face.threshold


def test_int8_embeddings_stay_close_to_the_float_builds(example_embeddings):
    as_int8, as_float, _ = example_embeddings
    drift = [float(np.linalg.norm(as_int8[p] - as_float[p])) for p in as_int8]
    # The 3,810 LFW development images with a face: median 0.026, 95th percentile 0.034, largest 0.12
    # (models/MODEL_CARD.md "Speed"); the same-person threshold is 0.59, the length 1.42.
    assert max(drift) < 0.1, drift


def test_int8_decides_the_example_pairs_as_the_float_build_does(example_embeddings):
    as_int8, as_float, threshold = example_embeddings
    for a, b, same in [("obama.jpg", "obama2.jpg", True), ("obama.jpg", "obama3.jpg", True),
                       ("obama.jpg", "biden.jpg", False), ("obama2.jpg", "biden.jpg", False)]:
        for embeddings in (as_int8, as_float):
            assert (np.linalg.norm(embeddings[a] - embeddings[b]) < threshold) == same, (a, b)


def test_a_tensor_without_a_range_is_refused(models_dir):
    spec = json.loads((embedder_int8.RANGES_PATH).read_text())
    ranges = {name: tuple(r) for name, r in spec["ranges"].items()}
    del ranges["conv_9"]
    with pytest.raises(ValueError, match="no range for 1 tensor.*re-measure"):
        embedder_int8.quantize(onnx.load(models_dir / "face_embedder.onnx"), ranges)


def test_ranges_measured_on_another_float_graph_are_refused(models_dir):
    """A new converter or dlib file changes the float graph: ranges measured on the old one must not be reused."""
    artifact = load_manifest().artifacts["face_embedder_int8"]
    spec = json.loads(source_bytes(artifact.source, DEFAULT_CACHE_DIR / "downloads"))
    spec["float_sha256"] = "0" * 64
    with pytest.raises(ValueError, match="re-measure"):
        embedder_int8.build(json.dumps(spec).encode(), artifact)


def test_a_range_always_holds_zero():
    """Zero padding and ReLU outputs must be exact in 8 bits: the range is widened to hold 0."""
    scale, zero = embedder_int8._activation_qparams(2.0, 10.0)
    assert zero == 0 and scale == pytest.approx(10.0 / 255)
    scale, zero = embedder_int8._activation_qparams(-5.1, 0.0)
    assert zero == 255


def test_cpu_flags_are_read_from_x86_and_arm_cpuinfo():
    from edge.models import INT8_DOT_PRODUCT_FLAGS, cpu_flags

    x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx2 fma avx512f\nbogomips\t: 4000\n"
    arm = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd crc32 atomics asimddp\n"
    assert not cpu_flags(x86) & INT8_DOT_PRODUCT_FLAGS          # AVX2 without VNNI: u8 x s8 pairs can saturate
    assert cpu_flags(x86.replace("avx512f", "avx512f avx512_vnni")) & INT8_DOT_PRODUCT_FLAGS
    assert cpu_flags(arm) & INT8_DOT_PRODUCT_FLAGS
    assert cpu_flags("no flags here") == frozenset()


@pytest.mark.parametrize("int8_cpu, build, artefact", [(True, "int8", "face_embedder_int8"),
                                                       (False, "float32", "face_embedder")])
def test_auto_runs_the_int8_build_only_on_a_cpu_with_8_bit_dot_products(monkeypatch, int8_cpu, build, artefact):
    from edge import models
    from edge.biometrics.config import FaceConfig

    monkeypatch.setattr(models, "cpu_has_int8_dot_products", lambda: int8_cpu)
    face = FaceConfig()
    assert face.embedder == "auto" and face.embedder_build == build and face.model_artifacts[-1] == artefact
    # An explicit choice is kept whatever the CPU.
    assert FaceConfig(embedder="float32").embedder_build == "float32"
    assert FaceConfig(embedder="int8").embedder_build == "int8"

"""Training of the restored-face embedder (models.restored.train): torch runs the float graph as onnxruntime does,
and fine-tuning pulls degraded chips towards their clean chip's descriptor. Needs torch (training only), which
`make soak` installs; marked slow, so `make test` leaves it to `make soak`."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module", autouse=True)
def torch():
    """Imported here, not at collection: `make test` deselects these slow tests without importing torch."""
    return pytest.importorskip("torch", reason="torch is a training-only dependency: make soak installs it")


@pytest.fixture(scope="module")
def float_model(models_dir):
    import onnx

    return onnx.load(models_dir / "face_embedder.onnx")


@pytest.fixture(scope="module")
def example_chips(models_dir):
    from edge.biometrics.face import FacePipeline, load_image
    from edge.config import load_config
    from edge.evaluation.conditions import jpeg

    cfg = load_config(env={})
    pipeline = FacePipeline(cfg.face, cfg.paths.models_dir)
    clean, blocky = [], []
    for name in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"):
        image = load_image(models_dir / "examples" / name)
        clean.append(pipeline.locate(image).aligned.chip.copy())
        blocky.append(pipeline.locate(jpeg(image, 0, 12)).aligned.chip.copy())
    return np.stack(clean), np.stack(blocky)


def test_torch_runs_the_float_graph_as_onnxruntime_does(models_dir, float_model, example_chips):
    import onnxruntime as ort

    from models.restored.graph import EmbedderGraph, descriptors

    chips = np.concatenate(example_chips)
    session = ort.InferenceSession(str(models_dir / "face_embedder.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: chips})[0]
    np.testing.assert_allclose(descriptors(EmbedderGraph(float_model), chips), expected, atol=1e-4)


def test_fine_tuning_pulls_degraded_chips_towards_their_clean_descriptor(torch, float_model, example_chips):
    from models.restored.graph import EmbedderGraph, descriptors
    from models.restored.train import BATCH, fine_tune

    clean, blocky = example_chips
    n = len(clean)
    # The clean and the degraded chip of each photo, repeated to fill two batches; each degraded chip's target is
    # the clean chip of its own copy.
    copies = BATCH // n
    chips = np.concatenate([clean, blocky] * copies)
    clean_of = np.concatenate([k * 2 * n + np.tile(np.arange(n), 2) for k in range(copies)])
    tuned = fine_tune(float_model, chips, clean_of, seed=0, epochs=5, learning_rate=3e-5, log=lambda _: None)

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    graph = EmbedderGraph(float_model)
    before = np.linalg.norm(unit(descriptors(graph, blocky)) - unit(descriptors(graph, clean)), axis=1)
    for init in float_model.graph.initializer:
        if init.name in tuned:
            graph.tensors[init.name] = torch.from_numpy(tuned[init.name])
    after = np.linalg.norm(unit(descriptors(graph, blocky)) - unit(descriptors(EmbedderGraph(float_model), clean)),
                           axis=1)
    assert after.mean() < 0.8 * before.mean(), (before, after)

"""Fine-tune the face embedder for faces the restoration worked on, and write `models/restored/weights.npz`.

    pip install torch==2.13.0        # CPU build; training only: the product runs the result with onnxruntime
    .venv/bin/python -m models.restored.train --pairs ../shared/data/faces/lfw/pairs.txt --folds 1,2

What it learns (distillation, no identity labels): the restored chip of a degraded image should give the embedding
the original network gives the clean image. For every image of the chosen LFW folds:
- the clean image's chip (through the product's face path: edge.biometrics.face.FacePipeline.locate) and the
  original network's descriptor of it (and of its mirror image) are the targets;
- SAMPLES_PER_KIND degraded copies of each kind (edge.evaluation.conditions: underexposure with sensor noise,
  JPEG, horizontal motion blur, at levels drawn from LEVELS, a range around the evaluated conditions), each through
  the same face path, restoration included, are the inputs; the clean chip is an input too (its target is itself,
  so that what already works is kept).
Every weight of the network is trained (Adam, cosine-decayed LR, EPOCHS passes, batches of BATCH, a random mirror
image per sample), the loss being the squared distance between the unit-length descriptors. The result is the
float network with the changes (models.restored.weights) that `make models` adds back.

The evaluation folds must stay out of `--folds`: LFW folds hold disjoint people, and the face path's figures for
this network are read on the folds it never saw (models/MODEL_CARD.md, "Capture conditions"). Deterministic for a
given seed on one machine (torch's CPU kernels may round differently elsewhere).
"""
from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import time
from pathlib import Path

import numpy as np
import onnx
import torch

from models.restored.graph import EmbedderGraph, descriptors, weight_tensors
from models.restored.weights import encode, output_axis

WEIGHTS_PATH = Path(__file__).with_name("weights.npz")
# Degradation levels drawn for the training copies (uniform integers, both ends included): around the evaluated
# conditions (dark20, jpeg12, motion9), never only at them.
LEVELS = {"dark": (12, 35), "jpeg": (8, 22), "motion": (5, 15)}
KINDS = tuple(LEVELS)  # trained on by default
SAMPLES_PER_KIND = 3
EPOCHS = 2
BATCH = 32
LEARNING_RATE = 1e-4

_pipeline = None


def _face_path():
    global _pipeline
    if _pipeline is None:
        from edge.biometrics.face import FacePipeline
        from edge.config import load_config

        cfg = load_config(env={})
        # Only chips are needed: not the network being trained.
        _pipeline = FacePipeline(cfg.face.model_copy(update={"restored_embedder_for": ()}), cfg.paths.models_dir)
    return _pipeline


def _chip(image: np.ndarray) -> np.ndarray | None:
    analysis = _face_path().locate(image)
    return None if analysis.aligned is None else analysis.aligned.chip.copy()


def _image_chips(job: tuple[int, str, int, tuple[str, ...]]) -> list[tuple[str, np.ndarray]]:
    """("clean" or the degradation kind, chip) of one image: its clean chip first; nothing when no face is found."""
    from edge.biometrics.face.image import load_image
    from edge.evaluation import conditions

    index, path, seed, kinds = job
    image = load_image(Path(path), _face_path().cfg.max_image_px)
    clean = _chip(image)
    if clean is None:
        return []
    rng = np.random.default_rng([seed, index])
    degrade = {"dark": lambda img, level: conditions.dark(img, int(rng.integers(1 << 31)), level),
               "jpeg": lambda img, level: conditions.jpeg(img, 0, level),
               "motion": lambda img, level: conditions.motion(img, 0, level)}
    rows = [("clean", clean)]
    for _ in range(SAMPLES_PER_KIND):
        for kind in kinds:
            low, high = LEVELS[kind]
            chip = _chip(degrade[kind](image, int(rng.integers(low, high + 1))))
            if chip is not None:
                rows.append((kind, chip))
    return rows


def training_chips(images: list[Path], seed: int, kinds: tuple[str, ...] = KINDS, workers: int = 2
                   ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(chips, index of each chip's clean chip, kind of each chip) of the images, through the product's face path."""
    jobs = [(i, str(p), seed, kinds) for i, p in enumerate(images)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        per_image = pool.map(_image_chips, jobs, chunksize=8)
    chips, clean_of, chip_kinds = [], [], []
    for rows in per_image:
        base = len(chips)
        for kind, chip in rows:
            chips.append(chip)
            clean_of.append(base)
            chip_kinds.append(kind)
    return np.stack(chips), np.array(clean_of), chip_kinds


def float_embedder_bytes() -> bytes:
    """The float embedder as `make models` built it, checked against the manifest by edge.models."""
    from edge.config import load_config
    from edge.models import model_path

    return model_path("face_embedder", load_config(env={}).paths.models_dir).read_bytes()


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def fine_tune(float_model: onnx.ModelProto, chips: np.ndarray, clean_of: np.ndarray, *, seed: int,
              epochs: int = EPOCHS, learning_rate: float = LEARNING_RATE, log=print) -> dict[str, np.ndarray]:
    """Every weight of the network trained so that each chip's descriptor points where the original network's
    descriptor of its clean chip does. Returns tensor name -> fine-tuned value."""
    torch.manual_seed(seed)
    names = {name for name, _ in weight_tensors(float_model)}
    teacher = EmbedderGraph(float_model)
    student = EmbedderGraph(float_model, trainable=names)
    cleans = np.unique(clean_of)
    target = np.zeros((len(chips), 2, 128), np.float32)  # per clean chip: its unit descriptor and its mirror's
    target[cleans, 0] = _unit(torch.from_numpy(descriptors(teacher, chips[cleans]))).numpy()
    target[cleans, 1] = _unit(torch.from_numpy(descriptors(teacher, chips[cleans][:, :, ::-1]))).numpy()
    params = list(student.trainable.values())
    optimiser = torch.optim.Adam(params, lr=learning_rate)
    steps = epochs * (len(chips) // BATCH)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(steps, 1))
    rng = np.random.default_rng(seed)
    started, step = time.monotonic(), 0
    for epoch in range(epochs):
        order, total = rng.permutation(len(chips)), 0.0
        for first in range(0, len(order) - BATCH + 1, BATCH):
            batch = order[first:first + BATCH]
            mirror = rng.random(BATCH) < 0.5
            x = torch.from_numpy(chips[batch]).float()
            x[mirror] = x[mirror].flip(2)
            y = torch.from_numpy(target[clean_of[batch], mirror.astype(int)])
            loss = ((_unit(student(x)) - y) ** 2).sum(1).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            step, total = step + 1, total + loss.item()
            if step % 100 == 0:
                log(f"epoch {epoch + 1}/{epochs} step {step}/{steps} loss {total / (first // BATCH + 1):.5f} "
                    f"({time.monotonic() - started:.0f} s)")
    return {name: student.value(name).detach().numpy().copy() for name in names}


def fold_images(pairs_path: Path, folds: set[int]) -> list[Path]:
    """The images of the chosen LFW folds (1-based), both sides of every pair."""
    from edge.evaluation.lfw import read_pairs

    return sorted({p for pair in read_pairs(pairs_path) if pair.fold + 1 in folds for p in (pair.a, pair.b)})


def train_weights(images: list[Path], *, seed: int = 0, kinds: tuple[str, ...] = KINDS, epochs: int = EPOCHS,
                  data: str = "", log=print) -> bytes:
    """The weights file's bytes (models.restored.weights) of a network fine-tuned on these images."""
    log(f"{len(images)} images: chips through the face path ...")
    chips, clean_of, chip_kinds = training_chips(images, seed, kinds)
    log(f"{len(chips)} chips ({chip_kinds.count('clean')} clean); fine-tuning ...")
    float_bytes = float_embedder_bytes()
    float_model = onnx.load_from_string(float_bytes)
    tuned = fine_tune(float_model, chips, clean_of, seed=seed, epochs=epochs, log=log)
    chips.fill(0)
    operators = dict(weight_tensors(float_model))
    originals = {init.name: onnx.numpy_helper.to_array(init) for init in float_model.graph.initializer}
    changes = {name: (value - originals[name], output_axis(operators[name])) for name, value in tuned.items()}
    training = {"data": f"{data}: {len(images)} images", "chips": len(chips), "kinds": ",".join(kinds),
                "levels": LEVELS, "samples_per_kind": SAMPLES_PER_KIND, "epochs": epochs, "batch": BATCH,
                "learning_rate": LEARNING_RATE, "seed": seed, "torch": torch.__version__}
    return encode(changes, hashlib.sha256(float_bytes).hexdigest(), training)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.restored.train", description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=Path, required=True, help="LFW pairs.txt with a folds header")
    parser.add_argument("--folds", default="1,2", help="the folds whose images are trained on (1-based)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"degradations trained on, of {sorted(LEVELS)}")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    args = parser.parse_args(argv)
    folds = sorted({int(f) for f in args.folds.split(",") if f.strip()})
    torch.set_num_threads(2)
    data = train_weights(fold_images(args.pairs, set(folds)), seed=args.seed, epochs=args.epochs,
                         kinds=tuple(k for k in args.kinds.split(",") if k),
                         data=f"LFW {args.pairs.name} folds {folds}", log=lambda line: print(line, flush=True))
    args.out.write_bytes(data)
    print(f"wrote {args.out}; now: .venv/bin/python -m models.build --update-manifest --only face_embedder_restored")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

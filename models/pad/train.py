"""Train the passive PAD classifier on NUAA and write `models/pad/weights.json`.

    .venv/bin/python -m models.pad.train --data ../shared/data/pad/nuaa --out models/pad/weights.json

Protocol (no subject is ever both trained on and evaluated on):
- the training subjects (default 0001-0006) are used for model selection by leave-one-subject-out
  cross-validation, for the decision threshold (on the out-of-fold scores), and for the final fit;
- the held-out subjects (every other subject in the lists, by default 0007-0009) are scored once, by
  the final model, and those figures are written to the weights file's `evaluation` block.
Deterministic for a given seed, data and face locator: the same command writes the same bytes (no dates or
paths in the file), so `git diff models/pad/weights.json` shows whether a retraining changed anything.
The committed weights.json is what `make models` turns into models/artifacts/pad_passive.onnx
(models/build/pad_passive.py); after retraining, run `.venv/bin/python -m models.build --update-manifest
--only pad_passive` to record the new hashes, and review the threshold in edge/config.py LivenessConfig.
"""
from __future__ import annotations

import argparse
import hashlib
import platform
from pathlib import Path

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from edge.evaluation.pad import PadSample, pad_rates, read_list
from edge.biometrics.liveness.features import FEATURE_VERSION, feature_names, passive_features
from edge.biometrics.liveness.geometry import FaceLocator, make_locator
from edge.evaluation.metrics import threshold_at_fmr
from models.pad.classifier import WEIGHTS_PATH, DenseLayer, PadClassifier

DEFAULT_TRAIN_SUBJECTS = ("0001", "0002", "0003", "0004", "0005", "0006")
TARGET_APCER = 0.05  # the operating point the threshold is set for (on training subjects only)


def extract(samples: list[PadSample], locator: FaceLocator, log=print) -> tuple[np.ndarray, np.ndarray]:
    """Features per sample (NaN rows where no face was found) and the found-face mask."""
    feats = np.full((len(samples), len(feature_names())), np.nan, dtype=np.float32)
    found = np.zeros(len(samples), dtype=bool)
    for i, s in enumerate(samples):
        image = cv2.imread(str(s.path), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"unreadable image: {s.path}")
        geom = locator.locate(image)
        if geom is not None:
            feats[i] = passive_features(image, geom)
            found[i] = True
        if (i + 1) % 200 == 0:
            log(f"  features {i + 1}/{len(samples)}")
    return feats, found


def candidates(seed: int) -> dict[str, object]:
    """Small models only: 9 subjects do not support more capacity. Ordered simplest (most regularised)
    first: model selection breaks ties toward the front, since with this few subjects the simpler model
    is the one more likely to hold on people it has not seen."""
    return {
        "logreg_C0.01": LogisticRegression(C=0.01, max_iter=5000),
        "logreg_C0.1": LogisticRegression(C=0.1, max_iter=5000),
        "logreg_C1": LogisticRegression(C=1.0, max_iter=5000),
        "mlp16_a1": MLPClassifier(hidden_layer_sizes=(16,), alpha=1.0, max_iter=2000, random_state=seed),
        "mlp16_a10": MLPClassifier(hidden_layer_sizes=(16,), alpha=10.0, max_iter=2000, random_state=seed),
    }


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    return mean, np.where(scale < 1e-6, 1.0, scale)


def fit(model, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, object]:
    mean, scale = standardiser(x)
    model.fit((x - mean) / scale, y)
    return mean, scale, model


def to_layers(model) -> list[DenseLayer]:
    if isinstance(model, LogisticRegression):
        return [DenseLayer(model.coef_.T.copy(), model.intercept_.copy(), "sigmoid")]
    assert model.activation == "relu" and model.out_activation_ == "logistic"
    n = len(model.coefs_)
    return [DenseLayer(w.copy(), b.copy(), "relu" if i < n - 1 else "sigmoid")
            for i, (w, b) in enumerate(zip(model.coefs_, model.intercepts_))]


def loso_scores(make_model, x: np.ndarray, y: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    """Out-of-fold bona fide scores: each subject scored by a model that never saw it."""
    oof = np.zeros(len(y))
    for s in np.unique(subjects):
        test = subjects == s
        mean, scale, model = fit(make_model(), x[~test], y[~test])
        oof[test] = model.predict_proba((x[test] - mean) / scale)[:, 1]
    return oof


def list_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder with live.txt and attack.txt")
    ap.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    ap.add_argument("--train-subjects", default=",".join(DEFAULT_TRAIN_SUBJECTS))
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--locator", choices=("auto", "product", "dlib"), default="auto",
                    help="face locator for the crops (auto: the product's detector when available)")
    ap.add_argument("--cache", type=Path, help="optional .npz feature cache (outside the repository)")
    args = ap.parse_args(argv)

    np.random.seed(args.seed)
    train_subjects = sorted(s.strip() for s in args.train_subjects.split(",") if s.strip())
    live, attack = read_list(args.data / "live.txt"), read_list(args.data / "attack.txt")
    samples = live + attack
    y = np.array([1] * len(live) + [0] * len(attack))
    subjects = np.array([s.subject for s in samples])
    locator = make_locator(prefer=args.locator)
    print(f"{len(live)} live + {len(attack)} attack images; face locator: {locator.name}")

    key = f"v{FEATURE_VERSION}-{locator.name}-{list_digest(args.data / 'live.txt')}-{list_digest(args.data / 'attack.txt')}"
    if args.cache and args.cache.exists() and str(np.load(args.cache)["key"]) == key:
        cached = np.load(args.cache)
        x, found = cached["x"], cached["found"]
        print(f"features from cache {args.cache}")
    else:
        x, found = extract(samples, locator)
        if args.cache:
            np.savez(args.cache, x=x, found=found, key=key)
    print(f"no face found in {int((~found).sum())} images (left out of training; scored -inf in evaluation)")

    in_train = np.isin(subjects, train_subjects) & found
    held_subjects = sorted(set(subjects) - set(train_subjects))
    xt, yt, st = x[in_train].astype(np.float64), y[in_train], subjects[in_train]

    # Model selection: leave-one-training-subject-out, pooled out-of-fold scores, lowest BPCER20.
    results = {}
    for name in candidates(args.seed):
        oof = loso_scores(lambda n=name: candidates(args.seed)[n], xt, yt, st)
        r = pad_rates(oof[yt == 1], oof[yt == 0], 0.5)
        results[name] = (r.bpcer20, oof)
        print(f"  LOSO on training subjects  {name:12s} BPCER20 {100 * r.bpcer20:5.2f}%  "
              f"APCER@0.5 {100 * r.apcer:5.2f}%  BPCER@0.5 {100 * r.bpcer:5.2f}%")
    order = list(results)
    best = min(results, key=lambda n: (results[n][0], order.index(n)))
    oof = results[best][1]
    threshold = threshold_at_fmr(oof[yt == 1], oof[yt == 0], TARGET_APCER)
    print(f"selected {best}; threshold {threshold:.4f} (APCER <= {TARGET_APCER:.0%} on out-of-fold scores)")

    mean, scale, model = fit(candidates(args.seed)[best], xt, yt)
    clf = PadClassifier(mean=mean, scale=scale, layers=to_layers(model), threshold=round(float(threshold), 6),
                        feature_version=FEATURE_VERSION, feature_names=feature_names())

    evaluation: dict = {"loso_training_subjects": {"model": best, "bpcer20": results[best][0]}}
    if held_subjects:
        held = np.isin(subjects, held_subjects)
        scores = np.full(len(samples), -np.inf)
        scores[held & found] = clf.forward(x[held & found])
        r = pad_rates(scores[held & (y == 1)], scores[held & (y == 0)], clf.threshold)
        evaluation["held_out"] = {"subjects": held_subjects, "apcer": r.apcer, "bpcer": r.bpcer,
                                  "bpcer20": r.bpcer20, "live": r.live, "attack": r.attack,
                                  "no_face": int((held & ~found).sum())}
        print(f"held-out subjects {','.join(held_subjects)}: APCER {100 * r.apcer:.2f}%  BPCER {100 * r.bpcer:.2f}%  "
              f"BPCER20 {100 * r.bpcer20:.2f}%  ({r.live} live, {r.attack} attack)")

    clf.provenance = {
        "data": "NUAA Photograph Imposter Database (Tan et al., ECCV 2010), seeded sample of its train split; "
                "research use only",
        "lists": {"live.txt": list_digest(args.data / "live.txt"), "attack.txt": list_digest(args.data / "attack.txt")},
        "train_subjects": train_subjects,
        "held_out_subjects": held_subjects,
        "train_images": {"live": int((yt == 1).sum()), "attack": int((yt == 0).sum())},
        "face_locator": locator.name,
        "model": best,
        "seed": args.seed,
        "command": (f"python -m models.pad.train --data <NUAA folder> --train-subjects {','.join(train_subjects)} "
                    f"--seed {args.seed} --locator {args.locator}"),
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
                     "scikit-learn": __import__("sklearn").__version__},
    }
    clf.evaluation = evaluation
    clf.save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

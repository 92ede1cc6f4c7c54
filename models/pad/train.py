"""Train the passive PAD classifier on NUAA and write `models/pad/weights.json`.

    .venv/bin/python -m models.pad.train --data ../shared/data/pad/nuaa --out models/pad/weights.json

Protocol (edge/evaluation/pad_training.py; no subject is ever both trained on and evaluated on):
- the shipped model: model selection by leave-one-subject-out over the training subjects (default: every
  subject in the lists, nine for NUAA), the decision threshold at APCER 5 % on those out-of-fold scores, then
  the chosen model fitted on all of them;
- the estimate for people it never saw: that whole procedure cross-validated by subject (each subject left
  out in turn, selection, threshold and fit on the others), written to the weights file's `evaluation` block
  (the figures `biogate eval pad --cross-validate` prints);
- subjects left out of `--train-subjects`, if any, are scored once by the final model (`held_out`).
Deterministic for a given seed, data and face locator: the same command writes the same bytes (no dates or
paths in the file), so `git diff models/pad/weights.json` shows whether a retraining changed anything.
The committed weights.json is what `make models` turns into models/artifacts/pad_passive.onnx
(models/build/pad_passive.py); after retraining, run `.venv/bin/python -m models.build --update-manifest
--only pad_passive` to record the new hashes, and set the threshold in edge/biometrics/config.py LivenessConfig.
"""
from __future__ import annotations

import argparse
import hashlib
import platform
from pathlib import Path

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression

from edge.biometrics.liveness.features import FEATURE_VERSION, feature_names
from edge.biometrics.liveness.geometry import make_locator
from edge.evaluation.pad import pad_rates, read_list
from edge.evaluation.pad_training import (TARGET_APCER, Features, candidates, cross_validate, extract_features,
                                          fit, select_model)
from models.pad.classifier import WEIGHTS_PATH, DenseLayer, PadClassifier


def to_layers(model) -> list[DenseLayer]:
    if isinstance(model, LogisticRegression):
        return [DenseLayer(model.coef_.T.copy(), model.intercept_.copy(), "sigmoid")]
    assert model.activation == "relu" and model.out_activation_ == "logistic"
    n = len(model.coefs_)
    return [DenseLayer(w.copy(), b.copy(), "relu" if i < n - 1 else "sigmoid")
            for i, (w, b) in enumerate(zip(model.coefs_, model.intercepts_))]


def list_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder with live.txt and attack.txt")
    ap.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    ap.add_argument("--train-subjects", default="all", help="comma-separated subject ids, or all (default)")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--locator", choices=("auto", "product", "dlib"), default="auto",
                    help="face locator for the crops (auto: the product's detector when available)")
    ap.add_argument("--cache", type=Path, help="optional .npz feature cache (outside the repository)")
    args = ap.parse_args(argv)

    np.random.seed(args.seed)
    live, attack = read_list(args.data / "live.txt"), read_list(args.data / "attack.txt")
    samples = live + attack
    y = np.array([1] * len(live) + [0] * len(attack))
    subjects = np.array([s.subject for s in samples])
    train_subjects = (sorted(set(subjects)) if args.train_subjects == "all"
                      else sorted(s.strip() for s in args.train_subjects.split(",") if s.strip()))
    locator = make_locator(prefer=args.locator)
    print(f"{len(live)} live + {len(attack)} attack images; face locator: {locator.name}")

    key = f"v{FEATURE_VERSION}-{locator.name}-{list_digest(args.data / 'live.txt')}-{list_digest(args.data / 'attack.txt')}"
    if args.cache and args.cache.exists() and str(np.load(args.cache)["key"]) == key:
        cached = np.load(args.cache)
        features = Features(cached["x"], cached["found"], float(cached["ms"]))
        print(f"features from cache {args.cache}")
    else:
        features = extract_features(samples, locator, log=print)
        if args.cache:
            np.savez(args.cache, x=features.x, found=features.found, ms=features.ms_per_frame, key=key)
    x, found = features.x, features.found
    print(f"no face found in {int((~found).sum())} images (left out of training; scored -inf in evaluation)")

    in_train = np.isin(subjects, train_subjects)
    held_subjects = sorted(set(subjects) - set(train_subjects))

    print(f"cross-validation by subject over {len(train_subjects)} subjects (the whole procedure per split):")
    cv = cross_validate(Features(x[in_train], found[in_train], features.ms_per_frame), y[in_train],
                        subjects[in_train], args.seed, log=print)
    print(f"  pooled: APCER {100 * cv.apcer:.2f} %  BPCER {100 * cv.bpcer:.2f} %  BPCER20 {100 * cv.bpcer20:.2f} %")

    fit_rows = in_train & found
    xt, yt, st = x[fit_rows], y[fit_rows], subjects[fit_rows]
    chosen = select_model(xt, yt, st, args.seed, log=print)
    print(f"selected {chosen.model}; threshold {chosen.threshold:.4f} (APCER <= {TARGET_APCER:.0%} on out-of-fold scores)")
    mean, scale, model = fit(candidates(args.seed)[chosen.model], xt, yt)
    clf = PadClassifier(mean=mean, scale=scale, layers=to_layers(model), threshold=round(chosen.threshold, 6),
                        feature_version=FEATURE_VERSION, feature_names=feature_names())

    cross = cv.as_dict()
    cross.pop("feature_ms_per_frame")  # a timing, not a property of the weights (the file must be reproducible)
    evaluation: dict = {"loso_training_subjects": {"model": chosen.model, "bpcer20": chosen.bpcer20[chosen.model]},
                        "cross_validated": cross}
    if held_subjects:
        held = np.isin(subjects, held_subjects)
        scores = np.full(len(samples), -np.inf)
        scores[held & found] = clf.forward(x[held & found].astype(np.float32))
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
        "model": chosen.model,
        "seed": args.seed,
        "command": (f"python -m models.pad.train --data <NUAA folder> --train-subjects {args.train_subjects} "
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

"""Train the passive PAD classifier on NUAA and write `models/pad/weights.json` (one command):

    .venv/bin/python -m models.pad.train --data ../shared/data/pad/nuaa

Protocol (edge/evaluation/pad_training.py, the same code `biogate eval pad --loso` measures with):
- every subject of the lists (NUAA development sample: 0001-0009) is used;
- leave-one-subject-out cross-validation: for each subject, the procedure is trained on the others (its
  threshold set on *their* out-of-fold scores) and tested on it; the per-split and pooled APCER, BPCER and
  BPCER20 and their spread go to the weights file's `evaluation` block;
- the shipped model is fitted on every subject; its threshold is the one at `--target-apcer` on the
  LOSO out-of-fold scores (each subject scored by a model that never saw it, never by the final model).
Deterministic for given data and face locator: the same command writes the same bytes (no dates or paths in
the file), so `git diff models/pad/weights.json` shows whether a retraining changed anything. The committed
weights.json is what `make models` turns into models/artifacts/pad_passive.onnx (models/build/pad_passive.py);
after retraining, run `.venv/bin/python -m models.build --update-manifest --only pad_passive` to record the new
hashes, and set `passive_threshold` in edge/biometrics/config.py LivenessConfig to the printed threshold.
"""
from __future__ import annotations

import argparse
import hashlib
import platform
from pathlib import Path

import cv2
import numpy as np
import scipy

from edge.biometrics.liveness.features import FEATURE_VERSION, feature_names
from edge.biometrics.liveness.geometry import make_locator
from edge.evaluation.pad import image_features, read_list
from edge.evaluation.pad_training import DEFAULT_C, DEFAULT_TARGET_APCER, fit_pad, loso
from models.pad.classifier import WEIGHTS_PATH, DenseLayer, PadClassifier


def list_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder with live.txt and attack.txt")
    ap.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    ap.add_argument("--C", type=float, default=DEFAULT_C, help="inverse L2 regularisation strength")
    ap.add_argument("--target-apcer", type=float, default=DEFAULT_TARGET_APCER,
                    help="out-of-fold APCER the threshold is set for")
    ap.add_argument("--locator", choices=("auto", "product", "dlib"), default="product",
                    help="face locator for the crops (product: the daemon's BlazeFace detector)")
    ap.add_argument("--cache", type=Path, help="optional .npz feature cache (outside the repository)")
    args = ap.parse_args(argv)

    live, attack = read_list(args.data / "live.txt"), read_list(args.data / "attack.txt")
    samples = live + attack
    y = np.array([1] * len(live) + [0] * len(attack))
    subjects = np.array([s.subject for s in samples])
    locator = make_locator(prefer=args.locator)
    print(f"{len(live)} live + {len(attack)} attack images of {len(set(subjects))} subjects; "
          f"face locator: {locator.name}")

    key = f"v{FEATURE_VERSION}-{locator.name}-{list_digest(args.data / 'live.txt')}-{list_digest(args.data / 'attack.txt')}"
    if args.cache and args.cache.exists() and str(np.load(args.cache)["key"]) == key:
        cached = np.load(args.cache)
        x, found = cached["x"], cached["found"]
        print(f"features from cache {args.cache}")
    else:
        x, found = image_features([s.path for s in samples], locator)
        if args.cache:
            np.savez(args.cache, x=x, found=found, key=key)
    print(f"no face found in {int((~found).sum())} images (left out of training; scored as refused)")

    report = loso(x, y, subjects, found, C=args.C, target_apcer=args.target_apcer)
    for split in report.splits:
        r = split.rates
        print(f"  test {split.subject}: APCER {100 * r.apcer:5.1f}%  BPCER {100 * r.bpcer:5.1f}%  "
              f"BPCER20 {100 * r.bpcer20:5.1f}%  ({r.live} live, {r.attack} attack, threshold {split.threshold:.4f})")
    p = report.pooled
    print(f"  pooled:    APCER {100 * p.apcer:5.2f}%  BPCER {100 * p.bpcer:5.2f}%  BPCER20 {100 * p.bpcer20:5.2f}%  "
          f"({p.live} live, {p.attack} attack)")

    model = fit_pad(x[found], y[found], args.C)
    threshold = round(report.shipped_threshold, 6)
    print(f"shipped threshold {threshold} (APCER <= {args.target_apcer:.0%} on the LOSO out-of-fold scores)")
    all_subjects = sorted(set(subjects))
    clf = PadClassifier(mean=model.mean, scale=model.scale,
                        layers=[DenseLayer(model.weight[:, None].copy(), np.array([model.bias]), "sigmoid")],
                        threshold=threshold, feature_version=FEATURE_VERSION, feature_names=feature_names())
    clf.provenance = {
        "data": "NUAA Photograph Imposter Database (Tan et al., ECCV 2010), seeded sample of its train split; "
                "research use only",
        "lists": {"live.txt": list_digest(args.data / "live.txt"), "attack.txt": list_digest(args.data / "attack.txt")},
        "train_subjects": all_subjects,
        "held_out_subjects": [],
        "train_images": {"live": int((y[found] == 1).sum()), "attack": int((y[found] == 0).sum())},
        "face_locator": locator.name,
        "model": f"standardised colour-texture LBP -> logistic regression C={args.C}",
        "command": (f"python -m models.pad.train --data <NUAA folder> --C {args.C} "
                    f"--target-apcer {args.target_apcer} --locator {args.locator}"),
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
                     "scipy": scipy.__version__},
    }
    clf.evaluation = {"loso": report.to_json(), "no_face": int((~found).sum())}
    clf.save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

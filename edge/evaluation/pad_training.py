"""The passive PAD classifier's training procedure, and that procedure measured on people it never saw.

One place for both, so what is measured is what ships:
- `models/pad/train.py` fits the shipped weights with `select_model` and `fit` on every training subject;
- `biogate eval pad --cross-validate` runs `cross_validate`: for each subject, the whole procedure (model
  selection, threshold, fit) on the other subjects only, then that subject scored at that threshold
  (ISO/IEC 30107-3 rates per split, pooled over all splits, and their spread).

Model selection: leave-one-subject-out over the training subjects, pooled out-of-fold bona fide scores, lowest
BPCER20; ties go to the most regularised candidate (listed first). Threshold: the score at APCER TARGET_APCER on
those out-of-fold scores (a rule that sees only training subjects).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from edge.errors import InputError
from edge.evaluation.metrics import threshold_at_fmr
from edge.evaluation.pad import PadSample, pad_rates

TARGET_APCER = 0.05  # the operating point the threshold is set for (on training subjects only)


def candidates(seed: int) -> dict[str, object]:
    """Small models only: 9 subjects do not support more capacity. Ordered simplest (most regularised)
    first: model selection breaks ties toward the front, since with this few subjects the simpler model
    is the one more likely to hold on people it has not seen."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    return {
        "logreg_C0.01": LogisticRegression(C=0.01, max_iter=5000),
        "logreg_C0.1": LogisticRegression(C=0.1, max_iter=5000),
        "logreg_C1": LogisticRegression(C=1.0, max_iter=5000),
        "mlp16_a1": MLPClassifier(hidden_layer_sizes=(16,), alpha=1.0, max_iter=2000, random_state=seed),
        "mlp16_a10": MLPClassifier(hidden_layer_sizes=(16,), alpha=10.0, max_iter=2000, random_state=seed),
    }


@dataclass
class Features:
    x: np.ndarray          # [N, n_features] float64, NaN rows where no face was found
    found: np.ndarray      # [N] bool
    ms_per_frame: float    # mean CPU time of the passive features alone (the face location is the face path's)


def extract_features(samples: list[PadSample], locator, log: Callable[[str], None] | None = None,
                     progress: Callable[[], None] | None = None) -> Features:
    """The passive features of each sample's most prominent face (`progress()` after each image)."""
    from edge.biometrics.liveness.features import feature_names, passive_features

    x = np.full((len(samples), len(feature_names())), np.nan, dtype=np.float32)  # as the runtime feeds the model
    found = np.zeros(len(samples), dtype=bool)
    spent = 0.0
    for i, s in enumerate(samples):
        image = cv2.imread(str(s.path), cv2.IMREAD_COLOR)  # applies EXIF orientation
        if image is None:
            raise InputError(f"cannot read image {s.path}", code="input.unreadable_image")
        geometry = locator.locate(image)
        if geometry is not None:
            t0 = time.process_time()
            x[i] = passive_features(image, geometry)
            spent += time.process_time() - t0
            found[i] = True
        image.fill(0)
        if progress is not None:
            progress()
        if log is not None and (i + 1) % 200 == 0:
            log(f"  features {i + 1}/{len(samples)}")
    return Features(x.astype(np.float64), found, 1000.0 * spent / max(1, int(found.sum())))


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    return mean, np.where(scale < 1e-6, 1.0, scale)


def fit(model, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, object]:
    mean, scale = standardiser(x)
    model.fit((x - mean) / scale, y)
    return mean, scale, model


def loso_scores(make_model: Callable[[], object], x: np.ndarray, y: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    """Out-of-fold bona fide scores: each subject scored by a model that never saw it."""
    oof = np.zeros(len(y))
    for s in np.unique(subjects):
        test = subjects == s
        mean, scale, model = fit(make_model(), x[~test], y[~test])
        oof[test] = model.predict_proba((x[test] - mean) / scale)[:, 1]
    return oof


@dataclass
class Selection:
    model: str                                          # the chosen candidate's name
    threshold: float                                    # at APCER TARGET_APCER on its out-of-fold scores
    bpcer20: dict[str, float] = field(default_factory=dict)   # every candidate's out-of-fold BPCER20


def select_model(x: np.ndarray, y: np.ndarray, subjects: np.ndarray, seed: int,
                 names: list[str] | None = None, log: Callable[[str], None] | None = None) -> Selection:
    """Model and threshold chosen by leave-one-subject-out on these (training) subjects only."""
    names = names or list(candidates(seed))
    results: dict[str, tuple[float, np.ndarray]] = {}
    for name in names:
        oof = loso_scores(lambda n=name: candidates(seed)[n], x, y, subjects)
        r = pad_rates(oof[y == 1], oof[y == 0], 0.5)
        results[name] = (r.bpcer20, oof)
        if log is not None:
            log(f"  LOSO on training subjects  {name:12s} BPCER20 {100 * r.bpcer20:5.2f}%  "
                f"APCER@0.5 {100 * r.apcer:5.2f}%  BPCER@0.5 {100 * r.bpcer:5.2f}%")
    best = min(results, key=lambda n: (results[n][0], names.index(n)))
    oof = results[best][1]
    threshold = threshold_at_fmr(oof[y == 1], oof[y == 0], TARGET_APCER)
    return Selection(best, float(threshold), {n: float(r[0]) for n, r in results.items()})


@dataclass(frozen=True)
class Split:
    subject: str       # the subject left out (never seen by the model, its selection or its threshold)
    model: str
    threshold: float
    apcer: float
    bpcer: float
    bpcer20: float
    live: int
    attack: int

    def as_dict(self) -> dict:
        return {"subject": self.subject, "model": self.model, "threshold": round(self.threshold, 6),
                "apcer": round(self.apcer, 6), "bpcer": round(self.bpcer, 6), "bpcer20": round(self.bpcer20, 6),
                "live": self.live, "attack": self.attack}


@dataclass(frozen=True)
class CrossValidation:
    splits: list[Split]
    apcer: float       # pooled: all splits' attacks accepted at their split's threshold / all attacks
    bpcer: float       # pooled: all live images refused at their split's threshold / all live images
    bpcer20: float     # on the pooled margins (score - the split's threshold), threshold-free
    live: int
    attack: int
    ms_per_frame: float

    def as_dict(self) -> dict:
        spread = {k: [round(min(getattr(s, k) for s in self.splits), 6), round(max(getattr(s, k) for s in self.splits), 6)]
                  for k in ("apcer", "bpcer", "bpcer20")}
        return {"protocol": "leave-one-subject-out", "subjects": len(self.splits),
                "apcer": round(self.apcer, 6), "bpcer": round(self.bpcer, 6), "bpcer20": round(self.bpcer20, 6),
                "live": self.live, "attack": self.attack, "spread": spread,
                "feature_ms_per_frame": round(self.ms_per_frame, 2),
                "splits": [s.as_dict() for s in self.splits]}


def cross_validate(features: Features, y: np.ndarray, subjects: np.ndarray, seed: int,
                   names: list[str] | None = None, log: Callable[[str], None] | None = None) -> CrossValidation:
    """Leave each subject out in turn; the whole training procedure runs on the others. A face that was not
    found scores -inf (a live image refused, an attack refused)."""
    x, found = features.x, features.found
    if len(np.unique(subjects)) < 3:
        raise InputError("cross-validation needs at least three subjects (two to select a model on, one to test)",
                         code="input.too_few_subjects")
    margins = np.full(len(y), -np.inf)
    splits = []
    for subject in np.unique(subjects):
        test = subjects == subject
        train = ~test & found
        chosen = select_model(x[train], y[train], subjects[train], seed, names)
        mean, scale, model = fit(candidates(seed)[chosen.model], x[train], y[train])
        scores = np.full(int(test.sum()), -np.inf)
        seen = found[test]
        if seen.any():
            scores[seen] = model.predict_proba((x[test][seen] - mean) / scale)[:, 1]
        margins[test] = scores - chosen.threshold
        live, attack = scores[y[test] == 1], scores[y[test] == 0]
        if live.size and attack.size:
            r = pad_rates(live, attack, chosen.threshold)
            split = Split(str(subject), chosen.model, chosen.threshold, r.apcer, r.bpcer, r.bpcer20, r.live, r.attack)
        else:  # a subject with one kind of presentation only: its rates that exist
            split = Split(str(subject), chosen.model, chosen.threshold,
                          float(np.mean(attack >= chosen.threshold)) if attack.size else 0.0,
                          float(np.mean(live < chosen.threshold)) if live.size else 0.0, 0.0,
                          int(live.size), int(attack.size))
        splits.append(split)
        if log is not None:
            log(f"  left out {split.subject}: {split.model}, threshold {split.threshold:.4f}, "
                f"APCER {100 * split.apcer:5.1f} %, BPCER {100 * split.bpcer:5.1f} %, "
                f"BPCER20 {100 * split.bpcer20:5.1f} % ({split.live} live, {split.attack} attack)")
    pooled = pad_rates(margins[y == 1], margins[y == 0], 0.0)
    return CrossValidation(splits, pooled.apcer, pooled.bpcer, pooled.bpcer20, pooled.live, pooled.attack,
                           features.ms_per_frame)

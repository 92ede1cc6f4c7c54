"""The passive PAD's training procedure and its leave-one-subject-out (LOSO) cross-validation.

One procedure, used by both `python -m models.pad.train` (which ships its result) and `biogate eval pad
--loso` (which measures it), so the figures reported are those of exactly what is shipped:

    standardise the features -> L2-regularised logistic regression (C = `C`)
    threshold = the bona fide score at which the out-of-fold APCER of the *training* subjects is at most
                `target_apcer` (each training subject scored by a model that never saw it)

LOSO over N subjects: for each subject, the procedure runs on the other N-1 (its threshold from their own
inner LOSO, never from the test subject) and the test subject is scored once at that threshold. The
shipped model is the procedure on all N subjects; its threshold comes from the outer LOSO's out-of-fold
scores. Logistic regression is fitted with scipy's L-BFGS (deterministic, no random start).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from edge.errors import InputError
from edge.evaluation.metrics import threshold_at_fmr
from edge.evaluation.pad import PadRates, pad_rates

DEFAULT_C = 0.1             # inverse L2 strength, as scikit-learn's LogisticRegression(C=...)
DEFAULT_TARGET_APCER = 0.02  # out-of-fold APCER the threshold is set for: below the 10 % bar with margin,
#                              since a new person's attacks score higher than those of the people trained on


@dataclass(frozen=True)
class LinearPad:
    """(x - mean) / scale -> logistic regression; `score` is the bona fide probability."""

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray   # (D,)
    bias: float

    def score(self, x: np.ndarray) -> np.ndarray:
        return expit(((np.asarray(x, dtype=np.float64) - self.mean) / self.scale) @ self.weight + self.bias)


def fit_pad(x: np.ndarray, y: np.ndarray, C: float = DEFAULT_C) -> LinearPad:
    """Fit on features `x` (N x D) with labels `y` (1 = bona fide, 0 = attack)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if not (np.any(y == 1) and np.any(y == 0)):
        raise InputError("training needs live and attack presentations", code="input.empty_list")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale < 1e-9, 1.0, scale)
    z = (x - mean) / scale
    sign = 2.0 * y - 1.0

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[:-1], params[-1]
        margin = sign * (z @ w + b)
        loss = 0.5 * w @ w - C * log_expit(margin).sum()
        g = -C * sign * expit(-margin)            # d loss / d (z @ w + b), per sample
        return float(loss), np.concatenate([w + z.T @ g, [g.sum()]])

    result = minimize(objective, np.zeros(z.shape[1] + 1), jac=True, method="L-BFGS-B",
                      options={"maxiter": 5000, "gtol": 1e-8})
    return LinearPad(mean=mean, scale=scale, weight=result.x[:-1].copy(), bias=float(result.x[-1]))


def out_of_fold_scores(x: np.ndarray, y: np.ndarray, subjects: np.ndarray, C: float = DEFAULT_C) -> np.ndarray:
    """Each sample scored by the model fitted on every *other* subject."""
    scores = np.zeros(len(y))
    for subject in np.unique(subjects):
        test = subjects == subject
        scores[test] = fit_pad(x[~test], y[~test], C).score(x[test])
    return scores


def threshold_for(scores: np.ndarray, y: np.ndarray, target_apcer: float) -> float:
    """The lowest threshold whose APCER on these (out-of-fold) scores is at most `target_apcer`."""
    return float(threshold_at_fmr(scores[y == 1], scores[y == 0], target_apcer))


def train_pad(x: np.ndarray, y: np.ndarray, subjects: np.ndarray, C: float = DEFAULT_C,
              target_apcer: float = DEFAULT_TARGET_APCER) -> tuple[LinearPad, float, np.ndarray]:
    """The procedure: (model on all of `x`, threshold from its LOSO out-of-fold scores, those scores)."""
    oof = out_of_fold_scores(x, y, subjects, C)
    return fit_pad(x, y, C), threshold_for(oof, y, target_apcer), oof


@dataclass(frozen=True)
class Split:
    subject: str
    threshold: float
    rates: PadRates


@dataclass
class LosoReport:
    splits: list[Split]
    pooled: PadRates              # every test subject's scores together, each at its own split's threshold
    C: float
    target_apcer: float
    shipped_threshold: float      # the procedure on all subjects: threshold on the out-of-fold scores
    oof_scores: np.ndarray = field(repr=False)

    def spread(self) -> dict[str, dict[str, float]]:
        out = {}
        for key in ("apcer", "bpcer", "bpcer20"):
            values = np.array([getattr(s.rates, key) for s in self.splits])
            out[key] = {"min": float(values.min()), "max": float(values.max()), "mean": float(values.mean()),
                        "std": float(values.std())}
        return out

    def to_json(self, digits: int = 6) -> dict:
        def rates(r: PadRates) -> dict:
            return {"apcer": round(r.apcer, digits), "bpcer": round(r.bpcer, digits),
                    "bpcer20": round(r.bpcer20, digits), "live": r.live, "attack": r.attack}
        return {
            "protocol": "leave-one-subject-out",
            "C": self.C, "target_apcer": self.target_apcer,
            "splits": [{"subject": s.subject, "threshold": round(s.threshold, digits), **rates(s.rates)}
                       for s in self.splits],
            "pooled": rates(self.pooled),
            "spread": {k: {m: round(v, digits) for m, v in d.items()} for k, d in self.spread().items()},
            "shipped_threshold": round(self.shipped_threshold, digits),
        }


def loso(x: np.ndarray, y: np.ndarray, subjects: Sequence[str], found: np.ndarray | None = None,
         C: float = DEFAULT_C, target_apcer: float = DEFAULT_TARGET_APCER) -> LosoReport:
    """LOSO of the procedure. `found` marks rows with a face; the others train nothing and score -inf
    (a live one is a bona fide rejection, an attack a correct refusal)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    subjects = np.asarray(subjects)
    found = np.ones(len(y), dtype=bool) if found is None else np.asarray(found, dtype=bool)
    names = sorted(np.unique(subjects))
    if len(names) < 3:
        raise InputError(f"leave-one-subject-out needs at least 3 subjects, got {len(names)}",
                         code="input.empty_list")
    splits, scores, thresholds = [], np.full(len(y), -np.inf), np.zeros(len(y))
    for subject in names:
        test = subjects == subject
        train = ~test & found
        model, threshold, _ = train_pad(x[train], y[train], subjects[train], C, target_apcer)
        scored = test & found
        scores[scored] = model.score(x[scored])
        thresholds[test] = threshold
        splits.append(Split(subject, threshold, pad_rates(scores[test & (y == 1)], scores[test & (y == 0)],
                                                          threshold)))
    accepted = scores >= thresholds
    live, attack = y == 1, y == 0
    pooled = PadRates(apcer=float(accepted[attack].mean()), bpcer=float((~accepted[live]).mean()),
                      bpcer20=pad_rates(scores[live], scores[attack], 0.5).bpcer20,
                      live=int(live.sum()), attack=int(attack.sum()), threshold=float("nan"))
    shipped = threshold_for(scores[found], y[found], target_apcer)
    return LosoReport(splits=splits, pooled=pooled, C=C, target_apcer=target_apcer, shipped_threshold=shipped,
                      oof_scores=scores)

"""The FVC protocol on one database folder: files, comparison pairs and scores.

A database folder holds `<finger>_<impression>.tif` files (FVC2000 B sets: 10 fingers x 8
impressions). Per database:
- genuine pairs: every two impressions of the same finger (10 fingers x 28 = 280);
- impostor pairs: every impression against every impression of every other finger, each unordered
  pair once (80 x 72 / 2 = 2,880).
A print that fails extraction makes every pair it is in score `-inf` (rejected at every threshold:
a genuine error, never dropped) and is counted in `failures_to_extract`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from edge.errors import BiogateError, InputError

Key = tuple[int, int]  # (finger, impression)
FILE_PATTERN = re.compile(r"^(\d+)_(\d+)\.(tif|tiff|bmp|png)$", re.IGNORECASE)


def read_db(db_dir: str | Path) -> dict[Key, Path]:
    """Map (finger, impression) to the image file, for every `<finger>_<impression>.<ext>` file."""
    db = Path(db_dir)
    if not db.is_dir():
        raise InputError(f"fingerprint database folder not found: {db}", code="input.not_found")
    files: dict[Key, Path] = {}
    for path in sorted(db.iterdir()):
        match = FILE_PATTERN.match(path.name)
        if match:
            files[(int(match.group(1)), int(match.group(2)))] = path
    if not files:
        raise InputError(f"{db}: no <finger>_<impression>.tif files", code="input.bad_database")
    return files


def protocol_pairs(keys: Iterable[Key]) -> tuple[list[tuple[Key, Key]], list[tuple[Key, Key]]]:
    """(genuine, impostor) pairs of the FVC protocol above, in a fixed order."""
    ordered = sorted(set(keys))
    genuine: list[tuple[Key, Key]] = []
    impostor: list[tuple[Key, Key]] = []
    for a, b in combinations(ordered, 2):
        (genuine if a[0] == b[0] else impostor).append((a, b))
    return genuine, impostor


@dataclass
class Matcher:
    """How a system turns a file into a template and two templates into a similarity."""

    name: str
    extract: Callable[[Path], Any]          # raises BiogateError on a failure to extract
    compare: Callable[[Any, Any], float]    # similarity, higher = more likely mated


def biogate_matcher(dpi: int = 500) -> Matcher:
    from edge.biometrics import finger

    def extract(path: Path) -> Any:
        image = finger.load_image(path)
        try:
            return finger.prepare(finger.extract(image, dpi))
        finally:
            image.fill(0)

    return Matcher("biogate", extract, finger.compare)


def refitted_matcher(fit_on: Iterable[str | Path], dpi: int = 500,
                     progress: Callable[[int], None] | None = None) -> tuple[Matcher, list[str]]:
    """biogate's matcher with the score calibration refitted on other databases only (for
    cross-validated figures: the evaluated database never touches the weights). Returns the matcher
    and the names of the databases it was fitted on."""
    from edge.biometrics import finger

    from edge.biometrics.finger.matcher import N_MINUTIAE_FEATURES

    dirs = [Path(d) for d in fit_on]
    scored = [score_parts_db(d, progress) for d in dirs]
    genuine = np.concatenate([g for g, _, _ in scored])
    impostor = np.concatenate([i for _, i, _ in scored])
    weights, bias = fit_calibration(genuine, impostor)
    fallback = fit_calibration(genuine, impostor, N_MINUTIAE_FEATURES)
    base = biogate_matcher(dpi)

    def compare(a: Any, b: Any) -> float:
        return float(calibrated(np.asarray([finger.score_parts(a, b)], np.float64), weights, bias, fallback)[0])

    return Matcher("biogate (refitted)", base.extract, compare), [d.name for d in dirs]


def extract_all(files: Mapping[Key, Path], matcher: Matcher,
                progress: Callable[[int], None] | None = None) -> tuple[dict[Key, Any], dict[Key, str]]:
    """Templates of every file, and the error code of every file that failed."""
    templates: dict[Key, Any] = {}
    failed: dict[Key, str] = {}
    for key, path in files.items():
        try:
            templates[key] = matcher.extract(path)
        except BiogateError as exc:
            failed[key] = exc.code
        if progress:
            progress(1)
    return templates, failed


def score_pairs(templates: Mapping[Key, Any], pairs: Iterable[tuple[Key, Key]], compare: Callable[[Any, Any], float],
                progress: Callable[[int], None] | None = None) -> np.ndarray:
    scores = []
    for a, b in pairs:
        if a in templates and b in templates:
            scores.append(float(compare(templates[a], templates[b])))
        else:
            scores.append(-np.inf)  # failure to extract: an error at every threshold
        if progress:
            progress(1)
    return np.asarray(scores, dtype=np.float64)


def score_db(db_dir: str | Path, matcher: Matcher | None = None,
             progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(genuine scores, impostor scores, failures to extract) of one database under the FVC protocol.

    `progress(n)` is called as work is done: once per image extracted, once per pair compared
    (total = images + genuine pairs + impostor pairs).
    """
    matcher = matcher or biogate_matcher()
    files = read_db(db_dir)
    templates, failed = extract_all(files, matcher, progress)
    genuine_pairs, impostor_pairs = protocol_pairs(files)
    genuine = score_pairs(templates, genuine_pairs, matcher.compare, progress)
    impostor = score_pairs(templates, impostor_pairs, matcher.compare, progress)
    return genuine, impostor, len(failed)


def work_units(db_dir: str | Path) -> int:
    """How many progress steps `score_db` reports for this folder."""
    files = read_db(db_dir)
    genuine, impostor = protocol_pairs(files)
    return len(files) + len(genuine) + len(impostor)


def score_parts_db(db_dir: str | Path, progress: Callable[[int], None] | None = None
                   ) -> tuple[np.ndarray, np.ndarray, int]:
    """Like `score_db` for biogate, but each comparison gives the matcher's raw parts (an (n, 5)
    array of `finger.ScoreParts` rows) instead of the calibrated score: the input of `fit_calibration`.
    Pairs with a failure to extract are left out here (they are counted in the third value).
    """
    from edge.biometrics import finger

    matcher = biogate_matcher()
    files = read_db(db_dir)
    templates, failed = extract_all(files, matcher, progress)
    genuine_pairs, impostor_pairs = protocol_pairs(files)
    width = len(finger.ScoreParts._fields)

    def parts(pairs: list[tuple[Key, Key]]) -> np.ndarray:
        rows = []
        for a, b in pairs:
            if a in templates and b in templates:
                rows.append(finger.score_parts(templates[a], templates[b]))
            if progress:
                progress(1)
        return np.asarray(rows, dtype=np.float64).reshape(-1, width)

    return parts(genuine_pairs), parts(impostor_pairs), len(failed)


def fit_calibration(genuine_parts: np.ndarray, impostor_parts: np.ndarray,
                    n_features: int | None = None) -> tuple[tuple[float, ...], float]:
    """Logistic regression of mated/non-mated on the matcher's features, as a log10 likelihood ratio.

    Returns (weights, bias) of `edge.biometrics.finger.matcher.calibrated_score` over the first
    `n_features` features: by default all of them when every comparison has a ridge field (the
    matcher's WEIGHTS), else the minutiae ones (its MINUTIAE_WEIGHTS). The bias has the training
    set's prior log-odds taken out, so the output is log10 LR (0 = equally likely). A small L2 penalty
    keeps the weights finite when the development data are nearly separable.
    """
    from scipy.optimize import minimize

    from edge.biometrics.finger.matcher import FEATURES, N_MINUTIAE_FEATURES, features, has_ridge_field

    if n_features is None:
        every = bool(has_ridge_field(genuine_parts).all() and has_ridge_field(impostor_parts).all())
        n_features = len(FEATURES) if every else N_MINUTIAE_FEATURES
    x = np.concatenate([features(genuine_parts), features(impostor_parts)])[:, :n_features]
    y = np.concatenate([np.ones(len(genuine_parts)), np.zeros(len(impostor_parts))])
    design = np.column_stack([x, np.ones(len(x))])
    n_w = x.shape[1]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = design @ w
        p = 1 / (1 + np.exp(-z))
        nll = np.sum(np.logaddexp(0, z) - y * z) + 0.005 * float(w[:n_w] @ w[:n_w])
        grad = design.T @ (p - y)
        grad[:n_w] += 0.01 * w[:n_w]
        return nll, grad

    w = minimize(loss, np.zeros(n_w + 1), jac=True, method="L-BFGS-B").x
    prior_log_odds = np.log(y.mean() / (1 - y.mean()))
    ln10 = np.log(10)
    return tuple(float(v / ln10) for v in w[:n_w]), float((w[n_w] - prior_log_odds) / ln10)


def calibrated(parts: np.ndarray, weights: Sequence[float], bias: float,
               fallback: tuple[Sequence[float], float] | None = None) -> np.ndarray:
    """Scores of raw parts under the given calibration (the vector form of `calibrated_score`); with
    a `fallback` (weights, bias), comparisons without a ridge field are scored by it instead."""
    from edge.biometrics.finger.matcher import features, has_ridge_field

    x = features(parts)
    scores = x[:, :len(weights)] @ np.asarray(weights, dtype=np.float64) + bias
    if fallback is not None:
        plain = ~has_ridge_field(parts)
        w, b = fallback
        scores[plain] = x[plain, :len(w)] @ np.asarray(w, dtype=np.float64) + b
    return scores


def rates(genuine: np.ndarray, impostor: np.ndarray) -> dict:
    """EER, FMR100 and FMR1000 (FNMR at FMR 1 % and 0.1 %) of one set of scores."""
    from edge.evaluation.metrics import equal_error_rate, fnmr_at_fmr

    return {"eer": round(equal_error_rate(genuine, impostor), 6),
            "fmr100": round(fnmr_at_fmr(genuine, impostor, 0.01), 6),
            "fmr1000": round(fnmr_at_fmr(genuine, impostor, 0.001), 6)}


def leave_one_db_out(parts: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, dict]:
    """Cross-validated figures: each database scored by a calibration fitted on the others only."""
    out = {}
    for held in parts:
        rest = [parts[d] for d in parts if d != held]
        weights, bias = fit_calibration(np.concatenate([g for g, _ in rest]), np.concatenate([i for _, i in rest]))
        genuine, impostor = parts[held]
        out[held] = rates(calibrated(genuine, weights, bias), calibrated(impostor, weights, bias))
    return out


def fit_development(db_dirs: Iterable[str | Path], target_fmr: float = 1e-3) -> dict:
    """Fit the calibration on the pooled databases and choose the threshold at `target_fmr` there;
    with several databases, also each one's leave-one-database-out figures.

    What `edge.biometrics.finger.matcher` (WEIGHTS, BIAS, DEFAULT_THRESHOLD) holds is this
    function's output on FVC2000 DB1_B..DB4_B: `python -m edge.evaluation.fvc DIR [DIR ...]`.
    """
    from edge.evaluation.metrics import threshold_at_fmr

    from edge.biometrics.finger.matcher import N_MINUTIAE_FEATURES

    dirs = [Path(d) for d in db_dirs]
    scored = {d.name: score_parts_db(d) for d in dirs}
    genuine = np.concatenate([g for g, _, _ in scored.values()])
    impostor = np.concatenate([i for _, i, _ in scored.values()])
    weights, bias = fit_calibration(genuine, impostor)
    minutiae_weights, minutiae_bias = fit_calibration(genuine, impostor, N_MINUTIAE_FEATURES)
    pooled_threshold = threshold_at_fmr(calibrated(genuine, weights, bias), calibrated(impostor, weights, bias),
                                        target_fmr)
    report = {
        "weights": [round(w, 3) for w in weights], "bias": round(bias, 3),
        "minutiae_weights": [round(w, 3) for w in minutiae_weights], "minutiae_bias": round(minutiae_bias, 3),
        "threshold": round(pooled_threshold, 2),
        "fitted_per_db": {name: rates(calibrated(g, weights, bias), calibrated(i, weights, bias))
                          for name, (g, i, _) in scored.items()},
        "failures_to_extract": {name: f for name, (_, _, f) in scored.items()},
    }
    if len(scored) > 1:
        report["leave_one_db_out"] = leave_one_db_out({name: (g, i) for name, (g, i, _) in scored.items()})
        report["leave_one_db_out_minutiae_only"] = leave_one_db_out(
            {name: (g[:, :5], i[:, :5]) for name, (g, i, _) in scored.items()})
    return report


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(fit_development(sys.argv[1:])))

"""The LFW pairs protocol (View 2 `pairs.txt`): parsing, scoring with the face pipeline, error rates,
and choosing the shipped threshold on development pairs.

Format: an optional header line "<folds> <pairs per class>", then one pair per line:
`name i j` (same person) or `name1 i name2 j` (different people); image files are
`<images>/<name>/<name>_<iiii>.jpg`. With a header, each fold is <pairs per class> same-person lines
followed by as many different-person lines.

    scores = score_pairs(read_pairs(path), pipeline, cfg.face.max_image_px)       # every image embedded once
    report = protocol_report(scores, cfg.face.threshold)                            # the shipped threshold
    genuine, impostor, failures = pair_distances(path)                              # cached, for calibration

Distances: Euclidean between face embeddings; a pair with a failure to acquire has distance +inf (rejected
at every threshold: an error for a same-person pair, and counted as an error for a different-person pair
too in `accuracy`, as the protocol's "failures count as errors" asks).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edge.biometrics.face.embedder import face_distance
from edge.errors import BiogateError, InputError

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class Pair:
    a: Path
    b: Path
    same: bool
    fold: int = 0


def image_path(images: Path, name: str, index: str) -> Path:
    return images / name / f"{name}_{int(index):04d}.jpg"


def read_pairs(pairs_file: Path, images: Path | None = None) -> list[Pair]:
    pairs_file = Path(pairs_file)
    images = Path(images) if images else pairs_file.parent / "images"
    try:
        lines = pairs_file.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"{pairs_file}: cannot read pairs file ({exc.strerror})", code="input.not_found") from None
    except UnicodeDecodeError:
        raise InputError(f"{pairs_file}: not a text file", code="input.bad_pairs_file") from None
    fold_size = 0
    pairs: list[Pair] = []
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
            fold_size = 2 * int(fields[1])  # header: folds and pairs per class
            continue
        fold = len(pairs) // fold_size if fold_size else 0
        try:
            if len(fields) == 3:
                pairs.append(Pair(image_path(images, fields[0], fields[1]),
                                  image_path(images, fields[0], fields[2]), True, fold))
            elif len(fields) == 4:
                pairs.append(Pair(image_path(images, fields[0], fields[1]),
                                  image_path(images, fields[2], fields[3]), False, fold))
            else:
                raise ValueError
        except ValueError:
            raise InputError(f"{pairs_file}:{number}: expected 'name i j' or 'name1 i name2 j', got {line!r}",
                             code="input.bad_pairs_file") from None
    if not pairs:
        raise InputError(f"{pairs_file}: no pairs found", code="input.bad_pairs_file")
    return pairs


# -- scoring -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProbeQuality:
    """One degraded image as the face path saw it: its quality measures and the gates' finding codes."""

    measures: dict | None
    findings: tuple[str, ...]


@dataclass
class PairScores:
    pairs: list[Pair]
    distances: np.ndarray                                   # one per pair; +inf when an image failed
    failures: dict[Path, str] = field(default_factory=dict)  # image -> error code (failure to acquire)
    # With a capture condition: what the product's quality gates say about each degraded image
    probes: dict[Path, "ProbeQuality"] = field(default_factory=dict)

    @property
    def same(self) -> np.ndarray:
        return np.array([p.same for p in self.pairs])

    @property
    def folds(self) -> np.ndarray:
        return np.array([p.fold for p in self.pairs])

    @property
    def genuine(self) -> np.ndarray:
        return self.distances[self.same]

    @property
    def impostor(self) -> np.ndarray:
        return self.distances[~self.same]


def embed_images(paths: list[Path], pipeline, max_image_px: int, progress: Progress | None = None,
                 chunk: int = 16, degrade: Callable[[np.ndarray, int], np.ndarray] | None = None,
                 observe: Callable[[Path, object], None] | None = None
                 ) -> tuple[dict[Path, np.ndarray], dict[Path, str]]:
    """Embed each image once (batched through the embedder): (embeddings, failures with their error code).
    `degrade(image, seed)` (edge.evaluation.conditions) is applied to each image first, seeded by its name;
    `observe(path, analysis)` sees each image's FaceAnalysis (quality measures and findings)."""
    from edge.evaluation.conditions import seed_of

    from edge.biometrics.face.image import load_image

    embeddings: dict[Path, np.ndarray] = {}
    failures: dict[Path, str] = {}
    for start in range(0, len(paths), chunk):
        batch, frames = [], []
        for p in paths[start:start + chunk]:
            try:
                image = load_image(p, max_image_px)
                frames.append(degrade(image, seed_of(p.name)) if degrade else image)
                batch.append(p)
            except BiogateError as exc:
                failures[p] = exc.code
        for p, analysis in zip(batch, pipeline.analyze_many(frames)):
            if observe:
                observe(p, analysis)
            if analysis.acquired:
                embeddings[p] = analysis.embedding
            else:
                failures[p] = "quality.no_face"
        if progress:
            progress(min(start + chunk, len(paths)), len(paths))
    return embeddings, failures


def score_pairs(pairs: list[Pair], pipeline, max_image_px: int, progress: Progress | None = None,
                degrade: Callable[[np.ndarray, int], np.ndarray] | None = None) -> PairScores:
    """Distances of every pair. With `degrade`, the second image of each pair is degraded (a capture condition,
    edge.evaluation.conditions) and the first stays as it is; `failures` then holds the degraded images that
    failed (what a condition's failures to acquire count)."""
    if degrade is None:
        paths = sorted({p for pair in pairs for p in (pair.a, pair.b)})
        embeddings, failures = embed_images(paths, pipeline, max_image_px, progress)
        first = second = embeddings
        kept = [embeddings]
        probes = {}
    else:
        firsts = sorted({pair.a for pair in pairs})
        seconds = sorted({pair.b for pair in pairs})
        total = len(firsts) + len(seconds)
        first, clean_failures = embed_images(firsts, pipeline, max_image_px,
                                             progress and (lambda done, _: progress(done, total)))
        probes: dict[Path, ProbeQuality] = {}

        def observe(path: Path, analysis) -> None:
            probes[path] = ProbeQuality(analysis.measures.to_dict() if analysis.measures else None,
                                        tuple(f.code for f in analysis.findings))

        second, failures = embed_images(seconds, pipeline, max_image_px,
                                        progress and (lambda done, _: progress(len(firsts) + done, total)),
                                        degrade=degrade, observe=observe)
        failures = {**clean_failures, **failures}
        kept = [first, second]
    distances = np.array([
        face_distance(first[p.a], second[p.b]) if p.a in first and p.b in second else np.inf for p in pairs])
    for embeddings in kept:
        for e in embeddings.values():
            e.fill(0)  # templates are not kept beyond the scoring
    return PairScores(pairs, distances, failures, probes)


# -- error rates ---------------------------------------------------------------------------------------------

def decided_right(distances: np.ndarray, same: np.ndarray, threshold: float) -> np.ndarray:
    """Per pair: decided right with "same" when distance < threshold; failures (inf) are errors."""
    return ((distances < threshold) == same) & np.isfinite(distances)


def accuracy_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Share of pairs decided right (`decided_right`)."""
    return float(np.mean(decided_right(distances, same, threshold)))


def protocol_report(scores: PairScores, threshold: float) -> dict:
    """The figures `biogate eval faces --json` prints (keys are a contract)."""
    from edge.evaluation.metrics import equal_error_rate, fnmr_at_fmr

    genuine, impostor = -scores.genuine, -scores.impostor  # similarities for the metrics module
    return {
        "pairs": len(scores.pairs),
        "accuracy": round(accuracy_at(scores.distances, scores.same, threshold), 6),
        "eer": round(equal_error_rate(genuine, impostor), 6),
        "fnmr_at_fmr_1e-3": round(fnmr_at_fmr(genuine, impostor, 1e-3), 6),
        "threshold": threshold,
        "failures_to_acquire": len(scores.failures),
    }


def condition_report(scores: PairScores, threshold: float, condition: str) -> dict:
    """`protocol_report` of one capture condition plus what happened to the degraded probes: the share in which a
    face was found, and the share the product's quality gates would refuse (and why: they prompt instead)."""
    report = {"condition": condition, **protocol_report(scores, threshold)}
    probes = scores.probes
    found = [q for q in probes.values() if q.measures is not None]
    report["probes"] = len(probes)
    report["face_found"] = round(len(found) / len(probes), 6) if probes else 0.0
    gated = [q for q in found if not _gates_pass(q)]
    report["refused_by_gates"] = round(len(gated) / len(probes), 6) if probes else 0.0
    # What the product decides on: pairs whose probe the gates accept (the others get a prompt, not a decision).
    decided = np.array([_gates_pass(probes.get(pair.b)) for pair in scores.pairs], dtype=bool)
    report["pairs_decided"] = int(decided.sum())
    report["accuracy_decided"] = (round(accuracy_at(scores.distances[decided], scores.same[decided], threshold), 6)
                                  if decided.any() else None)
    codes: dict[str, int] = {}
    for q in found:
        for code in q.findings:
            codes[code] = codes.get(code, 0) + 1
    report["findings"] = dict(sorted(codes.items()))
    report["errors_by_fold"] = errors_by_fold(scores, threshold)
    for key in ("face_px", "brightness", "sharpness", "motion_blur"):
        values = [q.measures[key] for q in found if key in q.measures]
        if values:
            report[f"median_{key}"] = round(float(np.median(values)), 4)
    return report


def errors_by_fold(scores: PairScores, threshold: float) -> dict[str, int]:
    """Wrong decisions per fold of the pairs file ("1", "2", ...): figures on folds a tuning never saw can be read
    off the same run (failures to acquire count as errors)."""
    wrong = ~decided_right(scores.distances, scores.same, threshold)
    folds = scores.folds
    return {str(int(f) + 1): int(wrong[folds == f].sum()) for f in sorted(set(folds.tolist()))}


def _gates_pass(probe: ProbeQuality | None) -> bool:
    """A face was found and no gate refuses it (several faces in a press photo are not a capture problem)."""
    return probe is not None and probe.measures is not None and not set(probe.findings) - {"quality.multiple_faces"}


def choose_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold of best accuracy: the middle of the widest run of best-accuracy thresholds, so that
    it sits as far as the data allow from the pairs on either side (rounded to 1e-3 when that stays inside)."""
    finite = np.sort(np.unique(distances[np.isfinite(distances)]))
    if finite.size == 0:
        raise InputError("no comparable pairs to choose a threshold on", code="input.bad_pairs_file")
    # Accuracy only changes at a pair's distance: try one candidate between each two neighbours.
    candidates = np.concatenate([[finite[0] - 1e-6], (finite[:-1] + finite[1:]) / 2, [finite[-1] + 1e-6]])
    d = np.where(np.isfinite(distances), distances, np.inf)
    order = np.argsort(d)
    rank = np.searchsorted(d[order], candidates, side="left")  # pairs accepted at each candidate
    # correct(t) = same pairs accepted + different pairs rejected
    same_sorted = same[order].astype(np.int64)
    genuine_accepted = np.concatenate([[0], np.cumsum(same_sorted)])[rank]
    impostor_accepted = rank - genuine_accepted
    finite_impostors = int(np.sum(~same & np.isfinite(d)))
    correct = genuine_accepted + (finite_impostors - impostor_accepted)
    best = np.nonzero(correct == correct.max())[0]
    # Widest contiguous run of best candidates, by distance span.
    runs = np.split(best, np.nonzero(np.diff(best) != 1)[0] + 1)
    lo_hi = [(finite[max(r[0] - 1, 0)], finite[min(r[-1], finite.size - 1)]) for r in runs]
    lo, hi = max(lo_hi, key=lambda span: span[1] - span[0])
    middle = float((lo + hi) / 2)
    rounded = round(middle, 3)
    return rounded if lo < rounded < hi else round(middle, 6)


@dataclass
class CrossValidation:
    folds: list[dict]     # per held-out fold: threshold chosen on the others, accuracy on it
    accuracy: float       # mean held-out accuracy
    threshold: float      # chosen on all folds together: what the product ships


def cross_validate(scores: PairScores) -> CrossValidation:
    """Choose the threshold on all folds but one, measure on that one, for each fold (LFW View 2 style)."""
    folds, same, d = scores.folds, scores.same, scores.distances
    if len(set(folds.tolist())) < 2:
        raise InputError("cross-validation needs a pairs file with a folds header", code="input.bad_pairs_file")
    per_fold = []
    for fold in sorted(set(folds.tolist())):
        train, test = folds != fold, folds == fold
        t = choose_threshold(d[train], same[train])
        per_fold.append({"fold": int(fold) + 1, "pairs": int(test.sum()), "threshold": t,
                         "accuracy": round(accuracy_at(d[test], same[test], t), 6)})
    return CrossValidation(per_fold, round(float(np.mean([f["accuracy"] for f in per_fold])), 6),
                           choose_threshold(d, same))


# -- development distances for calibration (cached) ----------------------------------------------------------

_memory: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}


def cache_key(pairs: list[Pair], pairs_path: Path, cfg) -> str:
    """Everything the distances depend on: the pairs and image files, the face configuration, the model
    files' manifest hashes and the face pipeline's source code."""
    from edge.models import manifest_entry

    h = hashlib.sha256()
    h.update(Path(pairs_path).read_bytes())
    for p in sorted({q for pair in pairs for q in (pair.a, pair.b)}):
        try:
            st = p.stat()
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}|missing\n".encode())
    h.update(cfg.face.model_dump_json().encode())
    for name in cfg.face.model_artifacts:  # a new file of any of them is a new key
        h.update(manifest_entry(name).sha256.encode())
    for source in sorted((Path(__file__).resolve().parents[1] / "biometrics" / "face").glob("*.py")):
        h.update(source.read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:24]


def pair_distances(pairs_path: Path, images_dir: Path | None = None, cfg=None, *, use_cache: bool = True,
                   progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(genuine distances, impostor distances, failures to acquire) of a pairs file with the face pipeline.

    Distances are Euclidean between embeddings (+inf for a pair with a failed image); failures counts
    images. Results are remembered in memory and in `<state_dir>/cache/lfw-<key>.npz` (distances only,
    no templates), keyed by everything they depend on, so a changed image, model, configuration or
    pipeline source recomputes them.
    """
    from edge.config import load_config

    cfg = cfg or load_config()
    pairs = read_pairs(pairs_path, images_dir)
    key = cache_key(pairs, pairs_path, cfg)
    cache_file = Path(cfg.paths.state_dir) / "cache" / f"lfw-{key}.npz"
    if use_cache and key in _memory:
        g, i, f = _memory[key]
        return g.copy(), i.copy(), f
    if use_cache and cache_file.is_file():
        try:
            with np.load(cache_file) as z:
                result = (z["genuine"], z["impostor"], int(z["failures"]))
            _memory[key] = result
            return result[0].copy(), result[1].copy(), result[2]
        except (OSError, KeyError, ValueError):
            pass  # a damaged cache file is recomputed and rewritten
    from edge.biometrics.face import FacePipeline

    pipeline = FacePipeline(cfg.face, cfg.paths.models_dir)
    scores = score_pairs(pairs, pipeline, cfg.face.max_image_px, progress)
    result = (scores.genuine.copy(), scores.impostor.copy(), len(scores.failures))
    if use_cache:
        _memory[key] = result
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(".tmp.npz")
            np.savez(tmp, genuine=result[0], impostor=result[1], failures=result[2])
            tmp.replace(cache_file)
        except OSError:
            pass  # caching is an optimisation; a read-only state directory is fine
    return result[0].copy(), result[1].copy(), result[2]


"""Cross-validate the network fine-tuned for restored faces over people: which faces should it get?

    make train-tools
    .venv/bin/python -m models.restored.crossval --pairs ../shared/data/faces/lfw/pairs.txt [--json]

LFW folds hold disjoint people. For each split of SPLITS a network is trained by the shipped recipe
(models.restored.train.train_weights, the int8-coded changes included) on one side's images, and the other side's
pairs are scored under each capture condition (edge.evaluation.conditions): the first image of a pair clean, through
the main network (the enrolment), the second degraded and through the face path with its restoration (the probe).
Each probe the restoration worked on is embedded twice, by the main network and by the candidate; a pair counts as
an error at the shipped threshold as in `biogate eval faces` (a probe with no face is an error either way). Per
condition the report gives both error counts, the pairs the candidate fixed and broke, what the restoration undid,
and over all splits an exact two-sided sign test of fixed against broken: what `[face] restored_embedder_for` is
chosen from (models/MODEL_CARD.md, "The network fine-tuned for deblocked faces"). About 20 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

# (trained on, scored on): 1-based LFW folds; every development pair is scored once, by a network that never saw
# its people.
SPLITS: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = (((1, 2), (3, 4, 5)), ((3, 4, 5), (1, 2)))
CONDITIONS = ("clean", "low_light", "jpeg12", "motion_blur")


@dataclass
class Tally:
    pairs: int = 0
    main_errors: int = 0       # every probe through the main network
    tuned_errors: int = 0      # probes the restoration worked on through the candidate, the others as above
    fixed: int = 0             # pairs right with the candidate and wrong without it
    broken: int = 0            # and the reverse
    restored: dict[str, int] = field(default_factory=dict)  # probes per restoration (Restoration.undone, joined)

    def add(self, other: "Tally") -> None:
        for name in ("pairs", "main_errors", "tuned_errors", "fixed", "broken"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.restored = dict(Counter(self.restored) + Counter(other.restored))


def sign_test(fixed: int, broken: int) -> float:
    """Two-sided exact sign test: how likely a split at least this uneven is when either way is as likely."""
    from scipy.stats import binomtest

    return 1.0 if fixed + broken == 0 else float(binomtest(fixed, fixed + broken, 0.5).pvalue)


def candidate_embedder(weights: bytes):
    """The face embedder of a weights file's network, run as the product runs the shipped one."""
    from edge.biometrics.face.embedder import FaceEmbedder
    from edge.config import load_config
    from edge.models import cpu_session, model_path
    from models.restored.weights import apply, decode

    changes, float_sha256, _ = decode(weights)
    float_bytes = model_path("face_embedder", load_config(env={}).paths.models_dir).read_bytes()
    model = apply(float_bytes, changes, float_sha256)
    return FaceEmbedder.from_session(cpu_session(model.SerializeToString()))


def score_condition(pipeline, candidate, pairs: list, condition, threshold: float,
                    enrolled: dict[Path, np.ndarray]) -> Tally:
    """One condition's tally over `pairs` (`enrolled`: the first images' main-network embeddings, None when no
    face was found)."""
    from edge.biometrics.face.image import load_image
    from edge.evaluation.conditions import seed_of
    from edge.evaluation.lfw import decided_right

    main: dict[Path, np.ndarray] = {}
    tuned: dict[Path, np.ndarray] = {}
    restored: Counter = Counter()
    for probe in sorted({p.b for p in pairs}):
        image = load_image(probe, pipeline.cfg.max_image_px)
        analysis = pipeline.locate(condition.degrade(image, seed_of(probe.name)))
        if analysis.aligned is None:
            continue
        chip = analysis.aligned.chip
        main[probe] = pipeline.embedder.embed(chip)[0]
        undone = analysis.restoration.undone
        if undone:
            restored[",".join(sorted(undone))] += 1
            tuned[probe] = candidate.embed(chip)[0]
        chip.fill(0)
    same = np.array([p.same for p in pairs])

    def distances(probes: dict[Path, np.ndarray]) -> np.ndarray:
        return np.array([np.linalg.norm(enrolled[p.a] - probes.get(p.b, main.get(p.b)))
                         if enrolled.get(p.a) is not None and p.b in main else np.inf for p in pairs])

    right_main = decided_right(distances(main), same, threshold)
    right_tuned = decided_right(distances(tuned), same, threshold)
    for e in (*main.values(), *tuned.values()):
        e.fill(0)
    return Tally(len(pairs), int((~right_main).sum()), int((~right_tuned).sum()),
                 int((right_tuned & ~right_main).sum()), int((right_main & ~right_tuned).sum()), dict(restored))


def cross_validate(pairs_path: Path, conditions: list, log=print) -> dict:
    """The report `--json` prints (see the module docstring)."""
    from edge.biometrics.face import FacePipeline
    from edge.biometrics.face.image import load_image
    from edge.config import load_config
    from edge.evaluation.lfw import read_pairs
    from models.restored.train import fold_images, train_weights

    cfg = load_config(env={})
    # The main network only: the shipped fine-tuned one has seen some of the people scored here.
    pipeline = FacePipeline(cfg.face.model_copy(update={"restored_embedder_for": ()}), cfg.paths.models_dir)
    pairs = read_pairs(pairs_path)
    report: dict = {"threshold": cfg.face.threshold, "splits": [], "total": {}}
    totals = {c.name: Tally() for c in conditions}
    for trained_on, scored_on in SPLITS:
        log(f"training on folds {list(trained_on)} ...")
        candidate = candidate_embedder(train_weights(fold_images(pairs_path, set(trained_on)),
                                                     data=f"LFW {pairs_path.name} folds {list(trained_on)}",
                                                     log=log))
        scored = [p for p in pairs if p.fold + 1 in scored_on]
        enrolled = {}
        for first in sorted({p.a for p in scored}):
            enrolled[first] = pipeline.analyze(load_image(first, cfg.face.max_image_px)).embedding
        split = {"trained_on": list(trained_on), "scored_on": list(scored_on), "conditions": {}}
        for condition in conditions:
            log(f"scoring folds {list(scored_on)}, {condition.name} ...")
            tally = score_condition(pipeline, candidate, scored, condition, cfg.face.threshold, enrolled)
            split["conditions"][condition.name] = asdict(tally)
            totals[condition.name].add(tally)
        for e in enrolled.values():
            if e is not None:
                e.fill(0)
        report["splits"].append(split)
    for name, tally in totals.items():
        report["total"][name] = {**asdict(tally), "sign_test_p": round(sign_test(tally.fixed, tally.broken), 4)}
    return report


def main(argv: list[str] | None = None) -> int:
    import torch

    from edge.evaluation.conditions import parse_conditions

    parser = argparse.ArgumentParser(prog="python -m models.restored.crossval", description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=Path, required=True, help="LFW pairs.txt with a folds header")
    parser.add_argument("--condition", default=",".join(CONDITIONS), help="capture conditions, comma-separated")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (progress goes to stderr)")
    args = parser.parse_args(argv)
    conditions = parse_conditions(args.condition)
    torch.set_num_threads(2)
    report = cross_validate(args.pairs, conditions, log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{'condition':12s} {'pairs':>6s} {'main':>5s} {'tuned':>6s} {'fixed':>6s} {'broken':>7s} {'p':>7s}")
    for name, t in report["total"].items():
        print(f"{name:12s} {t['pairs']:6d} {t['main_errors']:5d} {t['tuned_errors']:6d} {t['fixed']:6d} "
              f"{t['broken']:7d} {t['sign_test_p']:7.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

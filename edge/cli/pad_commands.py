"""`biogate eval pad`: the passive presentation-attack detector on labelled image lists (ISO/IEC 30107-3).

    biogate eval pad --live ../shared/data/pad/nuaa/live.txt --attack ../shared/data/pad/nuaa/attack.txt \\
        --cross-validate --json

Lists hold one image path per line, relative to the list's folder (as NUAA's live.txt / attack.txt).
APCER: attacks accepted as live, BPCER: live presentations refused, both at the configured
`liveness.passive_threshold`; BPCER20: the lowest BPCER with APCER <= 5 % (threshold-free). An image
where no face is found counts as refused (a BPCER error for a live image).

Without `--cross-validate` the shipped model is scored (it trained on all nine NUAA subjects: on NUAA that is
in-sample); with it, the training procedure is measured on people it never saw (edge/evaluation/pad_training.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from edge.cli.app import eval_app, fail, print_json
from edge.config import load_config
from edge.errors import BiogateError, InputError


def _subjects(text: Optional[str]) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def score_samples(samples: list, locator, detector, progress=None) -> np.ndarray:
    """Bona fide probability per image (-inf where no face is found)."""
    from edge.evaluation.pad_training import extract_features

    features = extract_features(samples, locator, progress=progress)
    scores = np.full(len(samples), -np.inf)
    if features.found.any():
        scores[features.found] = detector.score_features(features.x[features.found])
    return scores


@eval_app.command("pad")
def eval_pad(
    live: Path = typer.Option(..., "--live", help="list of live (bona fide) images"),
    attack: Path = typer.Option(..., "--attack", help="list of attack (presentation attack) images"),
    subjects: Optional[str] = typer.Option(None, "--subjects", help="only these subjects (comma-separated ids, "
                                                                    "e.g. held-out NUAA subjects 0007,0008,0009)"),
    exclude_subjects: Optional[str] = typer.Option(None, "--exclude-subjects", help="leave these subjects out"),
    cross_validate: bool = typer.Option(False, "--cross-validate", help="measure the training procedure instead of "
                                        "the shipped model: each subject left out in turn, model selection, "
                                        "threshold and fit on the others (edge/evaluation/pad_training.py)"),
    models: Optional[str] = typer.Option(None, "--models", help="with --cross-validate: only these candidates "
                                         "(comma-separated, e.g. logreg_C0.01; default: all)"),
    seed: int = typer.Option(20261123, "--seed", help="with --cross-validate: the training seed"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML configuration file"),
) -> None:
    """APCER, BPCER and BPCER20 of the passive PAD model on live and attack image lists."""
    from edge.evaluation.pad import filter_subjects, pad_rates, read_list
    from edge.biometrics.liveness.geometry import make_locator
    from edge.biometrics.liveness.passive import PassiveDetector
    from edge.cli.face_commands import progress_bar

    try:
        cfg = load_config(config)
        include, exclude = _subjects(subjects), _subjects(exclude_subjects)
        live_samples = filter_subjects(read_list(live), include, exclude)
        attack_samples = filter_subjects(read_list(attack), include, exclude)
        if not live_samples or not attack_samples:
            raise InputError(f"after the subject filter {len(live_samples)} live and {len(attack_samples)} attack "
                             f"images remain; both lists need at least one", code="input.empty_list")
        if cross_validate:
            _cross_validate(cfg, live_samples, attack_samples, _subjects(models), seed, as_json)
            return
        detector = PassiveDetector.from_config(cfg.liveness, cfg.paths.models_dir, cfg.face.threads)
        locator = make_locator(cfg, prefer="product")
        with progress_bar() as bar:
            task = bar.add_task("scoring", total=len(live_samples) + len(attack_samples))
            advance = lambda: bar.advance(task)  # noqa: E731
            live_scores = score_samples(live_samples, locator, detector, advance)
            attack_scores = score_samples(attack_samples, locator, detector, advance)
        rates = pad_rates(live_scores, attack_scores, cfg.liveness.passive_threshold)
    except BiogateError as exc:
        fail(exc, as_json)
    report = {"apcer": round(rates.apcer, 6), "bpcer": round(rates.bpcer, 6), "bpcer20": round(rates.bpcer20, 6),
              "live": rates.live, "attack": rates.attack}
    if as_json:
        print_json(report)
        return
    no_face = int(np.sum(~np.isfinite(live_scores)) + np.sum(~np.isfinite(attack_scores)))
    typer.echo(f"passive PAD at threshold {rates.threshold:g} on {rates.live} live and {rates.attack} attack images"
               + (f" ({no_face} without a face, counted as refused)" if no_face else ""))
    typer.echo(f"  APCER   {100 * rates.apcer:6.2f} %   attacks accepted as live")
    typer.echo(f"  BPCER   {100 * rates.bpcer:6.2f} %   live presentations refused")
    typer.echo(f"  BPCER20 {100 * rates.bpcer20:6.2f} %   BPCER at APCER 5 % (threshold-free)")


def _cross_validate(cfg, live_samples, attack_samples, models: list[str] | None, seed: int, as_json: bool) -> None:
    """`eval pad --cross-validate`: the figures for people the procedure never saw (ISO/IEC 30107-3 per split)."""
    from edge.biometrics.liveness.geometry import make_locator
    from edge.evaluation.pad_training import candidates, cross_validate, extract_features

    unknown = sorted(set(models or ()) - set(candidates(seed)))
    if unknown:
        raise InputError(f"unknown candidate model(s) {', '.join(unknown)}; known: {', '.join(candidates(seed))}",
                         code="input.bad_option")
    samples = live_samples + attack_samples
    y = np.array([1] * len(live_samples) + [0] * len(attack_samples))
    subjects = np.array([s.subject for s in samples])
    features = extract_features(samples, make_locator(cfg, prefer="product"))
    cv = cross_validate(features, y, subjects, seed, models, log=None if as_json else typer.echo)
    report = cv.as_dict()
    if as_json:
        print_json(report)
        return
    typer.echo(f"leave-one-subject-out over {len(cv.splits)} subjects, {cv.live} live and {cv.attack} attack images "
               f"(each split at the threshold its own training chose):")
    typer.echo(f"  APCER   {100 * cv.apcer:6.2f} %   pooled (per split {100 * report['spread']['apcer'][0]:.1f}-"
               f"{100 * report['spread']['apcer'][1]:.1f} %)")
    typer.echo(f"  BPCER   {100 * cv.bpcer:6.2f} %   pooled (per split {100 * report['spread']['bpcer'][0]:.1f}-"
               f"{100 * report['spread']['bpcer'][1]:.1f} %)")
    typer.echo(f"  BPCER20 {100 * cv.bpcer20:6.2f} %   on the pooled margins to each split's threshold")
    typer.echo(f"  passive features {cv.ms_per_frame:.1f} ms of CPU per frame")

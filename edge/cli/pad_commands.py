"""`biogate eval pad`: the passive presentation-attack detector on labelled image lists (ISO/IEC 30107-3).

    biogate eval pad --live ../shared/data/pad/nuaa/live.txt --attack ../shared/data/pad/nuaa/attack.txt \\
        --subjects 0007,0008,0009 --json

Lists hold one image path per line, relative to the list's folder (as NUAA's live.txt / attack.txt).
APCER: attacks accepted as live, BPCER: live presentations refused, both at the configured
`liveness.passive_threshold`; BPCER20: the lowest BPCER with APCER <= 5 % (threshold-free). An image
where no face is found counts as refused (a BPCER error for a live image).

`--loso` measures the training procedure itself on people it never saw (the figures of the model card):

    biogate eval pad --live ../shared/data/pad/nuaa/live.txt --attack ../shared/data/pad/nuaa/attack.txt --loso --json

for each subject of the lists, the procedure of edge/evaluation/pad_training.py (the one models/pad/train.py
ships) is trained on the other subjects, its threshold set on their out-of-fold scores, and the subject is
tested at that threshold. It prints each split, the pooled rates (every test subject at its split's
threshold; BPCER20 over the pooled scores), the spread over the splits and the threshold the procedure
gives on all subjects (the shipped one, when the lists are the training data).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from edge.cli.app import bench_app, eval_app, fail, print_json
from edge.config import load_config
from edge.errors import BiogateError, InputError


def _subjects(text: Optional[str]) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def score_images(paths: list[Path], locator, detector, progress=None) -> np.ndarray:
    """Bona fide probability per image (-inf where no face is found)."""
    from edge.evaluation.pad import image_features

    x, found = image_features(paths, locator, progress)
    scores = np.full(len(paths), -np.inf)
    if found.any():
        scores[found] = detector.score_features(x[found])
    return scores


@eval_app.command("pad")
def eval_pad(
    live: Path = typer.Option(..., "--live", help="list of live (bona fide) images"),
    attack: Path = typer.Option(..., "--attack", help="list of attack (presentation attack) images"),
    subjects: Optional[str] = typer.Option(None, "--subjects", help="only these subjects (comma-separated ids, "
                                                                    "e.g. NUAA subjects 0007,0008,0009)"),
    exclude_subjects: Optional[str] = typer.Option(None, "--exclude-subjects", help="leave these subjects out"),
    cross_validate: bool = typer.Option(False, "--loso", help="leave-one-subject-out cross-validation of the "
                                                              "training procedure instead of the shipped model"),
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
        locator = make_locator(cfg, prefer="product")
        if cross_validate:
            return _loso(live_samples, attack_samples, locator, as_json)
        detector = PassiveDetector.from_config(cfg.liveness, cfg.paths.models_dir, cfg.face.threads)
        with progress_bar() as bar:
            task = bar.add_task("scoring", total=len(live_samples) + len(attack_samples))
            advance = lambda: bar.advance(task)  # noqa: E731
            live_scores = score_images([s.path for s in live_samples], locator, detector, advance)
            attack_scores = score_images([s.path for s in attack_samples], locator, detector, advance)
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


def _loso(live_samples, attack_samples, locator, as_json: bool) -> None:
    from edge.cli.face_commands import progress_bar
    from edge.evaluation.pad import image_features
    from edge.evaluation.pad_training import loso

    samples = live_samples + attack_samples
    y = np.array([1] * len(live_samples) + [0] * len(attack_samples))
    with progress_bar() as bar:
        task = bar.add_task("features", total=len(samples))
        x, found = image_features([s.path for s in samples], locator, lambda: bar.advance(task))
    report = loso(x, y, np.array([s.subject for s in samples]), found)
    result = report.to_json()
    result["no_face"] = int((~found).sum())
    if as_json:
        print_json(result)
        return
    typer.echo(f"passive PAD, leave-one-subject-out over {len(report.splits)} subjects "
               f"(threshold at out-of-fold APCER {report.target_apcer:.0%} of the training subjects)")
    typer.echo("  subject   live attack  threshold   APCER %  BPCER %  BPCER20 %")
    for split in report.splits:
        r = split.rates
        typer.echo(f"  {split.subject:8s} {r.live:5d} {r.attack:6d}  {split.threshold:9.4f}   {100 * r.apcer:7.2f}"
                   f"  {100 * r.bpcer:7.2f}  {100 * r.bpcer20:9.2f}")
    p = report.pooled
    typer.echo(f"  {'pooled':8s} {p.live:5d} {p.attack:6d}  {'':9s}   {100 * p.apcer:7.2f}  {100 * p.bpcer:7.2f}"
               f"  {100 * p.bpcer20:9.2f}")
    for key, d in report.spread().items():
        typer.echo(f"  spread {key:8s} min {100 * d['min']:6.2f}  max {100 * d['max']:6.2f}  mean {100 * d['mean']:6.2f}"
                   f"  std {100 * d['std']:6.2f} (%)")
    typer.echo(f"  threshold of the procedure on all subjects: {report.shipped_threshold:.6f}")


@bench_app.command("pad")
def bench_pad(
    images: Path = typer.Option(..., "--images", help="list of face images (e.g. ../shared/data/pad/nuaa/live.txt)"),
    frames_limit: int = typer.Option(100, "--frames", help="how many images of the list to time"),
    repeats: int = typer.Option(3, "--repeats"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML configuration file"),
) -> None:
    """Per-frame time of the passive detector on one core: features + ONNX classifier (the face already located,
    as in a verification, where the face path's detection is reused), best of `repeats` passes."""
    import os
    import time

    import cv2

    from edge.biometrics.liveness.features import passive_features
    from edge.biometrics.liveness.geometry import make_locator
    from edge.biometrics.liveness.passive import PassiveDetector
    from edge.evaluation.pad import read_list

    try:
        cfg = load_config(config)
        cv2.setNumThreads(1)  # one core: OpenCV's own thread pool off; the ONNX session gets one thread
        detector = PassiveDetector.from_config(cfg.liveness, cfg.paths.models_dir, threads=1)
        locator = make_locator(cfg, prefer="product")
        frames = []
        for sample in read_list(images)[:frames_limit]:
            image = cv2.imread(str(sample.path), cv2.IMREAD_COLOR)
            if image is None:
                raise InputError(f"cannot read image {sample.path}", code="input.unreadable_image")
            geometry = locator.locate(image)
            if geometry is not None:
                frames.append((image, geometry))
    except BiogateError as exc:
        fail(exc, as_json)
    if not frames:
        fail(InputError("no face found in the benchmark images", code="input.empty_list"), as_json)

    def per_frame(step) -> tuple[float, float]:
        """(wall, CPU) ms per frame, best pass of each. On a shared machine the CPU time is the one-core
        figure: the wall time also counts the moments other processes held the core."""
        wall = cpu = float("inf")
        for _ in range(repeats + 1):  # the first pass is the warm-up
            start, start_cpu = time.perf_counter(), time.process_time()
            for image, geometry in frames:
                step(image, geometry)
            wall = min(wall, (time.perf_counter() - start) / len(frames))
            cpu = min(cpu, (time.process_time() - start_cpu) / len(frames))
        return 1000 * wall, 1000 * cpu

    features_ms, features_cpu_ms = per_frame(passive_features)
    total_ms, total_cpu_ms = per_frame(detector.score)
    report = {"frames": len(frames), "frame_sizes": sorted({f"{i.shape[1]}x{i.shape[0]}" for i, _ in frames}),
              "features_ms": round(features_ms, 3), "total_ms": round(total_ms, 3),
              "features_cpu_ms": round(features_cpu_ms, 3), "total_cpu_ms": round(total_cpu_ms, 3),
              "load_average_1min": round(os.getloadavg()[0], 2), "budget_ms": 10.0}
    for image, _ in frames:
        image.fill(0)
    if as_json:
        print_json(report)
        return
    typer.echo(f"passive PAD on {report['frames']} frames ({', '.join(report['frame_sizes'])}), one core, "
               f"mean per frame (best of {repeats} passes):")
    typer.echo(f"  features {features_ms:6.2f} ms, features + classifier {total_ms:6.2f} ms wall  "
               f"(CPU {features_cpu_ms:.2f} / {total_cpu_ms:.2f} ms; budget 10 ms; "
               f"load average {report['load_average_1min']})")

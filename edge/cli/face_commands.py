"""`biogate face compare`, `biogate eval faces`, `biogate eval face-threshold`, `biogate bench face`."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from edge.cli.app import bench_app, eval_app, face_app, fail, print_json
from edge.config import Config, load_config
from edge.errors import BiogateError, InputError

err_console = Console(stderr=True)


def _pipeline(cfg: Config):
    from edge.biometrics.face import FacePipeline

    return FacePipeline(cfg.face, cfg.paths.models_dir)


def progress_bar() -> Progress:
    """A progress bar on stderr, so that --json output on stdout stays one line."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err_console, transient=True)


@face_app.command("compare")
def face_compare(
    image_a: Path = typer.Argument(..., help="first face image"),
    image_b: Path = typer.Argument(..., help="second face image"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
    strict: bool = typer.Option(False, "--strict", help="refuse to compare when any quality finding is present"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML configuration file"),
) -> None:
    """Compare two face images: distance, same/different, quality findings."""
    from edge.biometrics.face import load_image

    try:
        cfg = load_config(config)
        images = [load_image(p, cfg.face.max_image_px) for p in (image_a, image_b)]
        pipeline = _pipeline(cfg)
        analyses = pipeline.analyze_many(images)
        embeddings = []
        for path, analysis in zip((image_a, image_b), analyses):
            try:
                embeddings.append(analysis.require(strict))
            except BiogateError as exc:
                exc.message = f"{path}: {exc.message}"
                exc.details["findings"] = [f.to_dict() for f in analysis.findings]
                raise
    except BiogateError as exc:
        fail(exc, as_json)
    distance = pipeline.distance(*embeddings)
    same = pipeline.is_same(distance)
    report = {
        "distance": round(distance, 6),
        "threshold": cfg.face.threshold,
        "same": same,
        "decision": "same" if same else "different",
        "images": [
            {"path": str(p), "faces": len(a.faces), "quality": a.measures.to_dict() if a.measures else None,
             "findings": [f.to_dict() for f in a.findings]}
            for p, a in zip((image_a, image_b), analyses)
        ],
    }
    for analysis in analyses:
        analysis.wipe()
    if as_json:
        print_json(report)
        return
    typer.echo(f"distance {distance:.4f} (threshold {cfg.face.threshold}): {report['decision'].upper()} person")
    for item in report["images"]:
        notes = "; ".join(f["message"] for f in item["findings"]) or "no quality findings"
        typer.echo(f"  {item['path']}: {item['faces']} face(s); {notes}")


def _score_pairs_with_progress(cfg: Config, pairs_file: Path, images: Optional[Path], as_json: bool,
                               conditions: Optional[list] = None, pipeline=None):
    """The pairs' scores, once per capture condition when `conditions` are given (else once, clean)."""
    from edge.evaluation.lfw import read_pairs, score_pairs

    try:
        pair_list = read_pairs(pairs_file, images)
        pipeline = pipeline or _pipeline(cfg)
    except BiogateError as exc:
        fail(exc, as_json)
    results = []
    for condition in conditions or [None]:
        with progress_bar() as bar:
            task = bar.add_task(f"embedding faces ({condition.name})" if condition else "embedding faces", total=None)
            results.append(score_pairs(pair_list, pipeline, cfg.face.max_image_px,
                                       progress=lambda done, total: bar.update(task, completed=done, total=total),
                                       degrade=condition.degrade if condition else None))
    return results if conditions else results[0]


@eval_app.command("faces")
def eval_faces(
    pairs: Path = typer.Option(..., "--pairs", help="LFW pairs.txt (View 2 format)"),
    images: Optional[Path] = typer.Option(None, "--images", help="image folder (default: images/ beside the pairs file)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
    det_plot: Optional[Path] = typer.Option(None, "--det-plot", help="write a DET plot (PNG) here"),
    condition: Optional[str] = typer.Option(
        None, "--condition", help="capture conditions, comma-separated: the second image of each pair degraded "
                                  "(clean, face50, face75, face100, low_light, jpeg12, motion_blur, or faceN, "
                                  "darkN, jpegN, motionN; see edge/evaluation/conditions.py)"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML configuration file"),
) -> None:
    """Run the LFW pairs protocol with the shipped threshold: accuracy, EER, FNMR@FMR1e-3, failures to acquire."""
    from edge.evaluation.conditions import parse_conditions
    from edge.evaluation.lfw import protocol_report
    from edge.evaluation.metrics import det_plot as write_det_plot

    try:
        cfg = load_config(config)
        conditions = parse_conditions(condition) if condition is not None else None
    except BiogateError as exc:
        fail(exc, as_json)
    if conditions:
        _eval_conditions(cfg, pairs, images, conditions, as_json)
        return
    scores = _score_pairs_with_progress(cfg, pairs, images, as_json)
    report = protocol_report(scores, cfg.face.threshold)
    if det_plot:
        write_det_plot(det_plot, {"biogate face": (-scores.genuine, -scores.impostor)}, title=f"DET: {pairs.name}")
    if as_json:
        print_json(report)
        return
    same = scores.same
    fta_pairs = int(np.isinf(scores.distances).sum())
    typer.echo(f"pairs                {report['pairs']} ({int(same.sum())} same, {int((~same).sum())} different)")
    typer.echo(f"accuracy             {100 * report['accuracy']:.2f}% at the shipped threshold {cfg.face.threshold}")
    typer.echo(f"EER                  {100 * report['eer']:.2f}%")
    typer.echo(f"FNMR at FMR 1e-3     {100 * report['fnmr_at_fmr_1e-3']:.2f}%  "
               f"(FMR 1e-3 of {int((~same).sum())} impostor pairs allows {int(1e-3 * (~same).sum())} false match)")
    typer.echo(f"failures to acquire  {report['failures_to_acquire']} images ({fta_pairs} pairs, counted as errors)")
    if det_plot:
        typer.echo(f"DET plot             {det_plot}")


def _eval_conditions(cfg: Config, pairs: Path, images: Optional[Path], conditions: list, as_json: bool) -> None:
    from edge.evaluation.lfw import condition_report

    results = _score_pairs_with_progress(cfg, pairs, images, as_json, conditions)
    reports = [condition_report(scores, cfg.face.threshold, c.name) for c, scores in zip(conditions, results)]
    if as_json:
        print_json({"pairs": reports[0]["pairs"], "threshold": cfg.face.threshold, "conditions": reports})
        return
    typer.echo(f"{reports[0]['pairs']} pairs, the second image of each degraded; shipped threshold "
               f"{cfg.face.threshold}; failures to acquire count as errors")
    typer.echo(f"{'condition':14s} {'accuracy':>9s} {'FTA':>5s} {'face found':>11s} {'gates refuse':>13s} "
               f"{'decided on':>11s} {'their accuracy':>15s}  findings")
    for r in reports:
        notes = ", ".join(f"{code.removeprefix('quality.')} {n}" for code, n in r["findings"].items()) or "-"
        decided = "-" if r["accuracy_decided"] is None else f"{100 * r['accuracy_decided']:.2f}%"
        typer.echo(f"{r['condition']:14s} {100 * r['accuracy']:8.2f}% {r['failures_to_acquire']:5d} "
                   f"{100 * r['face_found']:10.2f}% {100 * r['refused_by_gates']:12.2f}% "
                   f"{r['pairs_decided']:11d} {decided:>15s}  {notes}")


@eval_app.command("face-threshold")
def eval_face_threshold(
    pairs: Path = typer.Option(..., "--pairs", help="DEVELOPMENT pairs.txt with a folds header"),
    images: Optional[Path] = typer.Option(None, "--images", help="image folder (default: images/ beside the pairs file)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML configuration file"),
) -> None:
    """Choose the face threshold on development pairs: per fold on the other folds (cross-validated accuracy),
    and on all folds (the value to ship in [face] threshold). Never run this on evaluation data."""
    from edge.evaluation.lfw import accuracy_at, cross_validate

    try:
        cfg = load_config(config)
    except BiogateError as exc:
        fail(exc, as_json)
    scores = _score_pairs_with_progress(cfg, pairs, images, as_json)
    try:
        cv = cross_validate(scores)
    except BiogateError as exc:
        fail(exc, as_json)
    report = {"pairs": len(scores.pairs), "folds": cv.folds, "cv_accuracy": cv.accuracy,
              "threshold": cv.threshold,
              "accuracy_at_threshold": round(accuracy_at(scores.distances, scores.same, cv.threshold), 6),
              "configured_threshold": cfg.face.threshold,
              "failures_to_acquire": len(scores.failures)}
    if as_json:
        print_json(report)
        return
    for f in cv.folds:
        typer.echo(f"fold {f['fold']}: threshold {f['threshold']} (chosen on the other folds), "
                   f"accuracy {100 * f['accuracy']:.2f}% on its {f['pairs']} pairs")
    typer.echo(f"cross-validated accuracy {100 * cv.accuracy:.2f}%")
    typer.echo(f"threshold chosen on all folds: {cv.threshold} (accuracy {100 * report['accuracy_at_threshold']:.2f}% "
               f"on these pairs; configured now: {cfg.face.threshold})")


# -- benchmark ---------------------------------------------------------------------------------------------------

def _bench_frames(cfg: Config, limit: int) -> list[tuple[str, np.ndarray]]:
    """Real frames: the example photos built into models/artifacts/examples, plus LFW if present."""
    from edge.biometrics.face import load_image
    from edge.models import examples_dir

    paths = sorted(p for p in examples_dir(cfg.paths.models_dir).glob("*") if p.suffix.lower() in (".jpg", ".png"))
    lfw = cfg.paths.data_dir / "faces" / "lfw" / "images"
    if lfw.is_dir():
        paths += sorted(lfw.glob("*/*_0001.jpg"))[: max(0, limit - len(paths))]
    frames = []
    for p in paths[:limit]:
        try:
            frames.append((p.name, load_image(p)))
        except BiogateError:
            continue
    return frames


def _ms_per_item(fn: Callable, items: list) -> float:
    """Mean wall-clock milliseconds per item over one pass through the list."""
    t0 = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - t0) * 1000 / len(items)


def _interleaved(contenders: dict[str, tuple[Callable, list]], repeats: int) -> dict[str, float]:
    """Best pass of each contender, passes taken in turn so that both see the same machine load (other
    processes only ever add time, so the fastest pass is the least disturbed one)."""
    best = {name: float("inf") for name in contenders}
    for _ in range(repeats):
        for name, (fn, items) in contenders.items():
            best[name] = min(best[name], _ms_per_item(fn, items))
    return best


@bench_app.command("face")
def bench_face(
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
    frames_limit: int = typer.Option(24, "--frames", help="how many real frames to time"),
    repeats: int = typer.Option(3, "--repeats"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML configuration file"),
) -> None:
    """Our face pipeline against face_recognition's (HOG upsample=0 + face_encodings), same frames, one run."""
    from edge.evaluation.peers.face_recognition_peer import FaceRecognitionPeer  # benchmark-only: loaded here

    try:
        cfg = load_config(config)
        pipeline = _pipeline(cfg)
        peer = FaceRecognitionPeer()
        frames = _bench_frames(cfg, frames_limit)
    except BiogateError as exc:
        fail(exc, as_json)
    if not frames:
        fail(InputError("no benchmark frames: run `make models` first", code="input.not_found"), as_json)
    bgr = [f for _, f in frames]
    rgb = [np.ascontiguousarray(f[:, :, ::-1]) for f in bgr]  # face_recognition's API takes RGB
    analyses = pipeline.analyze_many(bgr)  # also the warm-up: first-run allocations are not what we measure
    ours_faces = sum(a.acquired for a in analyses)
    theirs_faces = sum(bool(peer.encodings(img)) for img in rgb)
    pipelines = _interleaved({"ours": (pipeline.analyze, bgr), "theirs": (peer.encodings, rgb)}, repeats)
    ours, theirs = pipelines["ours"], pipelines["theirs"]
    # The embedding model alone, on the same chips: ONNX (one chip per run, no flip) against dlib's network.
    chips = [a.aligned.chip for a in analyses if a.aligned is not None][:8]
    models = _interleaved({"onnx": (lambda chip: pipeline.embedder.descriptors(chip[None]), chips),
                           "dlib": (peer.descriptor, chips)}, repeats)
    ours_embed, dlib_embed = models["onnx"], models["dlib"]
    report = {
        "frames": len(frames),
        "frame_sizes": sorted({f"{f.shape[1]}x{f.shape[0]}" for f in bgr}),
        "threads": cfg.face.threads,
        "flip_augment": cfg.face.flip_augment,
        "embedder": cfg.face.embedder_build,
        "ours_faces": ours_faces,
        "face_recognition_faces": theirs_faces,
        "ours_ms": round(ours, 2),
        "face_recognition_ms": round(theirs, 2),
        "speedup": round(theirs / ours, 2),
        "ours_embed_ms": round(ours_embed, 2),
        "dlib_embed_ms": round(dlib_embed, 2),
        "embed_speedup": round(dlib_embed / ours_embed, 2),
    }
    for analysis in analyses:
        analysis.wipe()
    if as_json:
        print_json(report)
        return
    typer.echo(f"{report['frames']} real frames ({', '.join(report['frame_sizes'][:6])}), mean per frame "
               f"(best of {repeats} passes):")
    typer.echo(f"  biogate (BlazeFace + 5-point + ONNX ResNet {report['embedder']}"
               f"{' + flip' if cfg.face.flip_augment else ''}, "
               f"{cfg.face.threads} thread(s)): {ours:8.2f} ms  (faces in {ours_faces} frames)")
    typer.echo(f"  face_recognition (HOG upsample 0 + face_encodings):        {theirs:8.2f} ms  "
               f"(faces in {theirs_faces} frames)")
    typer.echo(f"  speedup {report['speedup']:.1f}x")
    typer.echo(f"embedding model alone, per chip: ONNX {ours_embed:.2f} ms, dlib {dlib_embed:.2f} ms "
               f"({report['embed_speedup']:.1f}x)")


@bench_app.command("detector")
def bench_detector(
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
    repeats: int = typer.Option(5, "--repeats"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML configuration file"),
) -> None:
    """The face finder's time on 640 x 480 and 1280 x 720 camera frames: a 100 px face (full range), a photo-like
    close face (full range + the short-range re-read) and an empty frame (whole frame + four tiles)."""
    import cv2

    from edge.biometrics.face.detector import FaceDetector, build_detector
    from edge.models import examples_dir

    try:
        cfg = load_config(config)
        f = cfg.face
        chain = build_detector(cfg.paths.models_dir, f.threads, f.detector_score, f.detector, f.close_up_detector,
                               f.redetect_tiles)
        models = {name: FaceDetector(cfg.paths.models_dir, f.threads, f.detector_score, name)
                  for name in ("short_range", "full_range")}
        from edge.biometrics.face import load_image

        photo = load_image(examples_dir(cfg.paths.models_dir) / "obama.jpg")
    except BiogateError as exc:
        fail(exc, as_json)
    [face] = models["short_range"].detect_bgr(photo)[:1] or [None]
    if face is None:
        fail(InputError("the example photo shows no face: run `make models`", code="input.not_found"), as_json)

    def frame_with_face(width: int, height: int, face_px: float) -> np.ndarray:
        scale = face_px / face.width
        small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        frame = np.full((height, width, 3), 100, np.uint8)
        h, w = min(small.shape[0], height), min(small.shape[1], width)
        frame[:h, :w] = small[:h, :w]
        return frame

    def best_ms(fn, frame) -> float:
        fn(frame)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(5):
                fn(frame)
            best = min(best, (time.perf_counter() - t0) * 1000 / 5)
        return best

    report: dict = {"threads": f.threads, "repeats": repeats, "frames": {}}
    for width, height in ((640, 480), (1280, 720)):
        frames = {"face_100px": frame_with_face(width, height, 100), "face_close": frame_with_face(width, height, 0.4 * height),
                  "empty": np.full((height, width, 3), 100, np.uint8)}
        row = {f"finder_{kind}_ms": round(best_ms(chain.detect_bgr, frame), 2) for kind, frame in frames.items()}
        for name, model in models.items():
            row[f"{name}_ms"] = round(best_ms(model.detect_bgr, frames["face_100px"]), 2)
        report["frames"][f"{width}x{height}"] = row
    if as_json:
        print_json(report)
        return
    typer.echo(f"face detector, best of {repeats} x 5 runs, {f.threads} thread(s), ms per frame:")
    for size, row in report["frames"].items():
        typer.echo(f"  {size}: finder {row['finder_face_100px_ms']:.2f} (100 px face), "
                   f"{row['finder_face_close_ms']:.2f} (close face, + short-range re-read), "
                   f"{row['finder_empty_ms']:.2f} (no face, + 4 tiles); models alone: short range "
                   f"{row['short_range_ms']:.2f}, full range {row['full_range_ms']:.2f}")

"""`biogate face compare`, `biogate eval faces`, `biogate bench face`."""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from edge.cli.app import bench_app, eval_app, face_app, fail, print_json
from edge.config import Config, load_config
from edge.errors import BiogateError

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
    if as_json:
        print_json(report)
        return
    typer.echo(f"distance {distance:.4f} (threshold {cfg.face.threshold}): {report['decision'].upper()} person")
    for item in report["images"]:
        notes = "; ".join(f["message"] for f in item["findings"]) or "no quality findings"
        typer.echo(f"  {item['path']}: {item['faces']} face(s); {notes}")


@eval_app.command("faces")
def eval_faces(
    pairs: Path = typer.Option(..., "--pairs", help="LFW pairs.txt (View 2 format)"),
    images: Optional[Path] = typer.Option(None, "--images", help="image folder (default: images/ beside the pairs file)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
    det_plot: Optional[Path] = typer.Option(None, "--det-plot", help="write a DET plot (PNG) here"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML configuration file"),
) -> None:
    """Run the LFW pairs protocol with the shipped threshold: accuracy, EER, FNMR@FMR1e-3, failures to acquire."""
    from edge.biometrics.face import load_image
    from edge.evaluation.lfw import read_pairs
    from edge.evaluation.metrics import det_plot as write_det_plot
    from edge.evaluation.metrics import equal_error_rate, fnmr_at_fmr

    try:
        cfg = load_config(config)
        pair_list = read_pairs(pairs, images)
        pipeline = _pipeline(cfg)
    except BiogateError as exc:
        fail(exc, as_json)
    paths = sorted({p for pair in pair_list for p in (pair.a, pair.b)})
    embeddings: dict[Path, np.ndarray] = {}
    failed: dict[Path, str] = {}
    chunk = 16
    with progress_bar() as bar:
        task = bar.add_task("embedding faces", total=len(paths))
        for start in range(0, len(paths), chunk):
            batch_paths, frames = [], []
            for p in paths[start:start + chunk]:
                try:
                    frames.append(load_image(p, cfg.face.max_image_px))
                    batch_paths.append(p)
                except BiogateError as exc:
                    failed[p] = exc.code
            for p, analysis in zip(batch_paths, pipeline.analyze_many(frames)):
                if analysis.acquired:
                    embeddings[p] = analysis.embedding
                else:
                    failed[p] = "quality.no_face"
            bar.advance(task, len(paths[start:start + chunk]))
    # Distances become similarities (negated); a pair with a failure to acquire scores -inf (rejected).
    scores = np.array([-pipeline.distance(embeddings[p.a], embeddings[p.b])
                       if p.a in embeddings and p.b in embeddings else -np.inf for p in pair_list])
    same = np.array([p.same for p in pair_list])
    decided_same = scores > -cfg.face.threshold
    accuracy = float(np.mean(decided_same == same) - np.mean(np.isinf(scores) & ~same))  # FTA pairs are errors
    genuine, impostor = scores[same], scores[~same]
    report = {
        "pairs": len(pair_list),
        "accuracy": round(accuracy, 6),
        "eer": round(equal_error_rate(genuine, impostor), 6),
        "fnmr_at_fmr_1e-3": round(fnmr_at_fmr(genuine, impostor, 1e-3), 6),
        "threshold": cfg.face.threshold,
        "failures_to_acquire": len(failed),
    }
    if det_plot:
        write_det_plot(det_plot, {"biogate face": (genuine, impostor)}, title=f"DET: {pairs.name}")
    if as_json:
        print_json(report)
        return
    fta_pairs = int(np.isinf(scores).sum())
    typer.echo(f"pairs                {report['pairs']} ({int(same.sum())} same, {int((~same).sum())} different)")
    typer.echo(f"accuracy             {100 * accuracy:.2f}% at the shipped threshold {cfg.face.threshold}")
    typer.echo(f"EER                  {100 * report['eer']:.2f}%")
    typer.echo(f"FNMR at FMR 1e-3     {100 * report['fnmr_at_fmr_1e-3']:.2f}%  "
               f"(FMR 1e-3 of {len(impostor)} impostor pairs allows {int(1e-3 * len(impostor))} false match)")
    typer.echo(f"failures to acquire  {len(failed)} images ({fta_pairs} pairs, counted as errors)")
    if det_plot:
        typer.echo(f"DET plot             {det_plot}")


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


def _median_ms(fn, items, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        for item in items:
            t0 = time.perf_counter()
            fn(item)
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


@bench_app.command("face")
def bench_face(
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
    frames_limit: int = typer.Option(24, "--frames", help="how many real frames to time"),
    repeats: int = typer.Option(3, "--repeats"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML configuration file"),
) -> None:
    """Our face pipeline against face_recognition's (HOG upsample=0 + face_encodings), same frames, one run."""
    import dlib
    import face_recognition
    import face_recognition_models

    try:
        cfg = load_config(config)
        pipeline = _pipeline(cfg)
    except BiogateError as exc:
        fail(exc, as_json)
    frames = _bench_frames(cfg, frames_limit)
    if not frames:
        fail(BiogateError("no benchmark frames: run `make models` first", code="input.not_found"), as_json)
    bgr = [f for _, f in frames]
    rgb = [np.ascontiguousarray(f[:, :, ::-1]) for f in bgr]
    pipeline.analyze(bgr[0])  # warm-up: first-run allocations are not what we measure
    ours = _median_ms(pipeline.analyze, bgr, repeats)
    fr_pipeline = lambda img: face_recognition.face_encodings(  # noqa: E731
        img, face_recognition.face_locations(img, number_of_times_to_upsample=0, model="hog"))
    fr_pipeline(rgb[0])
    theirs = _median_ms(fr_pipeline, rgb, repeats)
    # The embedding model alone, on the same chips: ONNX (one chip, no flip) against dlib's own network.
    chips = [a.aligned.chip for a in pipeline.analyze_many(bgr) if a.aligned is not None]
    net = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
    run_onnx = lambda chip: pipeline.embedder._run(chip[None])  # noqa: E731
    run_onnx(chips[0])
    ours_embed = _median_ms(run_onnx, chips, repeats)
    dlib_embed = _median_ms(lambda chip: net.compute_face_descriptor(chip), chips[: max(4, len(chips) // 3)], 1)
    report = {
        "frames": len(frames),
        "frame_sizes": sorted({f"{f.shape[1]}x{f.shape[0]}" for f in bgr}),
        "threads": cfg.face.threads,
        "flip_augment": cfg.face.flip_augment,
        "ours_ms": round(ours, 2),
        "face_recognition_ms": round(theirs, 2),
        "speedup": round(theirs / ours, 2),
        "ours_embed_ms": round(ours_embed, 2),
        "dlib_embed_ms": round(dlib_embed, 2),
        "embed_speedup": round(dlib_embed / ours_embed, 2),
    }
    if as_json:
        print_json(report)
        return
    typer.echo(f"{report['frames']} real frames ({', '.join(report['frame_sizes'][:6])}), median per frame:")
    typer.echo(f"  biogate (BlazeFace + 5-point + ONNX ResNet{' + flip' if cfg.face.flip_augment else ''}, "
               f"{cfg.face.threads} thread(s)): {ours:8.2f} ms")
    typer.echo(f"  face_recognition (HOG upsample 0 + face_encodings):        {theirs:8.2f} ms")
    typer.echo(f"  speedup {report['speedup']:.1f}x")
    typer.echo(f"embedding model alone, per chip: ONNX {ours_embed:.2f} ms, dlib {dlib_embed:.2f} ms "
               f"({report['embed_speedup']:.1f}x)")

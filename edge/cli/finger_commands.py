"""`biogate finger compare`, `biogate eval fingers`, `biogate bench finger`."""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from edge.cli.app import bench_app, eval_app, fail, finger_app, print_json
from edge.config import load_config
from edge.errors import BiogateError, InputError

err_console = Console(stderr=True)
FINGER_DB_SUBDIR = ("fingerprints", "fvc2000")


def _progress() -> Progress:
    """A progress bar on stderr, so that --json output on stdout stays one line."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err_console, transient=True)


@finger_app.command("compare")
def finger_compare(
    image_a: Path = typer.Argument(..., help="first fingerprint image (500 dpi greyscale)"),
    image_b: Path = typer.Argument(..., help="second fingerprint image"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
    dpi: int = typer.Option(500, "--dpi", help="resolution of both images"),
) -> None:
    """Compare two fingerprint images: score, threshold, same/different, print quality, minutiae counts."""
    from edge.biometrics import finger

    templates = []
    try:
        for path in (image_a, image_b):
            image = finger.load_image(path)
            try:
                templates.append(finger.extract(image, dpi))
            except BiogateError as exc:
                exc.message = f"{path}: {exc.message}"
                raise
            finally:
                image.fill(0)
    except BiogateError as exc:
        fail(exc, as_json)
    score = finger.compare(*templates)
    same = score >= finger.DEFAULT_THRESHOLD
    report = {
        "score": round(score, 6),
        "threshold": finger.DEFAULT_THRESHOLD,
        "same": bool(same),
        "decision": "same" if same else "different",
        "images": [{"path": str(p), "quality": t.quality, "minutiae": t.count, "width": t.width, "height": t.height}
                   for p, t in zip((image_a, image_b), templates)],
    }
    for t in templates:
        finger.wipe(t)
    if as_json:
        print_json(report)
        return
    typer.echo(f"score {score:.4f} (threshold {finger.DEFAULT_THRESHOLD}): {report['decision'].upper()} finger")
    for item in report["images"]:
        typer.echo(f"  {item['path']}: quality {item['quality']}/100, {item['minutiae']} minutiae "
                   f"({item['width']}x{item['height']})")


def _rates(genuine: np.ndarray, impostor: np.ndarray, failures: int) -> dict:
    from edge.evaluation.fvc import rates

    return {"genuine": int(genuine.size), "impostor": int(impostor.size), **rates(genuine, impostor),
            "failures_to_extract": int(failures)}


def _score_with_progress(db: Path, matcher, label: str):
    from edge.evaluation import fvc

    with _progress() as bar:
        task = bar.add_task(label, total=fvc.work_units(db))
        return fvc.score_db(db, matcher, progress=lambda n: bar.advance(task, n))


@eval_app.command("fingers")
def eval_fingers(
    db: Path = typer.Option(..., "--db", help="folder of <finger>_<impression>.tif files (e.g. FVC2000 DB1_B)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
    det_plot: Optional[Path] = typer.Option(None, "--det-plot", help="write a DET plot (PNG) here"),
    peer: Optional[str] = typer.Option(None, "--peer", help="also run a reference system on the same pairs: nbis"),
    fit_on: Optional[list[Path]] = typer.Option(
        None, "--fit-on", help="refit the score calibration on these databases first (repeatable) and score "
                               "--db with it: cross-validated figures when --db is not among them"),
) -> None:
    """FVC protocol on one database: EER, FMR100, FMR1000 (FNMR at FMR 1% and 0.1%), failures to extract.

    The shipped calibration was fitted on FVC2000 DB1_B-DB4_B pooled, so on those databases its figures
    are in-sample; `--fit-on` the other three gives the leave-one-database-out figure."""
    from edge.evaluation import fvc
    from edge.evaluation.metrics import det_plot as write_det_plot

    try:
        if peer not in (None, "nbis"):
            raise InputError(f"unknown peer {peer!r}; available: nbis", code="input.bad_option")
        n_fingers = len({finger for finger, _ in fvc.read_db(db)})
        if fit_on:
            if any(d.resolve() == db.resolve() for d in fit_on):
                err_console.print(f"note: {db.name} is among --fit-on: its figures are not cross-validated")
            with _progress() as bar:
                task = bar.add_task("refitting the calibration", total=sum(fvc.work_units(d) for d in fit_on))
                matcher, fitted_on = fvc.refitted_matcher(fit_on, progress=lambda n: bar.advance(task, n))
            cross_validated = all(d.resolve() != db.resolve() for d in fit_on)
            calibration = {"fitted_on": fitted_on, "cross_validated": cross_validated}
        else:
            matcher = fvc.biogate_matcher()
            calibration = {"fitted_on": ["shipped: FVC2000 DB1_B-DB4_B pooled"], "cross_validated": False}
        genuine, impostor, failures = _score_with_progress(db, matcher, f"biogate {db.name}")
        report = _rates(genuine, impostor, failures)
        report["calibration"] = calibration
        curves = {"biogate": (genuine, impostor)}
        if peer == "nbis":
            from edge.evaluation.peers.nbis import nbis_matcher

            p_gen, p_imp, p_fail = _score_with_progress(db, nbis_matcher(), f"NBIS {db.name}")
            report["peer"] = {"name": "nbis", **_rates(p_gen, p_imp, p_fail)}
            curves["NBIS mindtct+bozorth3"] = (p_gen, p_imp)
    except BiogateError as exc:
        fail(exc, as_json)
    if det_plot:
        write_det_plot(det_plot, curves, title=f"DET: {db.name}")
    if as_json:
        print_json(report)
        return
    n_imp = report["impostor"]
    rows = [("biogate", report)] + ([("NBIS", report["peer"])] if "peer" in report else [])
    typer.echo(f"{db}: {report['genuine']} genuine and {n_imp} impostor comparisons; calibration "
               f"{', '.join(report['calibration']['fitted_on'])}"
               f"{' (cross-validated)' if report['calibration']['cross_validated'] else ''}")
    for name, r in rows:
        typer.echo(f"  {name:8s} EER {100 * r['eer']:6.2f}%   FMR100 {100 * r['fmr100']:6.2f}%   "
                   f"FMR1000 {100 * r['fmr1000']:6.2f}%   failures to extract {r['failures_to_extract']}")
    typer.echo(f"  FMR100 rests on the top {int(0.01 * n_imp)} impostor scores and FMR1000 on the top "
               f"{int(0.001 * n_imp)}: {n_imp} impostor pairs among only {n_fingers} fingers, so the low-FMR "
               f"figures are rough (one impostor score more or less moves FMR1000's threshold).")
    if det_plot:
        typer.echo(f"  DET plot {det_plot}")


def _one_thread() -> None:
    """Measure on one core: BLAS, OpenCV and numba all single-threaded."""
    import cv2

    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[name] = "1"
    cv2.setNumThreads(1)


def _bench_files(data_dir: Path, per_db: int) -> list[Path]:
    root = data_dir.joinpath(*FINGER_DB_SUBDIR)
    files: list[Path] = []
    for db in sorted(root.glob("DB*_B")) if root.is_dir() else []:
        all_files = sorted(db.glob("*.tif"))
        step = max(1, len(all_files) // max(per_db, 1))
        files += all_files[::step][:per_db]  # spread over the fingers: mostly non-mated pairs, as in 1:N use
    return files


def _synthetic_files(folder: Path, count: int) -> list[Path]:
    """`count` synthetic prints (a few impressions of several fingers) written as TIFF files."""
    import cv2

    from edge.evaluation.synthetic import synthetic_print

    paths = []
    for k in range(count):
        path = folder / f"{k // 4 + 1}_{k % 4 + 1}.tif"
        cv2.imwrite(str(path), synthetic_print(k // 4, k % 4, seed=0))
        paths.append(path)
    return paths


def _time_matches(templates: list, compare, min_seconds: float) -> float:
    """Comparisons per second over every ordered pair of different templates, repeated for min_seconds."""
    pairs = [(a, b) for i, a in enumerate(templates) for j, b in enumerate(templates) if i != j]
    compare(*pairs[0])  # warm-up (numba loads its compiled kernels on first use)
    done, start = 0, time.perf_counter()
    while True:
        for a, b in pairs:
            compare(a, b)
        done += len(pairs)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


@bench_app.command("finger")
def bench_finger(
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
    per_db: int = typer.Option(8, "--per-db", help="images taken from each FVC2000 DB*_B folder"),
    seconds: float = typer.Option(3.0, "--seconds", help="minimum time spent timing matches, per system"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML configuration file"),
) -> None:
    """Extraction time per image (median) and 1:1 matches per second on one core, ours and NBIS's."""
    _one_thread()
    from edge.biometrics import finger
    from edge.evaluation.peers.nbis import nbis_matcher

    scratch = None
    try:
        cfg = load_config(config)
        files = _bench_files(cfg.paths.data_dir, per_db)
        source = "FVC2000"
        if not files:
            # No shared data on this machine: time the same code on the simulator's synthetic prints
            # (said so in the report), rather than print no figures at all.
            scratch = tempfile.TemporaryDirectory(prefix="biogate-bench-finger-")
            files = _synthetic_files(Path(scratch.name), 4 * per_db)
            source = "synthetic prints (FVC2000 not present under " \
                     f"{cfg.paths.data_dir.joinpath(*FINGER_DB_SUBDIR)})"
        images = [finger.load_image(p) for p in files]
        nbis = nbis_matcher()
    except BiogateError as exc:
        fail(exc, as_json)

    finger.prepare(finger.extract(images[0]))  # warm-up
    extract_ms, prepare_ms, ours = [], [], []
    for image in images:
        t0 = time.perf_counter()
        try:
            template = finger.extract(image)
        except BiogateError:
            continue
        t1 = time.perf_counter()
        ours.append(finger.prepare(template))
        extract_ms.append((t1 - t0) * 1000)
        prepare_ms.append((time.perf_counter() - t1) * 1000)
    nbis_ms, theirs = [], []
    for path in files:
        t0 = time.perf_counter()
        try:
            theirs.append(nbis.extract(path))
        except BiogateError:
            continue
        nbis_ms.append((time.perf_counter() - t0) * 1000)
    report = {
        "source": source,
        "images": len(images),
        "image_sizes": sorted({f"{im.shape[1]}x{im.shape[0]}" for im in images}),
        "threads": 1,
        "ours_extract_ms": round(statistics.median(extract_ms), 2),
        "ours_prepare_ms": round(statistics.median(prepare_ms), 2),
        "ours_matches_per_s": round(_time_matches(ours, finger.compare, seconds), 1),
        "ours_mean_minutiae": round(float(np.mean([t.count for t in ours])), 1),
        "nbis_extract_ms": round(statistics.median(nbis_ms), 2),
        "nbis_matches_per_s": round(_time_matches(theirs, nbis.compare, seconds), 1),
    }
    for image in images:
        image.fill(0)
    if scratch is not None:
        scratch.cleanup()
    if as_json:
        print_json(report)
        return
    typer.echo(f"{report['images']} images, {source} ({', '.join(report['image_sizes'])}), one thread:")
    typer.echo(f"  biogate  extract {report['ours_extract_ms']:7.2f} ms/image (median) + prepare "
               f"{report['ours_prepare_ms']:.2f} ms; {report['ours_matches_per_s']:9.0f} matches/s "
               f"({report['ours_mean_minutiae']} minutiae per print on average)")
    typer.echo(f"  NBIS     extract {report['nbis_extract_ms']:7.2f} ms/image (median);"
               f"{'':20s}{report['nbis_matches_per_s']:9.0f} matches/s")

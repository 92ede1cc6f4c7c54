"""`biogate calibrate`: fit score -> likelihood-ratio calibration on the development data; `biogate policy`."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Optional

import typer

from edge.cli.app import app, eval_app, fail, print_json
from edge.config import load_config
from edge.errors import BiogateError


@app.command("calibrate")
def calibrate(
    modality: str = typer.Option("all", "--modality", help="face, finger or all"),
    out: Optional[Path] = typer.Option(None, "--out", help="where to write (default: edge/decision/calibration.json)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML configuration file"),
) -> None:
    """Fit each modality's score -> LLR mapping on ../shared/data (development sets only) and report the
    thresholds and expected error rates at the policy's target FMRs."""
    from rich.console import Console

    from edge.decision.calibration import CALIBRATION_PATH, Calibration, fit_modality, load_calibration
    from edge.evaluation.devscores import face_dev_scores, finger_dev_scores

    console = Console(stderr=True)
    target = out or CALIBRATION_PATH
    try:
        cfg = load_config(config)
        wanted = ("face", "finger") if modality == "all" else (modality,)
        if any(m not in ("face", "finger") for m in wanted):
            raise BiogateError("--modality must be face, finger or all", code="input.invalid")
        existing = load_calibration(target).modalities if target.exists() else {}
        fitted = dict(existing)
        for m in wanted:
            console.print(f"[bold]{m}[/]: scoring development data ...")
            scores = face_dev_scores(cfg) if m == "face" else finger_dev_scores(cfg)
            fitted[m] = fit_modality(m, scores.provenance.get("score", ""), scores.genuine, scores.impostor,
                                     scores.provenance)
        cal = Calibration(fitted, dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    except BiogateError as exc:
        fail(exc, as_json)
    target.write_text(json.dumps(cal.to_dict(), indent=1) + "\n")
    report = {"file": str(target), "modalities": {}}
    for m, c in cal.modalities.items():
        report["modalities"][m] = {"slope": round(c.slope, 4), "intercept": round(c.intercept, 4),
                                   "llr_range": [round(c.llr_min, 2), round(c.llr_max, 2)],
                                   **{k: v for k, v in c.provenance.items() if isinstance(v, (int, float, str))}}
    points = {}
    for factors in (("face",), ("finger",), ("face", "finger")):
        if not all(f in cal.modalities for f in factors):
            continue
        for fmr in (1e-3, 1e-4, 1e-5):
            t = cal.threshold(factors, fmr)
            points[f"{'+'.join(factors)}@{fmr:g}"] = {"threshold_llr": round(t, 2),
                                                      "dev_fnmr": round(cal.expected_fnmr(factors, t), 4)}
    report["operating_points"] = points
    if as_json:
        print_json(report)
        return
    typer.echo(f"wrote {target}")
    for m, r in report["modalities"].items():
        typer.echo(f"  {m:6s} LLR = {r['slope']} * score + {r['intercept']}  (clamped to {r['llr_range']}; "
                   f"{r.get('genuine_comparisons')} genuine / {r.get('impostor_comparisons')} impostor comparisons)")
    for name, p in points.items():
        typer.echo(f"  {name:22s} threshold LLR {p['threshold_llr']:6.2f}   development FNMR {100 * p['dev_fnmr']:.2f}%")


@app.command("policy")
def policy(
    operation: str = typer.Argument(..., help="e.g. cash_withdrawal, card_load"),
    amount: str = typer.Argument(...),
    currency: str = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML configuration file"),
) -> None:
    """Which factors the configured policy asks for this operation, and why."""
    from edge.decision.policy import TransactionContext, parse_amount, required_factors

    try:
        cfg = load_config(config)
        need = required_factors(TransactionContext(operation, parse_amount(amount), currency.upper(), "-"), cfg.policy)
    except BiogateError as exc:
        fail(exc, as_json)
    out = {"rule": need.rule, "factors": list(need.factors), "target_fmr": need.target_fmr,
           "amount_usd": str(need.amount_usd), "dispenses": need.dispenses, "reasons": need.reasons}
    if as_json:
        print_json(out)
    else:
        typer.echo(f"{operation} {amount} {currency.upper()} ({need.amount_usd} USD): {need.rule}")
        for r in need.reasons:
            typer.echo(f"  {r}")


@eval_app.command("fusion")
def eval_fusion(
    faces: Path = typer.Option(..., "--faces", help="LFW-style pairs file; its images give the face identities"),
    fingers: list[Path] = typer.Option(..., "--fingers", help="FVC-style database folder (repeatable)"),
    seed: int = typer.Option(0, "--seed", help="fixes which face identity goes with which fingers"),
    folds: int = typer.Option(5, "--folds", min=2, help="cross-validation folds over the chimeric identities"),
    face_people: Optional[int] = typer.Option(None, "--face-people", min=1,
                                              help="a quick subset: fit the face calibration on this many other "
                                                   "people only (default: every face of the pairs file)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML configuration file"),
) -> None:
    """The fused decision of a cash withdrawal on chimeric identities (one LFW face, two FVC fingers each),
    cross-validated: FNMR and measured FMR at the policy's target FMR, per decision mode."""
    from rich.console import Console

    from edge.evaluation.fusion import evaluate_fusion

    console = Console(stderr=True)
    try:
        cfg = load_config(config)
        report = evaluate_fusion(faces, fingers, cfg, seed=seed, folds=folds, max_face_people=face_people,
                                 progress=lambda text: console.print(text))
    except BiogateError as exc:
        fail(exc, as_json)
    if as_json:
        print_json(report)
        return
    typer.echo(f"{report['identities']} chimeric identities, {len(report['folds'])} folds, seed {seed}: "
               f"{report['genuine_trials']} genuine / {report['impostor_trials']} impostor trials")
    for mode, m in report["modes"].items():
        typer.echo(f"  {mode:11s} FNMR {100 * m['fnmr']:5.2f}%   measured FMR {m['fmr']:.2g}   "
                   f"second finger asked {100 * m['second_finger_asked_genuine']:.1f}% of genuine")
    typer.echo(f"  target FMR {report['target_fmr']:g}: estimated {report['estimated_fmr']:.3g} from "
               f"{report['impostor_trials_behind_target']:.3g} impostor comparison combinations "
               f"({100 * report['estimated_fmr_measured_share']:.0f}% of it from measured comparisons)")

"""`biogate mules scan`, `biogate eval mules`, `biogate bench search` (edge.search, issue 12)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from edge.cli.app import app, bench_app, eval_app, fail, print_json
from edge.errors import BiogateError

mules_app = typer.Typer(help="Cash-out network detection (investigators only; audited).", no_args_is_help=True)
app.add_typer(mules_app, name="mules")

ConfigOpt = typer.Option(None, "--config", help="TOML configuration file (default: $BIOGATE_CONFIG)")
JsonOpt = typer.Option(False, "--json", help="one JSON object on stdout")


@mules_app.command("scan")
def scan(operator: str = typer.Option(..., "--operator", help="the investigator's operator name"),
         purpose: str = typer.Option(..., "--purpose", help="why this scan is run (10-300 characters)"),
         case_ref: str = typer.Option(..., "--case-ref", help="the case it belongs to"),
         window_days: Optional[int] = typer.Option(None, "--window-days", min=1, max=180),
         registry: bool = typer.Option(False, "--registry", help="scan the fleet registry's PostgreSQL ([registry] dsn)"),
         password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from stdin"),
         config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt) -> None:
    """Scan the attempts of the window for "one person, many cards" and "one card, many people" networks.

    The operator signs in with their console password and must hold the investigator role; the scan and
    its purpose and case reference go into the audit log; results carry pseudonyms only."""
    from edge.config import load_config
    from edge.search.oversight import Investigation
    from edge.search.service import SearchService
    from edge.service.operators import OperatorAccounts

    try:
        cfg = load_config(config)
        why = Investigation.of(purpose, case_ref)
        password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt("password", hide_input=True)
        store = _open(cfg, registry)
        try:
            who = OperatorAccounts(store, cfg.console).authenticate(operator, password)
            from edge.decision.calibration import load_calibration
            search = SearchService(store, load_calibration(cfg.policy.calibration_file), cfg.search,
                                   retention_days=cfg.storage.evidence_retention_days)
            view = search.scan(who.role, f"{who.role}:{who.name}", why, window_days)
        finally:
            store.close()
    except BiogateError as exc:
        fail(exc, as_json)
    if as_json:
        print_json(view)
        return
    typer.echo(f"scan {view['scan_id']} (case {view['case_ref']}): {view['attempts']} attempts, "
               f"{len(view['networks'])} network(s); face links at LLR >= {view['thresholds']['same_llr']} "
               f"(false-link rate {view['thresholds']['false_link_rate']:.1e} per pair)")
    for n in view["networks"]:
        typer.echo(f"- {n['id']} score {n['score']}: {n['explanation']}")


def _open(cfg, registry: bool):
    if registry:
        from edge.registry.server import open_registry_store
        return open_registry_store(cfg)
    from edge.store import open_store
    return open_store(cfg)


@eval_app.command("mules")
def eval_mules(target_rate: float = typer.Option(1e-5, "--target-rate", help="false-link rate the threshold is read at"),
               networks: int = typer.Option(20, "--networks", min=1, help="planted networks per fold"),
               nominees: int = typer.Option(4, "--nominees", min=2, help="nominee cards per network"),
               min_cards: int = typer.Option(3, "--min-cards", min=2),
               seed: int = typer.Option(0, "--seed"),
               config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt) -> None:
    """Network detection recall, precision and false-link rate on a synthetic fleet of LFW development faces
    (two folds by identity; the calibration is refitted on the fold not measured)."""
    from edge.config import load_config
    from edge.evaluation.mules import development_embeddings, evaluate

    try:
        cfg = load_config(config)
        emb, names = development_embeddings(cfg)
        result = evaluate(emb, names, target_rate=target_rate, min_cards=min_cards, networks=networks,
                          nominees=nominees, seed=seed)
        emb.fill(0)
    except BiogateError as exc:
        fail(exc, as_json)
    if as_json:
        print_json(result)
        return
    typer.echo(f"{result['data']}: {result['images']} images, {result['identities']} identities; {result['protocol']}")
    typer.echo(f"recall {result['recall']}  precision {result['precision']}  false-link rate "
               f"{result['false_link_rate']:.2e}  genuine customers in a network "
               f"{result['genuine_customers_in_a_network']} of {result['genuine_customers']}")


@bench_app.command("search")
def bench_search(templates: int = typer.Option(1_000_000, "--templates", min=100),
                 queries: int = typer.Option(1000, "--queries", min=10),
                 nprobe: int = typer.Option(0, "--nprobe", min=0, help="IVF lists per query (0: [search] nprobe)"),
                 config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt) -> None:
    """The 1:N face index at scale (synthetic embeddings), one query at a time on one thread."""
    from edge.config import load_config
    from edge.search.bench import run

    cfg = load_config(config)
    result = run(templates, queries=queries, nprobe=nprobe or cfg.search.nprobe, ivf_from=cfg.search.ivf_from)
    if as_json:
        print_json(result)
        return
    typer.echo(" ".join(f"{k}={result[k]}" for k in ("templates", "index", "index_mb", "build_s", "p50_ms", "p99_ms",
                                                      "recall_at_10")))

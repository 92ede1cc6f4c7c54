"""`biogate registry init|serve|add-terminal|revoke-terminal|terminals|verify`: the fleet registry."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from edge.cli.app import app, fail, print_json
from edge.config import load_config
from edge.errors import BiogateError

registry_app = typer.Typer(help="The fleet registry on PostgreSQL: the bank's system of record.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")

ConfigOpt = typer.Option(None, "--config", help="TOML configuration file (default: $BIOGATE_CONFIG)")
DsnOpt = typer.Option(None, "--dsn", help="override registry.dsn (a libpq connection string)")


def _cfg(config: Optional[Path], dsn: Optional[str]):
    cfg = load_config(config)
    if dsn:
        cfg = cfg.model_copy(update={"registry": cfg.registry.model_copy(update={"dsn": dsn})})
    return cfg


@registry_app.command("init")
def registry_init(config: Optional[Path] = ConfigOpt, dsn: Optional[str] = DsnOpt,
                  as_json: bool = typer.Option(False, "--json")) -> None:
    """Create or migrate the registry's schema."""
    from edge.registry.server import init_registry

    try:
        version = init_registry(_cfg(config, dsn))
    except BiogateError as exc:
        fail(exc, as_json)
    print_json({"schema_version": version}) if as_json else typer.echo(f"registry schema at version {version}")


@registry_app.command("serve")
def registry_serve(config: Optional[Path] = ConfigOpt, dsn: Optional[str] = DsnOpt,
                   host: Optional[str] = typer.Option(None, "--host"), port: Optional[int] = typer.Option(None, "--port"),
                   ready_file: Optional[Path] = typer.Option(None, "--ready-file",
                                                             help="write {url} as JSON here once listening")) -> None:
    """Run the registry (stateless apart from PostgreSQL: run as many as the load needs)."""
    from edge.registry.server import run_registry

    def ready(url: str) -> None:
        if ready_file:
            tmp = Path(str(ready_file) + ".tmp")
            tmp.write_text(json.dumps({"url": url}))
            tmp.replace(ready_file)

    try:
        run_registry(_cfg(config, dsn), host=host, port=port, on_ready=ready)
    except BiogateError as exc:
        fail(exc)


@registry_app.command("add-terminal")
def add_terminal(terminal_id: str = typer.Argument(..., help="e.g. ATM-0002"), config: Optional[Path] = ConfigOpt,
                 dsn: Optional[str] = DsnOpt) -> None:
    """Register a terminal and print its credentials ONCE, as JSON: save them on the terminal as
    <state_dir>/fleet-credentials.json (0600)."""
    from edge.registry.server import open_registry_store
    from edge.registry.service import RegistryService, check_terminal_id

    try:
        store = open_registry_store(_cfg(config, dsn), migrate=True)
        try:
            creds = RegistryService(store).add_terminal(check_terminal_id(terminal_id), "admin:cli")
        finally:
            store.close()
    except BiogateError as exc:
        fail(exc, True)
    print_json(creds.to_dict())


@registry_app.command("revoke-terminal")
def revoke_terminal(terminal_id: str, config: Optional[Path] = ConfigOpt, dsn: Optional[str] = DsnOpt,
                    as_json: bool = typer.Option(False, "--json")) -> None:
    """Revoke a terminal: every registry process refuses it from its next request on."""
    from edge.registry.server import open_registry_store
    from edge.registry.service import RegistryService

    try:
        store = open_registry_store(_cfg(config, dsn))
        try:
            record = RegistryService(store).revoke_terminal(terminal_id, "admin:cli")
        finally:
            store.close()
    except BiogateError as exc:
        fail(exc, as_json)
    print_json({"terminal_id": record.id, "status": record.status}) if as_json else \
        typer.echo(f"terminal {record.id} revoked")


@registry_app.command("verify")
def registry_verify(config: Optional[Path] = ConfigOpt, dsn: Optional[str] = DsnOpt,
                    as_json: bool = typer.Option(False, "--json")) -> None:
    """Check the registry's audit chain and every terminal's chain as the registry holds it; exit 1 if any fails."""
    from edge.registry.server import open_registry_store
    from edge.registry.service import RegistryService

    try:
        store = open_registry_store(_cfg(config, dsn))
        try:
            result = RegistryService(store).verify()
        finally:
            store.close()
    except BiogateError as exc:
        fail(exc, as_json)
    ok = result["registry"]["ok"] and all(t["ok"] for t in result["terminals"].values())
    if as_json:
        print_json({"ok": ok, **result})
    else:
        typer.echo(f"registry chain: {'OK' if result['registry']['ok'] else 'BROKEN'}")
        for tid, r in result["terminals"].items():
            typer.echo(f"  {tid}: {'OK' if r['ok'] else 'BROKEN at seq ' + str(r['first_bad_seq'])} "
                       f"({r['entries']} entries)")
    raise typer.Exit(0 if ok else 1)

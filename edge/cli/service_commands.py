"""Commands of the edge daemon: serve, demo, audit verify, keys rotate, evidence purge."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edge.cli.app import app, audit_app, fail, print_json
from edge.config import load_config
from edge.errors import BiogateError

keys_app = typer.Typer(help="Data keys (AES-256-GCM at rest).", no_args_is_help=True)
evidence_app = typer.Typer(help="Decision evidence (encrypted face crops) and its retention.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(evidence_app, name="evidence")

ConfigOpt = typer.Option(None, "--config", help="TOML configuration file (default: $BIOGATE_CONFIG)")
JsonOpt = typer.Option(False, "--json", help="one JSON object on stdout")


@audit_app.command("verify")
def audit_verify(db: Optional[Path] = typer.Option(None, "--db", help="database file (default: from config)"),
                 config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt) -> None:
    """Check the hash chain; exit 1 naming the first bad seq if any entry was edited, deleted or moved. In a
    fleet, also check that the chain holds the head the registry anchored (a rewritten chain does not)."""
    from edge.audit import verify_database
    from edge.store import db_path, load_secrets

    anchor = None
    try:
        cfg = load_config(config)
        if db is not None:      # a terminal's state folder: the database and, beside it, the secrets with the key
            cfg = cfg.model_copy(update={"paths": cfg.paths.model_copy(update={"state_dir": db.resolve().parent})})
        path = db or db_path(cfg)
        result = verify_database(path, load_secrets(cfg, create=False).audit_key)   # the key is not in the file
        if result.ok and cfg.fleet.registry_url:
            anchor = _check_anchor(cfg, path)
    except BiogateError as exc:
        fail(exc, as_json)
    ok = result.ok and (anchor is None or anchor["ok"])
    if as_json:
        print_json({"db": str(path), **result.to_dict(), **({"anchor": anchor} if anchor else {}), "ok": ok})
    elif not result.ok:
        typer.echo(f"audit chain BROKEN at seq {result.first_bad_seq}: {result.reason} "
                   f"({result.entries} entries verified before it)", err=True)
    elif anchor and not anchor["ok"]:
        typer.echo(f"audit chain does NOT hold the registry's anchor (seq {anchor['seq']}): {anchor['reason']}",
                   err=True)
    else:
        typer.echo(f"audit chain OK: {result.entries} entries, head seq {result.head_seq} {result.head_hash}"
                   + (f"; holds the registry's anchor at seq {anchor['seq']} ({anchor['source']})" if anchor else ""))
    raise typer.Exit(0 if ok else 1)


def _check_anchor(cfg, path: Path) -> dict:
    """The registry's anchor of this terminal's chain (asked online; the last one received when offline)."""

    from edge.fleet.link import ANCHOR_HASH, AUDIT_ACKED_SEQ, FleetLink, RegistryUnavailable, load_credentials
    from edge.fleet.link import local_anchor_check
    from edge.store import open_store, state_path

    with open_store(cfg) as store:
        link = FleetLink(cfg.fleet, store, load_credentials(state_path(cfg, cfg.fleet.credentials_file)),
                         usd_rates=cfg.policy.usd_rates)
        try:
            anchor, source = link.registry_anchor(), "asked the registry"
        except RegistryUnavailable:
            with store.transaction() as tx:
                anchor = (int(tx.sync_get(AUDIT_ACKED_SEQ, "0")), tx.sync_get(ANCHOR_HASH, "") or "")
            source = "last anchor received (the registry did not answer)"
        with store.transaction() as tx:
            reason = local_anchor_check(iter(tx.audit_entries(max(0, anchor[0] - 1), 1)), anchor)
    return {"ok": reason is None, "seq": anchor[0], "source": source, "reason": reason}


@keys_app.command("rotate")
def keys_rotate(config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt) -> None:
    """Make a new data key active, re-encrypt every blob, retire the old keys that seal nothing any more (safe
    while the daemon runs: edge.store.rotation)."""
    from edge.store import load_secrets, open_store
    from edge.store.rotation import rotate_data_key

    try:
        cfg = load_config(config)
        if cfg.keys.data_key:
            raise BiogateError("the data key comes from configuration (keys.data_key); rotate it there",
                               code="config.invalid")
        secrets = load_secrets(cfg)
        with open_store(cfg, secrets) as store:
            out = rotate_data_key(store, secrets.path, actor="admin:cli")
    except BiogateError as exc:
        fail(exc, as_json)
    if as_json:
        print_json(out)
    else:
        counts = out["reencrypted"]
        kept = f"; kept {len(out['kept_key_ids'])} key(s) still sealing quarantined blobs" if out["kept_key_ids"] else ""
        typer.echo(f"active key {out['active_key_id']}; re-encrypted {counts['templates']} templates and "
                   f"{counts['evidence']} evidence blobs; retired {len(out['retired_key_ids'])} key(s){kept}")


@evidence_app.command("purge")
def evidence_purge(config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt) -> None:
    """Delete evidence past its retention date (the daemon also does this on a schedule)."""
    from edge.service.retention import purge_expired_evidence
    from edge.store import open_store

    try:
        cfg = load_config(config)
        with open_store(cfg) as store:
            purged = purge_expired_evidence(store, actor="admin:cli")
    except BiogateError as exc:
        fail(exc, as_json)
    if as_json:
        print_json({"purged": len(purged)})
    else:
        typer.echo(f"purged {len(purged)} evidence item(s)")


@app.command("serve")
def serve(config: Optional[Path] = ConfigOpt,
          simulated: bool = typer.Option(False, "--simulated", help="start the simulator's devices first (camera, "
                                                                    "fingerprint module, dispenser) and use them"),
          host: Optional[str] = typer.Option(None, "--host", help="override service.host"),
          port: Optional[int] = typer.Option(None, "--port", help="override service.port (0 = any free port)"),
          ready_file: Optional[Path] = typer.Option(None, "--ready-file", help="write {url, ...} as JSON here once "
                                                                               "the API is listening"),
          registry: Optional[str] = typer.Option(None, "--registry", help="the fleet registry's URL (overrides "
                                                                          "fleet.registry_url): a terminal in a fleet")
          ) -> None:
    """Run the edge daemon (HTTP API; with --simulated, against the hardware simulator; with --registry, as a
    terminal of a fleet)."""
    from edge.cli.plugins import rig_starter
    from edge.service.server import run_daemon

    rig = None
    try:
        cfg = load_config(config)
        if registry:
            cfg = cfg.model_copy(update={"fleet": cfg.fleet.model_copy(update={"registry_url": registry})})
        if simulated:   # the rig first, then the daemon pointed at its devices as at real hardware
            rig = rig_starter()(cfg)
            cfg = rig.config
        run_daemon(cfg, host=host, port=port, ready_file=ready_file,
                   announce={"simulator": rig.addresses()} if rig else None)
    except BiogateError as exc:
        fail(exc)
    finally:
        if rig is not None:
            rig.close()

"""`biogate operators ...`: the console's operator accounts (an administrator's job, on the terminal).

    biogate operators add alice --role teller          # asks for the password twice
    echo "$PW" | biogate operators add alice --role teller --password-stdin
    biogate operators list | disable NAME | enable NAME | reset NAME
    biogate operators add alma --role auditor --registry    # an account of the fleet registry's console

Every change is audited (actor `admin:cli`); passwords are argon2id-hashed (edge.service.operators).
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from edge.cli.app import app, fail, print_json
from edge.config import load_config
from edge.errors import BiogateError
from edge.service.operators import public

operators_app = typer.Typer(help="Console operator accounts (tellers, auditors, administrators).",
                            no_args_is_help=True)
app.add_typer(operators_app, name="operators")

ConfigOpt = typer.Option(None, "--config", help="TOML configuration file (default: $BIOGATE_CONFIG)")
JsonOpt = typer.Option(False, "--json", help="one JSON object on stdout")
StdinOpt = typer.Option(False, "--password-stdin", help="read the password from the first line of stdin")
RegistryOpt = typer.Option(False, "--registry", help="the fleet registry's accounts (registry.dsn), not this "
                                                   "terminal's")
CLI_ACTOR = "admin:cli"


@contextmanager
def _accounts(config: Optional[Path], registry: bool = False):
    from edge.service.operators import OperatorAccounts

    cfg = load_config(config)
    if registry:
        from edge.registry.server import open_registry_store
        store = open_registry_store(cfg)
    else:
        from edge.store import load_secrets, open_store
        store = open_store(cfg, load_secrets(cfg))
    with store:
        yield OperatorAccounts(store, cfg.console)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@operators_app.command("add")
def add(name: str, role: str = typer.Option(..., "--role", help="teller | auditor | admin"),
        password_stdin: bool = StdinOpt, config: Optional[Path] = ConfigOpt, registry: bool = RegistryOpt,
        as_json: bool = JsonOpt) -> None:
    """Create an operator account."""
    try:
        with _accounts(config, registry) as accounts:
            operator = accounts.add(name, role, _password(password_stdin), actor=CLI_ACTOR)
    except BiogateError as exc:
        fail(exc, as_json)
    print_json(public(operator)) if as_json else typer.echo(f"operator {operator.name} ({operator.role}) added")


@operators_app.command("list")
def list_(config: Optional[Path] = ConfigOpt, registry: bool = RegistryOpt,
        as_json: bool = JsonOpt) -> None:
    """Every operator account (never the password hashes)."""
    try:
        with _accounts(config, registry) as accounts:
            operators = accounts.list()
    except BiogateError as exc:
        fail(exc, as_json)
    if as_json:
        print_json({"operators": [public(o) for o in operators]})
        return
    for o in operators:
        locked = " locked" if o.locked_until else ""
        typer.echo(f"{o.name:24} {o.role:8} {o.status}{locked}  last sign-in {o.last_login_at or '-'}")


def _set_status(name: str, status: str, config: Optional[Path], registry: bool, as_json: bool) -> None:
    try:
        with _accounts(config, registry) as accounts:
            operator = accounts.set_status(name, status, actor=CLI_ACTOR)
    except BiogateError as exc:
        fail(exc, as_json)
    print_json(public(operator)) if as_json else typer.echo(f"operator {name} {status}")


@operators_app.command("disable")
def disable(name: str, config: Optional[Path] = ConfigOpt, registry: bool = RegistryOpt,
        as_json: bool = JsonOpt) -> None:
    """Disable an account (it can no longer sign in)."""
    _set_status(name, "disabled", config, registry, as_json)


@operators_app.command("enable")
def enable(name: str, config: Optional[Path] = ConfigOpt, registry: bool = RegistryOpt,
        as_json: bool = JsonOpt) -> None:
    """Enable a disabled account again."""
    _set_status(name, "active", config, registry, as_json)


@operators_app.command("reset")
def reset(name: str, password_stdin: bool = StdinOpt, config: Optional[Path] = ConfigOpt,
          registry: bool = RegistryOpt, as_json: bool = JsonOpt) -> None:
    """Set a new password (this also lifts a lock after wrong passwords)."""
    try:
        with _accounts(config, registry) as accounts:
            operator = accounts.reset_password(name, _password(password_stdin), actor=CLI_ACTOR)
    except BiogateError as exc:
        fail(exc, as_json)
    print_json(public(operator)) if as_json else typer.echo(f"operator {name}: password reset")

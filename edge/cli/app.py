"""The `biogate` application and its command groups.

Command modules import the group they extend from here and decorate their functions onto it;
`edge.cli.main` imports every command module and the plugins' commands (edge.cli.plugins: the simulator's
`sim` group and `demo`), so this file stays free of command code.

May import: everything of the product below it (edge.service, edge.evaluation, edge.config, ...); never the
simulator (it registers itself through entry points).
"""
from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer

from edge.errors import BiogateError

app = typer.Typer(
    name="biogate",
    help="Biometric identity verification for ATMs and cash desks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
face_app = typer.Typer(help="Face verification.", no_args_is_help=True)
finger_app = typer.Typer(help="Fingerprint verification.", no_args_is_help=True)
eval_app = typer.Typer(help="Measure error rates on a data set (ISO/IEC 19795-1 / 30107-3).", no_args_is_help=True)
bench_app = typer.Typer(help="Speed benchmarks against the reference peers.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)

app.add_typer(face_app, name="face")
app.add_typer(finger_app, name="finger")
app.add_typer(eval_app, name="eval")
app.add_typer(bench_app, name="bench")
app.add_typer(audit_app, name="audit")


def print_json(obj: Any) -> None:
    """One JSON object on one line: what machines read."""
    sys.stdout.write(json.dumps(obj, sort_keys=False, default=str) + "\n")


def fail(error: BiogateError, as_json: bool = False, exit_code: int = 2) -> NoReturn:
    """Report a biogate error cleanly (no traceback) and exit."""
    if as_json:
        print_json({"error": error.to_dict()})
    else:
        typer.echo(f"error: {error.message} ({error.code})", err=True)
    raise typer.Exit(exit_code)

"""What the command line finds through entry points (pyproject.toml), so the product never imports the
simulator, which sits above it:

    biogate.commands   register(app): adds command groups (the simulator's `sim` and `demo`)
    biogate.rigs       start_rig(cfg, **options) -> a running rig: `.config` (the configuration pointed at its
                       devices), `.addresses()`, `.close()` (what `biogate serve --simulated` starts first)
"""
from __future__ import annotations

from importlib.metadata import entry_points

import typer

from edge.errors import ConfigError

COMMANDS_GROUP = "biogate.commands"
RIGS_GROUP = "biogate.rigs"


def register_commands(app: typer.Typer) -> None:
    for ep in entry_points(group=COMMANDS_GROUP):
        ep.load()(app)


def rig_starter(name: str = "simulator"):
    found = [ep for ep in entry_points(group=RIGS_GROUP) if ep.name == name]
    if not found:
        raise ConfigError(f"no simulated rig {name!r} is installed (entry point group {RIGS_GROUP}); "
                          "install biogate with its simulator (`make setup`)")
    return found[0].load()

"""A fleet in one process: a throwaway PostgreSQL, the registry, and simulated terminals pointed at it.

    with FleetWorld(cfg, tmp_path, terminals=["BRANCH-01", "ATM-0002"]) as world:
        world.terminals["ATM-0002"].url, world.registry_url, world.registry_keys["admin"]
        world.stop_registry(); ...; world.start_registry()     # the registry goes away and comes back

For the fleet tests and `biogate demo --fleet`. Each terminal is a `SimulatedTerminal` (its own devices, its own
SQLite state folder) registered with the registry exactly as a bank would do it (`add-terminal`, credentials
saved 0600 in its state folder).
"""
from __future__ import annotations

import json
import os
import secrets as pysecrets
from pathlib import Path

from edge.config import Config, _deep_merge
from edge.registry.server import RegistryThread
from edge.service.auth import ROLES
from simulator.pgserver import ThrowawayPostgres
from simulator.terminal import SimulatedTerminal


class FleetWorld:
    def __init__(self, base: Config, root: Path, terminals: list[str], *, rig_options: dict | None = None,
                 terminal_overrides: dict | None = None, postgres: ThrowawayPostgres | None = None):
        self.base = base
        self.root = Path(root)
        self.names = list(terminals)
        self.rig_options = dict(rig_options or {})
        self.terminal_overrides = dict(terminal_overrides or {})
        self._own_pg = postgres is None
        self.pg = postgres
        self.registry_keys = {role: pysecrets.token_urlsafe(24) for role in ROLES}
        self.registry: RegistryThread | None = None
        self.registry_port = 0
        self.terminals: dict[str, SimulatedTerminal] = {}

    # -- the registry -----------------------------------------------------------------------------------
    def registry_config(self) -> Config:
        return Config.model_validate(_deep_merge(self.base.model_dump(mode="json"), {
            "paths": {"state_dir": str(self.root / "registry")},
            "registry": {"dsn": self.pg.dsn, "port": self.registry_port, "max_change_wait_s": 5.0},
            "keys": {"api_keys": self.registry_keys}}))

    @property
    def registry_url(self) -> str:
        return f"http://127.0.0.1:{self.registry_port}"

    def start_registry(self) -> None:
        self.registry = RegistryThread(self.registry_config()).__enter__()
        self.registry_port = int(self.registry.url.rsplit(":", 1)[1])

    def stop_registry(self) -> None:
        if self.registry is not None:
            self.registry.__exit__(None, None, None)
            self.registry = None

    # -- terminals ------------------------------------------------------------------------------------------
    def terminal_config(self, name: str) -> Config:
        state = self.root / name
        state.mkdir(parents=True, exist_ok=True)
        return Config.model_validate(_deep_merge(self.base.model_dump(mode="json"), _deep_merge({
            "terminal_id": name, "paths": {"state_dir": str(state)}, "service": {"port": 0},
            "bridge": {"enabled": False},
            "fleet": {"registry_url": self.registry_url, "change_wait_s": 2.0, "upload_interval_s": 0.5,
                      "retry_max_s": 1.0, "online_grace_s": 5.0, "request_timeout_s": 3.0}},
            self.terminal_overrides)))

    def add_terminal(self, name: str) -> SimulatedTerminal:
        cfg = self.terminal_config(name)
        creds = self.registry.service.add_terminal(name, "admin:fleet-world")
        path = Path(cfg.paths.state_dir) / cfg.fleet.credentials_file
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(creds.to_dict(), fh)
        terminal = SimulatedTerminal(cfg, **self.rig_options).__enter__()
        self.terminals[name] = terminal
        return terminal

    # -- lifecycle ------------------------------------------------------------------------------------------
    def __enter__(self) -> "FleetWorld":
        try:
            if self.pg is None:
                self.pg = ThrowawayPostgres().start()
            self.start_registry()
            for name in self.names:
                self.add_terminal(name)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for terminal in self.terminals.values():
            try:
                terminal.__exit__(None, None, None)
            except Exception:
                pass
        self.terminals.clear()
        self.stop_registry()
        if self._own_pg and self.pg is not None:
            self.pg.close()

    def __exit__(self, *exc) -> None:
        self.close()

"""A simulated terminal in this process: the simulator's devices first, then a daemon pointed at them.

    with SimulatedTerminal(cfg, camera_transport="inprocess") as t:
        t.url, t.keys["terminal"], t.rig.present(face="lfw:Colin_Powell/2")

This is how the simulator wraps the daemon (never the other way round): the daemon gets a configuration
whose devices are the rig's, exactly as it would get real hardware, and API keys chosen here, so callers
need nothing but its URL and those keys.
"""
from __future__ import annotations

import secrets as pysecrets

from edge.config import Config
from edge.service.auth import ROLES
from edge.service.server import DaemonThread
from simulator.rig import Rig, start_rig


def with_api_keys(cfg: Config) -> Config:
    """`cfg` with an API key for every role that has none configured (fresh random keys)."""
    keys = {role: cfg.keys.api_keys.get(role) or pysecrets.token_urlsafe(24) for role in ROLES}
    return cfg.model_copy(update={"keys": cfg.keys.model_copy(update={"api_keys": keys})})


class SimulatedTerminal:
    def __init__(self, cfg: Config, **rig_options):
        cfg = with_api_keys(cfg)
        self.keys: dict[str, str] = dict(cfg.keys.api_keys)
        self.rig: Rig = start_rig(cfg, **rig_options)
        try:
            self.daemon = DaemonThread(self.rig.config, announce={"simulator": self.rig.addresses()})
        except BaseException:
            self.rig.close()
            raise
        self.url = self.daemon.url

    def addresses(self) -> dict:
        """The daemon's addresses (url, xfs4iot services) and the simulated devices' (under "simulator")."""
        return self.daemon.addresses()

    def __enter__(self) -> "SimulatedTerminal":
        try:
            self.daemon.__enter__()
        except BaseException:
            self.rig.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.daemon.__exit__(*exc)
        finally:
            self.rig.close()

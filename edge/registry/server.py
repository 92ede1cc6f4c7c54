"""Running the registry: its secrets, its PostgreSQL store, the app, uvicorn.

    run_registry(cfg)                           # `biogate registry serve`
    with RegistryThread(cfg) as r: r.url        # in a thread (tests, `biogate demo --fleet`)
    init_registry(cfg)                          # `biogate registry init`: create or migrate the schema
"""
from __future__ import annotations

import logging
import threading
import time

import uvicorn

from edge.config import Config
from edge.errors import BiogateError
from edge.registry.app import create_registry_app
from edge.registry.console import RegistryDesk
from edge.registry.service import RegistryService
from edge.decision.calibration import load_calibration
from edge.search.service import SearchService
from edge.service.logs import configure_logging
from edge.service.notify import Notifier
from edge.service.server import BackgroundServer, GracefulServer, bind_socket
from edge.store.postgres import PostgresStore
from edge.store.secrets import KeyFileWatcher, Secrets, load_secrets

log = logging.getLogger("biogate.registry")


def registry_settings(cfg: Config) -> Config:
    """`cfg` with the registry's own secrets file (its data keys and API keys are not a terminal's)."""
    return cfg.model_copy(update={"keys": cfg.keys.model_copy(update={"secrets_file": cfg.registry.secrets_file})})


def registry_secrets(cfg: Config) -> Secrets:
    return load_secrets(registry_settings(cfg))


def open_registry_store(cfg: Config, *, migrate: bool = False) -> PostgresStore:
    settings = registry_settings(cfg)
    secrets = load_secrets(settings)
    return PostgresStore(cfg.registry.dsn, secrets.keyring(), max_connections=cfg.registry.pool_max,
                         keyring_loader=KeyFileWatcher(settings), migrate=migrate, audit_key=secrets.audit_key)


def init_registry(cfg: Config) -> int:
    """Create or migrate the schema; the schema version now."""
    store = open_registry_store(cfg, migrate=True)
    try:
        return store.schema_version()
    finally:
        store.close()


class Registry:
    def __init__(self, cfg: Config, *, host: str | None = None, port: int | None = None):
        self.cfg = cfg
        secrets = registry_secrets(cfg)
        self.store = open_registry_store(cfg, migrate=True)
        try:
            self.search = SearchService(self.store, load_calibration(cfg.policy.calibration_file), cfg.search,
                                        retention_days=cfg.storage.evidence_retention_days)
            self.search.sync()   # the bank's face index, built from the sealed templates at start
            self.service = RegistryService(self.store, search=self.search, duplicate_llr=cfg.service.duplicate_llr)
            console = RegistryDesk(cfg, self.service, secrets.active_data_key) if cfg.console.enabled else None
            self.app = create_registry_app(self.service, secrets.api_keys, max_wait_s=cfg.registry.max_change_wait_s,
                                           search=self.search, console=console)
            self.sock = bind_socket(host or cfg.registry.host, cfg.registry.port if port is None else port)
        except BaseException:
            self.store.close()
            raise
        addr = self.sock.getsockname()
        self.url = f"http://{addr[0]}:{addr[1]}"
        self.server = GracefulServer(uvicorn.Config(self.app, log_config=None, access_log=False,
                                                    timeout_graceful_shutdown=5))

    def is_healthy(self) -> bool:
        """The watchdog's probe: PostgreSQL answers."""
        try:
            self.store.schema_version()
            return True
        except BiogateError:
            return False

    def close(self) -> None:
        self.store.close()
        self.sock.close()


def run_registry(cfg: Config, *, host: str | None = None, port: int | None = None, on_ready=None) -> None:
    configure_logging(cfg.service.log_level)
    registry = Registry(cfg, host=host, port=port)
    log.info("biogate registry listening", extra={"url": registry.url})
    notifier = Notifier.from_environment()

    def announce() -> None:
        while not registry.server.started:
            time.sleep(0.05)
        if on_ready is not None:
            on_ready(registry.url)
        if notifier is not None:
            notifier.ready(f"listening on {registry.url}")
            notifier.keep_alive(registry.is_healthy)
    threading.Thread(target=announce, daemon=True).start()
    try:
        registry.server.run(sockets=[registry.sock])
    finally:
        if notifier is not None:
            notifier.stopping()
        registry.close()


class RegistryThread(BackgroundServer):
    """The registry serving from a background thread of this process (tests, `biogate demo --fleet`)."""

    def __init__(self, cfg: Config, **kw):
        self.registry = Registry(cfg, **kw)
        self.url = self.registry.url
        self.service = self.registry.service
        super().__init__(self.registry.server, self.registry.sock, self.registry.close, "biogate-registry")

"""Everything one daemon instance holds, built once from the configuration and closed once.

    runtime = Runtime.start(cfg)          # store, secrets, models, devices, services, background jobs
    app = create_app(runtime)             # edge.service.app
    ...
    runtime.close()

Background jobs (one thread): purge evidence past its retention date every `storage.purge_interval_s`,
and make unused dispense tokens useless once their TTL is over.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from typing import Protocol

from edge.config import Config
from edge.decision.calibration import Calibration
from edge.errors import BiogateError
from edge.fleet.link import FleetLink, load_credentials
from edge.fleet.outbox import NO_OUTBOX, Outbox
from edge.models import model_path
from edge.service.auth import KeyChecker
from edge.service.biometrics import BiometricCore
from edge.service.devices import TerminalDevices
from edge.service.enrolment import EnrolmentService
from edge.service.lockouts import LockoutDesk
from edge.service.metrics import ServiceMetrics
from edge.service.operators import OperatorAccounts
from edge.service.records import AuditRecords
from edge.service.retention import purge_expired_evidence
from edge.service.verification import VerificationService
from edge.search.service import SearchService
from edge.store import Secrets, Store, load_secrets, open_store, state_path

log = logging.getLogger("biogate.runtime")


class Closable(Protocol):
    def close(self) -> None: ...


@dataclass
class Runtime:
    cfg: Config
    secrets: Secrets
    store: Store
    core: BiometricCore
    devices: TerminalDevices
    metrics: ServiceMetrics
    keys: KeyChecker
    verification: VerificationService
    enrolment: EnrolmentService
    lockouts: LockoutDesk
    records: AuditRecords
    fleet: FleetLink | None = None            # a terminal in a fleet (`[fleet] registry_url`), else on its own
    search: SearchService | None = None       # the 1:N face index and the investigator's scan (edge.search)
    _stop: threading.Event = field(default_factory=threading.Event)
    _jobs: threading.Thread | None = None
    _attached: list[Closable] = field(default_factory=list)   # closed with the runtime (the XFS4IoT bridge)

    @classmethod
    def start(cls, cfg: Config, *, calibration: Calibration | None = None, background: bool = True) -> "Runtime":
        secrets = load_secrets(cfg)
        store = open_store(cfg, secrets)
        try:
            fleet, outbox = None, NO_OUTBOX
            if cfg.fleet.registry_url:
                credentials = load_credentials(state_path(cfg, cfg.fleet.credentials_file))
                fleet, outbox = FleetLink(cfg.fleet, store, credentials, usd_rates=cfg.policy.usd_rates), Outbox()
            core = BiometricCore(cfg, calibration)
            devices = TerminalDevices(cfg.devices)
            metrics = ServiceMetrics()
            store.tamper_listeners.append(lambda report: metrics.storage_tampered.labels(report.table,
                                                                                        report.code).inc())
            search = SearchService(store, core.calibration, cfg.search,
                                   retention_days=cfg.storage.evidence_retention_days)
            search.sync()   # built from the sealed face templates at start
            runtime = cls(cfg, secrets, store, core, devices, metrics, KeyChecker(secrets.api_keys),
                          VerificationService(cfg, store, core, devices, metrics, secrets.dispense_hmac_key,
                                              outbox=outbox, fleet=fleet),
                          EnrolmentService(cfg, store, core, devices, metrics, secrets.template_signing_key,
                                           outbox=outbox, fleet=fleet, search=search),
                          LockoutDesk(store, outbox, fleet), AuditRecords(store), fleet, search)
            if fleet is not None:
                metrics.watch_fleet(fleet.status)
        except BaseException:
            store.close()
            raise
        with store.transaction() as tx:
            tx.audit("system:daemon", "daemon.started", {"terminal_id": cfg.terminal_id})
        if fleet is not None and background:
            fleet.start()
            runtime.attach(fleet)
        if background:
            runtime._jobs = threading.Thread(target=runtime._background, name="biogate-jobs", daemon=True)
            runtime._jobs.start()
            threading.Thread(target=runtime._warm_up, name="biogate-warm-up", daemon=True).start()
        return runtime

    def _warm_up(self) -> None:
        """Models, the matcher's compiled kernels and the devices get ready while the API already answers."""
        factors = {f for op in self.cfg.policy.operations.values()
                   for rule in (op.factors, op.factors_above or "none") for f in rule.split("+")
                   if f in ("face", "finger")}
        try:
            self.core.warm_up(factors)
        except BiogateError as exc:
            log.warning("warm-up failed", extra={"error_code": exc.code})
        for kind in ("camera", "fingerprint", "dispenser"):
            if self._stop.is_set() or not self.devices.configured(kind):
                continue
            try:
                with self.devices.use(kind):
                    pass
            except BiogateError as exc:
                log.warning("device not ready at start-up", extra={"device": kind, "error_code": exc.code})

    def _background(self) -> None:
        interval = self.cfg.storage.purge_interval_s
        waited = interval  # purge once at start-up, then on the interval
        while not self._stop.is_set():
            try:
                if waited >= interval:
                    waited = 0.0
                    purged = self.purge_evidence()
                    if purged:
                        log.info("evidence purged", extra={"count": len(purged)})
                self.verification.expire_tokens()
            except BiogateError as exc:
                log.warning("background job failed", extra={"error_code": exc.code})
            except Exception:  # the job thread must survive anything and keep retention running
                log.exception("background job crashed")
            self._stop.wait(1.0)
            waited += 1.0

    def audit_bridge(self, event: str, details: dict) -> None:
        """What the XFS4IoT bridge reports (every Read, Match, token): one audit entry each."""
        with self.store.transaction() as tx:
            tx.audit("xfs4iot-client", event, details)

    def check_operator(self, name: str, role: str) -> None:
        """The operator an API key's caller named is an active account of that key's role (edge.service.deps)."""
        OperatorAccounts(self.store, self.cfg.console).check_named(name, role)

    def attach(self, component: Closable) -> None:
        """Close `component` with the runtime (before the devices and the store it may use)."""
        self._attached.append(component)

    def purge_evidence(self, actor: str = "system:retention") -> list[str]:
        """Delete evidence past its retention date (audited); the ids removed."""
        purged = purge_expired_evidence(self.store, actor=actor)
        self.metrics.evidence_purged.inc(len(purged))
        return purged

    def is_healthy(self) -> bool:
        """The watchdog's probe: the store answers a transaction (a hung store or a dead disk fails it)."""
        try:
            with self.store.transaction() as tx:
                tx.audit_entries(limit=1)
            return not self._stop.is_set()
        except BiogateError:
            return False

    def health(self) -> dict:
        devices = self.devices.health()
        try:
            for name in self.cfg.face.model_artifacts:
                model_path(name, self.cfg.paths.models_dir)
            models = {"status": "ok"}
        except BiogateError as exc:
            models = {"status": "error", "code": exc.code}
        try:
            with self.store.transaction() as tx:
                tx.audit_entries(limit=1)
            storage = {"status": "ok", "schema_version": self.store.schema_version()}
        except BiogateError as exc:
            storage = {"status": "error", "code": exc.code}
        ok = models["status"] == "ok" and storage["status"] == "ok" and all(
            d.get("status") in ("ok", "not_configured") for d in devices.values())
        out = {"status": "ok" if ok else "degraded", "terminal_id": self.cfg.terminal_id, "devices": devices,
               "models": models, "storage": storage}
        if self.fleet is not None:   # the registry (online/offline), the outbox length, the last sync time
            fleet = self.fleet.status()
            out.update(registry=fleet["registry"], outbox_length=fleet["outbox_length"],
                       last_sync_at=fleet["last_sync_at"], fleet=fleet)
        return out

    def close(self) -> None:
        self._stop.set()
        if self._jobs is not None:
            self._jobs.join(timeout=5)
        for component in reversed(self._attached):
            try:
                component.close()
            except Exception:
                log.warning("could not stop an attached component", extra={"component": type(component).__name__})
        self.verification.tokens.close()     # an unspent token is made useless, not left to outlive the daemon
        self.devices.close()
        try:
            with self.store.transaction() as tx:
                tx.audit("system:daemon", "daemon.stopped", {"terminal_id": self.cfg.terminal_id})
        except BiogateError:
            pass
        self.store.close()

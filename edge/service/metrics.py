"""Prometheus metrics of one daemon instance (its own registry, so tests can run several apps)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from edge.store.base import parse_iso

__all__ = ["ServiceMetrics", "CONTENT_TYPE_LATEST"]


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.verifications = Counter("biogate_verifications", "Verification attempts by outcome",
                                     ["outcome", "operation"], registry=r)
        self.verification_seconds = Histogram(
            "biogate_verification_seconds", "Wall time of one verification attempt (capture to decision)",
            buckets=(0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60), registry=r)
        self.stage_seconds = Histogram("biogate_stage_seconds", "Time per verification stage", ["stage"],
                                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                                       registry=r)
        self.device_errors = Counter("biogate_device_errors", "Device errors by device and code",
                                     ["device", "code"], registry=r)
        self.lockouts = Counter("biogate_lockouts", "Cards locked (kind=locked) or disabled (kind=disabled)",
                                ["kind"], registry=r)
        self.liveness = Counter("biogate_liveness_checks", "Liveness checks by result", ["result"], registry=r)
        self.enrolments = Counter("biogate_enrolments", "Enrolment captures by modality and outcome",
                                  ["modality", "outcome"], registry=r)
        self.sessions_open = Gauge("biogate_sessions_open", "Verification sessions currently open", registry=r)
        self.storage_tampered = Counter("biogate_storage_tampered", "Stored records that failed their integrity "
                                        "check (quarantined or refused), by table and code", ["table", "code"],
                                        registry=r)
        self.evidence_purged = Counter("biogate_evidence_purged", "Evidence items removed by retention",
                                       registry=r)

    def watch_fleet(self, status) -> None:
        """Series of the terminal's link to the fleet registry, read from `status()` at every scrape."""
        online = Gauge("biogate_registry_online", "1 while the fleet registry answers", registry=self.registry)
        outbox = Gauge("biogate_outbox_length", "Items waiting in the outbox for the registry", registry=self.registry)
        synced = Gauge("biogate_last_sync_timestamp_seconds", "Unix time of the last successful exchange with the "
                       "registry", registry=self.registry)
        online.set_function(lambda: 1.0 if status()["registry"] == "online" else 0.0)
        outbox.set_function(lambda: float(status()["outbox_length"]))

        def last_sync() -> float:
            at = status()["last_sync_at"]
            return parse_iso(at).timestamp() if at else 0.0
        synced.set_function(last_sync)

    def render(self) -> bytes:
        return generate_latest(self.registry)

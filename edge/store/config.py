"""The storage and keys sections of the configuration (`[storage]`, `[keys]`), and what the store reads of
the whole configuration (`StoreSettings`, which `edge.config.Config` satisfies)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from pydantic import Field

from edge.sections import Section


class StorageConfig(Section):
    """edge.store: the SQLite file under paths.state_dir and how durable each commit is."""

    db_file: str = Field("biogate.sqlite", description="file name under paths.state_dir (or an absolute path)")
    # WAL + synchronous=FULL: every COMMIT fsyncs the WAL, so a power cut loses nothing committed.
    # NORMAL would only survive process crashes (the last commits could vanish on power loss).
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    busy_timeout_ms: int = Field(5000, ge=0)
    evidence_retention_days: int = Field(180, ge=1, description="NBK: ATM face images kept >= 180 days")
    purge_interval_s: float = Field(3600.0, gt=0, description="how often the daemon purges expired evidence")


class KeysConfig(Section):
    """edge.store / edge.service secrets: data keys (AES-256-GCM at rest), API keys per role, token HMAC key.

    Everything not given here is read from (or created once in) `secrets_file`, 0600, under state_dir.
    Environment: BIOGATE_KEYS__DATA_KEY=<base64 32 bytes>, BIOGATE_KEYS__API_KEYS='{"teller": "..."}', ...
    """

    secrets_file: str = Field("secrets.json", description="file name under paths.state_dir (or absolute)")
    data_key: str | None = Field(None, description="base64 AES-256 key; overrides the secrets file's active key")
    api_keys: dict[str, str] = Field(default_factory=dict, description="role -> API key (terminal/teller/auditor/admin)")
    dispense_hmac_key: str | None = Field(None, description="hex HMAC-SHA256 key shared with the dispenser")
    template_signing_key: str | None = Field(None, description="hex HMAC key signing exported face templates")


class _StatePaths(Protocol):
    @property
    def state_dir(self) -> Path: ...


class StoreSettings(Protocol):
    """The parts of the configuration the store needs: where state lives, how to store, which keys."""

    @property
    def paths(self) -> _StatePaths: ...

    @property
    def storage(self) -> StorageConfig: ...

    @property
    def keys(self) -> KeysConfig: ...

"""Storage: customers, consent, templates, evidence, decisions, lockouts and the audit chain.

`open_store(cfg)` gives the configured backend (SQLite by default, one file under paths.state_dir); `cfg` is
anything with the `paths`, `storage` and `keys` sections (`edge.store.config.StoreSettings`; the whole
`edge.config.Config` satisfies it). May import: edge.audit, edge.errors, edge.sections.
"""
from __future__ import annotations

from pathlib import Path

from edge.store.config import KeysConfig, StorageConfig, StoreSettings
from edge.store.base import (
    Consent, Customer, DecisionRecord, EvidenceMeta, LockoutState, Store, StoredTemplate, TemplateMeta, Transaction,
    iso, new_id, parse_iso, utcnow,
)
from edge.store.secrets import KeyFileWatcher, Secrets, load_secrets, state_path
from edge.store.sqlite import SQLiteStore


def db_path(cfg: StoreSettings) -> Path:
    return state_path(cfg, cfg.storage.db_file)


def open_store(cfg: StoreSettings, secrets: Secrets | None = None) -> SQLiteStore:
    secrets = secrets or load_secrets(cfg)
    return SQLiteStore(db_path(cfg), secrets.keyring(), synchronous=cfg.storage.synchronous,
                       busy_timeout_ms=cfg.storage.busy_timeout_ms,
                       keyring_loader=KeyFileWatcher(cfg), audit_key=secrets.audit_key)


__all__ = [
    "Consent", "Customer", "DecisionRecord", "EvidenceMeta", "LockoutState", "Store", "StoredTemplate",
    "TemplateMeta", "Transaction", "SQLiteStore", "Secrets", "load_secrets", "open_store", "db_path", "iso",
    "new_id", "parse_iso", "utcnow", "state_path", "StorageConfig", "KeysConfig", "StoreSettings",
]

"""Deployment secrets: data keys, API keys per role, the dispense-token HMAC key, the template signing key.

They live in one JSON file (0600, in the 0700 state directory; a file others may read is refused:
edge.store.files) created with fresh random values on first use; any value given in configuration (`[keys]` or BIOGATE_KEYS__*) takes precedence. Writes are atomic
(temporary file, fsync, rename) so a crash never leaves a half-written key file.
"""
from __future__ import annotations

import base64
import json
import os
import secrets as pysecrets
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import ConfigError
from edge.store.config import StoreSettings
from edge.store.crypto import KeyRing, decode_key, key_id_for, new_key
from edge.store.files import FILE_MODE, check_private, private_dir

ROLES = ("terminal", "teller", "auditor", "admin", "investigator")


@dataclass
class Secrets:
    path: Path
    data_keys: dict[str, bytes]
    active_data_key: str
    api_keys: dict[str, str]
    dispense_hmac_key: bytes
    template_signing_key: bytes
    audit_key: bytes = b""             # HMAC key of the audit chain (edge.audit.chain)
    bridge_client_token: str = ""      # what XFS4IoT clients present to the bridge (xfs4iot_bridge.host)
    retired: list[str] = field(default_factory=list)

    def keyring(self) -> KeyRing:
        return KeyRing(self.data_keys, self.active_data_key)


def state_path(cfg: StoreSettings, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() else Path(cfg.paths.state_dir) / p


def _write_atomic(path: Path, data: dict) -> None:
    private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    # A leftover temporary file (a crash mid-write, or planted) keeps its own mode under O_CREAT: start afresh,
    # and O_EXCL so nothing can slip in between.
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    os.fchmod(fd, FILE_MODE)   # whatever the umask
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _fresh_file_content() -> dict:
    key = new_key()
    kid = key_id_for(key)
    return {
        "version": 1,
        "data_keys": {kid: base64.b64encode(key).decode()},
        "active_data_key": kid,
        "api_keys": {role: pysecrets.token_urlsafe(24) for role in ROLES},
        "dispense_hmac_key": pysecrets.token_hex(32),
        "template_signing_key": pysecrets.token_hex(32),
        "audit_key": pysecrets.token_hex(32),
        "bridge_client_token": pysecrets.token_urlsafe(32),
    }


def read_secrets_file(path: Path, create: bool = True) -> dict:
    if not path.exists():
        if not create:
            raise ConfigError(f"no secrets file at {path}")
        _write_atomic(path, _fresh_file_content())
    check_private(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"secrets file {path} is unreadable: {exc}") from None
    # Fill roles or keys added by later versions without touching existing values.
    changed = False
    fresh = _fresh_file_content()
    for name in ("dispense_hmac_key", "template_signing_key", "audit_key", "bridge_client_token"):
        if name not in data:
            data[name], changed = fresh[name], True
    for role in ROLES:
        if role not in data.setdefault("api_keys", {}):
            data["api_keys"][role], changed = fresh["api_keys"][role], True
    if not data.get("data_keys"):
        data["data_keys"], data["active_data_key"], changed = fresh["data_keys"], fresh["active_data_key"], True
    if changed:
        _write_atomic(path, data)
    return data


def load_secrets(cfg: StoreSettings, create: bool = True) -> Secrets:
    path = state_path(cfg, cfg.keys.secrets_file)
    data = read_secrets_file(path, create=create)
    keys = {kid: decode_key(b64) for kid, b64 in data["data_keys"].items()}
    active = data["active_data_key"]
    if cfg.keys.data_key:
        override = decode_key(cfg.keys.data_key)
        active = key_id_for(override)
        keys[active] = override
    api_keys = {**data["api_keys"], **cfg.keys.api_keys}
    unknown = set(api_keys) - set(ROLES)
    if unknown:
        raise ConfigError(f"unknown roles in api_keys: {sorted(unknown)} (roles: {', '.join(ROLES)})")
    for role, key in api_keys.items():
        if len(key) < 16:
            raise ConfigError(f"API key for {role} is shorter than 16 characters")
    try:
        hmac_key = bytes.fromhex(cfg.keys.dispense_hmac_key or data["dispense_hmac_key"])
        signing = bytes.fromhex(cfg.keys.template_signing_key or data["template_signing_key"])
        audit_key = bytes.fromhex(data["audit_key"])
    except ValueError:
        raise ConfigError("dispense_hmac_key / template_signing_key / audit_key must be hex") from None
    return Secrets(path, keys, active, api_keys, hmac_key, signing, audit_key, data["bridge_client_token"],
                   list(data.get("retired", [])))


class KeyFileWatcher:
    """The key ring as the key file says *now*: re-read only when the file changed (a `biogate keys rotate` in
    another process), so the daemon seals under the new active key from the moment it is written.

    The stat is cheap enough to make before every seal; a file caught unreadable keeps the last good ring."""

    def __init__(self, cfg: StoreSettings):
        self._cfg = cfg
        self._path = state_path(cfg, cfg.keys.secrets_file)
        self._seen: tuple | None = None
        self._ring: KeyRing | None = None

    def __call__(self) -> KeyRing:
        try:
            st = self._path.stat()
            seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            seen = None
        if self._ring is None or (seen is not None and seen != self._seen):
            try:
                self._ring = load_secrets(self._cfg, create=False).keyring()
                self._seen = seen
            except ConfigError:
                if self._ring is None:
                    raise
        return self._ring


def add_data_key(path: Path) -> str:
    """Step 1 of rotation: add a fresh key and make it active (old keys stay until re-encryption is done)."""
    data = read_secrets_file(path, create=True)
    key = new_key()
    kid = key_id_for(key)
    data["data_keys"][kid] = base64.b64encode(key).decode()
    data["active_data_key"] = kid
    _write_atomic(path, data)
    return kid


def retire_data_keys(path: Path, drop: list[str]) -> list[str]:
    """Step 3 of rotation: remove the keys in `drop` from the key file (never the active one). The caller makes
    sure nothing is sealed with them any more (edge.store.sql.SqlStore.retire_unused_keys)."""
    data = read_secrets_file(path, create=False)
    dropped = sorted(k for k in drop if k in data["data_keys"] and k != data["active_data_key"])
    for kid in dropped:
        del data["data_keys"][kid]
    data["retired"] = sorted(set(data.get("retired", [])) | set(dropped))
    _write_atomic(path, data)
    return dropped

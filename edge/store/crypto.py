"""AES-256-GCM at rest: a key ring (id -> key, one active) and sealing with associated data.

Every blob is stored with the id of the key that sealed it and a fresh 96-bit nonce. The associated
data (AAD) names the row the blob belongs to (table, row id, owner, kind), so a blob copied onto
another row, or a row whose metadata was edited, fails authentication: StorageError storage.tampered.
"""
from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.errors import ConfigError, StorageError

KEY_BYTES = 32
NONCE_BYTES = 12


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def key_id_for(key: bytes) -> str:
    """A stable, non-secret name for a key (first 16 hex of sha256 over a label and the key)."""
    return "k-" + hashlib.sha256(b"biogate-key-id\0" + key).hexdigest()[:16]


def decode_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise ConfigError("data key is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise ConfigError(f"data key must be {KEY_BYTES} bytes (got {len(key)})")
    return key


@dataclass(frozen=True)
class Sealed:
    key_id: str
    nonce: bytes
    ciphertext: bytes


def aad_for(table: str, row_id: str, owner: str, kind: str) -> bytes:
    # Unambiguous: fields are length-prefixed so no two rows share an AAD.
    parts = ["biogate/v1", table, row_id, owner, kind]
    return b"".join(len(p.encode()).to_bytes(2, "big") + p.encode() for p in parts)


class KeyRing:
    def __init__(self, keys: dict[str, bytes], active: str):
        if active not in keys:
            raise ConfigError(f"active data key {active!r} is not in the key ring")
        for kid, key in keys.items():
            if len(key) != KEY_BYTES:
                raise ConfigError(f"data key {kid!r} must be {KEY_BYTES} bytes")
        self._keys = dict(keys)
        self.active = active

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def has(self, key_id: str) -> bool:
        return key_id in self._keys

    def seal(self, plaintext: bytes, aad: bytes) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        return Sealed(self.active, nonce, AESGCM(self._keys[self.active]).encrypt(nonce, bytes(plaintext), aad))

    def open(self, sealed: Sealed, aad: bytes) -> bytes:
        key = self._keys.get(sealed.key_id)
        if key is None:
            raise StorageError(f"blob sealed with unknown key {sealed.key_id!r} (key file missing a retired key?)",
                               code="storage.unknown_key")
        try:
            return AESGCM(key).decrypt(bytes(sealed.nonce), bytes(sealed.ciphertext), aad)
        except InvalidTag:
            raise StorageError("stored blob failed authentication (edited, swapped or wrong key)",
                               code="storage.tampered") from None

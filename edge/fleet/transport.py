"""Terminal credentials and the sealing of templates between a terminal and the registry.

A terminal registered with `biogate registry add-terminal ATM-0002` gets, once:
- a bearer token (the registry keeps only its SHA-256: a 256-bit random token needs no slow hash);
- a 256-bit transport key (the registry keeps it sealed under its data key).

Templates never cross the network in plaintext, whatever the TLS: each one travels AES-256-GCM sealed with the
terminal's own transport key, the associated data naming the direction, the terminal and everything about the
record, so a template sealed for one terminal is useless to another and cannot be replayed as something else.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets as pysecrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.errors import AuthError, InputError
from edge.store.base import ProbeMeta, TemplateMeta
from edge.store.crypto import aad_for

TOKEN_PREFIX = "bgt_"
UP, DOWN = "terminal->registry", "registry->terminal"


@dataclass(frozen=True)
class TerminalCredentials:
    terminal_id: str
    token: str
    transport_key: bytes

    def to_dict(self) -> dict:
        return {"terminal_id": self.terminal_id, "token": self.token,
                "transport_key": base64.b64encode(self.transport_key).decode()}

    @classmethod
    def from_dict(cls, data: dict) -> "TerminalCredentials":
        try:
            key = base64.b64decode(data["transport_key"], validate=True)
            creds = cls(str(data["terminal_id"]), str(data["token"]), key)
        except (KeyError, TypeError, ValueError):
            raise InputError("fleet credentials need terminal_id, token and a base64 transport_key",
                             code="input.fleet_credentials") from None
        if len(key) != 32 or not creds.token.startswith(TOKEN_PREFIX):
            raise InputError("fleet credentials are malformed", code="input.fleet_credentials")
        return creds


def new_credentials(terminal_id: str) -> TerminalCredentials:
    return TerminalCredentials(terminal_id, TOKEN_PREFIX + pysecrets.token_urlsafe(32), AESGCM.generate_key(256))


def token_hash(token: str) -> str:
    return hashlib.sha256(b"biogate-terminal-token\0" + token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(token_hash(token), stored_hash)


def _aad(direction: str, terminal_id: str, m: TemplateMeta) -> bytes:
    return aad_for("transport", m.id, m.customer_id, f"{direction}|{terminal_id}|{m.modality}|{m.position}|"
                                                      f"{m.sample_index}|{m.format}|{m.quality!r}|{m.created_at}")


def seal_template(key: bytes, direction: str, terminal_id: str, meta: TemplateMeta, payload: bytes) -> dict:
    return {"id": meta.id, "customer_id": meta.customer_id, "modality": meta.modality, "position": meta.position,
            "sample_index": meta.sample_index, "format": meta.format, "quality": meta.quality,
            "created_at": meta.created_at, **_sealed(key, payload, _aad(direction, terminal_id, meta))}


def open_template(key: bytes, direction: str, terminal_id: str, wire: dict) -> tuple[TemplateMeta, bytearray]:
    try:
        meta = TemplateMeta(str(wire["id"]), str(wire["customer_id"]), str(wire["modality"]), str(wire["position"]),
                            int(wire["sample_index"]), str(wire["format"]), float(wire["quality"]),
                            str(wire["created_at"]))
    except (KeyError, TypeError, ValueError):
        raise InputError("malformed sealed template", code="input.fleet_template") from None
    return meta, _open_sealed(key, wire, _aad(direction, terminal_id, meta), "template")


def _sealed(key: bytes, plaintext: bytes, aad: bytes) -> dict:
    """The wire fields of `plaintext` sealed under `aad`: a fresh nonce and the AES-GCM ciphertext, base64."""
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, bytes(plaintext), aad)
    return {"nonce": base64.b64encode(nonce).decode(), "ciphertext": base64.b64encode(ciphertext).decode()}


def _open_sealed(key: bytes, wire: dict, aad: bytes, what: str) -> bytearray:
    """The plaintext of a sealed record on the wire (its nonce and ciphertext, base64) under `aad`."""
    try:
        nonce = base64.b64decode(wire["nonce"], validate=True)
        ciphertext = base64.b64decode(wire["ciphertext"], validate=True)
    except (KeyError, TypeError, ValueError):
        raise InputError(f"malformed sealed {what}", code="input.fleet_template") from None
    try:
        return bytearray(AESGCM(key).decrypt(nonce, ciphertext, aad))
    except InvalidTag:
        raise AuthError(f"a sealed {what} failed authentication (wrong terminal, edited or replayed)",
                        code="auth.fleet_template") from None


# -- probe embeddings (edge.search): the same sealing, the probe's own fields in the associated data ------------
_PROBE_FIELDS = ("id", "decision_id", "terminal_id", "card_ref", "customer_id", "outcome", "created_at", "retain_until")


def _probe_aad(direction: str, terminal_id: str, m: ProbeMeta) -> bytes:
    return aad_for("transport-probe", m.id, m.decision_id, f"{direction}|{terminal_id}|{m.terminal_id}|{m.card_ref}|"
                                                            f"{m.customer_id or ''}|{m.outcome}|{m.created_at}|"
                                                            f"{m.retain_until}")


def seal_probe(key: bytes, direction: str, terminal_id: str, meta: ProbeMeta, embedding: bytes) -> dict:
    return {**{f: getattr(meta, f) for f in _PROBE_FIELDS},
            **_sealed(key, embedding, _probe_aad(direction, terminal_id, meta))}


def open_probe(key: bytes, direction: str, terminal_id: str, wire: dict) -> tuple[ProbeMeta, bytearray]:
    try:
        meta = ProbeMeta(*(None if f == "customer_id" and wire.get(f) is None else str(wire[f]) for f in _PROBE_FIELDS))
    except (KeyError, TypeError, ValueError):
        raise InputError("malformed sealed probe", code="input.fleet_template") from None
    return meta, _open_sealed(key, wire, _probe_aad(direction, terminal_id, meta), "probe")

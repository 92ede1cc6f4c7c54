"""Pure functions of the audit chain: canonical form, entry hash, verification. No I/O here."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

from edge.errors import InputError

GENESIS_HASH = "0" * 64

# Detail keys that would smell of biometric data; audit details describe events, never samples.
_FORBIDDEN_KEYS = {"image", "images", "template", "templates", "embedding", "embeddings", "sample", "samples",
                   "minutiae", "crop", "pixels", "probe"}
_MAX_STRING = 512


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    prev_hash: str
    timestamp: str
    actor: str
    event: str
    details: dict
    hash: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head_seq: int | None = None
    head_hash: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: the same value always gives the same bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(seq: int, prev_hash: str, timestamp: str, actor: str, event: str, details: Mapping) -> str:
    body = canonical_json([seq, prev_hash, timestamp, actor, event, dict(details)])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def check_details(details: Mapping, _path: str = "details") -> None:
    """Refuse details that could carry biometric data: raw bytes, arrays, long blobs, telling key names."""
    for key, value in details.items():
        where = f"{_path}.{key}"
        if str(key).lower() in _FORBIDDEN_KEYS:
            raise InputError(f"audit {where}: biometric data never goes into the audit log", code="input.audit_details")
        _check_value(value, where)


def _check_value(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, int, float)):
        return
    if isinstance(value, str):
        if len(value) > _MAX_STRING:
            raise InputError(f"audit {where}: string longer than {_MAX_STRING} characters", code="input.audit_details")
        return
    if isinstance(value, Mapping):
        check_details(value, where)
        return
    if isinstance(value, (list, tuple)):
        if len(value) > 64:
            raise InputError(f"audit {where}: list longer than 64 items", code="input.audit_details")
        for item in value:
            _check_value(item, where)
        return
    raise InputError(f"audit {where}: {type(value).__name__} is not allowed in audit details",
                     code="input.audit_details")


def make_entry(seq: int, prev_hash: str, timestamp: str, actor: str, event: str, details: Mapping) -> AuditEntry:
    check_details(details)
    details = json.loads(canonical_json(dict(details)))  # exactly what will be stored and re-hashed
    return AuditEntry(seq, prev_hash, timestamp, actor, event, details,
                      entry_hash(seq, prev_hash, timestamp, actor, event, details))


def verify_entries(entries: Iterable[AuditEntry], head: tuple[int, str] | None = None) -> AuditVerification:
    """Walk the chain in seq order; name the first entry whose seq, link or hash is wrong.

    `head` is the (seq, hash) the store recorded with the last append; it catches a truncated tail,
    which a chain alone cannot.
    """
    expected_seq, prev, count = 1, GENESIS_HASH, 0
    for e in entries:
        if e.seq != expected_seq:
            return AuditVerification(False, count, expected_seq if e.seq > expected_seq else e.seq,
                                     f"sequence gap or reorder: expected seq {expected_seq}, found {e.seq}")
        if e.prev_hash != prev:
            return AuditVerification(False, count, e.seq, "prev_hash does not match the previous entry")
        if entry_hash(e.seq, e.prev_hash, e.timestamp, e.actor, e.event, e.details) != e.hash:
            return AuditVerification(False, count, e.seq, "entry hash does not match its contents")
        prev, expected_seq, count = e.hash, expected_seq + 1, count + 1
    last_seq = expected_seq - 1
    if head is not None and (head[0] != last_seq or head[1] != prev):
        bad = min(head[0], last_seq) + 1 if head[0] != last_seq else last_seq
        return AuditVerification(False, count, bad,
                                 f"chain ends at seq {last_seq} but the recorded head is seq {head[0]}")
    return AuditVerification(True, count, None, None, last_seq, prev)

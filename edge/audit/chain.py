"""Pure functions of the audit chain: canonical form, entry MAC, head MAC, verification. No I/O here.

The chain is keyed: each entry's `hash` is an HMAC-SHA256 under the audit key (secrets.json, outside the
database) over the stored bytes, and the recorded head carries its own MAC. With write access to the database
alone nobody can edit, insert, recompute, truncate or empty the chain without `verify_rows` naming the seq.
What the key cannot catch is a whole older copy of the database put back (rollback): the fleet registry's
anchor does (edge.fleet, edge.registry).
"""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

from edge.errors import ConfigError, InputError

GENESIS_HASH = "0" * 64
# Set by the writer in the details of an entry appended over a head whose MAC did not verify.
HEAD_TAMPERED = "audit_head_tampered"

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


def entry_hash(key: bytes, seq: int, prev_hash: str, timestamp: str, actor: str, event: str,
               details_text: str) -> str:
    """HMAC-SHA256 under the audit key (kept outside the database) over the entry as stored: its header
    fields and the exact bytes of its details column. Without the key nobody can make an entry verify."""
    if not key:
        raise ConfigError("no audit key: the audit chain cannot be written or verified without it")
    body = canonical_json([seq, prev_hash, timestamp, actor, event]) + "\n" + details_text
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


def legacy_entry_hash(seq: int, prev_hash: str, timestamp: str, actor: str, event: str, details: Mapping) -> str:
    """The unkeyed SHA-256 of entries written before the chain was keyed (schema 4); verified only as the
    prefix the first keyed entry chains to."""
    body = canonical_json([seq, prev_hash, timestamp, actor, event, dict(details)])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def head_mac(key: bytes, seq: int, digest: str) -> str:
    """The recorded head's own MAC: a tail cut off and the head pointed at the new last entry does not verify
    (the MAC of that older head was never stored)."""
    return hmac.new(key, f"audit-head|{seq}|{digest}".encode("ascii"), hashlib.sha256).hexdigest()


def parse_details(text: Any) -> dict:
    """The details column as the writer stored it, or ValueError: a JSON object in canonical form only, so
    duplicate keys, NaN / Infinity, non-objects and any re-serialised text are refused."""
    if not isinstance(text, str):
        raise ValueError("details is not text")

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError("details has a duplicate key")
        return dict(pairs)

    def no_constants(name):
        raise ValueError(f"details contains {name}")

    parsed = json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants)
    if not isinstance(parsed, dict):
        raise ValueError(f"details is a JSON {type(parsed).__name__}, not an object")
    if canonical_json(parsed) != text:
        raise ValueError("details is not in the canonical form the writer stores")
    return parsed


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


def make_entry(seq: int, prev_hash: str, timestamp: str, actor: str, event: str, details: Mapping, *,
               key: bytes) -> AuditEntry:
    check_details(details)
    text = canonical_json(dict(details))        # exactly what will be stored, and what the MAC covers
    return AuditEntry(seq, prev_hash, timestamp, actor, event, json.loads(text),
                      entry_hash(key, seq, prev_hash, timestamp, actor, event, text))


def details_text(entry: AuditEntry) -> str:
    return canonical_json(entry.details)


def verify_rows(rows: Iterable[Sequence], head: Sequence | None, key: bytes) -> AuditVerification:
    """Walk the stored rows (seq, prev_hash, timestamp, actor, event, details, hash, keyed) in seq order and
    name the first that is wrong; `head` is the stored (seq, hash, mac). A row that cannot even be read (a
    text seq, broken JSON, a NaN) is reported as bad at its seq, never raised."""
    expected_seq, prev, count, keyed_seen = 1, GENESIS_HASH, 0, False
    for row in rows:
        try:
            seq = int(row[0])
        except (TypeError, ValueError):
            return AuditVerification(False, count, expected_seq, f"unreadable seq {str(row[0])[:20]!r}")
        if seq != expected_seq:
            return AuditVerification(False, count, expected_seq if seq > expected_seq else seq,
                                     f"sequence gap or reorder: expected seq {expected_seq}, found {seq}")
        problem = _row_problem(row, seq, prev, key, keyed_seen)
        if problem:
            return AuditVerification(False, count, seq, problem)
        keyed_seen = keyed_seen or bool(row[7])
        prev, expected_seq, count = str(row[6]), expected_seq + 1, count + 1
    last_seq = expected_seq - 1
    if head is None:
        return AuditVerification(False, count, last_seq + 1, "no recorded head")
    try:
        head_seq, head_hash, mac = int(head[0]), str(head[1]), str(head[2] or "")
    except (TypeError, ValueError, IndexError):
        return AuditVerification(False, count, last_seq + 1, "the recorded head is unreadable")
    if head_seq != last_seq or head_hash != prev:
        bad = min(head_seq, last_seq) + 1 if head_seq != last_seq else last_seq
        return AuditVerification(False, count, bad,
                                 f"chain ends at seq {last_seq} but the recorded head is seq {head_seq}")
    if not hmac.compare_digest(mac, head_mac(key, head_seq, head_hash)):
        return AuditVerification(False, count, last_seq, "the recorded head's MAC does not verify under the "
                                                         "audit key (truncated, or a head copied in)")
    return AuditVerification(True, count, None, None, last_seq, prev)


def _row_problem(row: Sequence, seq: int, prev: str, key: bytes, keyed_seen: bool) -> str | None:
    try:
        _, prev_hash, timestamp, actor, event, text, digest, keyed = row
        if not all(isinstance(v, str) for v in (prev_hash, timestamp, actor, event, digest)):
            return "a header field is not text"
        if prev_hash != prev:
            return "prev_hash does not match the previous entry"
        details = parse_details(text)
        if details.get(HEAD_TAMPERED) is True and keyed:
            return "the head this entry was appended to did not verify: entries before it were cut off or the " \
                   "head replaced"
        if keyed:
            expected = entry_hash(key, seq, prev_hash, timestamp, actor, event, text)
        elif keyed_seen:
            return "an unkeyed entry after keyed ones (downgrade)"
        else:
            expected = legacy_entry_hash(seq, prev_hash, timestamp, actor, event, details)
        if not hmac.compare_digest(expected, digest):
            return "entry MAC does not match its stored contents"
    except (ValueError, TypeError, RecursionError) as exc:
        return f"unreadable entry: {str(exc)[:120]}"
    return None


def verify_links(entries: Iterable[AuditEntry], head: tuple[int, str] | None = None) -> AuditVerification:
    """Without the key (the registry holding a terminal's chain): seq and prev_hash links only, and that the
    chain ends at `head`. The terminal's own `audit verify` checks the MACs."""
    expected_seq, prev, count = 1, GENESIS_HASH, 0
    for e in entries:
        if e.seq != expected_seq:
            return AuditVerification(False, count, expected_seq if e.seq > expected_seq else e.seq,
                                     f"sequence gap or reorder: expected seq {expected_seq}, found {e.seq}")
        if e.prev_hash != prev:
            return AuditVerification(False, count, e.seq, "prev_hash does not match the previous entry")
        prev, expected_seq, count = e.hash, expected_seq + 1, count + 1
    last_seq = expected_seq - 1
    if head is not None and (head[0] != last_seq or head[1] != prev):
        bad = min(head[0], last_seq) + 1 if head[0] != last_seq else last_seq
        return AuditVerification(False, count, bad,
                                 f"chain ends at seq {last_seq} but the recorded head is seq {head[0]}")
    return AuditVerification(True, count, None, None, last_seq, prev)

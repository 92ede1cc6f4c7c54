"""A terminal's link to the fleet registry: upload, follow, fetch, and decide what to do when it is away.

    link = FleetLink(cfg.fleet, store, credentials, usd_rates=cfg.policy.usd_rates)
    link.start()                                   # two threads: the uploader and the change follower
    readiness = link.prepare(card_ref, amount_usd) # before a verification: caught up, card holder at hand?
    link.status()                                  # {"registry": "online"|"offline", "outbox_length", ...}

What it promises (README: the fleet):
- everything the services queued in the outbox (edge.fleet.outbox) and every audit entry reaches the registry
  at least once, in order; the registry ingests each once, so a crash anywhere loses and doubles nothing;
- every change of the registry's feed is applied in sequence order, each in one local transaction with the
  new feed position, so a change is applied once even across a crash;
- before a verification, while the registry answers, the terminal first applies every pending change, then
  uses the card holder's record (fetched again when older than `cache_max_age_s`); while it does not answer,
  `offline_policy` decides, and each offline decision is marked and uploaded later. A customer erased before
  the last successful sync is never verified: that erasure was applied before the sync counted.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterator

import httpx

from edge.audit.chain import AuditEntry
from edge.errors import BiogateError, ConfigError, StorageError
from edge.fleet.config import FleetConfig
from edge.fleet.protocol import MAX_AUDIT, MAX_ITEMS
from edge.fleet.transport import DOWN, UP, TerminalCredentials, open_template, seal_probe, seal_template
from edge.store.files import check_private
from edge.store.base import (CacheEntry, Customer, LockoutState, Store, TemplateMeta, Transaction, iso, parse_iso,
                             utcnow)

log = logging.getLogger("biogate.fleet")

# sync_state names
CHANGE_SEQ, AUDIT_ACKED_SEQ, ANCHOR_HASH, LAST_SYNC_AT = "change_seq", "audit_acked_seq", "anchor_hash", "last_sync_at"


class RegistryUnavailable(BiogateError):
    code = "fleet.registry_unavailable"


class RegistryRefused(BiogateError):
    """The registry answered, but refused (e.g. fleet.audit_chain_mismatch, auth.terminal_revoked)."""

    code = "fleet.refused"


def load_credentials(path: Path) -> TerminalCredentials:
    try:
        check_private(path)      # a bearer token others can read is refused (edge.store.files)
        return TerminalCredentials.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ConfigError(f"no fleet credentials at {path}: save what `biogate registry add-terminal` printed "
                          "there (0600)") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"fleet credentials {path} are not JSON: {exc}") from None


@dataclass(frozen=True)
class Readiness:
    """Whether a verification may go ahead on this card now, and whether it is an offline one."""

    offline: bool
    refusal: str | None = None


class FleetLink:
    def __init__(self, cfg: FleetConfig, store: Store, credentials: TerminalCredentials, *,
                 usd_rates: dict[str, float], clock: Callable[[], dt.datetime] = utcnow):
        if not cfg.registry_url:
            raise ConfigError("fleet.registry_url is not set")
        self.cfg = cfg
        self.store = store
        self.creds = credentials
        self.usd_rates = usd_rates
        self.clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._state_lock = threading.Lock()
        self._last_ok: float | None = None       # monotonic time of the last successful exchange
        self._last_failed = False
        self.last_error: str | None = None
        self._apply_lock = threading.Lock()     # the follower and prepare() never apply the same change twice

    # -- HTTP ---------------------------------------------------------------------------------------------
    def _client(self, timeout: float | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.cfg.registry_url.rstrip("/"), timeout=timeout or self.cfg.request_timeout_s,
                            headers={"Authorization": f"Bearer {self.creds.token}",
                                     "X-Terminal-Id": self.creds.terminal_id})

    def _call(self, method: str, path: str, *, timeout: float | None = None, **kw) -> httpx.Response:
        try:
            with self._client(timeout) as client:
                response = client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            self._failed(f"fleet.registry_unavailable: {type(exc).__name__}")
            raise RegistryUnavailable(f"the registry did not answer ({type(exc).__name__})") from None
        if response.status_code >= 500:
            self._failed(f"fleet.registry_error: {response.status_code}")
            raise RegistryUnavailable(f"the registry failed ({response.status_code})")
        self._succeeded()
        if response.status_code >= 400 and response.status_code != 404:
            code = _error_code(response)
            self.last_error = code
            raise RegistryRefused(f"the registry refused {method} {path}: {code}", code=code)
        return response

    def _succeeded(self) -> None:
        with self._state_lock:
            self._last_ok, self._last_failed = time.monotonic(), False
            if self.last_error and self.last_error.startswith("fleet.registry_"):
                self.last_error = None

    def _failed(self, reason: str) -> None:
        with self._state_lock:
            self._last_failed, self.last_error = True, reason

    @property
    def online(self) -> bool:
        with self._state_lock:
            return (self._last_ok is not None and not self._last_failed
                    and time.monotonic() - self._last_ok < self.cfg.online_grace_s)

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> "FleetLink":
        for name, target in (("fleet-upload", self._upload_loop), ("fleet-follow", self._follow_loop)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def wake(self) -> None:
        """Something was queued: send it now rather than at the next interval."""
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=self.cfg.request_timeout_s + 2)

    def _loop(self, step: Callable[[], bool], idle: float) -> None:
        pause = idle
        while not self._stop.is_set():
            try:
                busy = step()
                pause = 0.0 if busy else idle
            except (RegistryUnavailable, RegistryRefused):
                pause = min(self.cfg.retry_max_s, max(0.5, pause * 2 or 0.5))
            except BiogateError as exc:
                log.warning("fleet step failed", extra={"error_code": exc.code})
                pause = min(self.cfg.retry_max_s, max(0.5, pause * 2 or 0.5))
            except Exception:   # the link must outlive any bug; it is retried
                log.exception("fleet step crashed")
                pause = self.cfg.retry_max_s
            if pause:
                self._wake.wait(pause)
                self._wake.clear()

    def _upload_loop(self) -> None:
        self._loop(self.upload_once, self.cfg.upload_interval_s)

    def _follow_loop(self) -> None:
        self._loop(lambda: self.follow_once(self.cfg.change_wait_s), 0.0)

    # -- upload -------------------------------------------------------------------------------------------
    def upload_once(self) -> bool:
        """Send one batch of the outbox and the audit chain; True when there may be more to send."""
        with self.store.transaction() as tx:
            items = tx.outbox_items(MAX_ITEMS)
            acked_seq = int(tx.sync_get(AUDIT_ACKED_SEQ, "0"))
            audit = tx.audit_entries(acked_seq, MAX_AUDIT)
            body = {"items": [self._wire_item(tx, i.kind, i.key, i.body) for i in items],
                    "audit": [e.to_dict() for e in audit]}
        if not items and not audit:
            return False
        result = self._call("POST", "/v1/fleet/ingest", json=body).json()
        acked = set(result["acked"])
        with self.store.transaction() as tx:
            tx.outbox_done([i.id for i in items if i.key in acked])
            tx.sync_set(AUDIT_ACKED_SEQ, str(int(result["anchor_seq"])))
            tx.sync_set(ANCHOR_HASH, str(result["anchor_hash"]))
            tx.sync_set(LAST_SYNC_AT, iso(self.clock()))
        return len(items) == MAX_ITEMS or len(audit) == MAX_AUDIT

    def _wire_item(self, tx: Transaction, kind: str, key: str, body: dict) -> dict:
        if kind == "templates":   # read now, sealed for the trip: the outbox itself holds no template
            wanted = set(body["template_ids"])
            stored = [t for t in tx.templates(body["customer_id"]) if t.id in wanted]
            try:
                sealed = [seal_template(self.creds.transport_key, UP, self.creds.terminal_id, t, bytes(t.payload))
                          for t in stored]
            finally:
                for t in stored:
                    t.zeroise()
            body = {"customer_id": body["customer_id"], "templates": sealed}
        elif kind == "probe":     # likewise: the outbox holds the probe's id, the trip carries it sealed
            found = tx.get_probe(body["probe_id"])
            if found is None:
                body = {"probe": None}   # purged or erased before it was sent: nothing to carry
            else:
                meta, embedding = found
                body = {"probe": seal_probe(self.creds.transport_key, UP, self.creds.terminal_id, meta, embedding)}
        return {"kind": kind, "key": key, "body": body}

    # -- the change feed ----------------------------------------------------------------------------------
    def follow_once(self, wait: float) -> bool:
        """Fetch and apply the changes after our position (waiting up to `wait` s for one); True if any came."""
        with self.store.transaction() as tx:
            after = int(tx.sync_get(CHANGE_SEQ, "0"))
        r = self._call("GET", "/v1/fleet/changes", params={"after": after, "wait": wait},
                       timeout=wait + self.cfg.request_timeout_s)
        changes = r.json()["changes"]
        for change in changes:
            self._apply(change)
        with self.store.transaction() as tx:
            tx.sync_set(LAST_SYNC_AT, iso(self.clock()))
        return bool(changes)

    def catch_up(self) -> None:
        """Apply every pending change now (RegistryUnavailable when the registry does not answer)."""
        while self.follow_once(0.0):
            pass

    def _apply(self, change: dict) -> None:
        with self._apply_lock, self.store.transaction() as tx:
            if change["seq"] <= int(tx.sync_get(CHANGE_SEQ, "0")):
                return   # the other thread applied it meanwhile
            apply_change(tx, change)
            tx.sync_set(CHANGE_SEQ, str(change["seq"]))
            tx.audit("system:fleet", "fleet.change_applied", {"seq": change["seq"], "kind": change["kind"],
                                                              "origin": change["origin"]})

    # -- card holders -------------------------------------------------------------------------------------
    def prepare(self, card_ref: str, amount_usd: Decimal) -> Readiness:
        """Before a verification: caught up with the feed and the card holder at hand (fetched when missing or
        stale); while the registry is away, the offline policy's answer."""
        try:
            self.catch_up()
            self._fetch_if_needed(card_ref)
            return Readiness(offline=False)
        except RegistryUnavailable:
            return self._offline_readiness(card_ref, amount_usd)

    def _fetch_if_needed(self, card_ref: str) -> None:
        now = self.clock()
        with self.store.transaction() as tx:
            customer = tx.customer_for_card(card_ref)
            entry = tx.cache_entry(customer.id) if customer else None
            if entry is not None:
                tx.cache_put(dataclasses.replace(entry, last_used_at=iso(now)))
        if entry is not None and (entry.origin == "local" or
                                  (now - parse_iso(entry.fetched_at)).total_seconds() < self.cfg.cache_max_age_s):
            return
        self.fetch(card_ref)

    def fetch(self, card_ref: str) -> bool:
        """Fetch the card holder's record and sealed templates into the local store; False if the registry
        does not know the card (a copy held here is then forgotten)."""
        r = self._call("GET", f"/v1/fleet/cards/{card_ref}")
        if r.status_code == 404:
            with self.store.transaction() as tx:
                held = tx.customer_for_card(card_ref)
                if held is not None and (tx.cache_entry(held.id) or CacheEntry("", "registry", "", "")).origin \
                        == "registry":
                    tx.forget_customer(held.id)
            return False
        holder = r.json()
        opened: list[tuple[TemplateMeta, bytearray]] = []
        try:
            for wire in holder["templates"]:
                opened.append(open_template(self.creds.transport_key, DOWN, self.creds.terminal_id, wire))
            self._store_holder(holder["customer"], opened)
        finally:
            for _, payload in opened:
                payload[:] = bytes(len(payload))
        self._evict()
        return True

    def _store_holder(self, c: dict, templates: list[tuple[TemplateMeta, bytearray]]) -> None:
        now = iso(self.clock())
        with self.store.transaction() as tx:
            entry = tx.cache_entry(c["id"])
            if entry is not None and entry.origin == "local":
                return   # enrolled here: this terminal's copy is the original
            tx.forget_customer(c["id"])
            for ref in c["card_refs"]:
                tx.remove_card(ref)    # a card that moved to this customer since we last saw it
            tx.add_customer(Customer(c["id"], c["display_name"], c["created_at"], c["status"], c.get("review_reason"),
                                     list(c["card_refs"])))
            for meta, payload in templates:
                tx.add_template(meta, bytes(payload))
            tx.cache_put(CacheEntry(c["id"], "registry", now, now))

    def _evict(self) -> None:
        with self.store.transaction() as tx:
            entries = [e for e in tx.cache_entries() if e.origin == "registry"]   # least recently used first
            for e in entries[:max(0, len(entries) - self.cfg.cache_max_customers)]:
                tx.forget_customer(e.customer_id)

    # -- offline ------------------------------------------------------------------------------------------
    def _offline_readiness(self, card_ref: str, amount_usd: Decimal) -> Readiness:
        if self.cfg.offline_policy == "refuse":
            return Readiness(True, "fleet.offline_refused")
        with self.store.transaction() as tx:
            customer = tx.customer_for_card(card_ref)
            since = tx.sync_get(LAST_SYNC_AT, iso(dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)))
            spent = tx.offline_spend(card_ref, since)
        if customer is None:
            return Readiness(True, "fleet.offline_not_cached")
        total = sum((Decimal(a) * Decimal(str(self.usd_rates.get(cur, 0.0))) for a, cur in spent), Decimal(0))
        if total + amount_usd > Decimal(str(self.cfg.offline_amount_cap_usd)):
            return Readiness(True, "fleet.offline_cap_reached")
        return Readiness(True)

    # -- state ----------------------------------------------------------------------------------------------
    def status(self) -> dict:
        with self.store.transaction() as tx:
            outbox, last_sync = tx.outbox_length(), tx.sync_get(LAST_SYNC_AT)
            change_seq, anchor_seq = int(tx.sync_get(CHANGE_SEQ, "0")), int(tx.sync_get(AUDIT_ACKED_SEQ, "0"))
        return {"registry": "online" if self.online else "offline", "outbox_length": outbox,
                "last_sync_at": last_sync, "change_seq": change_seq, "anchor_seq": anchor_seq,
                "last_error": self.last_error}

    def registry_anchor(self) -> tuple[int, str]:
        """This terminal's audit head as the registry holds it."""
        a = self._call("GET", "/v1/fleet/anchor").json()
        return int(a["seq"]), str(a["hash"])


def apply_change(tx: Transaction, change: dict) -> None:
    """One change of the feed, applied to a terminal's store (idempotent: applying it twice changes nothing)."""
    kind, body = change["kind"], change["body"]
    if kind == "erasure":
        for ref in body.get("card_refs", []):
            tx.remove_card(ref)
        tx.erase_customer(body["customer_id"])   # a no-op for a customer never held here; works on a tampered one
        tx.cache_drop(body["customer_id"])
    elif kind == "customer_status":
        try:
            if tx.get_customer(body["customer_id"]) is not None:
                tx.set_customer_status(body["customer_id"], body["status"], body.get("reason"))
        except StorageError as exc:
            if exc.code != "storage.tampered":
                raise
            # the local copy failed its integrity check (reported, unusable): the feed goes on for everyone else
    elif kind == "lockout":
        state = LockoutState(**body["state"])
        held = tx.get_lockout(state.card_ref)
        if held is None or (held.updated_at or "") <= (state.updated_at or ""):
            tx.put_lockout(state)
    elif kind == "card_revoked":
        tx.remove_card(body["card_ref"])
    elif kind == "customer_updated":
        entry = tx.cache_entry(body["customer_id"])
        if entry is not None and entry.origin == "registry":
            tx.forget_customer(body["customer_id"])
    else:
        raise StorageError(f"unknown change kind {kind!r} in the feed", code="storage.error")


def local_anchor_check(entries: Iterator[AuditEntry], anchor: tuple[int, str]) -> str | None:
    """None when the local chain holds the anchored head (seq, hash); else why not."""
    seq, digest = anchor
    if seq == 0:
        return None
    for e in entries:
        if e.seq == seq:
            return None if e.hash == digest else (f"the entry at seq {seq} is not the one anchored in the registry: "
                                                  "the chain was rewritten")
    return f"the chain has no entry at the anchored seq {seq}: it was truncated"


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return f"http.{response.status_code}"

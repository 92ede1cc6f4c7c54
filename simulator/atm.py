"""A virtual ATM host: runs customer transactions against biogate's API and the cash dispenser.

    atm = VirtualAtm(api_url, terminal_key, dispenser_url)
    tx = atm.withdraw("card-0001", "200", "EUR")    # session, attempts, then Dispense with the token
    tx.outcome, tx.dispensed, tx.events

What a real ATM application does, in order: open a verification session with the transaction context;
show the customer the prompts biogate asks for while an attempt runs; repeat attempts while the session
stays open; on allow, send `CashDispenser.Dispense` with the end-to-end token to the dispenser, which
checks it itself. The host never sees a biometric sample: the devices talk to biogate, not to it.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable

import httpx

from drivers.base import open_device
from edge.errors import BiogateError


@dataclass
class AtmTransaction:
    card: str
    operation: str
    amount: str
    currency: str
    outcome: str = "pending"           # allow | deny | locked | refused | error
    session: dict | None = None
    attempts: list[dict] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    token: str | None = None
    dispensed: str | None = None       # e.g. "200.00EUR" as the dispenser reported it
    dispense_error: str | None = None  # the dispenser's completion code when it refused
    error: str | None = None           # an API error code (device fault, ...)
    events: list[tuple[float, str, str]] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        if self.attempts:
            return self.attempts[-1].get("reasons", [])
        return (self.session or {}).get("reasons", [])


class VirtualAtm:
    def __init__(self, api_url: str, terminal_key: str, dispenser_url: str | None, *, timeout: float = 120.0,
                 clock=time.monotonic):
        self.api = httpx.Client(base_url=api_url, headers={"X-API-Key": terminal_key}, timeout=timeout)
        self.dispenser_url = dispenser_url
        self.clock = clock
        self.t0 = clock()
        self.last_token: tuple[str, str, str] | None = None

    def close(self) -> None:
        self.api.close()

    def _event(self, tx: AtmTransaction, who: str, text: str) -> None:
        tx.events.append((self.clock() - self.t0, who, text))

    def withdraw(self, card: str, amount: str, currency: str, *, max_attempts: int = 3, finger: str | None = None,
                 operation: str = "cash_withdrawal", on_prompt: Callable[[str], None] | None = None) -> AtmTransaction:
        """One transaction as the ATM application runs it; `on_prompt(code)` is the customer reading each new
        prompt on the screen (e.g. putting another finger on the scanner when asked)."""
        tx = AtmTransaction(card, operation, str(amount), currency)
        r = self.api.post("/v1/sessions", json={"operation": operation, "amount": str(amount),
                                                "currency": currency, "card_ref": card})
        if r.status_code != 201:
            tx.outcome, tx.error = "error", r.json().get("error", {}).get("code", str(r.status_code))
            self._event(tx, "atm", f"session refused by the API: {tx.error}")
            return tx
        tx.session = s = r.json()
        factors = "+".join(s["factors"]) or "none"
        self._event(tx, "atm", f"{operation} {amount} {currency} with {card}: session {s['session_id'][-8:]}, "
                               f"factors {factors}")
        if s["status"] != "open":
            tx.outcome = {"allowed": "allow", "locked": "locked"}.get(s["status"], "refused")
            self._event(tx, "biogate", f"{s['status'].upper()} without an attempt: {', '.join(s['reasons'])}")
            if s.get("authorisation"):
                self._dispense(tx, s["authorisation"])
            return tx
        for _ in range(max_attempts):
            result = self._attempt(tx, s["session_id"], finger, on_prompt)
            if result is None:
                return tx
            if result["outcome"] == "allow":
                tx.outcome = "allow"
                if result.get("authorisation"):
                    self._dispense(tx, result["authorisation"])
                return tx
            if result["locked"] or result["session"]["status"] != "open":
                tx.outcome = "locked" if result["locked"] else "deny"
                return tx
        tx.outcome = "deny"
        return tx

    def _attempt(self, tx: AtmTransaction, session_id: str, finger: str | None,
                 on_prompt: Callable[[str], None] | None = None) -> dict | None:
        stop = threading.Event()
        watcher = threading.Thread(target=self._show_prompts, args=(tx, session_id, stop, on_prompt), daemon=True)
        watcher.start()
        try:
            r = self.api.post(f"/v1/sessions/{session_id}/attempts", json={"finger": finger} if finger else {})
        finally:
            stop.set()
            watcher.join(timeout=5)
        body = r.json()
        if r.status_code != 200:
            tx.outcome, tx.error = "error", body.get("error", {}).get("code", str(r.status_code))
            self._event(tx, "biogate", f"attempt failed: {tx.error}: {body.get('error', {}).get('message', '')}")
            return None
        tx.attempts.append(body)
        scores = body.get("scores") or {}
        parts = [f"{k} {v:.1f}" for k, v in (scores.get("llr") or {}).items()]
        if "second_finger_llr" in scores:
            parts.append(f"second finger {scores['second_finger_llr']:.1f}")
        figure = (f" (fused LLR {scores['fused_llr']:.1f} = {' + '.join(parts)}; threshold {scores['threshold']:.1f})"
                  if "fused_llr" in scores else "")
        live = body.get("liveness")
        liveness = f"; liveness {'passed' if live['live'] else 'FAILED'} ({live.get('challenge')})" if live else ""
        self._event(tx, "biogate", f"attempt {body['attempt']}: {body['outcome'].upper()}{figure}{liveness}; "
                                   f"reasons {', '.join(r for r in body['reasons'] if not r.startswith('policy.'))}")
        if body["locked"]:
            self._event(tx, "biogate", f"card locked for {body['retry_after_s']:.0f} s")
        return body

    def _show_prompts(self, tx: AtmTransaction, session_id: str, stop: threading.Event,
                      on_prompt: Callable[[str], None] | None = None) -> None:
        """The ATM screen: poll the session and show each new prompt (the customer reads it there)."""
        last = None
        while not stop.wait(0.2):
            try:
                prompt = self.api.get(f"/v1/sessions/{session_id}").json().get("prompt")
            except (httpx.HTTPError, ValueError):
                return
            if prompt and prompt != last:
                tx.prompts.append(prompt)
                self._event(tx, "screen", prompt.replace("_", " "))
                last = prompt
                if on_prompt is not None:
                    on_prompt(prompt)

    def _dispense(self, tx: AtmTransaction, authorisation: dict) -> None:
        tx.token = authorisation["token"]
        self.last_token = (authorisation["token"], authorisation["amount"], authorisation["currency"])
        self._event(tx, "biogate", f"dispense token issued for {authorisation['amount']} "
                                   f"{authorisation['currency']} (nonce {authorisation['nonce'][:8]}...)")
        self.dispense(tx, authorisation["token"], authorisation["amount"], authorisation["currency"])

    def dispense(self, tx: AtmTransaction, token: str, amount: str, currency: str) -> None:
        if not self.dispenser_url:
            tx.dispense_error = "noDispenser"
            return
        try:
            with open_device("dispenser", "xfs4iot", url=self.dispenser_url) as dispenser:
                result = dispenser.dispense(token, amount, currency)
            tx.dispensed = f"{Decimal(str(amount)):.2f}{currency}"
            self._event(tx, "dispenser", f"dispensed {tx.dispensed} {_notes(result)}")
        except BiogateError as exc:
            tx.dispense_error = getattr(exc, "completion_code", None) or exc.code
            self._event(tx, "dispenser", f"REFUSED: {tx.dispense_error}")

    def replay_last_token(self) -> AtmTransaction:
        """Send the last token to the dispenser again (what a fraudster with a captured token would do)."""
        if self.last_token is None:
            raise BiogateError("no token to replay", code="input.no_token")
        token, amount, currency = self.last_token
        tx = AtmTransaction("-", "token_replay", amount, currency, outcome="replay", token=token)
        self._event(tx, "atm", f"replays the last dispense token for {amount} {currency}")
        self.dispense(tx, token, amount, currency)
        return tx


def _notes(result) -> str:
    if isinstance(result, dict) and result.get("items"):
        return f"({result['items']})"
    return ""

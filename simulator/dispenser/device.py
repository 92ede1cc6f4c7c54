"""The virtual cash dispenser's mechanism and end-to-end security, without any protocol.

    device = VirtualDispenser(key=bytes.fromhex("..."))
    nonce = device.get_command_nonce()
    record = device.dispense(token, Decimal("50.00"), "EUR")     # DispenseRecord, or raises

Command nonce (XFS4IoT end-to-end security):
- `get_command_nonce()` returns the current nonce, creating a fresh random one (128 bits, 32
  upper-case hex digits) when there is none. The same nonce is returned until it is cleared.
- The nonce is cleared by `clear_command_nonce()` (Common.ClearCommandNonce), when it is older
  than `nonce_ttl_s`, and when a token made over it has been used up; tokens made over a cleared
  nonce never work again, and the next transaction needs a new nonce.

Checks of a dispense, in this order (each failure raises the `xfs4iot_bridge.token` error named,
whose `.completion_code` is what the XFS4IoT service answers):
    1. token format                          TokenFormatError     invalidTokenFormat
    2. the device holds a token key          TokenKeyNoValueError invalidTokenKeyNoValue
    3. HMAC-SHA256 over the token            TokenHMACError       invalidTokenHMAC
    4. the token is not used up (replay)     TokenNotValidError   invalidToken
    5. a current nonce exists                NoCommandNonceError  noCommandNonce
    6. the token is for that nonce           TokenNonceError      invalidTokenNonce
    7. currency and cumulative amount within the token's value    invalidToken
    8. the cassettes can make the amount     DispenseRefused(error_code) -> commandErrorCode
Before any of them, a jammed mechanism (`jam()`, until `clear_faults()`) fails the command with
`MechanismFault` (XFS4IoT completion hardwareError); nonces are refused too, so the terminal learns of
the jam before it issues a token.
Only a dispense that passes all of them moves notes: the cassettes are debited, the amount is
added to the token's cumulative total and a `DispenseRecord` is appended to the ledger.
The notes then go to the output position, shutter open, until the customer takes them (`items_taken()`)
or the mechanism pulls them back (`retract()`). With a shutter failure armed (`fail_shutter()`) the
shutter stays shut: the notes stay in the stacker and the dispense completes with commandErrorCode
shutterNotOpen (the token is spent: the notes left the cassettes). Everything the mechanism does is an
entry of `events` (the ledger of movements) and goes to `listeners`.

A token may be spent in several dispenses up to its value (the device tracks the cumulative
amount per token, keyed by its HMAC).
"""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Callable, Mapping

from xfs4iot_bridge.token import (
    DispenseToken,
    TokenNotValidError,
    check_token_hmac,
    check_token_nonce,
    minor_units,
    parse_dispense_token,
)

NONCE_BYTES = 16


class DispenseRefused(Exception):
    """The mechanism refuses (token fine): `error_code` is a CashDispenser.Dispense errorCode."""

    def __init__(self, error_code: str, description: str):
        super().__init__(description)
        self.error_code = error_code
        self.description = description


class MechanismFault(Exception):
    """The mechanism cannot work (a jam): the command completes with hardwareError."""

    def __init__(self, description: str):
        super().__init__(description)
        self.description = description


@dataclass
class CashUnit:
    """One cassette: notes of one value and currency."""

    name: str
    currency: str
    value: Decimal
    count: int

    def to_dict(self) -> dict:
        return {"currency": self.currency, "value": float(self.value), "count": self.count}


def default_units() -> list[CashUnit]:
    """EUR and USD cassettes, 500 notes each."""
    units = []
    for currency, values in (("EUR", (5, 10, 20, 50)), ("USD", (5, 10, 20, 50, 100))):
        for v in values:
            units.append(CashUnit(f"{currency.lower()}{v}", currency, Decimal(v), 500))
    return units


@dataclass(frozen=True)
class DispenseRecord:
    """One completed dispense, as the ledger keeps it."""

    sequence: int
    amount: Decimal
    currency: str
    notes: Mapping[str, int]
    token_nonce: str
    token_id: str          # first 16 hex digits of the token's HMAC: names the token, reveals nothing
    request_id: int | None
    at: float              # time.time()

    def to_dict(self) -> dict:
        return {"sequence": self.sequence, "amount": float(self.amount), "currency": self.currency,
                "notes": dict(self.notes), "tokenNonce": self.token_nonce, "tokenId": self.token_id,
                "requestId": self.request_id, "at": self.at}


@dataclass
class _TokenUse:
    token: DispenseToken
    spent: Decimal = Decimal(0)

    @property
    def used_up(self) -> bool:
        return self.spent >= self.token.amount


@dataclass
class VirtualDispenser:
    key: bytes | None
    units: list[CashUnit] = field(default_factory=default_units)
    nonce_ttl_s: float = 600.0
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._nonce: str | None = None
        self._nonce_at = 0.0
        self._uses: dict[str, _TokenUse] = {}
        self._ledger: list[DispenseRecord] = []
        self.jammed = False
        self.shutter_fails = False
        self._stacker: DispenseRecord | None = None     # dispensed, not presented (shutter failure)
        self._position: DispenseRecord | None = None    # presented, shutter open, not taken yet
        self._events: list[dict] = []
        self.listeners: list[Callable[[dict], None]] = []   # callables(event dict): each movement

    # --- the mechanism ---------------------------------------------------------------------------
    def _note(self, kind: str, **details) -> dict:
        """Append a movement to the events ledger (under the lock) and return it for the listeners."""
        event = {"seq": len(self._events) + 1, "event": kind, "at": time.time(), **details}
        self._events.append(event)
        return event

    def _tell(self, event: dict | None) -> None:
        for listener in list(self.listeners) if event else ():
            try:
                listener(event)
            except Exception:  # an observer must never stop the mechanism
                pass

    def _working(self) -> None:
        if self.jammed:
            raise MechanismFault("notes jammed in the transport")

    def jam(self) -> None:
        with self._lock:
            self.jammed = True
            event = self._note("jammed")
        self._tell(event)

    def fail_shutter(self) -> None:
        with self._lock:
            self.shutter_fails = True
            event = self._note("shutter_fault_armed")
        self._tell(event)

    def clear_faults(self) -> None:
        """The engineer's visit: jam cleared, shutter repaired."""
        with self._lock:
            self.jammed = self.shutter_fails = False
            event = self._note("faults_cleared")
        self._tell(event)

    def present(self) -> DispenseRecord:
        """Open the shutter on the notes in the stacker (CashDispenser.Present)."""
        with self._lock:
            self._working()
            if self._stacker is None:
                raise DispenseRefused("noItems", "nothing in the stacker to present")
            if self.shutter_fails:
                raise DispenseRefused("shutterNotOpen", "the shutter did not open")
            record, self._stacker, self._position = self._stacker, None, self._stacker
            event = self._note("presented", sequence=record.sequence)
        self._tell(event)
        return record

    def items_taken(self) -> DispenseRecord:
        """The customer takes the notes from the output position."""
        with self._lock:
            if self._position is None:
                raise DispenseRefused("noItems", "no notes at the output position")
            record, self._position = self._position, None
            event = self._note("items_taken", sequence=record.sequence, amount=float(record.amount),
                               currency=record.currency)
        self._tell(event)
        return record

    def retract(self) -> DispenseRecord:
        """Pull presented (or unpresented) notes back into the retract cassette."""
        with self._lock:
            self._working()
            record = self._position or self._stacker
            if record is None:
                raise DispenseRefused("noItems", "no notes to retract")
            self._position = self._stacker = None
            event = self._note("retracted", sequence=record.sequence, amount=float(record.amount),
                               currency=record.currency)
        self._tell(event)
        return record

    def set_units(self, counts: Mapping[str, int]) -> None:
        """Load the cassettes: unit name -> note count (the unit must exist; counts >= 0)."""
        with self._lock:
            for name, count in counts.items():
                if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                    raise ValueError(f"count for {name!r} must be a whole number >= 0")
                try:
                    self._unit(name)
                except KeyError:
                    raise ValueError(f"no cash unit {name!r}; units: "
                                     f"{', '.join(u.name for u in self.units)}") from None
            for name, count in counts.items():
                self._unit(name).count = count
            event = self._note("units_loaded", counts=dict(counts))
        self._tell(event)

    def state(self) -> dict:
        with self._lock:
            return {"jammed": self.jammed, "shutter_fails": self.shutter_fails,
                    "stacker": self._stacker.to_dict() if self._stacker else None,
                    "position": self._position.to_dict() if self._position else None,
                    "shutter": "open" if self._position is not None else "closed",
                    "units": {u.name: u.to_dict() for u in self.units}}

    @property
    def events(self) -> list[dict]:
        with self._lock:
            return [dict(e) for e in self._events]

    # --- nonce -----------------------------------------------------------------------------------
    def _current_nonce(self) -> str | None:
        if self._nonce is not None and self.clock() - self._nonce_at > self.nonce_ttl_s:
            self._nonce = None
        return self._nonce

    def get_command_nonce(self) -> str:
        with self._lock:
            self._working()
            if self._current_nonce() is None:
                self._nonce = secrets.token_hex(NONCE_BYTES).upper()
                self._nonce_at = self.clock()
            return self._nonce

    def clear_command_nonce(self) -> None:
        with self._lock:
            self._nonce = None

    @property
    def has_nonce(self) -> bool:
        with self._lock:
            return self._current_nonce() is not None

    # --- dispensing ------------------------------------------------------------------------------
    def dispense(self, token_text: str, amount: Decimal, currency: str, *,
                 values: Mapping[str, int] | None = None, request_id: int | None = None) -> DispenseRecord:
        with self._lock:
            self._working()
        token = parse_dispense_token(token_text)
        check_token_hmac(token, self.key)
        token_id = token.text[-64:]
        amount = _exact_amount(amount, currency)
        with self._lock:
            use = self._uses.get(token_id)
            if use is not None and use.used_up:
                raise TokenNotValidError("token already used up (replay)")
            check_token_nonce(token, self._current_nonce())
            token.check_dispense(amount, currency, already_dispensed=use.spent if use else Decimal(0))
            notes = self._denominate(amount, currency, values)
            for name, n in notes.items():
                self._unit(name).count -= n
            use = self._uses.setdefault(token_id, _TokenUse(token))
            use.spent += amount
            if use.used_up:  # this transaction is over: its nonce must not serve another token
                self._nonce = None
            record = DispenseRecord(sequence=len(self._ledger) + 1, amount=amount, currency=currency,
                                    notes=dict(notes), token_nonce=token.nonce, token_id=token_id[:16],
                                    request_id=request_id, at=time.time())
            self._ledger.append(record)
            events = [self._note("dispensed", sequence=record.sequence, amount=float(amount), currency=currency,
                                 notes=dict(notes))]
            if self.shutter_fails:
                self._stacker = record
                events.append(self._note("shutter_failed", sequence=record.sequence))
            else:
                self._position = record
                events.append(self._note("presented", sequence=record.sequence))
        for event in events:
            self._tell(event)
        if self.shutter_fails:
            raise DispenseRefused("shutterNotOpen", "the notes were counted but the shutter did not open")
        return record

    def _unit(self, name: str) -> CashUnit:
        for unit in self.units:
            if unit.name == name:
                return unit
        raise KeyError(name)

    def _denominate(self, amount: Decimal, currency: str, values: Mapping[str, int] | None) -> dict[str, int]:
        units = [u for u in self.units if u.currency == currency and u.count > 0]
        if not any(u.currency == currency for u in self.units):
            raise DispenseRefused("invalidCurrency", f"no cash units of {currency}")
        if values:  # the application chose the notes: check them, never substitute
            total = Decimal(0)
            for name, n in values.items():
                unit = next((u for u in self.units if u.name == name), None)
                if unit is None or unit.currency != currency or not isinstance(n, int) or n < 0:
                    raise DispenseRefused("invalidDenomination", f"unknown cash unit or count for {name!r}")
                if n > unit.count:
                    raise DispenseRefused("notDispensable", f"cash unit {name} holds fewer than {n} notes")
                total += unit.value * n
            if total != amount:
                raise DispenseRefused("invalidDenomination", "the notes do not add up to the amount")
            return {k: v for k, v in values.items() if v}
        notes: dict[str, int] = {}
        rest = amount
        for unit in sorted(units, key=lambda u: u.value, reverse=True):
            n = min(int(rest // unit.value), unit.count)
            if n:
                notes[unit.name] = n
                rest -= unit.value * n
        if rest != 0:
            raise DispenseRefused("notDispensable", f"{amount} {currency} cannot be made from the notes loaded")
        return notes

    # --- what happened ---------------------------------------------------------------------------
    @property
    def dispensed(self) -> list[DispenseRecord]:
        with self._lock:
            return list(self._ledger)

    def totals(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for record in self.dispensed:
            out[record.currency] = out.get(record.currency, Decimal(0)) + record.amount
        return out

    def cash_units(self) -> dict[str, dict]:
        with self._lock:
            return {u.name: u.to_dict() for u in self.units}


def _exact_amount(amount: Decimal | float | str, currency: str) -> Decimal:
    """The requested amount as an exact Decimal with no more than the currency's decimals."""
    try:
        value = Decimal(repr(amount)) if isinstance(amount, float) else Decimal(amount)
    except (InvalidOperation, TypeError, ValueError):
        raise DispenseRefused("invalidDenomination", "amount is not a number") from None
    if not value.is_finite() or value <= 0:
        raise DispenseRefused("invalidDenomination", "amount must be positive")
    exact = value.quantize(Decimal(1).scaleb(-minor_units(currency)))
    if value != exact:
        raise DispenseRefused("invalidDenomination", f"amount has more decimals than {currency} allows")
    return exact

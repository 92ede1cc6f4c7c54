"""The XFS4IoT end-to-end dispense token (`CashDispenser.Dispense` payload.token).

Format (one ASCII line, keys in this order, no spaces):

    NONCE=<hex>,TOKENFORMAT=1,TOKENLENGTH=<4 digits>,DISPENSE1=<amount><CUR>,HMACSHA256=<64 hex>

    NONCE        the dispenser's current command nonce (Common.GetCommandNonce), upper-case hex,
                 even length, 2..128 digits. Nonces are compared case-insensitively.
    TOKENFORMAT  always 1.
    TOKENLENGTH  the length in characters of the WHOLE token string, from the "N" of NONCE to the
                 last HMAC digit inclusive, as exactly four decimal digits. With a 32-digit nonce and
                 DISPENSE1=50.00EUR this is 0164, as in the XFS4IoT example. A token whose actual
                 length differs is invalidTokenFormat.
    DISPENSE1    the maximum value the token authorises: a decimal amount with exactly the currency's
                 minor-unit digits (2 by default, 0 for JPY/KRW/..., 3 for BHD/KWD/...) followed by the
                 ISO 4217 code in upper case, e.g. 50.00EUR, 5000JPY.
    HMACSHA256   HMAC-SHA256, keyed with the token key shared by the authorising host and the
                 dispenser, over the ASCII bytes of everything before "HMACSHA256=" (i.e. including
                 the comma that precedes it); 64 upper-case hex digits.

API (small on purpose; the dispenser simulator and the daemon import it):

    make_dispense_token(nonce, amount: Decimal, currency, key: bytes) -> str
    parse_dispense_token(text) -> DispenseToken                 # format only, no key needed
    verify_dispense_token(text, key, expected_nonce) -> DispenseToken
        # format, then key present, then HMAC (constant-time), then nonce
    check_token_hmac(token, key)                                # key present, then HMAC only
    DispenseToken.check_dispense(amount, currency, already_dispensed=Decimal(0))
        # the dispenser's check that a request stays within the token's value

Errors (all `TokenError`, an `edge.errors.AuthError`), each with `.completion_code`:

    TokenFormatError       -> invalidTokenFormat      malformed, wrong order, TOKENLENGTH mismatch
    TokenKeyNoValueError   -> invalidTokenKeyNoValue  the verifier has no (or an empty) key loaded
    NoCommandNonceError    -> noCommandNonce          the dispenser has no current nonce
    TokenNonceError        -> invalidTokenNonce       the token is for another (e.g. cleared) nonce
    TokenHMACError         -> invalidTokenHMAC        forged or altered token / wrong key
    TokenNotValidError     -> invalidToken            well-formed and genuine, but does not authorise
                                                      this request (over the amount, other currency,
                                                      already used up)
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from edge.errors import AuthError

from xfs4iot_bridge.envelope import CompletionCode

TOKEN_FORMAT = 1
_MINOR_UNITS = {  # ISO 4217 exponents that differ from the default of 2
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}
_TOKEN_RE = re.compile(
    r"NONCE=(?P<nonce>[0-9A-F]{2,128}),"
    r"TOKENFORMAT=(?P<format>[0-9]+),"
    r"TOKENLENGTH=(?P<length>[0-9]{4}),"
    r"DISPENSE1=(?P<amount>[0-9]{1,15}(?:\.[0-9]{1,3})?)(?P<currency>[A-Z]{3}),"
    r"HMACSHA256=(?P<hmac>[0-9A-F]{64})"
)
_HMAC_KEY = "HMACSHA256="


class TokenError(AuthError):
    completion_code: CompletionCode = CompletionCode.INVALID_TOKEN
    code = "auth.token_invalid"


class TokenFormatError(TokenError):
    completion_code = CompletionCode.INVALID_TOKEN_FORMAT
    code = "auth.token_format"


class TokenKeyNoValueError(TokenError):
    completion_code = CompletionCode.INVALID_TOKEN_KEY_NO_VALUE
    code = "auth.token_key_no_value"


class NoCommandNonceError(TokenError):
    completion_code = CompletionCode.NO_COMMAND_NONCE
    code = "auth.no_command_nonce"


class TokenNonceError(TokenError):
    completion_code = CompletionCode.INVALID_TOKEN_NONCE
    code = "auth.token_nonce"


class TokenHMACError(TokenError):
    completion_code = CompletionCode.INVALID_TOKEN_HMAC
    code = "auth.token_hmac"


class TokenNotValidError(TokenError):
    completion_code = CompletionCode.INVALID_TOKEN
    code = "auth.token_invalid"


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency, 2)


def format_amount(amount: Decimal, currency: str) -> str:
    """`amount` with exactly the currency's minor-unit digits; refuses amounts it would round."""
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise TokenFormatError(f"currency must be three upper-case letters, got {currency!r}")
    try:
        amount = Decimal(amount)
    except (InvalidOperation, TypeError, ValueError):
        raise TokenFormatError("amount is not a decimal number") from None
    if not amount.is_finite() or amount <= 0:
        raise TokenFormatError("amount must be a positive finite number")
    quantum = Decimal(1).scaleb(-minor_units(currency))
    exact = amount.quantize(quantum)
    if exact != amount:
        raise TokenFormatError(f"amount {amount} has more decimals than {currency} allows")
    return f"{exact:f}"


@dataclass(frozen=True)
class DispenseToken:
    nonce: str          # upper-case hex
    amount: Decimal
    currency: str
    text: str           # the token exactly as received / made

    def check_dispense(self, amount: Decimal, currency: str,
                       already_dispensed: Decimal = Decimal(0)) -> None:
        """Raise TokenNotValidError unless `amount` more stays within this token's value."""
        if currency != self.currency:
            raise TokenNotValidError(f"token authorises {self.currency}, not {currency}")
        try:
            amount = Decimal(amount)
        except (InvalidOperation, TypeError, ValueError):
            raise TokenNotValidError("requested amount is not a number") from None
        if not amount.is_finite() or amount <= 0:
            raise TokenNotValidError("requested amount must be positive")
        if already_dispensed + amount > self.amount:
            raise TokenNotValidError(
                f"request for {amount} {currency} exceeds the token's remaining value "
                f"{self.amount - already_dispensed} {currency}")


def _mac(key: bytes, signed_part: str) -> str:
    return hmac.new(key, signed_part.encode("ascii"), hashlib.sha256).hexdigest().upper()


def make_dispense_token(nonce: str, amount: Decimal, currency: str, key: bytes) -> str:
    """The token authorising up to `amount` `currency` against the dispenser's `nonce`."""
    if not key:
        raise TokenKeyNoValueError("no token key loaded")
    if not isinstance(nonce, str) or not re.fullmatch(r"(?:[0-9A-Fa-f]{2}){1,64}", nonce):
        raise TokenFormatError("nonce must be 2..128 hex digits (an even number)")
    value = format_amount(amount, currency)
    tail = f",DISPENSE1={value}{currency},{_HMAC_KEY}"
    head = f"NONCE={nonce.upper()},TOKENFORMAT={TOKEN_FORMAT},TOKENLENGTH="
    total = len(head) + 4 + len(tail) + 64
    if total > 9999:
        raise TokenFormatError("token would be longer than TOKENLENGTH can express")
    signed = f"{head}{total:04d}{tail}"
    return signed + _mac(key, signed)


def parse_dispense_token(text: str) -> DispenseToken:
    """Check the token's format strictly (no key needed); raise TokenFormatError."""
    if not isinstance(text, str):
        raise TokenFormatError("token must be a string")
    if len(text) > 9999 or not text.isascii():
        raise TokenFormatError("token is too long or not ASCII")
    m = _TOKEN_RE.fullmatch(text)
    if m is None:
        raise TokenFormatError("token does not match NONCE=..,TOKENFORMAT=1,TOKENLENGTH=nnnn,"
                               "DISPENSE1=<amount><CUR>,HMACSHA256=<64 hex>")
    if len(m["nonce"]) % 2:
        raise TokenFormatError("nonce has an odd number of hex digits")
    if int(m["format"]) != TOKEN_FORMAT or m["format"] != str(TOKEN_FORMAT):
        raise TokenFormatError(f"unsupported TOKENFORMAT {m['format']}")
    if int(m["length"]) != len(text):
        raise TokenFormatError(f"TOKENLENGTH {m['length']} but the token has {len(text)} characters")
    amount, currency = Decimal(m["amount"]), m["currency"]
    if format_amount(amount, currency) != m["amount"]:
        raise TokenFormatError(f"DISPENSE1 amount must have exactly {minor_units(currency)} decimals "
                               f"for {currency}")
    return DispenseToken(nonce=m["nonce"], amount=amount, currency=currency, text=text)


def check_token_hmac(token: DispenseToken, key: bytes | None) -> None:
    """Is the token genuine? TokenKeyNoValueError without a key, TokenHMACError when forged/altered."""
    if not key:
        raise TokenKeyNoValueError("no token key loaded in the verifier")
    text = token.text
    signed = text[: text.rindex(_HMAC_KEY) + len(_HMAC_KEY)]
    expected = bytes.fromhex(_mac(key, signed))
    if not hmac.compare_digest(expected, bytes.fromhex(text[len(signed):])):
        raise TokenHMACError("token HMAC does not verify")


def check_token_nonce(token: DispenseToken, current_nonce: str | None) -> None:
    """Is the token for the device's current nonce? NoCommandNonceError / TokenNonceError."""
    if not current_nonce:
        raise NoCommandNonceError("the device has no current command nonce")
    if not hmac.compare_digest(token.nonce.encode(), current_nonce.upper().encode()):
        raise TokenNonceError("token was made for another command nonce")


def verify_dispense_token(text: str, key: bytes | None, expected_nonce: str | None) -> DispenseToken:
    """Format, key, HMAC and nonce checks, in that order; return the token or raise TokenError.

    Genuineness comes before currency so a forged token is always reported as invalidTokenHMAC,
    whatever nonce it names."""
    token = parse_dispense_token(text)
    check_token_hmac(token, key)
    check_token_nonce(token, expected_nonce)
    return token

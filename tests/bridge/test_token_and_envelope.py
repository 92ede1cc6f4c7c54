"""The dispense token codec and the envelope codec, against the shapes in the notes."""
from __future__ import annotations

import hashlib
import hmac
import json
from decimal import Decimal

import pytest

from xfs4iot_bridge import envelope as env
from xfs4iot_bridge.envelope import AckStatus, CompletionCode, MessageError
from xfs4iot_bridge.token import (
    NoCommandNonceError,
    TokenFormatError,
    TokenHMACError,
    TokenKeyNoValueError,
    TokenNonceError,
    TokenNotValidError,
    make_dispense_token,
    parse_dispense_token,
    verify_dispense_token,
)

KEY = b"token key"
NONCE = "0123456789ABCDEF0123456789ABCDEF"


def test_token_matches_the_documented_example_shape():
    token = make_dispense_token(NONCE, Decimal("50.00"), "EUR", KEY)
    assert len(token) == 164 and ",TOKENLENGTH=0164," in token      # the XFS4IoT example's length
    head, mac = token.split("HMACSHA256=")
    assert head == f"NONCE={NONCE},TOKENFORMAT=1,TOKENLENGTH=0164,DISPENSE1=50.00EUR,"
    assert mac == hmac.new(KEY, (head + "HMACSHA256=").encode(), hashlib.sha256).hexdigest().upper()
    parsed = verify_dispense_token(token, KEY, NONCE.lower())
    assert (parsed.amount, parsed.currency, parsed.nonce) == (Decimal("50.00"), "EUR", NONCE)


@pytest.mark.parametrize("amount, currency, text", [("5000", "JPY", "5000JPY"), ("1.250", "KWD", "1.250KWD"),
                                                    ("0.01", "USD", "0.01USD")])
def test_minor_units(amount, currency, text):
    assert f"DISPENSE1={text}," in make_dispense_token(NONCE, Decimal(amount), currency, KEY)


@pytest.mark.parametrize("amount, currency", [("10.001", "EUR"), ("10.5", "JPY"), ("0", "EUR"), ("-5", "EUR"),
                                              ("10", "eur"), ("NaN", "EUR")])
def test_amounts_a_token_cannot_carry(amount, currency):
    with pytest.raises(TokenFormatError):
        make_dispense_token(NONCE, Decimal(amount), currency, KEY)


def test_malformed_tokens():
    good = make_dispense_token(NONCE, Decimal("50.00"), "EUR", KEY)
    variants = [
        good.replace("TOKENFORMAT=1", "TOKENFORMAT=2"),
        good.replace("TOKENLENGTH=0164", "TOKENLENGTH=0165"),
        good.replace("50.00EUR", "50.0EUR"),
        good[:-1] + "g",
        good.lower(),
        good.replace(",TOKENFORMAT=1", "") ,
        " " + good,
        "",
    ]
    for bad in variants:
        with pytest.raises(TokenFormatError):
            parse_dispense_token(bad)


def test_verification_order_and_errors():
    token = make_dispense_token(NONCE, Decimal("50.00"), "EUR", KEY)
    with pytest.raises(TokenKeyNoValueError):
        verify_dispense_token(token, b"", NONCE)
    with pytest.raises(TokenHMACError):
        verify_dispense_token(token, b"other key", NONCE)
    with pytest.raises(NoCommandNonceError):
        verify_dispense_token(token, KEY, None)
    with pytest.raises(TokenNonceError):
        verify_dispense_token(token, KEY, "FF" * 16)
    for exc, completion in ((TokenKeyNoValueError, "invalidTokenKeyNoValue"), (TokenHMACError, "invalidTokenHMAC"),
                            (NoCommandNonceError, "noCommandNonce"), (TokenNonceError, "invalidTokenNonce"),
                            (TokenFormatError, "invalidTokenFormat"), (TokenNotValidError, "invalidToken")):
        assert exc.completion_code.value == completion


def test_cumulative_value_check():
    token = parse_dispense_token(make_dispense_token(NONCE, Decimal("50.00"), "EUR", KEY))
    token.check_dispense(Decimal("30"), "EUR", already_dispensed=Decimal("20"))
    with pytest.raises(TokenNotValidError):
        token.check_dispense(Decimal("30.01"), "EUR", already_dispensed=Decimal("20"))
    with pytest.raises(TokenNotValidError):
        token.check_dispense(Decimal("10"), "USD")


# --- envelope -----------------------------------------------------------------------------------

def test_parse_a_command_from_the_notes():
    text = json.dumps({"header": {"name": "CardReader.ReadRawData", "requestId": 123456, "type": "command",
                                  "version": "2.0", "timeout": 5000}, "payload": {"track1": True}})
    msg = env.parse_message(text)
    assert (msg.name, msg.request_id, msg.header.timeout, msg.payload) == \
        ("CardReader.ReadRawData", 123456, 5000, {"track1": True})


def test_outgoing_headers():
    ack = env.ack("Biometric.Read", 7).to_dict()["header"]
    assert ack == {"name": "Biometric.Read", "requestId": 7, "type": "acknowledge", "version": "2.0", "status": None}
    done = env.completion("Biometric.Read", 7, {"x": 1}, code=CompletionCode.CANCELED, version="3.0").to_dict()
    assert done["header"]["completionCode"] == "canceled" and "status" not in done["header"]
    assert "timeout" not in done["header"]
    ev = env.event("Biometric.PresentSubjectEvent", 7).to_dict()["header"]
    assert ev["type"] == "event" and ev["requestId"] == 7
    uns = env.unsolicited("Biometric.DataClearedEvent", {"clearData": None}).to_dict()
    assert "requestId" not in uns["header"] and uns["header"]["type"] == "unsolicited"


@pytest.mark.parametrize("text", [
    "[]", "null", '{"payload": {}}', '{"header": []}',
    '{"header": {"name": "X.Y", "requestId": 0, "type": "command"}}',
    '{"header": {"name": "X.Y", "requestId": 1, "type": "command", "status": null}}',
    '{"header": {"name": "X.Y", "requestId": 1, "type": "command", "version": 2}}',
    '{"header": {"name": "XY", "requestId": 1, "type": "command"}}',
    '{"header": {"name": "X.Y", "requestId": 1, "type": "command"}, "payload": []}',
    '{"header": {"name": "X.Y", "requestId": 1, "type": "command"}, "extra": 1}',
    '{"header": {"name": "X.Y", "requestId": true, "type": "command"}}',
])
def test_refused_messages(text):
    with pytest.raises(MessageError) as exc:
        env.parse_message(text)
    assert exc.value.ack_status is AckStatus.INVALID_MESSAGE


def test_refusal_keeps_what_it_could_recover():
    with pytest.raises(MessageError) as exc:
        env.parse_message('{"header": {"name": "Biometric.Read", "requestId": 9, "type": "event"}}')
    assert (exc.value.name, exc.value.request_id) == ("Biometric.Read", 9)

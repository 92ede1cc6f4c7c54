"""The `xfs4iot` dispenser driver against the virtual dispenser and against broken peers."""
from __future__ import annotations

import asyncio
import socket
import threading
from decimal import Decimal

import pytest
from websockets.asyncio.server import serve

from drivers.base import available_backends, open_device
from drivers.dispenser.errors import (
    DispenserCommandFailed,
    DispenserTimeout,
    DispenserUnavailable,
    DispenseTokenRefused,
)
from drivers.errors import DeviceError
from edge.errors import AuthError
from simulator.dispenser import start_dispenser
from xfs4iot_bridge.token import make_dispense_token

KEY = b"\x42" * 32
pytestmark = pytest.mark.timeout(60)


@pytest.fixture()
def dispenser():
    d = start_dispenser(KEY)
    yield d
    d.stop()


def test_backend_is_registered():
    assert "xfs4iot" in available_backends("dispenser")


def test_nonce_and_dispense_through_the_publisher(dispenser):
    with open_device("dispenser", "xfs4iot", url=dispenser.publisher_url) as drv:
        nonce = drv.get_command_nonce()
        token = make_dispense_token(nonce, Decimal("40.00"), "EUR", KEY)
        done = drv.dispense(token, "40.00", "EUR")
        assert done["currencies"] == {"EUR": 40.0}
        with pytest.raises(DispenseTokenRefused) as exc:
            drv.dispense(token, "40.00", "EUR")
        assert exc.value.completion_code == "invalidToken"
        assert isinstance(exc.value, AuthError)
    assert dispenser.totals() == {"EUR": Decimal("40.00")}


def test_token_and_mechanism_errors_are_typed(dispenser):
    with open_device("dispenser", "xfs4iot", url=dispenser.url) as drv:
        nonce = drv.get_command_nonce()
        with pytest.raises(DispenseTokenRefused) as exc:
            drv.dispense(make_dispense_token(nonce, Decimal("10.00"), "EUR", b"forger"), "10.00", "EUR")
        assert exc.value.completion_code == "invalidTokenHMAC"
        drv.clear_command_nonce()
        with pytest.raises(DispenseTokenRefused) as exc:
            drv.dispense(make_dispense_token(nonce, Decimal("10.00"), "EUR", KEY), "10.00", "EUR")
        assert exc.value.completion_code == "noCommandNonce"
        token = make_dispense_token(drv.get_command_nonce(), Decimal("10.00"), "EUR", KEY)
        with pytest.raises(DispenserCommandFailed) as failed:
            drv.dispense(token, "7.00", "EUR")
        assert (failed.value.completion_code, failed.value.error_code) == ("commandErrorCode", "notDispensable")
        assert drv.status()["common"]["device"] == "online"


def test_survives_a_dispenser_restart_on_the_same_port(dispenser):
    port = dispenser.port
    drv = open_device("dispenser", "xfs4iot", url=dispenser.url)
    drv.get_command_nonce()
    dispenser.stop()
    with pytest.raises(DeviceError):
        drv.get_command_nonce()
    again = start_dispenser(KEY, port=port)
    try:
        assert len(drv.get_command_nonce()) == 32
    finally:
        drv.close()
        again.stop()


def test_unreachable_dispenser():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]   # nobody listens once the socket is closed
    drv = open_device("dispenser", "xfs4iot", url=f"ws://127.0.0.1:{port}/xfs4iot/v1.0/CashDispenser1/",
                      connect_timeout=2)
    with pytest.raises(DispenserUnavailable):
        drv.get_command_nonce()


def test_silent_dispenser_times_out():
    """A peer that accepts the WebSocket but never acknowledges."""
    ready, stop = threading.Event(), None
    box: dict = {}

    async def swallow(ws):
        async for _ in ws:
            pass

    async def main():
        nonlocal stop
        stop = asyncio.Event()
        async with serve(swallow, "127.0.0.1", 0) as server:
            box["port"] = server.sockets[0].getsockname()[1]
            box["loop"] = asyncio.get_running_loop()
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        drv = open_device("dispenser", "xfs4iot", url=f"ws://127.0.0.1:{box['port']}/xfs4iot/v1.0/CashDispenser1/",
                          timeout=0.3)
        with pytest.raises(DispenserTimeout) as exc:
            drv.get_command_nonce()
        assert exc.value.code == "device.timeout"
        drv.close()
    finally:
        box["loop"].call_soon_threadsafe(stop.set)
        thread.join(5)


def test_bad_url_is_an_input_error():
    from edge.errors import InputError
    with pytest.raises(InputError):
        open_device("dispenser", "xfs4iot", url="http://example/")

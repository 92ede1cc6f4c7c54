"""The simulator's control service over real HTTP and WebSocket on 127.0.0.1, against a real rig.

Each device change is checked where it lands: the camera's frames and its answer to prompts, the fingerprint
module as the real zfm driver sees it on its pseudo-terminal, the dispenser as the real xfs4iot driver sees it.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from drivers.base import open_device
from drivers.errors import DeviceError
from edge.config import Config, _deep_merge, load_config
from edge.errors import InputError
from simulator.control import SimClient
from simulator.rig import start_rig


@pytest.fixture
def rig(tmp_path):
    base = load_config(env={})
    cfg = Config.model_validate(_deep_merge(base.model_dump(mode="json"), {"paths": {"state_dir": str(tmp_path)}}))
    rig = start_rig(cfg, camera_transport="mjpeg", realtime=False)
    yield rig
    rig.close()


@pytest.fixture
def sim(rig):
    with SimClient(rig.addresses()["control_url"]) as client:
        yield client


def test_its_own_openapi_lists_every_device(sim):
    paths = httpx.get(sim.url + "/openapi.json").json()["paths"]
    for path in ("/camera/present", "/camera/attack", "/camera/light", "/camera/reaction", "/camera/unplug",
                 "/finger/place", "/finger/lift", "/finger/faults", "/finger/unplug", "/dispenser/jam",
                 "/dispenser/units", "/dispenser/ledger", "/dispenser/items_taken", "/prompts", "/state", "/events"):
        assert path in paths, path


def test_refused_values_are_clear_errors_and_change_nothing(sim):
    before = sim.camera.state()
    r = httpx.post(sim.url + "/camera/light", json={"level": "purple"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "input.invalid_request"
    with pytest.raises(InputError) as err:
        sim.finger.fault("lightning")
    assert err.value.code == "input.fault"
    with pytest.raises(InputError):
        sim.dispenser.units({"eur7": 3})
    with pytest.raises(InputError):
        sim.dispenser.items_taken()                       # nothing at the output: refused, not invented
    assert sim.camera.state() == {**before, "frame_index": sim.camera.state()["frame_index"]}
    assert sim.finger.state()["faults_pending"] == []


def test_camera_scene_light_reaction_and_cable(sim, rig):
    sim.camera.present("example:obama")
    assert rig.camera.script == "live"
    state = sim.camera.light("dark")
    assert state["script"] == "dark" and state["light"] == "dark"
    frame = rig.camera.read()
    sim.camera.light("normal")
    assert rig.camera.read().mean() > frame.mean() + 10          # the light came back on
    assert sim.camera.attack("printed_photo")["script"] == "printed_photo"
    assert sim.camera.attack("static_image", subject="example:obama2")["script"] == "static_replay"

    # the terminal's prompt (as the opencv driver posts it) reaches the customer, who does the wrong thing
    sim.camera.present("example:obama")
    sim.camera.reaction("wrong_action")
    httpx.post(rig.camera_server.prompt_url, json={"action": "blink"}).raise_for_status()
    prompts = sim.prompts()
    assert [p["action"] for p in prompts] == ["blink"] and prompts[0]["t"] > 0
    performed = set()
    for _ in range(30):
        rig.camera.read()
        performed |= set(rig.camera.last_info.performing)
    assert performed == {"turn_left"}, performed      # asked to blink, this customer turned the head instead

    sim.camera.unplug()
    with pytest.raises(DeviceError):
        rig.camera.read()
    assert sim.camera.replug()["fault"] is None
    rig.camera.read()


def test_fingers_presses_cable_and_faults_through_the_real_driver(sim, rig):
    port = rig.fingerprint.port
    with open_device("fingerprint", "zfm", port=port) as scanner:
        assert not scanner.finger_present()
        sim.finger.place("synthetic:3/1")
        assert scanner.finger_present()
        clean = scanner.capture(timeout=5)
        sim.finger.place("synthetic:3/1", press="partial")
        partial = scanner.capture(timeout=5)
        h = partial.shape[0]
        assert partial[h // 2:].std() < 0.3 * clean[h // 2:].std()     # the lower part never touched
        sim.finger.lift()
        assert not scanner.finger_present()

        # the next acknowledgement with a wrong checksum: the driver sends the command again and goes on
        sim.finger.place("synthetic:3/1")
        assert sim.finger.fault("bad_checksum", command="GenImg", next=1)["faults_pending"] == ["bad_checksum"]
        assert scanner.finger_present()
        state = sim.finger.state()
        assert [f["kind"] for f in state["faults_fired"]] == ["bad_checksum"] and state["faults_pending"] == []

        sim.finger.fault("noise", probability=1.0, seed=3)
        assert sim.finger.state()["random_faults"] == {"noise": 1.0}
        assert scanner.finger_present()                               # garbage before every frame: survived
        sim.finger.clear_faults()
        assert sim.finger.state()["random_faults"] == {}

        sim.finger.unplug()
        assert not Path(port).exists()
        with pytest.raises(DeviceError):
            scanner.finger_present()
    assert sim.finger.replug()["ready"]
    with open_device("fingerprint", "zfm", port=port) as scanner:
        assert scanner.finger_present()


def test_dispenser_units_jam_shutter_notes_and_ledger(sim, rig):
    from xfs4iot_bridge.token import make_dispense_token
    from decimal import Decimal

    key = rig.dispenser.device.key
    sim.dispenser.units({"eur50": 1, "eur20": 10})
    with open_device("dispenser", "xfs4iot", url=rig.dispenser.url) as dispenser:
        def pay(amount: str):
            token = make_dispense_token(dispenser.get_command_nonce(), Decimal(amount), "EUR", key)
            return dispenser.dispense(token, amount, "EUR")

        pay("90")
        state = sim.dispenser.state()
        assert state["units"]["eur50"]["count"] == 0 and state["units"]["eur20"]["count"] == 8
        assert state["position"]["amount"] == 90.0 and state["shutter"] == "open"
        assert sim.dispenser.items_taken()["position"] is None

        sim.dispenser.jam()
        assert dispenser.status()["common"]["device"] == "hardwareError"
        with pytest.raises(DeviceError) as err:
            dispenser.get_command_nonce()
        assert err.value.completion_code == "hardwareError"
        sim.dispenser.clear()

        sim.dispenser.shutter_failure()
        with pytest.raises(DeviceError) as err:
            pay("20")
        assert err.value.error_code == "shutterNotOpen"
        assert sim.dispenser.state()["stacker"]["amount"] == 20.0
        sim.dispenser.retract()
        sim.dispenser.clear()
    ledger = sim.dispenser.ledger()
    assert [d["amount"] for d in ledger["dispensed"]] == [90.0, 20.0]
    assert [m["event"] for m in ledger["movements"]] == [
        "units_loaded", "dispensed", "presented", "items_taken", "jammed", "faults_cleared", "shutter_fault_armed",
        "dispensed", "shutter_failed", "retracted", "faults_cleared"]


def test_the_event_stream_over_websocket(sim):
    sim.camera.present("example:obama")                         # before the stream opens: sent as backlog
    events: list[dict] = []
    url = sim.url.replace("http://", "ws://") + "/events/ws?since=0"
    with connect(url) as ws:
        def read():
            try:
                for message in ws:
                    events.append(json.loads(message))
            except Exception:
                pass
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        sim.finger.place("synthetic:1/0")
        sim.dispenser.jam()
        deadline = time.monotonic() + 10
        while len(events) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [(e["device"], e["event"]) for e in events[:3]] == [("camera", "present"), ("finger", "place"),
                                                                ("dispenser", "jammed")]
    assert [e["seq"] for e in events[:3]] == [1, 2, 3]
    assert sim.events(since=1, device="finger")[0]["finger"] == "synthetic:1/0"


def test_the_shell_command(sim, rig):
    biogate = Path(sys.executable).with_name("biogate")
    out = subprocess.run([str(biogate), "sim", "control", "--url", sim.url, "finger", "place", "synthetic:2/0",
                          "--press", "wet"], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["press"] == "wet"
    with open_device("fingerprint", "zfm", port=rig.fingerprint.port) as scanner:
        assert scanner.finger_present()
    bad = subprocess.run([str(biogate), "sim", "control", "--url", sim.url, "camera", "reaction", "shrugs"],
                         capture_output=True, text=True, timeout=240)
    assert bad.returncode == 1 and json.loads(bad.stderr)["error"]["code"] == "input.invalid_request"

"""An ATM application written outside biogate drives `biogate serve --simulated` over plain HTTP and WebSocket.

Nothing of biogate is imported here (only httpx, websockets and the standard library): the daemon and its
simulated devices run in a separate process, and everything below goes through their public interfaces,
as an ATM developer's application in any language would:

- the daemon's API (`url`): a teller enrols the customer, the ATM opens sessions and runs attempts and reads
  the prompts to show from the session;
- the simulator's control service (`control_url`): who stands at the camera, the finger on the scanner
  (placed when the screen asks for it, a partial press first so the terminal asks to lift and place it
  again), the dispenser jammed on the second withdrawal, the scanner unplugged in the middle of a capture;
  its WebSocket event stream and its prompt log are read back;
- the dispenser itself (`dispenser_url`): the ATM sends CashDispenser.Dispense with the token biogate issued.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

KEYS = {"terminal": "outside-terminal-key-0123456789", "teller": "outside-teller-key-0123456789",
        "auditor": "outside-auditor-key-0123456789", "admin": "outside-admin-key-0123456789"}
FINGER = "right_index"


@pytest.fixture
def daemon(tmp_path: Path):
    """`biogate serve --simulated` as its own process; yields the ready file's addresses."""
    ready = tmp_path / "ready.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIOGATE_")}
    env.update({"BIOGATE_PATHS__STATE_DIR": str(tmp_path / "state"), "BIOGATE_KEYS__API_KEYS": json.dumps(KEYS),
                "BIOGATE_SERVICE__LOG_LEVEL": "WARNING", "BIOGATE_BRIDGE__ENABLED": "false"})
    biogate = Path(sys.executable).with_name("biogate")
    proc = subprocess.Popen([str(biogate), "serve", "--simulated", "--port", "0", "--ready-file", str(ready)],
                            env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "daemon.log", "wb"))
    try:
        deadline = time.monotonic() + 240
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the daemon did not start: {(tmp_path / 'daemon.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield json.loads(ready.read_text())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def first_accepted(post, path: str, key: str, options: list[str], **extra) -> str:
    """Put the first of `options` the simulator has (LFW/FVC when the shared data is there, else its own)."""
    for option in options:
        r = post(path, json={key: option, **extra})
        if r.status_code == 200:
            return option
        assert r.json()["error"]["code"].startswith("input."), r.text
    raise AssertionError(f"none of {options} accepted")


class EventWatcher(threading.Thread):
    """Reads the control service's event stream (WebSocket) for the whole test."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.events, self.ws = url, [], None

    def run(self) -> None:
        with connect(self.url) as ws:
            self.ws = ws
            try:
                for message in ws:
                    self.events.append(json.loads(message))
            except Exception:
                pass

    def seen(self, device: str, event: str) -> list[dict]:
        return [e for e in self.events if e["device"] == device and e["event"] == event]


def dispense(dispenser_url: str, token: str, amount: float, currency: str) -> dict:
    """CashDispenser.Dispense as XFS4IoT JSON: acknowledge, then the completion."""
    command = {"header": {"name": "CashDispenser.Dispense", "requestId": 1, "type": "command", "version": "3.0",
                          "timeout": 20000},
               "payload": {"token": token, "position": "default", "denomination": {"currencies": {currency: amount}}}}
    with connect(dispenser_url, open_timeout=10) as ws:
        ws.send(json.dumps(command))
        while True:
            message = json.loads(ws.recv(timeout=30))
            if message["header"]["type"] == "completion":
                return message


class Attempt(threading.Thread):
    """POST /attempts in the background while the test plays the customer."""

    def __init__(self, atm: httpx.Client, session_id: str):
        super().__init__(daemon=True)
        self.atm, self.session_id, self.response = atm, session_id, None

    def run(self) -> None:
        self.response = self.atm.post(f"/v1/sessions/{self.session_id}/attempts", json={})


def wait_for_prompt(atm: httpx.Client, session_id: str, wanted: str, shown: list[str], attempt: Attempt,
                    timeout: float = 120) -> None:
    """Read the session's prompt as the ATM screen does, until `wanted` appears."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and attempt.is_alive():
        prompt = atm.get(f"/v1/sessions/{session_id}").json().get("prompt")
        if prompt and (not shown or shown[-1] != prompt):
            shown.append(prompt)
        if prompt == wanted:
            return
        time.sleep(0.1)
    raise AssertionError(f"the screen never asked {wanted!r}; it showed {shown}, "
                         f"attempt: {attempt.response.text if attempt.response is not None else 'running'}")


def test_a_withdrawal_driven_from_outside(daemon):
    sim_url = daemon["simulator"]["control_url"]
    dispenser_url = daemon["simulator"]["dispenser_url"]
    assert sim_url.startswith("http://127.0.0.1:")
    sim = httpx.Client(base_url=sim_url, timeout=60)
    api = httpx.Client(base_url=daemon["url"], timeout=180)
    teller = {"X-API-Key": KEYS["teller"]}
    atm = httpx.Client(base_url=daemon["url"], headers={"X-API-Key": KEYS["terminal"]}, timeout=180)
    assert "/finger/place" in sim.get("/openapi.json").json()["paths"]

    watcher = EventWatcher(sim_url.replace("http://", "ws://") + "/events/ws")
    watcher.start()

    # -- the teller enrols the customer: face from the camera, three touches of the right index ------------
    r = api.post("/v1/customers", headers=teller, json={
        "display_name": "Outside Customer", "card_refs": ["card-outside-1"],
        "consent": {"purpose": "biometric verification of cash operations", "modalities": ["face", "finger"],
                    "given_by": "Outside Customer"}})
    assert r.status_code == 201, r.text
    customer = r.json()["id"]
    face = first_accepted(sim.post, "/camera/present", "who", ["lfw:Colin_Powell/1", "example:obama"])
    r = api.post(f"/v1/customers/{customer}/enrol/face", headers=teller, json={})
    assert r.status_code == 200, r.text
    enrol_finger = first_accepted(sim.post, "/finger/place", "finger", ["fvc:DB1_B/101/1-3", "synthetic:1/0-2"])
    r = api.post(f"/v1/customers/{customer}/enrol/finger", headers=teller, json={"positions": [FINGER]})
    assert r.status_code == 200, r.text
    sim.post("/finger/lift").raise_for_status()
    later_face = "lfw:Colin_Powell/2" if face.startswith("lfw:") else "example:obama2"
    later_finger = "fvc:DB1_B/101/6" if enrol_finger.startswith("fvc:") else "synthetic:1/5"

    # -- withdrawal 1: the customer steps up; the finger goes on when the screen asks for it ----------------
    sim.post("/camera/present", json={"who": later_face}).raise_for_status()
    session = atm.post("/v1/sessions", json={"operation": "cash_withdrawal", "amount": "200", "currency": "EUR",
                                             "card_ref": "card-outside-1"}).json()
    assert session["factors"] == ["face", "finger"] and session["status"] == "open", session
    attempt, shown = Attempt(atm, session["session_id"]), []
    attempt.start()
    wait_for_prompt(atm, session["session_id"], f"place_finger:{FINGER}", shown, attempt)
    # only the tip touches: the terminal asks to lift the finger and place it again
    sim.post("/finger/place", json={"finger": later_finger, "press": "partial"}).raise_for_status()
    wait_for_prompt(atm, session["session_id"], f"lift_and_replace_finger:{FINGER}", shown, attempt)
    sim.post("/finger/lift").raise_for_status()
    sim.post("/finger/place", json={"finger": later_finger}).raise_for_status()
    attempt.join(timeout=180)
    result = attempt.response.json()
    assert attempt.response.status_code == 200 and result["outcome"] == "allow", result
    authorisation = result["authorisation"]
    assert authorisation["amount"] in ("200", "200.00") and authorisation["currency"] == "EUR"
    sim.post("/finger/lift").raise_for_status()
    assert shown[0] == "look_at_camera" and f"lift_and_replace_finger:{FINGER}" in shown, shown

    completion = dispense(dispenser_url, authorisation["token"], 200.0, "EUR")
    assert completion["header"]["completionCode"] == "success", completion
    assert sim.get("/dispenser").json()["position"]["amount"] == 200.0      # notes wait behind the open shutter
    sim.post("/dispenser/items_taken").raise_for_status()
    ledger = sim.get("/dispenser/ledger").json()
    assert [d["amount"] for d in ledger["dispensed"]] == [200.0]
    assert [m["event"] for m in ledger["movements"]] == ["dispensed", "presented", "items_taken"]

    # the liveness challenges the terminal showed reached the simulated customer, with their times
    prompts = sim.get("/prompts").json()
    assert prompts and all(p["t"] > 0 and p["action"] in ("blink", "turn_left", "turn_right", "closer")
                           for p in prompts), prompts

    # -- withdrawal 2: the dispenser jams; the daemon says it could not make a token -----------------------
    sim.post("/dispenser/jam").raise_for_status()
    sim.post("/finger/place", json={"finger": later_finger}).raise_for_status()
    session = atm.post("/v1/sessions", json={"operation": "cash_withdrawal", "amount": "100", "currency": "EUR",
                                             "card_ref": "card-outside-1"}).json()
    r = atm.post(f"/v1/sessions/{session['session_id']}/attempts", json={})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["outcome"] == "allow" and second.get("authorisation") is None, second
    assert any(reason.startswith("dispenser.nonce_unavailable:device.") for reason in second["reasons"]), second
    assert [d["amount"] for d in sim.get("/dispenser/ledger").json()["dispensed"]] == [200.0]   # nothing more paid
    sim.post("/dispenser/clear").raise_for_status()
    sim.post("/finger/lift").raise_for_status()

    # -- withdrawal 3: the scanner's cable is pulled while the terminal waits for the finger ---------------
    session = atm.post("/v1/sessions", json={"operation": "cash_withdrawal", "amount": "50", "currency": "EUR",
                                             "card_ref": "card-outside-1"}).json()
    attempt, shown = Attempt(atm, session["session_id"]), []
    attempt.start()
    wait_for_prompt(atm, session["session_id"], f"place_finger:{FINGER}", shown, attempt)
    sim.post("/finger/unplug", json={"mode": "close"}).raise_for_status()
    attempt.join(timeout=180)
    assert attempt.response.status_code == 503, attempt.response.text
    assert attempt.response.json()["error"]["code"].startswith("device."), attempt.response.text
    state = sim.post("/finger/replug").json()
    assert state["plugged"] and state["ready"], state

    # -- the event stream told the whole story, in order ------------------------------------------------
    deadline = time.monotonic() + 10
    while not watcher.seen("finger", "replug") and time.monotonic() < deadline:
        time.sleep(0.1)
    kinds = [(e["device"], e["event"]) for e in watcher.events]
    for expected in [("camera", "present"), ("finger", "place"), ("terminal", "prompt"), ("dispenser", "dispensed"),
                     ("dispenser", "items_taken"), ("dispenser", "jammed"), ("finger", "unplug"), ("finger", "replug")]:
        assert expected in kinds, (expected, kinds)
    assert kinds.index(("dispenser", "dispensed")) < kinds.index(("dispenser", "jammed")) < kinds.index(
        ("finger", "unplug"))
    assert [e["seq"] for e in watcher.events] == sorted(e["seq"] for e in watcher.events)
    for client in (sim, api, atm):
        client.close()

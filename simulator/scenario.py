"""Declarative scenarios: customers, devices, faults and steps in a TOML file, played against biogate.

    result = run_scenario("simulator/scenarios/genuine.toml")      # starts a daemon on the simulator
    print(result.timeline())                                        # what happened, readable
    result.ok                                                       # every expectation held

File format:

    name = "genuine customer"
    description = "..."
    [daemon]                     # configuration overrides for this scenario (optional, nested tables)
    [rig]                        # start_rig options: fingerprint_profile, camera_transport, seed, ...

    [[customers]]
    name = "alice"
    card = "card-alice"
    face = "lfw:Colin_Powell/1"                       # what the camera shows during face enrolment
    fingers = { right_index = "fvc:DB1_B/101/1-3" }   # what the scanner reads during finger enrolment

Any face or finger may be a list of alternatives, the first one available is used: e.g.
`["lfw:Colin_Powell/1", "example:obama"]` plays on LFW when ../shared/data is there and on the example
photos built by `make models` when it is not (fingers: `["fvc:DB1_B/101/1-3", "synthetic:1/0-2"]`).

    [[steps]]
    do = "enrol"                 # enrol | withdraw | card_load | deposit | fault | clear_faults | replay_token
    customer = "alice"

    [[steps]]
    do = "withdraw"
    customer = "alice"           # whose card is used
    face = "lfw:Colin_Powell/2"  # who stands at the machine: a face spec, or {script = "printed_photo", ...}
    finger = "fvc:DB1_B/101/6"   # which finger touches the scanner
    amount = "200"
    currency = "EUR"
    attempts = 3                 # attempts the ATM allows before giving up (default: the session's limit)
    expect = "allow"             # allow | deny | locked | refused | error
    expect_reason = "liveness."  # a prefix that must appear among the reasons (optional)
    expect_dispensed = "200.00EUR"   # or "none"
    expect_error = "device."     # for outcome error: a prefix of the API error code

    [[steps]]
    do = "fault"
    device = "fingerprint"       # fingerprint faults: simulator.fingerprint.faults; camera: unplug | freeze | replug
    fault = { kind = "unplug", command = "UpImage" }

    [[steps]]
    do = "replay_token"
    expect_refusal = "invalidToken"
"""
from __future__ import annotations

import copy
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from edge.config import Config, _deep_merge, load_config
from edge.errors import InputError
from simulator.atm import VirtualAtm
from simulator.terminal import SimulatedTerminal

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
STEP_KINDS = ("enrol", "withdraw", "card_load", "deposit", "fault", "clear_faults", "replay_token", "present")


@dataclass
class Check:
    step: int
    what: str
    ok: bool
    detail: str = ""


@dataclass
class ScenarioResult:
    name: str
    events: list[tuple[float, str, str]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    dispensed: list[str] = field(default_factory=list)     # what the ATM was told it dispensed
    ledger: list[str] = field(default_factory=list)        # what the dispenser itself recorded

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def timeline(self) -> str:
        lines = [f"scenario: {self.name}"]
        for t, who, text in sorted(self.events, key=lambda e: e[0]):
            lines.append(f"  [{t:7.2f}s] {who:<9} {text}")
        for c in self.checks:
            lines.append(f"  {'PASS' if c.ok else 'FAIL'}  step {c.step}: {c.what}{' - ' + c.detail if c.detail else ''}")
        lines.append(f"result: {'PASS' if self.ok else 'FAIL'} ({sum(c.ok for c in self.checks)}/{len(self.checks)} "
                     f"expectations)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "dispensed": self.dispensed, "ledger": self.ledger,
                "checks": [c.__dict__ for c in self.checks],
                "events": [{"t": round(t, 3), "who": w, "text": x} for t, w, x in self.events]}


def load_scenario(path: str | Path) -> dict:
    p = Path(path)
    if not p.exists() and (SCENARIO_DIR / p).exists():
        p = SCENARIO_DIR / p
    if not p.exists() and (SCENARIO_DIR / f"{p}.toml").exists():
        p = SCENARIO_DIR / f"{p}.toml"
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"scenario not found: {path}", code="input.not_found") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{p}: not valid TOML: {exc}", code="input.scenario") from None
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        raise InputError(f"{p}: a scenario needs [[steps]]", code="input.scenario")
    names = {c.get("name") for c in data.get("customers", [])}
    for i, step in enumerate(steps, 1):
        if step.get("do") not in STEP_KINDS:
            raise InputError(f"{p}: step {i}: 'do' must be one of {', '.join(STEP_KINDS)}", code="input.scenario")
        if "customer" in step and step["customer"] not in names:
            raise InputError(f"{p}: step {i}: unknown customer {step['customer']!r}", code="input.scenario")
    data.setdefault("name", p.stem)
    data["_path"] = str(p)
    return data


def scenario_config(base: Config, scenario: dict, state_dir: Path) -> Config:
    merged = _deep_merge(base.model_dump(mode="json"), copy.deepcopy(scenario.get("daemon", {})))
    merged = _deep_merge(merged, {"paths": {"state_dir": str(state_dir)}, "service": {"port": 0}})
    return Config.model_validate(merged)


class ScenarioRunner:
    """Plays one scenario against a simulated terminal (its daemon's URL and keys, its rig's devices)."""

    def __init__(self, scenario: dict, terminal: SimulatedTerminal, result: ScenarioResult):
        self.s = scenario
        self.rig = terminal.rig
        self.result = result
        keys = terminal.keys
        self.teller = httpx.Client(base_url=terminal.url, headers={"X-API-Key": keys["teller"]}, timeout=120)
        self.atm = VirtualAtm(terminal.url, keys["terminal"], self.rig.dispenser.url)
        self.t0 = time.monotonic()
        self.atm.t0 = self.t0
        self.customers = {c["name"]: c for c in scenario.get("customers", [])}

    def present(self, face: Any = None, finger: Any = None) -> None:
        """Put the first available alternative of each spec in front of the devices."""
        if face is not None:
            self._first(face, lambda f: self.rig.present(face=f))
        if finger is not None:
            self._first(finger, lambda f: self.rig.present(finger=f))

    @staticmethod
    def _first(spec: Any, apply) -> None:
        options = spec if isinstance(spec, list) else [spec]
        last: InputError | None = None
        for option in options:
            try:
                apply(option)
                return
            except InputError as exc:      # this source is not on this machine: try the next one
                last = exc
        raise last or InputError("empty alternative list", code="input.scenario")

    def event(self, who: str, text: str) -> None:
        self.result.events.append((time.monotonic() - self.t0, who, text))

    def check(self, step: int, what: str, ok: bool, detail: str = "") -> None:
        self.result.checks.append(Check(step, what, bool(ok), detail))

    def run(self) -> None:
        try:
            for i, step in enumerate(self.s["steps"], 1):
                getattr(self, f"_do_{step['do']}")(i, step)
        finally:
            self.teller.close()
            self.atm.close()

    # -- steps --------------------------------------------------------------------------------------------
    def _do_enrol(self, i: int, step: dict) -> None:
        c = self.customers[step["customer"]]
        fingers = c.get("fingers", {})
        modalities = ["face"] + (["finger"] if fingers else [])
        r = self.teller.post("/v1/customers", json={
            "display_name": c.get("display_name", c["name"].title()), "card_refs": [c["card"]],
            "consent": {"purpose": "biometric verification of cash operations at ATMs and cash desks",
                        "modalities": modalities, "given_by": c.get("display_name", c["name"].title())}})
        if r.status_code != 201:
            self.event("teller", f"could not create {c['name']}: {r.text[:200]}")
            self.check(i, f"enrol {c['name']}", False, r.text[:200])
            return
        cid = r.json()["id"]
        c["_id"] = cid
        self.present(face=c["face"], finger="none")
        r = self.teller.post(f"/v1/customers/{cid}/enrol/face", json={})
        ok = r.status_code == 200
        self.event("teller", f"enrols {c['name']}'s face: " + (f"{r.json()['added']} samples" if ok else r.text[:200]))
        for position, spec in fingers.items():
            self.present(finger=spec)
            r2 = self.teller.post(f"/v1/customers/{cid}/enrol/finger", json={"positions": [position]})
            ok = ok and r2.status_code == 200
            self.event("teller", f"enrols {c['name']}'s {position.replace('_', ' ')}: "
                                 + (f"{r2.json()['added']} impressions" if r2.status_code == 200 else r2.text[:200]))
        self.rig.present(face="nobody", finger="none")
        self.check(i, f"enrol {c['name']}", ok)

    def _transaction(self, i: int, step: dict, operation: str) -> None:
        c = self.customers.get(step.get("customer", ""), {})
        card = step.get("card") or c.get("card")
        self.present(face=step.get("face", "nobody"), finger=step.get("finger", "none"))
        tx = self.atm.withdraw(card, str(step.get("amount", "100")), step.get("currency", "EUR"),
                               max_attempts=int(step.get("attempts", 3)), operation=operation)
        self.result.events += tx.events
        self.rig.present(face="nobody", finger="none")
        if tx.dispensed:
            self.result.dispensed.append(tx.dispensed)
        label = f"{operation} {step.get('amount', '100')} {step.get('currency', 'EUR')}"
        if "expect" in step:
            self.check(i, f"{label}: outcome {step['expect']}", tx.outcome == step["expect"],
                       f"got {tx.outcome} ({', '.join(tx.reasons) or tx.error or ''})")
        if "expect_reason" in step:
            self.check(i, f"{label}: a reason starting {step['expect_reason']!r}",
                       any(r.startswith(step["expect_reason"]) for a in tx.attempts for r in a["reasons"])
                       or any(r.startswith(step["expect_reason"]) for r in tx.reasons),
                       f"reasons {[r for a in tx.attempts for r in a['reasons']] or tx.reasons}")
        if "expect_error" in step:
            self.check(i, f"{label}: error {step['expect_error']!r}", (tx.error or "").startswith(step["expect_error"]),
                       f"got {tx.error}")
        if "expect_dispensed" in step:
            want = step["expect_dispensed"]
            self.check(i, f"{label}: dispensed {want}", (tx.dispensed or "none") == want,
                       f"dispenser: {tx.dispensed or tx.dispense_error or 'nothing'}")
        if "expect_attempts" in step:
            self.check(i, f"{label}: {step['expect_attempts']} attempts", len(tx.attempts) == step["expect_attempts"],
                       f"got {len(tx.attempts)}")

    def _do_withdraw(self, i: int, step: dict) -> None:
        self._transaction(i, step, "cash_withdrawal")

    def _do_card_load(self, i: int, step: dict) -> None:
        self._transaction(i, step, "card_load")

    def _do_deposit(self, i: int, step: dict) -> None:
        self._transaction(i, step, "cash_deposit")

    def _do_present(self, i: int, step: dict) -> None:
        self.present(face=step.get("face"), finger=step.get("finger"))

    def _do_fault(self, i: int, step: dict) -> None:
        device, fault = step.get("device"), step.get("fault")
        if device == "fingerprint":
            self.rig.fingerprint.inject(fault)
        elif device == "camera":
            getattr(self.rig.camera, str(fault))()
        else:
            raise InputError(f"step {i}: fault device must be fingerprint or camera", code="input.scenario")
        self.event("simulator", f"fault armed on the {device}: {fault}")

    def _do_clear_faults(self, i: int, step: dict) -> None:
        """Faults disarmed and every cable back in (the field engineer's visit)."""
        self.rig.fingerprint.clear_faults()
        if not self.rig.fingerprint.plugged:
            self.rig.fingerprint.replug()
            self.rig.fingerprint.wait_ready(5.0)
        self.rig.camera.replug()
        self.event("simulator", "faults cleared, devices plugged in")

    def _do_replay_token(self, i: int, step: dict) -> None:
        tx = self.atm.replay_last_token()
        self.result.events += tx.events
        want = step.get("expect_refusal", "invalidToken")
        self.check(i, f"token replay refused with {want}", tx.dispensed is None and tx.dispense_error == want,
                   f"dispenser: {tx.dispensed or tx.dispense_error}")


def run_scenario(path: str | Path, *, base: Config | None = None, state_dir: Path | None = None,
                 rig_options: dict | None = None) -> ScenarioResult:
    """Start a fresh daemon on the simulator (its own state directory), play the scenario, stop."""
    scenario = load_scenario(path)
    base = base or load_config()
    tmp = None
    if state_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="biogate-scenario-")
        state_dir = Path(tmp.name)
    try:
        cfg = scenario_config(base, scenario, state_dir)
        options = {**scenario.get("rig", {}), **(rig_options or {})}
        result = ScenarioResult(scenario["name"])
        with SimulatedTerminal(cfg, **options) as terminal:
            ScenarioRunner(scenario, terminal, result).run()
            result.ledger = [f"{r.amount:.2f}{r.currency}" for r in terminal.rig.dispenser.dispensed]
        return result
    finally:
        if tmp is not None:
            tmp.cleanup()


def shipped_scenarios() -> list[Path]:
    return sorted(SCENARIO_DIR.glob("*.toml"))



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
    second_finger = "fvc:DB1_B/102/6"   # what the customer puts on the scanner when asked for another finger
                                        # (or {finger = spec, press = "dry"}: pressed wet, dry or partially)
    amount = "200"
    currency = "EUR"
    attempts = 3                 # attempts the ATM allows before giving up (default: the session's limit)
    expect = "allow"             # allow | deny | locked | refused | error
    expect_reason = "liveness."  # a prefix that must appear among the reasons (optional)
    expect_dispensed = "200.00EUR"   # or "none"
    expect_error = "device."     # for outcome error: a prefix of the API error code
    expect_prompt = "place_another_finger:"   # a prefix of a prompt the ATM screen must have shown

    [[steps]]
    do = "mules_scan"            # fleet only: an investigator scans the registry (edge.search); every holder of a
    expect_networks = 1          #   reported network is revealed (investigator asks, auditor approves) and compared
    expect_holders = ["n1"]      #   with exactly these customers; `expect_people`, `expect_terminals` optional

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
from simulator.control.client import SimClient
from simulator.terminal import SimulatedTerminal

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
STEP_KINDS = ("enrol", "withdraw", "card_load", "deposit", "fault", "clear_faults", "replay_token", "present",
              # fleet scenarios ([fleet] terminals = [...]; a step's `at` names its terminal):
              "sync", "registry_erase", "registry_stop", "registry_start", "wait_offline", "expect_registry_counts",
              "mules_scan")


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
    recording: Any = None                                   # simulator.recording.Recording (record=True)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def timeline(self) -> str:
        lines = [f"scenario: {self.name}"]
        width = max([9] + [len(who) for _, who, _ in self.events])
        for t, who, text in sorted(self.events, key=lambda e: e[0]):
            lines.append(f"  [{t:7.2f}s] {who:<{width}} {text}")
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


@dataclass
class Site:
    """One terminal of a scenario: its daemon, its devices, a teller at its desk and its ATM application."""

    name: str
    terminal: SimulatedTerminal
    teller: httpx.Client
    atm: VirtualAtm
    sim: SimClient                  # the simulator's control service: every device change goes through it


class ScenarioRunner:
    """Plays one scenario against simulated terminals (their daemons' URLs and keys, their rigs' devices): one,
    or the terminals of a fleet (`[fleet]`), each step at the terminal its `at` names (default: the first)."""

    def __init__(self, scenario: dict, terminals: dict[str, SimulatedTerminal], result: ScenarioResult,
                 world: Any = None):
        self.s = scenario
        self.result = result
        self.world = world                  # simulator.fleet.FleetWorld for fleet scenarios
        self.t0 = time.monotonic()
        self.sites: dict[str, Site] = {}
        for name, terminal in terminals.items():
            keys = terminal.keys
            atm = VirtualAtm(terminal.url, keys["terminal"], terminal.rig.dispenser.url)
            atm.t0 = self.t0
            self.sites[name] = Site(name, terminal, httpx.Client(base_url=terminal.url,
                                                                 headers={"X-API-Key": keys["teller"]}, timeout=120),
                                    atm, SimClient(terminal.rig.addresses()["control_url"]))
        self.site = next(iter(self.sites.values()))
        self.customers = {c["name"]: c for c in scenario.get("customers", [])}

    # the current step's terminal
    @property
    def sim(self) -> SimClient:
        return self.site.sim

    @property
    def teller(self) -> httpx.Client:
        return self.site.teller

    @property
    def atm(self) -> VirtualAtm:
        return self.site.atm

    def at(self, name: str | None) -> None:
        if name is None:
            return
        if name not in self.sites:
            raise InputError(f"no terminal {name!r} in this scenario ({', '.join(self.sites)})", code="input.scenario")
        self.site = self.sites[name]

    def who(self, role: str) -> str:
        return f"{self.site.name}:{role}" if len(self.sites) > 1 else role

    def present(self, face: Any = None, finger: Any = None) -> None:
        """Put the first available alternative of each spec in front of the devices."""
        if face is not None:
            self._first(face, self._show_face)
        if finger is not None:
            self._first(finger, lambda f: self.sim.finger.lift() if f == "none" else self.sim.finger.place(f))

    # scenario scripts that are presentation attacks, by the control API's names
    ATTACK_SCRIPTS = {"printed_photo": "printed_photo", "screen_replay": "screen_replay",
                      "static_replay": "static_image"}
    LIGHT_SCRIPTS = {"live": "normal", "dark": "dark", "overexposed": "overexposed"}

    def _show_face(self, face: Any) -> None:
        """A face spec, "nobody", or {script, subject?, photo?} in front of the camera, through the control API."""
        if not isinstance(face, dict):
            self.sim.camera.present(face)
            return
        script = face.get("script", "live")
        if script in self.ATTACK_SCRIPTS:
            self.sim.camera.attack(self.ATTACK_SCRIPTS[script], face.get("subject"), face.get("photo"))
        elif script in self.LIGHT_SCRIPTS:
            self.sim.camera.light(self.LIGHT_SCRIPTS[script])
            self.sim.camera.present(face["subject"])
        else:
            raise InputError(f"camera script {script!r} has no control API equivalent; scripts: "
                             f"{', '.join([*self.ATTACK_SCRIPTS, *self.LIGHT_SCRIPTS])}", code="input.scenario")

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
        self.result.events.append((time.monotonic() - self.t0, who if ":" in who or who in ("registry", "simulator")
                                   else self.who(who), text))

    def check(self, step: int, what: str, ok: bool, detail: str = "") -> None:
        self.result.checks.append(Check(step, what, bool(ok), detail))

    def run(self) -> None:
        try:
            for i, step in enumerate(self.s["steps"], 1):
                self.at(step.get("at"))
                getattr(self, f"_do_{step['do']}")(i, step)
            # what the dispensers themselves recorded, as their ledgers say
            self.result.ledger = [f"{d['amount']:.2f}{d['currency']}" for site in self.sites.values()
                                  for d in site.sim.dispenser.ledger()["dispensed"]]
        finally:
            for site in self.sites.values():
                site.teller.close()
                site.atm.close()
                site.sim.close()

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
        self.present(face="nobody", finger="none")
        self.check(i, f"enrol {c['name']}", ok)

    def _transaction(self, i: int, step: dict, operation: str) -> None:
        c = self.customers.get(step.get("customer", ""), {})
        card = step.get("card") or c.get("card")
        self.present(face=step.get("face", "nobody"), finger=step.get("finger", "none"))
        tx = self.atm.withdraw(card, str(step.get("amount", "100")), step.get("currency", "EUR"),
                               max_attempts=int(step.get("attempts", 3)), operation=operation,
                               on_prompt=self._customer_reads(step))
        self.result.events += [(t, self.who(who), text) for t, who, text in tx.events]
        self.present(face="nobody", finger="none")
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
        if "expect_reason_not" in step:
            self.check(i, f"{label}: no reason starting {step['expect_reason_not']!r}",
                       not any(r.startswith(step["expect_reason_not"]) for a in tx.attempts for r in a["reasons"]),
                       f"reasons {[r for a in tx.attempts for r in a['reasons']]}")
        if "expect_prompt" in step:
            self.check(i, f"{label}: the screen showed {step['expect_prompt']!r}",
                       any(p.startswith(step["expect_prompt"]) for p in tx.prompts), f"prompts {tx.prompts}")
        if "expect_attempts" in step:
            self.check(i, f"{label}: {step['expect_attempts']} attempts", len(tx.attempts) == step["expect_attempts"],
                       f"got {len(tx.attempts)}")

    def _customer_reads(self, step: dict):
        """The customer at the ATM: asked for another finger, they lift the first and put `second_finger` on."""
        second = step.get("second_finger")
        if second is None:
            return None

        def react(prompt: str) -> None:
            if prompt.startswith("place_another_finger:"):
                self.sim.finger.lift()
                time.sleep(0.5)
                if isinstance(second, dict):      # {finger = spec, press = "dry"}: how the finger lands
                    self.sim.finger.place(second["finger"], second.get("press", "normal"))
                else:
                    self.present(finger=second)
        return react

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
            for one in fault if isinstance(fault, list) else [fault]:
                self.sim.finger.fault(**one)
        elif device == "camera":
            getattr(self.sim.camera, str(fault))()
        elif device == "dispenser":
            getattr(self.sim.dispenser, str(fault))()
        else:
            raise InputError(f"step {i}: fault device must be fingerprint, camera or dispenser", code="input.scenario")
        self.event("simulator", f"fault armed on the {device}: {fault}")

    def _do_clear_faults(self, i: int, step: dict) -> None:
        """Faults disarmed and every cable back in (the field engineer's visit)."""
        self.sim.finger.clear_faults()
        if not self.sim.finger.state()["plugged"]:
            self.sim.finger.replug()
        self.sim.camera.replug()
        self.sim.dispenser.clear()
        self.event("simulator", "faults cleared, devices plugged in")

    def _do_replay_token(self, i: int, step: dict) -> None:
        tx = self.atm.replay_last_token()
        self.result.events += tx.events
        want = step.get("expect_refusal", "invalidToken")
        self.check(i, f"token replay refused with {want}", tx.dispensed is None and tx.dispense_error == want,
                   f"dispenser: {tx.dispensed or tx.dispense_error}")


    # -- the fleet (scenarios with [fleet]) ----------------------------------------------------------------
    def _fleet(self, i: int):
        if self.world is None:
            raise InputError(f"step {i}: a fleet step needs a [fleet] section", code="input.scenario")
        return self.world

    def _registry(self, role: str) -> httpx.Client:
        world = self._fleet(0)
        return httpx.Client(base_url=world.registry_url, headers={"X-API-Key": world.registry_keys[role]}, timeout=60)

    def _do_sync(self, i: int, step: dict) -> None:
        """Wait until this terminal is online with an empty outbox and has applied the registry's changes."""
        self._fleet(i)
        deadline = time.monotonic() + float(step.get("within_s", 20))
        fleet = self.site.terminal.daemon.runtime.fleet
        while time.monotonic() < deadline:
            st = fleet.status()
            if st["registry"] == "online" and st["outbox_length"] == 0:
                self.event("fleet", f"synced with the registry (change {st['change_seq']}, audit anchored at "
                                    f"seq {st['anchor_seq']})")
                self.check(i, f"{self.site.name} synced", True)
                return
            time.sleep(0.1)
        self.check(i, f"{self.site.name} synced", False, str(fleet.status()))

    def _do_registry_erase(self, i: int, step: dict) -> None:
        c = self.customers[step["customer"]]
        with self._registry("admin") as registry:
            r = registry.delete(f"/v1/customers/{c['_id']}")
        self.event("registry", f"the bank erases {c['name']}'s biometric data centrally: "
                               + ("done" if r.status_code == 200 else r.text[:200]))
        self.check(i, f"erase {c['name']} at the registry", r.status_code == 200, r.text[:200])

    def _do_registry_stop(self, i: int, step: dict) -> None:
        self._fleet(i).stop_registry()
        self.event("registry", "the registry goes away (network cut)")

    def _do_registry_start(self, i: int, step: dict) -> None:
        self._fleet(i).start_registry()
        self.event("registry", "the registry is back")

    def _do_wait_offline(self, i: int, step: dict) -> None:
        fleet = self.site.terminal.daemon.runtime.fleet
        deadline = time.monotonic() + float(step.get("within_s", 20))
        while fleet.status()["registry"] != "offline" and time.monotonic() < deadline:
            time.sleep(0.1)
        offline = fleet.status()["registry"] == "offline"
        self.event("fleet", "sees the registry offline" if offline else "still online")
        self.check(i, f"{self.site.name} notices it is offline", offline)

    def _do_mules_scan(self, i: int, step: dict) -> None:
        """An investigator's network scan at the registry; each reported holder revealed the two-person way."""
        why = {"purpose": step.get("purpose", "suspected cash-out network (simulated AML referral)"),
               "case_ref": step.get("case_ref", "CASE-SIM-0001")}
        with self._registry("teller") as teller:
            refused = teller.post("/v1/search/scans", json=why)
        self.check(i, "a teller may not scan", refused.status_code == 403, str(refused.status_code))
        with self._registry("investigator") as inv, self._registry("auditor") as auditor:
            inv.headers["X-Operator-Id"], auditor.headers["X-Operator-Id"] = "ivan", "anna"
            r = inv.post("/v1/search/scans", json=why)
            if r.status_code != 200:
                self.check(i, "network scan", False, r.text[:300])
                return
            view = r.json()
            networks = view["networks"]
            for n in networks:
                self.event("registry", f"investigator:ivan finds {n['id']} (score {n['score']}): {n['explanation']}")
            revealed: set[str] = set()
            for n in networks:
                for holder in n["holders"]:
                    asked = inv.post("/v1/search/reveals", json={**why, "scan_id": view["scan_id"], "pseudonym": holder,
                                                                 "what": "identity"}).json()
                    auditor.post(f"/v1/search/reveals/{asked['reveal_id']}/approve")
                    shown = inv.get(f"/v1/search/reveals/{asked['reveal_id']}").json()
                    revealed.add(next((name for name, c in self.customers.items()
                                       if c.get("_id") == shown.get("customer_id")), str(shown.get("customer_id"))))
        if revealed:
            self.event("registry", f"auditor:anna approves; the holders are {', '.join(sorted(revealed))}")
        if "expect_networks" in step:
            self.check(i, f"{step['expect_networks']} network(s) reported", len(networks) == step["expect_networks"],
                       f"got {len(networks)}")
        if "expect_holders" in step:
            self.check(i, "the network's holders are exactly " + ", ".join(step["expect_holders"]),
                       revealed == set(step["expect_holders"]), f"got {sorted(revealed)}")
        if "expect_people" in step:
            people = sum(len(n["people"]) for n in networks)
            self.check(i, f"{step['expect_people']} people in the network", people == step["expect_people"],
                       f"got {people}")
        if "expect_terminals" in step:
            seen = sorted({t for n in networks for t in n["terminals"]})
            self.check(i, "across " + ", ".join(step["expect_terminals"]), seen == sorted(step["expect_terminals"]),
                       f"got {seen}")

    def _do_expect_registry_counts(self, i: int, step: dict) -> None:
        """The registry's decision count equals the sum of the terminals' (nothing lost, nothing twice)."""
        with self._registry("auditor") as registry:
            stats = registry.get("/v1/fleet/stats").json()
        local = {}
        for name, site in self.sites.items():
            with site.terminal.daemon.runtime.store.transaction() as tx:
                local[name] = tx.count_decisions()
        self.event("registry", f"holds {stats['decisions']} decisions; the terminals hold "
                               + ", ".join(f"{n}: {k}" for n, k in local.items()))
        self.check(i, "registry decisions = sum of the terminals'", stats["decisions"] == sum(local.values()),
                   f"{stats['decisions']} vs {local}")


def run_scenario(path: str | Path, *, base: Config | None = None, state_dir: Path | None = None,
                 rig_options: dict | None = None, record: bool = False) -> ScenarioResult:
    """Start a fresh daemon on the simulator (its own state directory), play the scenario, stop.
    `record`: capture the devices' traffic into `result.recording` (one terminal only)."""
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
        fleet = scenario.get("fleet")
        if fleet:
            from simulator.fleet import FleetWorld

            if record:
                raise InputError("recording plays one terminal; a fleet scenario has several", code="input.scenario")

            with FleetWorld(cfg, state_dir / "fleet", list(fleet["terminals"]), rig_options=options) as world:
                ScenarioRunner(scenario, world.terminals, result, world).run()
        else:
            with SimulatedTerminal(cfg, **options) as terminal:
                recorder = None
                if record:
                    from simulator.recording import Recorder

                    recorder = Recorder(terminal.rig).start()
                try:
                    ScenarioRunner(scenario, {cfg.terminal_id: terminal}, result).run()
                finally:
                    if recorder is not None:
                        result.recording = recorder.stop()
        return result
    finally:
        if tmp is not None:
            tmp.cleanup()


def shipped_scenarios() -> list[Path]:
    return sorted(SCENARIO_DIR.glob("*.toml"))


def fleet_scenarios() -> list[Path]:
    """The fleet's scenarios (simulator/scenarios/fleet/): they start a throwaway PostgreSQL and a registry."""
    return sorted((SCENARIO_DIR / "fleet").glob("*.toml"))



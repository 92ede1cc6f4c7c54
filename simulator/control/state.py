"""`SimulatorControl`: what each control request does to the rig's devices (the HTTP app is a thin layer).

Every change is an event of the log (`events.EventLog`), so an outside application watching the event
stream sees what the simulator did, and what the terminal showed the customer (`terminal` / `prompt`).
Unit tests may call this class directly; everything else goes through the HTTP API (`SimClient`).
"""
from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

from edge.errors import InputError
from simulator.camera.virtual import REACTIONS
from simulator.control.events import EventLog
from simulator.dispenser.device import DispenseRefused
from simulator.fingerprint.faults import FAULT_KINDS, Fault, RandomFaults
from simulator.fingerprint.images import PRESSES, PressedSource, finger_source

ATTACKS = {"printed_photo": "printed_photo", "screen_replay": "screen_replay", "static_image": "static_replay"}
LIGHTS = {"normal": "live", "dark": "dark", "overexposed": "overexposed"}
CAMERA_FAULTS = ("unplug", "freeze", "replug")


class SimulatorControl:
    def __init__(self, rig, log: EventLog | None = None):
        self.rig = rig
        self.log = log or EventLog()
        self._lock = threading.Lock()
        self.camera_view: dict[str, Any] = {"who": "nobody", "attack": None, "light": "normal"}
        self.finger_view: dict[str, Any] = {"finger": None, "press": None}
        rig.camera.prompt_listeners.append(lambda action: self.log.add("terminal", "prompt", action=action))
        rig.dispenser.device.listeners.append(self._dispenser_event)

    def _dispenser_event(self, event: dict) -> None:
        details = {k: v for k, v in event.items() if k not in ("seq", "event", "at")}
        self.log.add("dispenser", event["event"], **details)

    # -- camera ---------------------------------------------------------------------------------------
    def camera_present(self, who: str) -> dict:
        """Who stands in front of the camera: a face spec (`lfw:<Name>[/<n>]`, `example:<name>`, `nuaa:<id>`,
        a file) or "nobody"."""
        if not isinstance(who, str) or not who:
            raise InputError("'who' must be a face spec or 'nobody'", code="input.invalid")
        with self._lock:
            self.rig.present(face=who if who == "nobody" else {"script": LIGHTS[self.camera_view["light"]],
                                                                  "subject": who})
            self.camera_view.update(who=who, attack=None)
        self.log.add("camera", "present", who=who)
        return self.camera_state()

    def camera_attack(self, kind: str, subject: str | None = None, photo: str | None = None) -> dict:
        """A presentation attack: printed_photo (of `subject`, or the NUAA capture `photo`), screen_replay or
        static_image (of `subject`; default: whoever stands there)."""
        if kind not in ATTACKS:
            raise InputError(f"unknown attack {kind!r}; known: {', '.join(ATTACKS)}", code="input.unknown_attack")
        with self._lock:
            who = self.camera_view["who"]
            subject = subject or (who if who != "nobody" else None)
            options = {k: v for k, v in (("subject", subject), ("photo", photo)) if v}
            self.rig.camera.present(ATTACKS[kind], **options)
            self.camera_view.update(attack=kind, who=subject or "default")
        self.log.add("camera", "attack", kind=kind, **options)
        return self.camera_state()

    def camera_light(self, level: str) -> dict:
        if level not in LIGHTS:
            raise InputError(f"unknown light level {level!r}; known: {', '.join(LIGHTS)}", code="input.invalid")
        with self._lock:
            self.camera_view["light"] = level
            who = self.camera_view["who"]
            if who != "nobody" and self.camera_view["attack"] is None:   # the live customer, under the new light
                self.rig.camera.present(LIGHTS[level], subject=who)
        self.log.add("camera", "light", level=level)
        return self.camera_state()

    def camera_reaction(self, reaction: str) -> dict:
        if reaction not in REACTIONS:
            raise InputError(f"unknown reaction {reaction!r}; known: {', '.join(REACTIONS)}",
                             code="input.unknown_reaction")
        self.rig.camera.set_reaction(reaction)
        self.log.add("camera", "reaction", reaction=reaction)
        return self.camera_state()

    def camera_fault(self, fault: str) -> dict:
        if fault not in CAMERA_FAULTS:
            raise InputError(f"unknown camera fault {fault!r}; known: {', '.join(CAMERA_FAULTS)}",
                             code="input.unknown_fault")
        getattr(self.rig.camera, fault)()
        self.log.add("camera", fault)
        return self.camera_state()

    def camera_state(self) -> dict:
        cam = self.rig.camera
        return {**self.camera_view, "script": cam.script, "reaction": cam.reaction,
                "fault": cam.fault, "frame_index": cam.frame_index}

    # -- fingerprint module ---------------------------------------------------------------------------
    def finger_place(self, finger: str, press: str = "normal") -> dict:
        """A finger on the sensor until lifted: `fvc:<DB>/<finger>[/<i>[-<j>]]`, `synthetic:<f>[/<i>]`, an
        image file or folder; `press` how it touches (normal, wet, dry, partial)."""
        if not isinstance(finger, str) or not finger or finger == "none":
            raise InputError("'finger' must be a finger spec (lift takes it away)", code="input.invalid")
        if press not in PRESSES:
            raise InputError(f"unknown press {press!r}; known: {', '.join(PRESSES)}", code="input.unknown_press")
        from simulator.rig import resolve_finger

        module = self.rig.fingerprint
        source = finger_source(resolve_finger(finger, self.rig.data_dir), seed=module.seed)
        module.place(PressedSource(source, press, seed=module.seed) if press != "normal" else source)
        self.finger_view.update(finger=finger, press=press)
        self.log.add("finger", "place", finger=finger, press=press)
        return self.finger_state()

    def finger_lift(self) -> dict:
        self.rig.fingerprint.lift()
        self.finger_view.update(finger=None, press=None)
        self.log.add("finger", "lift")
        return self.finger_state()

    def finger_unplug(self, mode: str = "close") -> dict:
        self.rig.fingerprint.unplug(mode)
        self.log.add("finger", "unplug", mode=mode)
        return self.finger_state()

    def finger_replug(self) -> dict:
        module = self.rig.fingerprint
        module.replug()
        module.wait_ready(5.0)
        self.log.add("finger", "replug")
        return self.finger_state()

    def finger_fault(self, spec: dict) -> dict:
        """Serial faults (simulator.fingerprint.faults kinds): for the next `next` matching commands (default 1;
        0 = every one from now on), or at random with `probability` per command / frame (`seed`)."""
        spec = dict(spec)
        kind = spec.get("kind")
        if kind not in FAULT_KINDS:
            raise InputError(f"unknown fault kind {kind!r}; known: {', '.join(sorted(FAULT_KINDS))}",
                             code="input.fault")
        probability = spec.pop("probability", None)
        module = self.rig.fingerprint
        if probability is not None:
            seed = spec.pop("seed", 0)
            extra = {k: spec.pop(k) for k in ("delay", "replug_after") if k in spec}
            if set(spec) - {"kind"}:
                raise InputError("a random fault takes kind, probability, seed, delay and replug_after only",
                                 code="input.fault")
            current = dict(module.faults.random.rates) if module.faults.random else {}
            module.inject(RandomFaults(seed=int(seed), rates={**current, kind: float(probability)}, **extra))
            self.log.add("finger", "fault", kind=kind, probability=float(probability))
        else:
            spec["times"] = int(spec.pop("next", spec.get("times", 1)))
            fault = Fault.from_dict(spec)
            module.inject(fault)
            self.log.add("finger", "fault", kind=kind, next=fault.times)
        return self.finger_state()

    def finger_clear_faults(self) -> dict:
        self.rig.fingerprint.clear_faults()
        self.log.add("finger", "faults_cleared")
        return self.finger_state()

    def finger_state(self) -> dict:
        module = self.rig.fingerprint
        random_rates = dict(module.faults.random.rates) if module.faults.random else {}
        return {**self.finger_view, "port": module.port, "plugged": module.plugged, "ready": module.ready,
                "model": module.model.name,
                "faults_pending": [f.kind for f in module.faults.pending], "random_faults": random_rates,
                "faults_fired": [{"kind": k, "command": c, "frame": f} for k, c, f in module.faults_fired],
                "captures": len(module.captures)}

    # -- dispenser ------------------------------------------------------------------------------------
    def _mechanism(self, action: str):
        device = self.rig.dispenser.device
        try:
            return getattr(device, action)()
        except DispenseRefused as exc:
            raise InputError(exc.description, code="input.conflict", details={"errorCode": exc.error_code}) from None

    def dispenser_jam(self) -> dict:
        self._mechanism("jam")
        return self.dispenser_state()

    def dispenser_shutter_failure(self) -> dict:
        self._mechanism("fail_shutter")
        return self.dispenser_state()

    def dispenser_clear(self) -> dict:
        self._mechanism("clear_faults")
        return self.dispenser_state()

    def dispenser_present(self) -> dict:
        self._mechanism("present")
        return self.dispenser_state()

    def dispenser_retract(self) -> dict:
        self._mechanism("retract")
        return self.dispenser_state()

    def dispenser_items_taken(self) -> dict:
        self._mechanism("items_taken")
        return self.dispenser_state()

    def dispenser_units(self, counts: dict[str, int]) -> dict:
        try:
            self.rig.dispenser.device.set_units(counts)
        except ValueError as exc:
            raise InputError(str(exc), code="input.invalid") from None
        return self.dispenser_state()

    def dispenser_state(self) -> dict:
        device = self.rig.dispenser.device
        return {**device.state(), "url": self.rig.dispenser.url,
                "totals": {c: float(v) for c, v in device.totals().items()}}

    def dispenser_ledger(self) -> dict:
        device = self.rig.dispenser.device
        return {"dispensed": [r.to_dict() for r in device.dispensed], "movements": device.events,
                "totals": {c: float(Decimal(v)) for c, v in device.totals().items()}}

    # -- observation ----------------------------------------------------------------------------------
    def prompts(self, since: int = 0) -> list[dict]:
        return [{"seq": e["seq"], "t": e["t"], "action": e["action"]}
                for e in self.log.since(since, device="terminal", event="prompt")]

    def state(self) -> dict:
        return {"camera": self.camera_state(), "finger": self.finger_state(), "dispenser": self.dispenser_state(),
                "addresses": self.rig.addresses(), "last_event": self.log.last_seq}

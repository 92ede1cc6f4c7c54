"""`SimClient`: the Python client of the control service (what `biogate sim control`, the scenario runner
and the tests use; other languages use the same HTTP API).

    sim = SimClient("http://127.0.0.1:8765")
    sim.camera.present("lfw:Colin_Powell")          sim.camera.attack("printed_photo")
    sim.finger.place("fvc:DB1_B/101/6", press="wet"); sim.finger.lift(); sim.finger.fault("bad_checksum", next=3)
    sim.dispenser.jam(); sim.dispenser.ledger()
    sim.prompts(); sim.events(since=0); sim.state()

A refused request raises the simulator's error as a BiogateError with its code (input.*).
"""
from __future__ import annotations

from typing import Any

import httpx

from edge.errors import BiogateError, InputError


class _Part:
    def __init__(self, client: "SimClient", prefix: str):
        self._client, self._prefix = client, prefix

    def _post(self, path: str, body: dict | None = None) -> dict:
        return self._client.request("POST", f"{self._prefix}/{path}", body)


class CameraControl(_Part):
    def state(self) -> dict:
        return self._client.request("GET", self._prefix)

    def present(self, who: str) -> dict:
        return self._post("present", {"who": who})

    def attack(self, kind: str, subject: str | None = None, photo: str | None = None) -> dict:
        return self._post("attack", {"kind": kind, "subject": subject, "photo": photo})

    def light(self, level: str) -> dict:
        return self._post("light", {"level": level})

    def reaction(self, reaction: str) -> dict:
        return self._post("reaction", {"reaction": reaction})

    def unplug(self) -> dict:
        return self._post("unplug")

    def freeze(self) -> dict:
        return self._post("freeze")

    def replug(self) -> dict:
        return self._post("replug")


class FingerControl(_Part):
    def state(self) -> dict:
        return self._client.request("GET", self._prefix)

    def place(self, finger: str, press: str = "normal") -> dict:
        return self._post("place", {"finger": finger, "press": press})

    def lift(self) -> dict:
        return self._post("lift")

    def unplug(self, mode: str = "close") -> dict:
        return self._post("unplug", {"mode": mode})

    def replug(self) -> dict:
        return self._post("replug")

    def fault(self, kind: str, **fields: Any) -> dict:
        """A serial fault: `next=N` commands (default 1) or `probability=p`; other fields as the kind takes."""
        return self._post("faults", {"kind": kind, **fields})

    def clear_faults(self) -> dict:
        return self._client.request("DELETE", f"{self._prefix}/faults")


class DispenserControl(_Part):
    def state(self) -> dict:
        return self._client.request("GET", self._prefix)

    def ledger(self) -> dict:
        return self._client.request("GET", f"{self._prefix}/ledger")

    def units(self, counts: dict[str, int]) -> dict:
        return self._client.request("PUT", f"{self._prefix}/units", counts)

    def jam(self) -> dict:
        return self._post("jam")

    def shutter_failure(self) -> dict:
        return self._post("shutter_failure")

    def clear(self) -> dict:
        return self._post("clear")

    def present(self) -> dict:
        return self._post("present")

    def retract(self) -> dict:
        return self._post("retract")

    def items_taken(self) -> dict:
        return self._post("items_taken")


class SimClient:
    def __init__(self, url: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        self.camera = CameraControl(self, "/camera")
        self.finger = FingerControl(self, "/finger")
        self.dispenser = DispenserControl(self, "/dispenser")

    def request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            r = self._http.request(method, path, json=body if body is not None else None)
        except httpx.HTTPError as exc:
            raise BiogateError(f"simulator control at {self.url} unreachable: {exc.__class__.__name__}",
                               code="input.simulator_unreachable") from None
        try:
            payload = r.json()
        except ValueError:
            payload = None
        if r.status_code >= 400:
            error = (payload or {}).get("error", {}) if isinstance(payload, dict) else {}
            raise InputError(error.get("message") or f"HTTP {r.status_code}", code=error.get("code", "input.invalid"),
                             details=error.get("details"))
        return payload

    def state(self) -> dict:
        return self.request("GET", "/state")

    def prompts(self, since: int = 0) -> list[dict]:
        return self.request("GET", f"/prompts?since={int(since)}")

    def events(self, since: int = 0, device: str | None = None) -> list[dict]:
        return self.request("GET", f"/events?since={int(since)}" + (f"&device={device}" if device else ""))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "SimClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""The control service's HTTP API (FastAPI; its own OpenAPI document at /openapi.json, docs at /docs).

    POST /camera/present {"who": "lfw:Colin_Powell"|"example:obama"|"nobody"|<file>}
    POST /camera/attack {"kind": "printed_photo"|"screen_replay"|"static_image", "subject"?, "photo"?}
    POST /camera/light {"level": "normal"|"dark"|"overexposed"}
    POST /camera/reaction {"reaction": "complies"|"ignores"|"wrong_action"}
    POST /camera/unplug | /camera/freeze | /camera/replug          GET /camera
    POST /finger/place {"finger": "fvc:DB1_B/101/6", "press": "normal"|"wet"|"dry"|"partial"}
    POST /finger/lift | /finger/unplug {"mode"?} | /finger/replug   GET /finger
    POST /finger/faults {"kind": "bad_checksum", "next": 3} or {"kind": "noise", "probability": 0.1}
    DELETE /finger/faults
    POST /dispenser/jam | /dispenser/shutter_failure | /dispenser/clear
    POST /dispenser/present | /dispenser/retract | /dispenser/items_taken
    PUT  /dispenser/units {"eur20": 100, ...}                       GET /dispenser, /dispenser/ledger
    GET  /state, /prompts?since=N, /events?since=N;  WebSocket /events/ws?since=N (one JSON event a message)

Every answer is JSON; errors are {"error": {"code", "message", "details"?}} as the daemon writes them
(edge.service.errors), 422 for a value the simulator refuses.
"""
from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, FastAPI, Query, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field

from edge.service.errors import install_error_handlers
from simulator.control.state import SimulatorControl


class Present(BaseModel):
    who: str = Field(description="a face spec (lfw:<Name>[/<n>], example:<name>, nuaa:<id>, a file) or 'nobody'")


class Attack(BaseModel):
    kind: Literal["printed_photo", "screen_replay", "static_image"]
    subject: str | None = Field(None, description="whose face the attack shows (default: who stands there)")
    photo: str | None = Field(None, description="printed_photo: a real capture, e.g. nuaa-attack:0001")


class Light(BaseModel):
    level: Literal["normal", "dark", "overexposed"]


class Reaction(BaseModel):
    reaction: Literal["complies", "ignores", "wrong_action"]


class Place(BaseModel):
    finger: str = Field(description="fvc:<DB>/<finger>[/<i>[-<j>]], synthetic:<f>[/<i>], an image file or folder")
    press: Literal["normal", "wet", "dry", "partial"] = "normal"


class Unplug(BaseModel):
    mode: Literal["close", "silent"] = Field("close", description="close: the port vanishes; silent: it stays, mute")


class SerialFault(BaseModel):
    """A fault of simulator.fingerprint.faults; `next` commands (0 = all from now) or `probability`."""

    model_config = ConfigDict(extra="allow")   # the kind's own fields: count, delay, pieces, keep, code, ...
    kind: str
    command: str | None = Field(None, description="on which command (UpImage, GenImg, ...); omitted: any")
    packet: int | None = Field(None, description="which frame of the reply: 0 = the acknowledgement")
    next: int | None = Field(None, ge=0, description="for the next N matching commands (default 1)")
    probability: float | None = Field(None, ge=0, le=1, description="instead: at random, per command or frame")


def create_control_app(control: SimulatorControl) -> FastAPI:
    app = FastAPI(title="biogate simulator control", version="1.0",
                  description="Drive the simulated terminal's devices at run time and watch what happened.")
    install_error_handlers(app)
    camera, finger, dispenser, observe = (APIRouter(prefix=p, tags=[t]) for p, t in
                                          (("/camera", "camera"), ("/finger", "fingerprint module"),
                                           ("/dispenser", "dispenser"), ("", "observation")))

    @camera.get("")
    def camera_state() -> dict:
        return control.camera_state()

    @camera.post("/present")
    def camera_present(body: Present) -> dict:
        return control.camera_present(body.who)

    @camera.post("/attack")
    def camera_attack(body: Attack) -> dict:
        return control.camera_attack(body.kind, body.subject, body.photo)

    @camera.post("/light")
    def camera_light(body: Light) -> dict:
        return control.camera_light(body.level)

    @camera.post("/reaction")
    def camera_reaction(body: Reaction) -> dict:
        return control.camera_reaction(body.reaction)

    def camera_fault(fault: str):
        def run() -> dict:
            return control.camera_fault(fault)
        run.__name__ = f"camera_{fault}"
        camera.post(f"/{fault}", name=f"camera_{fault}")(run)

    for fault in ("unplug", "freeze", "replug"):
        camera_fault(fault)

    @finger.get("")
    def finger_state() -> dict:
        return control.finger_state()

    @finger.post("/place")
    def finger_place(body: Place) -> dict:
        return control.finger_place(body.finger, body.press)

    @finger.post("/lift")
    def finger_lift() -> dict:
        return control.finger_lift()

    @finger.post("/unplug")
    def finger_unplug(body: Unplug | None = None) -> dict:
        return control.finger_unplug((body or Unplug()).mode)

    @finger.post("/replug")
    def finger_replug() -> dict:
        return control.finger_replug()

    @finger.post("/faults")
    def finger_fault(body: SerialFault) -> dict:
        return control.finger_fault(body.model_dump(exclude_none=True))

    @finger.delete("/faults")
    def finger_clear_faults() -> dict:
        return control.finger_clear_faults()

    @dispenser.get("")
    def dispenser_state() -> dict:
        return control.dispenser_state()

    @dispenser.get("/ledger")
    def dispenser_ledger() -> dict:
        return control.dispenser_ledger()

    @dispenser.put("/units")
    def dispenser_units(counts: dict[str, int]) -> dict:
        return control.dispenser_units(counts)

    def mechanism(action: str):
        def run() -> dict:
            return getattr(control, f"dispenser_{action}")()
        run.__name__ = f"dispenser_{action}"
        dispenser.post(f"/{action}", name=f"dispenser_{action}")(run)

    for action in ("jam", "shutter_failure", "clear", "present", "retract", "items_taken"):
        mechanism(action)

    @observe.get("/state")
    def state() -> dict:
        return control.state()

    @observe.get("/prompts")
    def prompts(since: int = Query(0, ge=0)) -> list[dict]:
        return control.prompts(since)

    @observe.get("/events")
    def events(since: int = Query(0, ge=0), device: str | None = None) -> list[dict]:
        return control.log.since(since, device=device)

    @observe.websocket("/events/ws")
    async def event_stream(ws: WebSocket, since: int = Query(0, ge=0)) -> None:
        """Every event after `since` (0: from the start), then each new one as it happens."""
        await ws.accept()
        queue = control.log.subscribe(asyncio.get_running_loop())
        try:
            sent = since
            for event in control.log.since(since):
                await ws.send_json(event)
                sent = event["seq"]
            while True:
                event = await queue.get()
                if event["seq"] > sent:
                    await ws.send_json(event)
                    sent = event["seq"]
        except WebSocketDisconnect:
            pass
        finally:
            control.log.unsubscribe(queue)

    for router in (camera, finger, dispenser, observe):
        app.include_router(router)
    return app

"""`biogate sim control ...`: the control service for shell scripts (one request per command, JSON out).

    biogate sim control --url http://127.0.0.1:8765 finger place fvc:DB1_B/101/6
    export BIOGATE_SIM_URL=http://127.0.0.1:8765     # the `control_url` that `sim serve` printed
    biogate sim control camera present lfw:Colin_Powell
    biogate sim control finger fault bad_checksum --next 3
    biogate sim control dispenser jam
    biogate sim control events --follow               # one JSON event a line, until interrupted

Exit status 0 on success, 1 when the simulator refused (its error as JSON on stderr), 2 for usage errors.
"""
from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from edge.cli.app import print_json
from edge.errors import BiogateError

control_app = typer.Typer(help="Drive a running simulator through its control service (control_url).",
                          no_args_is_help=True)
camera_app = typer.Typer(help="Who stands at the camera, attacks, light, reactions, cable.", no_args_is_help=True)
finger_app = typer.Typer(help="The fingerprint module: fingers, presses, cable, serial faults.", no_args_is_help=True)
dispenser_app = typer.Typer(help="The cash dispenser: units, jam, shutter, notes, ledger.", no_args_is_help=True)
control_app.add_typer(camera_app, name="camera")
control_app.add_typer(finger_app, name="finger")
control_app.add_typer(dispenser_app, name="dispenser")

_url: dict[str, str] = {}


@control_app.callback()
def _main(url: str = typer.Option(..., "--url", envvar="BIOGATE_SIM_URL",
                                  help="the simulator's control_url (as `biogate sim serve` printed it)")) -> None:
    _url["value"] = url


def _run(call) -> None:
    from simulator.control.client import SimClient

    try:
        with SimClient(_url["value"]) as sim:
            result = call(sim)
    except BiogateError as exc:
        typer.echo(json.dumps({"error": exc.to_dict()}), err=True)
        raise typer.Exit(1)
    print_json(result)


# -- camera ---------------------------------------------------------------------------------------------
@camera_app.command("present")
def camera_present(who: str = typer.Argument(..., help="lfw:<Name>[/<n>], example:<name>, nuaa:<id>, a file, "
                                                       "or nobody")) -> None:
    """Who stands in front of the camera."""
    _run(lambda sim: sim.camera.present(who))


@camera_app.command("attack")
def camera_attack(kind: str = typer.Argument(..., help="printed_photo, screen_replay or static_image"),
                  subject: Optional[str] = typer.Option(None, "--subject", help="whose face (default: who is there)"),
                  photo: Optional[str] = typer.Option(None, "--photo", help="printed_photo: e.g. nuaa-attack:0001")
                  ) -> None:
    """A presentation attack in front of the camera."""
    _run(lambda sim: sim.camera.attack(kind, subject, photo))


@camera_app.command("light")
def camera_light(level: str = typer.Argument(..., help="normal, dark or overexposed")) -> None:
    _run(lambda sim: sim.camera.light(level))


@camera_app.command("reaction")
def camera_reaction(reaction: str = typer.Argument(..., help="complies, ignores or wrong_action")) -> None:
    """How the simulated customer reacts to the terminal's prompts."""
    _run(lambda sim: sim.camera.reaction(reaction))


@camera_app.command("unplug")
def camera_unplug() -> None:
    _run(lambda sim: sim.camera.unplug())


@camera_app.command("freeze")
def camera_freeze() -> None:
    _run(lambda sim: sim.camera.freeze())


@camera_app.command("replug")
def camera_replug() -> None:
    _run(lambda sim: sim.camera.replug())


@camera_app.command("state")
def camera_state() -> None:
    _run(lambda sim: sim.camera.state())


# -- fingerprint module ---------------------------------------------------------------------------------
@finger_app.command("place")
def finger_place(finger: str = typer.Argument(..., help="fvc:<DB>/<finger>[/<i>], synthetic:<f>[/<i>], a file"),
                 press: str = typer.Option("normal", "--press", help="normal, wet, dry or partial")) -> None:
    """A finger on the sensor (until `finger lift`)."""
    _run(lambda sim: sim.finger.place(finger, press))


@finger_app.command("lift")
def finger_lift() -> None:
    _run(lambda sim: sim.finger.lift())


@finger_app.command("unplug")
def finger_unplug(mode: str = typer.Option("close", "--mode", help="close (the port vanishes) or silent")) -> None:
    _run(lambda sim: sim.finger.unplug(mode))


@finger_app.command("replug")
def finger_replug() -> None:
    _run(lambda sim: sim.finger.replug())


@finger_app.command("fault")
def finger_fault(kind: str = typer.Argument(..., help="noise, slow, split_packet, truncate, bad_checksum, "
                                                      "drop_packet, unplug, reset, no_finger, ..."),
                 next_n: Optional[int] = typer.Option(None, "--next", help="for the next N matching commands "
                                                                           "(default 1; 0 = every one)"),
                 probability: Optional[float] = typer.Option(None, "--probability", help="instead: at random"),
                 command: Optional[str] = typer.Option(None, "--command", help="only on this command (UpImage, ...)"),
                 packet: Optional[int] = typer.Option(None, "--packet", help="frame of the reply (0 = the ack)"),
                 field: list[str] = typer.Option([], "--set", help="the kind's own fields: count=8, delay=0.5, ...")
                 ) -> None:
    """Arm a serial fault on the fingerprint module's line."""
    extra = {}
    for item in field:
        key, _, value = item.partition("=")
        try:
            extra[key] = json.loads(value)
        except ValueError:
            extra[key] = value
    body = {k: v for k, v in (("next", next_n), ("probability", probability), ("command", command),
                              ("packet", packet)) if v is not None}
    _run(lambda sim: sim.finger.fault(kind, **body, **extra))


@finger_app.command("clear-faults")
def finger_clear_faults() -> None:
    _run(lambda sim: sim.finger.clear_faults())


@finger_app.command("state")
def finger_state() -> None:
    _run(lambda sim: sim.finger.state())


# -- dispenser ------------------------------------------------------------------------------------------
def _mechanism(name: str, doc: str):
    def command() -> None:
        _run(lambda sim: getattr(sim.dispenser, name.replace("-", "_"))())
    command.__doc__ = doc
    dispenser_app.command(name)(command)


for _name, _doc in (("jam", "Notes jam in the transport: commands fail with hardwareError until `clear`."),
                    ("shutter-failure", "The shutter will not open: notes stay in the stacker."),
                    ("clear", "Jam and shutter fault cleared (the engineer's visit)."),
                    ("present", "Open the shutter on the notes in the stacker."),
                    ("retract", "Pull the notes back into the retract cassette."),
                    ("items-taken", "The customer takes the notes."),
                    ("ledger", "Every dispense and every movement of notes."),
                    ("state", "Cash units, stacker, output position, faults.")):
    _mechanism(_name, _doc)


@dispenser_app.command("units")
def dispenser_units(counts: list[str] = typer.Argument(..., help="unit=count pairs, e.g. eur20=100 eur50=0")) -> None:
    """Load the cassettes."""
    parsed = {}
    for item in counts:
        name, _, count = item.partition("=")
        if not count.isdigit():
            typer.echo(f"not unit=count: {item!r}", err=True)
            raise typer.Exit(2)
        parsed[name] = int(count)
    _run(lambda sim: sim.dispenser.units(parsed))


# -- observation ----------------------------------------------------------------------------------------
@control_app.command("state")
def state() -> None:
    """Every device's state and the simulator's addresses."""
    _run(lambda sim: sim.state())


@control_app.command("prompts")
def prompts(since: int = typer.Option(0, "--since", help="only prompts after this event number")) -> None:
    """What the terminal showed the customer, with timestamps."""
    _run(lambda sim: sim.prompts(since))


@control_app.command("events")
def events(since: int = typer.Option(0, "--since", help="only events after this number"),
           follow: bool = typer.Option(False, "--follow", help="keep streaming new events (WebSocket)")) -> None:
    """The event log; with --follow, one JSON event a line as they happen."""
    if not follow:
        _run(lambda sim: sim.events(since))
        return
    from websockets.sync.client import connect

    url = _url["value"].replace("http://", "ws://", 1).rstrip("/") + f"/events/ws?since={since}"
    try:
        with connect(url) as ws:
            for message in ws:
                sys.stdout.write(message + "\n")
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        typer.echo(json.dumps({"error": {"code": "input.simulator_unreachable", "message": str(exc)}}), err=True)
        raise typer.Exit(1)

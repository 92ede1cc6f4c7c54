"""The simulator's commands: `biogate sim run|serve|list|control` and `biogate demo` (what `make run` plays).

The product's CLI does not import this module: `register(app)` is the `biogate.commands` entry point
(pyproject.toml) that edge.cli.main calls, so the simulator stays above the product in the layers.
"""
from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Optional

import typer

from edge.cli.app import fail, print_json
from edge.config import load_config
from edge.errors import BiogateError

sim_app = typer.Typer(help="The hardware simulator: fingerprint module, camera, dispenser, scenarios.",
                      no_args_is_help=True)

ConfigOpt = typer.Option(None, "--config", help="TOML configuration file (default: $BIOGATE_CONFIG)")
DEMO_SCENARIOS = ("genuine", "impostor", "printed_photo", "lockout")


@sim_app.command("list")
def sim_list() -> None:
    """The shipped scenarios."""
    from simulator.scenario import load_scenario, shipped_scenarios

    for path in shipped_scenarios():
        s = load_scenario(path)
        typer.echo(f"{path.stem:20s} {s['name']}")


@sim_app.command("run")
def sim_run(scenario: str = typer.Argument(..., help="a scenario file, or the name of a shipped one"),
            as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
            camera: str = typer.Option("mjpeg", "--camera", help="camera transport: mjpeg (opencv driver over "
                                                                 "HTTP) or inprocess"),
            config: Optional[Path] = ConfigOpt) -> None:
    """Play a scenario: a fresh daemon on the simulator, the steps, a readable timeline. Exit 1 if an
    expectation fails."""
    from simulator.scenario import run_scenario

    try:
        result = run_scenario(scenario, base=load_config(config), rig_options={"camera_transport": camera})
    except BiogateError as exc:
        fail(exc, as_json)
    if as_json:
        print_json(result.to_dict())
    else:
        typer.echo(result.timeline())
    raise typer.Exit(0 if result.ok else 1)


@sim_app.command("serve")
def sim_serve(as_json: bool = typer.Option(False, "--json", help="print the addresses as one JSON line"),
              profile: str = typer.Option("zfm", "--profile", help="fingerprint module: zfm, r307, as608, r503"),
              fingers: str = typer.Option("default", "--fingers", help="what the scanner reads on every capture: "
                                                                       "'default' (FVC2000 DB1_B, cycling), a "
                                                                       "folder, 'synthetic' or 'none'"),
              face: str = typer.Option("example:obama", "--face", help="who stands in front of the camera"),
              control_port: int = typer.Option(0, "--control-port", help="the control service's port (0: any free "
                                                                         "port; printed as control_url)"),
              config: Optional[Path] = ConfigOpt) -> None:
    """Start the simulated devices (fingerprint module on a pty, MJPEG camera, XFS4IoT dispenser), print
    their addresses and run until interrupted."""
    from simulator.rig import start_rig

    try:
        cfg = load_config(config)
        rig = start_rig(cfg, fingerprint_profile=profile, fingerprint_source=fingers, camera_script="live",
                        control_port=control_port)
        try:
            rig.control.camera_present(face)
        except BiogateError:
            rig.close()
            raise
    except BiogateError as exc:
        fail(exc, as_json)
    addresses = rig.addresses()
    if as_json:
        print_json(addresses)
    else:
        for k, v in addresses.items():
            typer.echo(f"{k:17s} {v}")
        typer.echo("dispense token key: the `dispense_hmac_key` of this deployment's secrets file; Ctrl-C stops")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    finally:
        rig.close()


@sim_app.command("record")
def sim_record(file: Path = typer.Argument(..., help="the recording to write"),
               scenario: Optional[str] = typer.Option(None, "--scenario", help="play this scenario while recording "
                                                                                "(default: serve the devices until "
                                                                                "Ctrl-C, as `sim serve`)"),
               seconds: Optional[float] = typer.Option(None, "--seconds", help="without --scenario: stop after this"),
               as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
               config: Optional[Path] = ConfigOpt) -> None:
    """Record the devices' traffic (serial frames both ways, camera frames as JPEG, dispenser messages, with
    timing; never a template) into FILE, sealed with this deployment's data key when it holds a sample."""
    from edge.store import load_secrets
    from simulator.recording import Recorder, save_recording

    try:
        cfg = load_config(config)
        keyring = load_secrets(cfg).keyring()
        if scenario:
            from simulator.scenario import run_scenario

            result = run_scenario(scenario, base=cfg, record=True)
            recording, extra = result.recording, {"scenario": result.name, "scenario_ok": result.ok}
        else:
            from simulator.rig import start_rig

            rig = start_rig(cfg, fingerprint_source="none", camera_script="no_face")
            try:
                recorder = Recorder(rig).start()
                addresses = rig.addresses()
                typer.echo(json.dumps(addresses) if as_json else
                           "\n".join(f"{k:17s} {v}" for k, v in addresses.items()) + "\nrecording; Ctrl-C stops",
                           err=True)
                stop = threading.Event()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, lambda *_: stop.set())
                stop.wait(seconds)
                recording, extra = recorder.stop(), {}
            finally:
                rig.close()
        summary = save_recording(recording, file, keyring, cfg.terminal_id)
    except BiogateError as exc:
        fail(exc, as_json)
    summary = {"file": str(file), **summary, **extra}
    if as_json:
        print_json(summary)
    else:
        for k, v in summary.items():
            typer.echo(f"{k:17s} {v}")


@sim_app.command("replay")
def sim_replay(file: Path = typer.Argument(..., help="a recording made by `biogate sim record`"),
               as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
               config: Optional[Path] = ConfigOpt) -> None:
    """Play a recording back to the real drivers (zfm over a pseudo-terminal, opencv over MJPEG, xfs4iot over
    WebSocket) and report what each driver made of it. Exit 1 when a driver sent something else than what
    was recorded."""
    from edge.store import load_secrets
    from simulator.recording import load_recording
    from simulator.replay import replay

    try:
        cfg = load_config(config)
        report = replay(load_recording(file, load_secrets(cfg, create=False).keyring()))
    except BiogateError as exc:
        fail(exc, as_json)
    diverged = [d for part in ("serial", "dispenser") for d in report.get(part, {}).get("diverged", [])]
    failed = [part for part in ("serial", "camera", "dispenser") if "error" in report.get(part, {})]
    if as_json:
        print_json(report)
    else:
        for part in ("serial", "camera", "dispenser"):
            if part in report:
                info = report[part]
                brief = {k: v for k, v in info.items() if k != "commands"}
                typer.echo(f"{part:10s} {brief}")
    raise typer.Exit(1 if diverged or failed else 0)


def demo(scenarios: list[str] = typer.Argument(None, help=f"scenarios to play (default: {', '.join(DEMO_SCENARIOS)})"),
         camera: str = typer.Option("mjpeg", "--camera", help="camera transport: mjpeg or inprocess"),
         fleet: bool = typer.Option(False, "--fleet", help="the fleet instead: a throwaway PostgreSQL, the registry, "
                                                           "a branch and an ATM, playing the fleet scenarios"),
         config: Optional[Path] = ConfigOpt) -> None:
    """The main job on the embedded defaults: the daemon on the simulator, playing the demo scenarios
    (genuine, impostor, printed-photo attack, lockout) and printing each decision and the dispenser's answer.
    With --fleet: enrol at the branch and withdraw at another ATM, an erasure at the registry, a lockout seen
    everywhere, an ATM offline and back."""
    from simulator.scenario import fleet_scenarios, run_scenario

    names = scenarios or ([str(p.relative_to(p.parent.parent)) for p in fleet_scenarios()] if fleet
                          else list(DEMO_SCENARIOS))
    failed = []
    for name in names:
        try:
            result = run_scenario(name, base=load_config(config), rig_options={"camera_transport": camera})
        except BiogateError as exc:
            fail(exc)
        typer.echo(result.timeline())
        typer.echo("")
        if not result.ok:
            failed.append(name)
    typer.echo(f"demo: {len(names) - len(failed)}/{len(names)} scenarios behaved as expected"
               + (f"; unexpected: {', '.join(failed)}" if failed else ""))
    raise typer.Exit(1 if failed else 0)


def bench_registry(
        terminals: int = typer.Option(50, "--terminals", help="simulated terminals"),
        customers: int = typer.Option(100_000, "--customers", help="enrolled customers in the registry"),
        fetch_rate: float = typer.Option(1.0, "--fetch-rate", help="template fetches per second per terminal"),
        seconds: float = typer.Option(20.0, "--seconds", help="length of each measured phase"),
        batch: int = typer.Option(50, "--batch", help="decisions per ingest request"),
        dsn: Optional[str] = typer.Option(None, "--dsn", help="an empty PostgreSQL database to use instead of a "
                                                              "throwaway server"),
        as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
        config: Optional[Path] = ConfigOpt) -> None:
    """The fleet registry under simulated terminals: template fetch latency and decision ingest rate."""
    from simulator.bench_registry import run_bench

    try:
        result = run_bench(load_config(config), terminals=terminals, customers=customers, fetch_rate=fetch_rate,
                           seconds=seconds, batch=batch, dsn=dsn,
                           progress=lambda msg: typer.echo(msg, err=True))
    except BiogateError as exc:
        fail(exc, as_json)
    if as_json:
        print_json(result)
    else:
        for k, v in result.items():
            typer.echo(f"{k:28s} {v}")


def _add_control(app: typer.Typer) -> None:
    from simulator.control.cli import control_app

    app.add_typer(control_app, name="control")


_add_control(sim_app)


def register(app: typer.Typer) -> None:
    """Add `sim ...`, `demo` and `bench registry` to the `biogate` application (the `biogate.commands` entry
    point)."""
    from edge.cli.app import bench_app

    app.add_typer(sim_app, name="sim")
    app.command("demo")(demo)
    bench_app.command("registry")(bench_registry)

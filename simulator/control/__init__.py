"""The simulator's control service: one HTTP API on 127.0.0.1 for every simulated device, at run time.

    control = SimulatorControl(rig)            # what each request does (in-process: unit tests only)
    server = ControlServer(control).start()    # FastAPI over it: server.url is the rig's `control_url`
    sim = SimClient(server.url)                # the Python client: scenarios and tests drive the rig with it
    sim.finger.place("fvc:DB1_B/101/6"); sim.camera.present("lfw:Colin_Powell"); sim.dispenser.jam()

- `events`: the event log (prompts, device changes, dispenser movements) and its subscribers (WebSocket);
- `state`: `SimulatorControl`, the one place that turns a control request into device calls;
- `app`: the FastAPI application (routers per device, its own OpenAPI document at /openapi.json);
- `server`: running it in a background thread;
- `client`: `SimClient`, what `biogate sim control`, the scenario runner and the tests use.

May import: as the simulator package (everything of the product).
"""
from simulator.control.client import SimClient
from simulator.control.events import EventLog
from simulator.control.server import ControlServer
from simulator.control.state import SimulatorControl

__all__ = ["ControlServer", "EventLog", "SimClient", "SimulatorControl"]

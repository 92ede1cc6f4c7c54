"""The simulated terminal: camera, fingerprint module and cash dispenser, each on its real transport.

    rig = start_rig(cfg)                     # devices up; rig.config = cfg with the devices wired in
    rig.present(face="lfw:Colin_Powell", finger="fvc:DB1_B/101/5")   # who stands at the machine now
    rig.addresses()  # {"fingerprint_port", "camera_url", "dispenser_url", "control_url"}
    rig.close()

`control_url` is the control service (simulator.control): every device driven at run time over HTTP,
what the terminal showed, an event stream; `rig.control` is the same in-process (unit tests only).

Transports (the product's real drivers are what talks to them):
- fingerprint: a virtual ZFM/R307 module on a pseudo-terminal -> driver `zfm` (pyserial);
- camera: the virtual camera's frames as MJPEG over HTTP -> driver `opencv` (stream URL), with the
  terminal's prompts POSTed back to the simulator's `/prompt`, where the simulated customer acts on them;
  `camera_transport="inprocess"` hands the virtual camera to the daemon directly (backend `simulated`),
  which unit tests use for speed;
- dispenser: an XFS4IoT CashDispenser over WebSocket -> driver `xfs4iot`, sharing the deployment's
  dispense-token key.

People are named as the simulator's sources name them: faces `lfw:<Name>[/<n>]`, `nuaa:<id>[/<n>]`,
`example:<name>` or a file; fingers `fvc:<DB>/<finger>[/<impressions>]` (e.g. `fvc:DB1_B/101/1-3` for the
enrolment impressions, `fvc:DB1_B/101/6` for one later touch), a file, a folder, or `none`.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.base import Camera
from edge.config import Config, DeviceSpec
from edge.errors import InputError

_FVC = re.compile(r"^fvc:(DB\d_[AB])/(\d+)(?:/(\d+)(?:-(\d+))?)?$")
_SYNTHETIC = re.compile(r"^synthetic:(\d+)(?:/(\d+)(?:-(\d+))?)?$")


@dataclass
class SyntheticImpressions:
    """Chosen impressions of one synthetic finger, one per capture, cycling (no data set needed)."""

    finger: int
    impressions: tuple[int, ...]
    seed: int = 0
    _count: int = 0

    def capture(self):
        from simulator.fingerprint.images import SENSOR_DPI, Presentation, synthetic_print

        impression = self.impressions[self._count % len(self.impressions)]
        self._count += 1
        return Presentation(synthetic_print(self.finger, impression, seed=self.seed), SENSOR_DPI,
                            f"synthetic-{self.finger}-{impression}")


def resolve_finger(spec: Any, data_dir: Path) -> Any:
    """A finger spec -> what `VirtualModule.place` takes (an image source spec).

    `fvc:<DB>/<finger>[/<i>[-<j>]]`: FVC2000 impressions from the shared data; `synthetic:<finger>[/<i>[-<j>]]`:
    the simulator's synthetic prints (always available); anything else goes to the module as it is."""
    if not isinstance(spec, str):
        return spec
    m = _SYNTHETIC.match(spec)
    if m:
        finger, first, last = m.groups()
        lo = int(first or 0)
        hi = int(last) if last is not None else lo
        return SyntheticImpressions(int(finger), tuple(range(lo, hi + 1)))
    m = _FVC.match(spec)
    if not m:
        return spec   # "none", "messy", "synthetic", a file or folder path
    db, finger, first, last = m.groups()
    folder = data_dir / "fingerprints" / "fvc2000" / db
    if not folder.is_dir():
        raise InputError(f"FVC2000 {db} is not present under {data_dir}", code="input.not_found")
    if first is None:
        pattern = f"{finger}_*.tif"
    elif last is None:
        pattern = f"{finger}_{first}.tif"
    else:
        pattern = f"{finger}_[{first}-{last}].tif"
    return {"kind": "folder", "folder": str(folder), "pattern": pattern}


@dataclass
class Rig:
    config: Config
    camera: Any                         # simulator.camera.virtual.VirtualCamera
    fingerprint: Any                    # simulator.fingerprint.VirtualModule
    dispenser: Any                      # simulator.dispenser.RunningDispenser
    camera_server: Any = None           # simulator.camera.mjpeg.MjpegServer (mjpeg transport)
    data_dir: Path = field(default_factory=Path)
    rig_id: str = ""
    control: Any = None                 # simulator.control.SimulatorControl
    control_server: Any = None          # simulator.control.ControlServer

    def addresses(self) -> dict:
        return {"fingerprint_port": self.fingerprint.port,
                "camera_url": self.camera_server.url if self.camera_server else "inprocess:simulated",
                "dispenser_url": self.dispenser.url,
                "control_url": self.control_server.url if self.control_server else None}

    def present(self, face: str | dict | None = None, finger: Any = None) -> None:
        """Who (or what) is in front of the camera, and which finger lands on the scanner next.

        face: a subject spec (a live customer), or {"script": ..., "subject"/"photo": ...}, or None to
        leave the camera as it is; "nobody" empties the scene. finger: a finger spec, or None to leave it.
        """
        if face is not None:
            if face == "nobody":
                self.camera.present("no_face")
            elif isinstance(face, dict):
                opts = dict(face)
                self.camera.present(opts.pop("script", "live"), **opts)
            else:
                self.camera.present("live", subject=face)
        if finger is not None:
            if finger == "none":
                self.fingerprint.lift()
            else:
                self.fingerprint.place(resolve_finger(finger, self.data_dir))

    def close(self) -> None:
        _SHARED_CAMERAS.pop(self.rig_id, None)
        for stop in (getattr(self.control_server, "stop", None), getattr(self.camera_server, "stop", None),
                     self.dispenser.stop, self.fingerprint.close,
                     self.camera.close):
            if stop is None:
                continue
            try:
                stop()
            except Exception:  # one device failing to stop must not keep the others running
                pass


def start_rig(cfg: Config, *, camera_transport: str = "mjpeg", fingerprint_profile: str = "zfm",
              fingerprint_source: Any = "none", camera_script: str = "no_face", realtime: bool = True,
              fps: float = 15.0, seed: int = 0, fingerprint_faults: Any = None, control_port: int = 0) -> Rig:
    """Start the three simulated devices and their control service (`control_port`, 0: any free port) and
    return the rig, with `rig.config` wired to the devices."""
    from edge.store import load_secrets
    from simulator.camera.virtual import VirtualCamera
    from simulator.control import ControlServer, SimulatorControl
    from simulator.dispenser import start_dispenser
    from simulator.fingerprint import start_module

    if camera_transport not in ("mjpeg", "inprocess"):
        raise InputError("camera_transport must be mjpeg or inprocess", code="input.invalid")
    data_dir = Path(cfg.paths.data_dir)
    secrets = load_secrets(cfg)
    state = Path(cfg.paths.state_dir) / "simulator"
    state.mkdir(parents=True, exist_ok=True)
    started: list = []
    rig_id = uuid.uuid4().hex
    try:
        module = start_module(profile=fingerprint_profile, source=resolve_finger(fingerprint_source, data_dir),
                              library_path=state / f"{fingerprint_profile}-library.json", faults=fingerprint_faults,
                              seed=seed)
        started.append(module.close)
        dispenser = start_dispenser(secrets.dispense_hmac_key)
        started.append(dispenser.stop)
        camera = VirtualCamera(script=camera_script, fps=fps, realtime=realtime, seed=seed, data_dir=data_dir)
        started.append(camera.close)
        server = None
        if camera_transport == "mjpeg":
            server = camera.serve_mjpeg()
            started.append(server.stop)
            camera_spec = DeviceSpec(backend="opencv", options={"source": server.url,
                                                                "prompt_url": server.base_url + "/prompt"})
        else:
            _SHARED_CAMERAS[rig_id] = camera
            camera_spec = DeviceSpec(backend="rig", options={"rig_id": rig_id})
        devices = cfg.devices.model_copy(update={
            "camera": camera_spec,
            "fingerprint": DeviceSpec(backend="zfm", options={"port": module.port, "model": fingerprint_profile}),
            "dispenser": DeviceSpec(backend="xfs4iot", options={"url": dispenser.url}),
        })
        wired = cfg.model_copy(update={"devices": devices})
        rig = Rig(wired, camera, module, dispenser, server, data_dir, rig_id)
        rig.control = SimulatorControl(rig)
        rig.control_server = ControlServer(rig.control, port=control_port).start()
    except BaseException:
        for stop in reversed(started):
            try:
                stop()
            except Exception:
                pass
        raise
    return rig


# The in-process camera transport: the daemon borrows the rig's own VirtualCamera (unit tests, where
# JPEG round trips only cost time). Closing the borrowed handle leaves the rig's camera running.
_SHARED_CAMERAS: dict[str, Any] = {}


class RigCamera(Camera):
    def __init__(self, rig_id: str):
        try:
            self._camera = _SHARED_CAMERAS[rig_id]
        except KeyError:
            raise InputError(f"no running simulator rig {rig_id!r}", code="input.unknown_rig") from None

    def read(self, timeout: float = 2.0):
        return self._camera.read(timeout)

    def prompt(self, action: str) -> None:
        if hasattr(self._camera, "prompt"):
            self._camera.prompt(action)

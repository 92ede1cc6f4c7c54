"""Playing a recording back to the product's real drivers (`biogate sim replay FILE`): a field problem as a test.

    report = replay(load_recording(path, keyring))
    report["serial"]["diverged"]      # host frames the driver sent that differ from the recording ([] = same)
    report["serial"]["commands"]      # each recorded command, as the real zfm driver saw its answer
    report["camera"]["frames_read"]   # frames the real opencv driver decoded from the replayed MJPEG stream

Each device is played by a stand-in on its real transport, answering with exactly what was recorded, at the
recorded pace, and the real driver is the client:
- serial: a pseudo-terminal (`PtyLine`) plays the module's side. For every command frame the driver sends it
  takes the next recorded host command, notes when the two differ, and writes the bytes the module wrote
  after it (garbage, split or corrupted packets, pauses, the cable pulled and put back, all as recorded).
  The host side is the real `drivers.fingerprint.zfm.ZfmModule`, sent the recorded commands in order (an
  image upload through its transfer code, ReadSysPara through its own method, which keeps the packet size
  for the uploads, everything else through `transact`); a command the driver sent
  again by itself (a retry after a bad checksum) uses the recorded retry and is not sent twice.
- camera: the recorded JPEG frames as an MJPEG stream (`simulator.camera.mjpeg.MjpegServer`), read by the
  real `opencv` driver until the stream ends.
- dispenser: a WebSocket endpoint answering each recorded command with the recorded acknowledge, events and
  completion (request ids rewritten to the driver's), the real `xfs4iot` driver sending the recorded commands.
"""
from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from drivers.fingerprint import protocol as P
from simulator.recording import Recording

MAX_PAUSE_S = 5.0          # a recorded silence longer than this is shortened (a replay is a test, not a vigil)
ALL_CONFIRMATIONS = tuple(range(256))


# -- serial ---------------------------------------------------------------------------------------------
@dataclass
class _SerialStep:
    command: bytes | None                   # the host's command frame (None: what the module did before any)
    actions: list[tuple[float, str, bytes]] = field(default_factory=list)   # (pause, "bytes" | "cable", data)


def _serial_steps(records: list[dict]) -> list[_SerialStep]:
    steps = [_SerialStep(None)]
    reader = P.PacketReader()
    last_t = 0.0
    for r in records:
        if r["dir"] == "info":
            continue
        if r["dir"] == "host":
            if "data" not in r:
                continue            # a redacted template download
            for event in reader.feed(base64.b64decode(r["data"])):
                if isinstance(event, P.Packet) and event.pid == P.PacketId.COMMAND:
                    steps.append(_SerialStep(P.encode(event)))
                    last_t = r["t"]
            continue
        pause = max(0.0, r["t"] - last_t)
        last_t = r["t"]
        if r["dir"] == "cable":
            steps[-1].actions.append((pause, "cable", r["event"].encode()))
        elif "redacted" in r:        # a template upload: zeros of the same length, framed as data
            steps[-1].actions.append((pause, "bytes", P.encode(P.Packet(P.DEFAULT_ADDRESS, P.PacketId.END_DATA,
                                                                        bytes(max(0, r["redacted"] - 11))))))
        else:
            steps[-1].actions.append((pause, "bytes", base64.b64decode(r["data"])))
    return steps


class SerialPlayback:
    """The module's side of a recording on a pseudo-terminal; `port` is what the driver opens."""

    def __init__(self, records: list[dict]):
        from simulator.fingerprint.line import PtyLine

        self.steps = _serial_steps(records)
        self.consumed = 0                          # host commands answered so far
        self.diverged: list[dict] = []
        self._stop = threading.Event()
        self.line = PtyLine("ttyREPLAY", stop=self._stop)
        self.line.plug()
        self.port = self.line.port
        self._thread = threading.Thread(target=self._serve, name="replay-serial", daemon=True)

    @property
    def commands(self) -> list[P.Packet]:
        return [P.decode(s.command) for s in self.steps[1:] if s.command is not None]

    def start(self) -> "SerialPlayback":
        self._play(self.steps[0].actions)
        self._thread.start()
        return self

    def _play(self, actions) -> None:
        for pause, kind, data in actions:
            if self._stop.wait(min(pause, MAX_PAUSE_S)):
                return
            if kind == "cable":
                if data.startswith(b"unplugged:close"):
                    self.line.hang_up()
                elif data == b"plugged":
                    self.line.plug()
            else:
                self.line.write(data)

    def _serve(self) -> None:
        reader = P.PacketReader()
        while not self._stop.is_set():
            chunk = self.line.read(0.02)
            if chunk is None:
                self._stop.wait(0.02)
                continue
            for event in reader.feed(chunk) if chunk else ():
                if not (isinstance(event, P.Packet) and event.pid == P.PacketId.COMMAND):
                    continue      # data packets of a download, garbage: the recording has no answer to them
                if self.consumed + 1 >= len(self.steps):
                    self.diverged.append({"at": self.consumed, "sent": P.instruction_name(event.instruction),
                                          "recorded": None})
                    continue
                self.consumed += 1
                step = self.steps[self.consumed]
                if P.encode(event) != step.command:
                    self.diverged.append({"at": self.consumed, "sent": P.instruction_name(event.instruction),
                                          "recorded": P.instruction_name(P.decode(step.command).instruction)})
                self._play(step.actions)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.line.close()


def replay_serial(records: list[dict], timeout: float = 600.0) -> dict:
    """The recorded module traffic against the real zfm driver; what the driver made of each command."""
    from drivers.fingerprint.errors import DisconnectedError, FingerprintError
    from drivers.fingerprint.zfm import ZfmModule

    info = next((r for r in records if r["dir"] == "info"), {})
    playback = SerialPlayback(records).start()
    commands = playback.commands
    results: list[dict] = []
    deadline = time.monotonic() + timeout
    module = None
    try:
        while playback.consumed < len(commands) and time.monotonic() < deadline:
            if module is None:
                try:
                    module = ZfmModule(playback.port, info.get("baudrate", 57600), info.get("address", P.DEFAULT_ADDRESS),
                                       model=info.get("model", "zfm"))
                except DisconnectedError:
                    time.sleep(0.05)       # the cable is out, as it was in the recording: wait for the replug
                    continue
            before = playback.consumed
            command = commands[before]
            name = P.instruction_name(command.instruction)
            try:
                if command.instruction == P.Instruction.UP_IMAGE:
                    outcome = f"image:{len(module.up_image())}"
                elif command.instruction == P.Instruction.READ_SYS_PARA:   # the driver keeps the packet size
                    outcome = f"packet_size:{module.read_sys_para().packet_size}"
                else:
                    reply = module.transact(command.instruction, command.body, ok=ALL_CONFIRMATIONS)
                    outcome = f"0x{reply.confirmation:02X}"
            except FingerprintError as exc:
                outcome = exc.code
                if isinstance(exc, DisconnectedError):
                    module.close()
                    module = None
            if playback.consumed == before:      # the driver could not even send it (no line): try again
                time.sleep(0.05)
                continue
            results.append({"command": name, "driver": outcome})
    finally:
        if module is not None:
            module.close()
        playback.close()
    return {"commands": results, "recorded_commands": len(commands), "answered": playback.consumed,
            "diverged": playback.diverged}


# -- camera ---------------------------------------------------------------------------------------------
class RecordedCamera:
    """The recorded frames at their recorded times, then unplugged (the MJPEG stream ends)."""

    fps = 15.0
    realtime = True

    def __init__(self, records: list[dict]):
        self._frames = [(r["t"], r["jpeg"]) for r in records if "jpeg" in r]
        self._index = 0
        self._t0: float | None = None
        self.script = "recorded"

    def read(self, timeout: float = 2.0) -> np.ndarray:
        from drivers.camera.errors import CameraUnavailable

        if self._index >= len(self._frames):
            raise CameraUnavailable("the recording has no more frames")
        t, jpeg = self._frames[self._index]
        first_t = self._frames[0][0]
        if self._t0 is None:
            self._t0 = time.monotonic()
        wait = (t - first_t) - (time.monotonic() - self._t0)
        if wait > 0:
            time.sleep(min(wait, MAX_PAUSE_S, timeout))
        self._index += 1
        return cv2.imdecode(np.frombuffer(base64.b64decode(jpeg), np.uint8), cv2.IMREAD_COLOR)

    @property
    def frame_index(self) -> int:
        return self._index


def replay_camera(records: list[dict], timeout: float = 600.0) -> dict:
    from drivers.base import open_device
    from drivers.errors import DeviceError
    from simulator.camera.mjpeg import MjpegServer

    frames = [r for r in records if "jpeg" in r]
    if not frames:
        return {"frames_recorded": 0, "frames_read": 0}
    camera = RecordedCamera(records)
    server = MjpegServer(camera).start()
    read, ended, shape = 0, None, None
    deadline = time.monotonic() + timeout
    try:
        with open_device("camera", "opencv", source=server.url) as cam:
            while time.monotonic() < deadline:
                try:
                    frame = cam.read(timeout=3.0)
                except DeviceError as exc:
                    ended = exc.code
                    break
                read += 1
                shape = list(frame.shape)
    finally:
        server.stop()
    return {"frames_recorded": len(frames), "frames_read": read, "frame_shape": shape, "ended_with": ended}


# -- dispenser ------------------------------------------------------------------------------------------
def _dispenser_exchanges(records: list[dict]) -> list[tuple[dict, list[dict]]]:
    """(command, the service's messages for its requestId) in the recorded order."""
    exchanges: list[tuple[dict, list[dict]]] = []
    by_id: dict[tuple, list[dict]] = {}       # (connection, requestId) -> that command's replies
    for r in records:
        message = json.loads(r["text"])
        header = message.get("header", {})
        key = (r.get("conn"), header.get("requestId"))
        if r["dir"] == "host" and header.get("type") == "command":
            replies: list[dict] = []
            exchanges.append((message, replies))
            by_id[key] = replies
        elif r["dir"] == "dispenser" and key in by_id:
            by_id[key].append(message)
    return exchanges


def replay_dispenser(records: list[dict], timeout: float = 120.0) -> dict:
    """The recorded XFS4IoT exchanges against the real xfs4iot driver: each command's completion as it saw it."""
    from websockets.sync.server import serve

    from drivers.base import open_device
    from drivers.errors import DeviceError
    from edge.errors import BiogateError

    exchanges = _dispenser_exchanges(records)
    if not exchanges:
        return {"commands": [], "recorded_commands": 0, "diverged": []}
    position = {"next": 0}
    diverged: list[dict] = []

    def handler(ws) -> None:
        for text in ws:
            message = json.loads(text)
            header = message.get("header", {})
            i = position["next"]
            if i >= len(exchanges):
                diverged.append({"at": i, "sent": header.get("name"), "recorded": None})
                continue
            position["next"] += 1
            recorded, replies = exchanges[i]
            if header.get("name") != recorded["header"]["name"] or message.get("payload") != recorded.get("payload"):
                diverged.append({"at": i, "sent": header.get("name"), "recorded": recorded["header"]["name"]})
            for reply in replies:
                reply = {**reply, "header": {**reply["header"], "requestId": header.get("requestId")}}
                ws.send(json.dumps(reply))

    results = []
    with serve(handler, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        url = f"ws://127.0.0.1:{port}/xfs4iot/v1.0/CashDispenser1/"
        try:
            with open_device("dispenser", "xfs4iot", url=url) as dispenser:
                while position["next"] < len(exchanges):
                    recorded, replies = exchanges[position["next"]]
                    name = recorded["header"]["name"]
                    completion = next((m for m in replies if m.get("header", {}).get("type") == "completion"), {})
                    before = position["next"]
                    try:
                        dispenser.call(name, recorded.get("payload") or {}, version=recorded["header"].get("version", "2.0"),
                                       timeout=min(timeout, 30.0))
                        outcome = "success"
                    except (DeviceError, BiogateError) as exc:
                        outcome = getattr(exc, "completion_code", None) or exc.code
                    if position["next"] == before:     # it never reached the stand-in: nothing more will
                        results.append({"command": name, "driver": outcome, "recorded": None})
                        break
                    results.append({"command": name, "driver": outcome,
                                    "recorded": completion.get("header", {}).get("completionCode")})
        finally:
            server.shutdown()
    return {"commands": results, "recorded_commands": len(exchanges), "diverged": diverged}


def replay(recording: Recording) -> dict:
    """Every device of the recording played back to its real driver, the three at once (as they ran)."""
    report: dict = {"id": recording.id}
    jobs = {"serial": (replay_serial, recording.of("serial")), "camera": (replay_camera, recording.of("camera")),
            "dispenser": (replay_dispenser, recording.of("dispenser"))}

    def run(name, fn, records):
        try:
            report[name] = fn(records)
        except Exception as exc:   # one device's replay failing is part of the report, not the end of it
            report[name] = {"error": f"{type(exc).__name__}: {exc}"}

    threads = [threading.Thread(target=run, args=(name, fn, records), daemon=True)
               for name, (fn, records) in jobs.items() if records]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return report

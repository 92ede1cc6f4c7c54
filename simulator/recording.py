"""Recording a simulated terminal's device traffic, with timing, into one file (`biogate sim record FILE`).

    recorder = Recorder(rig).start()      # taps on the three devices' wires
    ...                                   # the daemon (or anyone) uses the devices
    recording = recorder.stop()
    save_recording(recording, path, keyring, terminal_id)   # sealed when it holds a biometric sample
    recording = load_recording(path, keyring)

What is captured (each record: `t` seconds since the start, `device`, `dir`, and the data):
- serial: the bytes of the fingerprint module's cable both ways (`dir` "host" = from the driver, "device" =
  from the module) and the cable's events (`dir` "cable": unplugged / plugged / powered);
- camera: every frame the MJPEG server sent, as the JPEG it sent (mjpeg transport only);
- dispenser: every XFS4IoT message both ways (`dir` "host" / "dispenser"), as text.

No template ever enters the file: data packets after an UpChar command (the module's character file) and the
host's data packets after DownChar are replaced by `{"redacted": <bytes>}`. Camera frames and fingerprint
images are biometric samples: a file holding any of them is sealed with the deployment's data key
(AES-256-GCM, as evidence is, its identity in the associated data); a file with neither is plain JSON.
"""
from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.fingerprint import protocol as P
from edge.errors import InputError
from edge.store.crypto import KeyRing, Sealed, aad_for

FORMAT = "biogate-sim-recording/1"
_TEMPLATE_UPLOADS = {P.Instruction.UP_CHAR}
_TEMPLATE_DOWNLOADS = {P.Instruction.DOWN_CHAR}
_DATA_PIDS = {P.PacketId.DATA, P.PacketId.END_DATA}


@dataclass
class Recording:
    id: str
    started_at: float                       # time.time() at the start
    records: list[dict] = field(default_factory=list)

    @property
    def holds_samples(self) -> bool:
        """Camera frames or a fingerprint image upload: biometric samples, so the file is sealed."""
        if any(r["device"] == "camera" for r in self.records):
            return True
        return any(r["device"] == "serial" and r.get("command") == "UP_IMAGE" for r in self.records)

    def of(self, device: str) -> list[dict]:
        return [r for r in self.records if r["device"] == device]

    def summary(self) -> dict:
        counts: dict[str, int] = {}
        for r in self.records:
            counts[r["device"]] = counts.get(r["device"], 0) + 1
        duration = self.records[-1]["t"] if self.records else 0.0
        return {"id": self.id, "records": counts, "duration_s": round(duration, 3),
                "sealed": self.holds_samples}


class _SerialTemplateFilter:
    """Knows which command the host sent last, so template data packets can be kept out of the file."""

    def __init__(self) -> None:
        self._host = P.PacketReader()
        self.last_instruction: int | None = None

    def host(self, data: bytes) -> tuple[bytes | None, str | None]:
        """(data to keep or None when redacted, the command name when this chunk carries a command)."""
        events = self._host.feed(data)
        packets = [e for e in events if isinstance(e, P.Packet)]
        names = []
        for packet in packets:
            if packet.pid == P.PacketId.COMMAND:
                self.last_instruction = packet.instruction
                names.append(P.instruction_name(packet.instruction))
        redact = (self.last_instruction in _TEMPLATE_DOWNLOADS and packets
                  and all(p.pid in _DATA_PIDS for p in packets))
        return (None if redact else data), (names[-1] if names else None)

    def device(self, data: bytes) -> bytes | None:
        if self.last_instruction not in _TEMPLATE_UPLOADS:
            return data
        packets = P.parse_packets(data)
        if packets and all(p.pid in _DATA_PIDS for p in packets):
            return None
        return data


class Recorder:
    def __init__(self, rig, clock=time.monotonic):
        self.rig = rig
        self.clock = clock
        self._lock = threading.Lock()
        self._t0 = clock()
        self.recording = Recording(uuid.uuid4().hex, time.time())
        self._serial = _SerialTemplateFilter()
        self._last_command: str | None = None
        self._taps: list[tuple[list, Any]] = []

    def _add(self, record: dict) -> None:
        with self._lock:
            record["t"] = round(self.clock() - self._t0, 6)
            self.recording.records.append(record)

    # -- the taps ----------------------------------------------------------------------------------
    def _on_serial(self, direction: str, data: bytes) -> None:
        if direction == "cable":
            self._add({"device": "serial", "dir": "cable", "event": data.decode()})
            return
        with self._lock:
            if direction == "host":
                kept, command = self._serial.host(data)
                if command:
                    self._last_command = command
            else:
                kept, command = self._serial.device(data), None
            upload = self._last_command if direction == "device" else None
        record: dict = {"device": "serial", "dir": direction}
        if kept is None:
            record["redacted"] = len(data)
        else:
            record["data"] = base64.b64encode(kept).decode()
        if command:
            record["command"] = command
        elif upload == "UP_IMAGE" and len(data) > 64:
            record["command"] = "UP_IMAGE"   # image data packets: marks the file as holding a sample
        self._add(record)

    def _on_frame(self, jpeg: bytes) -> None:
        self._add({"device": "camera", "dir": "device", "jpeg": base64.b64encode(jpeg).decode()})

    def _on_dispenser(self, direction: str, text: str, connection: int) -> None:
        self._add({"device": "dispenser", "dir": direction, "conn": connection, "text": text})

    def start(self) -> "Recorder":
        rig = self.rig
        module = rig.fingerprint
        self._add({"device": "serial", "dir": "info", "model": module.model.name, "baudrate": module.baudrate,
                   "address": module.address})
        self._taps = [(rig.fingerprint.taps, self._on_serial), (rig.dispenser.service.wire_taps, self._on_dispenser)]
        if rig.camera_server is not None:
            self._taps.append((rig.camera_server.frame_taps, self._on_frame))
        for taps, fn in self._taps:
            taps.append(fn)
        return self

    def stop(self) -> Recording:
        for taps, fn in self._taps:
            if fn in taps:
                taps.remove(fn)
        self._taps = []
        with self._lock:
            return Recording(self.recording.id, self.recording.started_at, list(self.recording.records))


# -- the file -------------------------------------------------------------------------------------------
def _aad(recording_id: str, terminal_id: str) -> bytes:
    return aad_for("sim_recording", recording_id, terminal_id, "device-traffic")


def save_recording(recording: Recording, path: str | Path, keyring: KeyRing, terminal_id: str) -> dict:
    """Write the file (atomically); sealed when it holds a sample. Returns its summary."""
    body = json.dumps({"started_at": recording.started_at, "records": recording.records}).encode()
    header: dict[str, Any] = {"format": FORMAT, "id": recording.id, "terminal_id": terminal_id}
    if recording.holds_samples:
        sealed = keyring.seal(body, _aad(recording.id, terminal_id))
        header.update(sealed=True, key_id=sealed.key_id, nonce=base64.b64encode(sealed.nonce).decode(),
                      ciphertext=base64.b64encode(sealed.ciphertext).decode())
    else:
        header.update(sealed=False, body=json.loads(body))
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(header))
    tmp.replace(target)
    return recording.summary()


def load_recording(path: str | Path, keyring: KeyRing | None) -> Recording:
    """Read (and open, when sealed) a recording; InputError for a file that is not one, StorageError
    (storage.tampered / storage.unknown_key) for a sealed file that does not open with this deployment's keys."""
    try:
        header = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"no recording at {path}", code="input.not_found") from None
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{path} is not a biogate simulator recording", code="input.recording") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InputError(f"{path} is not a {FORMAT} file", code="input.recording")
    if header.get("sealed"):
        if keyring is None:
            raise InputError("this recording is sealed: the deployment's data key is needed", code="input.recording")
        sealed = Sealed(header["key_id"], base64.b64decode(header["nonce"]), base64.b64decode(header["ciphertext"]))
        body = json.loads(keyring.open(sealed, _aad(header["id"], header.get("terminal_id", ""))))
    else:
        body = header["body"]
    return Recording(header["id"], float(body["started_at"]), list(body["records"]))

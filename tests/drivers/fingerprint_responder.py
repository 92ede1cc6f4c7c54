"""A scripted fingerprint module on a real pseudo-terminal, for precise driver fault tests.

The driver opens `responder.port` like any serial device; a thread serves this side of the line (the
same `simulator.fingerprint.line.PtyLine` the virtual module uses): it parses what the driver sends
with the shared codec and answers each packet with the actions a test's handler returns:

- `bytes`: written to the line as they are (a valid frame, garbage, half a frame, a lone 0x55);
- `float`: pause that many seconds (split packets, late replies, silence);
- `UNPLUG`: hang up the line, as when the scanner's cable is pulled.

This is deliberately not a module emulator (that is `simulator/fingerprint`); it lets a test put
any byte sequence on the wire at any moment.
"""
from __future__ import annotations

import threading
from typing import Callable, Iterable

from drivers.fingerprint import protocol as P
from simulator.fingerprint.line import PtyLine

UNPLUG = object()

Action = object  # bytes | float | UNPLUG
Handler = Callable[[P.Packet, "PtyResponder"], Iterable[Action] | None]


def ack(code: int = 0, data: bytes = b"", address: int = P.DEFAULT_ADDRESS) -> bytes:
    return P.encode(P.ack(code, data, address))


def corrupt_checksum(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 0x5A])


def data_frames(data: bytes, packet_size: int, address: int = P.DEFAULT_ADDRESS) -> list[bytes]:
    return [P.encode(p) for p in P.data_packets(data, packet_size, address)]


def split(data: bytes, size: int, pause: float) -> list[Action]:
    """`data` in pieces of `size` bytes with `pause` seconds between them."""
    out: list[Action] = []
    for i in range(0, len(data), size):
        out += [data[i : i + size], pause]
    return out


class PtyResponder:
    """A handler answering on the same pseudo-terminal line as the virtual module (`PtyLine`)."""

    def __init__(self, handler: Handler, *, before_open: bytes = b""):
        self.handler = handler
        self.received: list[P.Packet] = []
        self.events: list = []
        self.errors: list[BaseException] = []
        self._reader = P.PacketReader()
        self._stop = threading.Event()
        self.line = PtyLine(stop=self._stop)
        self.line.plug()
        self.port = self.line.port
        if before_open:
            self.write(before_open)  # e.g. the power-on 0x55, already waiting when the driver opens
        self._thread = threading.Thread(target=self._serve, name="pty-responder", daemon=True)
        self._thread.start()

    # -- used by handlers and tests ----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.line.write(data)

    def unplug(self) -> None:
        self.line.hang_up()

    def commands(self) -> list[int]:
        return [p.instruction for p in self.received if p.pid == P.PacketId.COMMAND]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.line.close()

    def __enter__(self) -> "PtyResponder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the serving thread --------------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self.line.read(0.02)
                if chunk is None:
                    break  # unplugged
                for event in self._reader.feed(chunk):
                    self.events.append(event)
                    if isinstance(event, P.Packet):
                        self.received.append(event)
                        self._run(self.handler(event, self) or ())
        except BaseException as exc:  # surfaced by tests through .errors
            self.errors.append(exc)

    def _run(self, actions: Iterable[Action]) -> None:
        for action in actions:
            if self._stop.is_set():
                return
            if action is UNPLUG:
                self.unplug()
                return
            if isinstance(action, (int, float)) and not isinstance(action, bool):
                self._stop.wait(float(action))
            else:
                self.write(bytes(action))


class ScriptedModule:
    """A handler with sensible default answers, overridable per instruction.

    `replies[instruction]` is either a list of action lists (consumed one per command, the last one
    repeating) or a callable(packet, responder) -> actions.
    """

    def __init__(self, *, params: P.SystemParameters | None = None, address: int = P.DEFAULT_ADDRESS, replies=None):
        self.params = params or P.SystemParameters()
        self.address = address
        self.replies: dict[int, object] = dict(replies or {})
        self.data_in: list[P.Packet] = []

    def __call__(self, packet: P.Packet, responder: PtyResponder):
        if packet.is_data:
            self.data_in.append(packet)
            return ()
        instruction = packet.instruction
        script = self.replies.get(instruction)
        if callable(script):
            return script(packet, responder)
        if isinstance(script, list):
            return script.pop(0) if len(script) > 1 else script[0]
        if instruction == P.Instruction.READ_SYS_PARA:
            return [ack(0, self.params.pack(), self.address)]
        return [ack(0, b"", self.address)]

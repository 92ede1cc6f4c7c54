"""Fault injection for the virtual fingerprint module: declarative records, scripted or seeded-random.

A fault is a small record that a TOML scenario can carry as it is (the same idea as pymodbus'
simulator, whose JSON configuration declares the misbehaviour next to the registers)::

    [[fingerprint.faults]]
    kind = "drop_packet"      # what goes wrong (table below)
    command = "UpImage"       # on which command: manual name, enum name or code; omitted = any command
    occurrence = 3            # the 3rd such command after the fault was injected (default 1: the next one)
    packet = 17               # data packet 17 of the reply (1-based); 0 / omitted = the acknowledgement
    times = 1                 # consecutive occurrences it fires on (0 = every one from then on)

    [fingerprint.random_faults]   # or at random, reproducibly
    seed = 7
    rates = { noise = 0.02, bad_checksum = 0.01, drop_packet = 0.005, no_finger = 0.1 }

Kinds that change the module's ANSWER (the command does nothing; its usual reply length is kept):

  confirmation     answer `code` (any confirmation code)
  no_finger        0x02 (default command GenImg)          image_messy     0x06 (default Img2Tz)
  wrong_password   0x13 (default VfyPwd)                  library_full    0x1F (default Store)
  sensor_error     0x29 (default CheckSensor, R503)

Kinds that damage the LINE at one frame of the reply (`packet`: 0 = acknowledgement, k = k-th data packet):

  noise            `count` random bytes (or the hex bytes `data`) before the frame
  power_on_byte    a stray ready byte 0x55 before the frame
  bad_checksum     the frame's checksum is wrong
  truncate         only the first `keep` bytes of the frame are sent (default: half)
  split_packet     the frame is written in `pieces` parts with `delay` s between them
  slow             `delay` s of silence before the frame
  drop_packet      the frame is not sent at all (packet 0: no reply to this command)
  unplug           the cable is pulled before the frame: `mode` "close" (the port vanishes, reads fail)
                   or "silent" (the port stays, nothing answers); `replug_after` s brings it back
                   (omitted: it stays unplugged until `replug()`)
  reset            brown-out before the frame: RAM (buffers, verified password) is lost, the module
                   sends its ready byte 0x55 and the rest of the reply never comes

`parse_faults` accepts `Fault` objects, dicts of the fields above, or lists of either.

Where they act: `FaultFilter` sits between the device (`simulator.fingerprint.device`) and the line
(`simulator.fingerprint.line`). For each command it asks the `FaultPlan` what goes wrong, lets the
device answer (or only answer with the fault's code), and turns the reply's frames into the line
actions that go out: bytes, `Pause`, `Unplug`, `Restart`. The virtual module plays them.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Union

from drivers.fingerprint import protocol as P
from drivers.fingerprint.protocol import Instruction
from edge.errors import InputError

if TYPE_CHECKING:  # the filter wraps a device; fault records alone need none of it
    from simulator.fingerprint.device import FingerprintDevice

ANSWER_KINDS: dict[str, tuple[int | None, Instruction | None]] = {
    # kind -> (confirmation code, command it implies when none is given)
    "confirmation": (None, None),
    "no_finger": (0x02, Instruction.GEN_IMG),
    "image_messy": (0x06, Instruction.IMG2TZ),
    "wrong_password": (0x13, Instruction.VFY_PWD),
    "library_full": (0x1F, Instruction.STORE),
    "sensor_error": (0x29, Instruction.CHECK_SENSOR),
}
LINE_KINDS = frozenset(
    {"noise", "power_on_byte", "bad_checksum", "truncate", "split_packet", "slow", "drop_packet", "unplug", "reset"}
)
FAULT_KINDS = frozenset(ANSWER_KINDS) | LINE_KINDS
UNPLUG_MODES = ("close", "silent")

# Manual names (ZFM / R503 user manuals, client libraries) -> instruction codes.
_COMMAND_NAMES: dict[str, int] = {
    "genimg": Instruction.GEN_IMG, "getimage": Instruction.GEN_IMG, "readimage": Instruction.GEN_IMG,
    "img2tz": Instruction.IMG2TZ, "genchar": Instruction.IMG2TZ, "image2tz": Instruction.IMG2TZ,
    "match": Instruction.MATCH, "search": Instruction.SEARCH, "regmodel": Instruction.REG_MODEL,
    "store": Instruction.STORE, "loadchar": Instruction.LOAD_CHAR, "upchar": Instruction.UP_CHAR,
    "downchar": Instruction.DOWN_CHAR, "upimage": Instruction.UP_IMAGE, "downimage": Instruction.DOWN_IMAGE,
    "deletechar": Instruction.DELETE_CHAR, "delchar": Instruction.DELETE_CHAR, "empty": Instruction.EMPTY,
    "setsyspara": Instruction.SET_SYS_PARA, "setsysparam": Instruction.SET_SYS_PARA,
    "readsyspara": Instruction.READ_SYS_PARA, "readsysparam": Instruction.READ_SYS_PARA,
    "setpwd": Instruction.SET_PWD, "vfypwd": Instruction.VFY_PWD, "getrandomcode": Instruction.GET_RANDOM_CODE,
    "setaddr": Instruction.SET_ADDR, "writenotepad": Instruction.WRITE_NOTEPAD,
    "readnotepad": Instruction.READ_NOTEPAD, "hispeedsearch": Instruction.HI_SPEED_SEARCH,
    "templatenum": Instruction.TEMPLATE_NUM, "validtemplatenum": Instruction.TEMPLATE_NUM,
    "readindextable": Instruction.READ_INDEX_TABLE, "readconlist": Instruction.READ_INDEX_TABLE,
    "getimageex": Instruction.GET_IMAGE_EX, "autoenroll": Instruction.AUTO_ENROLL,
    "autoidentify": Instruction.AUTO_IDENTIFY, "auraledconfig": Instruction.AURA_LED_CONFIG,
    "checksensor": Instruction.CHECK_SENSOR, "getfirmwareversion": Instruction.GET_FIRMWARE_VERSION,
    "softrst": Instruction.SOFT_RESET, "softreset": Instruction.SOFT_RESET, "handshake": Instruction.HANDSHAKE,
    "zfmhandshake": Instruction.ZFM_HANDSHAKE, "getecho": Instruction.ZFM_HANDSHAKE,
}  # fmt: skip


def instruction_code(command: str | int | None) -> int | None:
    """An instruction code from a manual name ("UpImage"), an enum name ("UP_IMAGE") or a number."""
    if command is None:
        return None
    if isinstance(command, int):
        if not 0 <= command <= 0xFF:
            raise InputError(f"instruction code out of range: {command}", code="input.fault")
        return command
    text = str(command).strip()
    key = text.replace("_", "").replace("-", "").replace(" ", "").lower()
    if key in _COMMAND_NAMES:
        return int(_COMMAND_NAMES[key])
    for ins in Instruction:
        if ins.name.replace("_", "").lower() == key:
            return int(ins)
    try:
        return instruction_code(int(text, 0))
    except ValueError:
        raise InputError(f"unknown fingerprint command {command!r} in a fault", code="input.fault") from None


@dataclass(frozen=True)
class Fault:
    """One declared fault (see the module docstring for the fields' meaning)."""

    kind: str
    command: str | int | None = None
    occurrence: int = 1
    times: int = 1
    packet: int = 0
    code: int | None = None  # confirmation
    count: int = 8  # noise: bytes
    data: str | None = None  # noise: exact bytes, hex
    keep: int | None = None  # truncate: bytes kept
    pieces: int = 3  # split_packet
    delay: float = 0.2  # slow, split_packet: seconds
    mode: str = "close"  # unplug
    replug_after: float | None = None  # unplug: seconds

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise InputError(f"unknown fault kind {self.kind!r}; known: {', '.join(sorted(FAULT_KINDS))}",
                             code="input.fault")
        instruction_code(self.command)  # validates the name
        if self.kind == "confirmation" and (self.code is None or not 0 <= int(self.code) <= 0xFF):
            raise InputError("a 'confirmation' fault needs a code 0..255", code="input.fault")
        if self.occurrence < 1 or self.times < 0 or self.packet < 0 or self.count < 0 or self.pieces < 1:
            raise InputError("fault occurrence >= 1, times >= 0, packet >= 0, count >= 0, pieces >= 1",
                             code="input.fault")
        if self.delay < 0 or (self.replug_after is not None and self.replug_after < 0):
            raise InputError("fault delays must not be negative", code="input.fault")
        if self.mode not in UNPLUG_MODES:
            raise InputError(f"unplug mode must be one of {UNPLUG_MODES}", code="input.fault")
        if self.data is not None:
            try:
                bytes.fromhex(self.data)
            except ValueError:
                raise InputError("fault 'data' must be hex bytes", code="input.fault") from None

    @property
    def instruction(self) -> int | None:
        """The command this fault waits for (None: any command)."""
        if self.command is not None:
            return instruction_code(self.command)
        implied = ANSWER_KINDS.get(self.kind, (None, None))[1]
        return int(implied) if implied is not None else None

    @property
    def answer_code(self) -> int | None:
        """The confirmation code an answer fault replies with (None for line faults)."""
        if self.kind == "confirmation":
            return int(self.code)  # type: ignore[arg-type]
        return ANSWER_KINDS[self.kind][0] if self.kind in ANSWER_KINDS else None

    def noise_bytes(self, rng: random.Random) -> bytes:
        if self.kind == "power_on_byte":
            return b"\x55"
        if self.data is not None:
            return bytes.fromhex(self.data)
        return bytes(rng.getrandbits(8) for _ in range(self.count))

    def to_dict(self) -> dict:
        """The declarative form, without fields left at their defaults."""
        defaults = {f.name: f.default for f in fields(self)}
        return {k: v for k, v in asdict(self).items() if k == "kind" or v != defaults[k]}

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> "Fault":
        known = {f.name for f in fields(cls)}
        unknown = set(spec) - known
        if unknown:
            raise InputError(f"unknown fault fields: {', '.join(sorted(unknown))}", code="input.fault")
        if "kind" not in spec:
            raise InputError("a fault needs a 'kind'", code="input.fault")
        return cls(**dict(spec))


def parse_faults(spec: Fault | Mapping | Iterable | None) -> list[Fault]:
    """Faults from a Fault, a dict, or a list of either (None: no faults)."""
    if spec is None:
        return []
    if isinstance(spec, Fault):
        return [spec]
    if isinstance(spec, Mapping):
        return [Fault.from_dict(spec)]
    return [f for item in spec for f in parse_faults(item)]


@dataclass(frozen=True)
class RandomFaults:
    """Faults drawn at random, reproducibly: `rates[kind]` is a probability per command (answer kinds,
    `unplug`, `reset`) or per frame of a reply (the other line kinds). Randomly unplugged modules come
    back after `replug_after` seconds."""

    seed: int = 0
    rates: Mapping[str, float] = field(default_factory=dict)
    delay: float = 0.2
    noise_count: int = 8
    replug_after: float = 0.5

    def __post_init__(self) -> None:
        for kind, rate in self.rates.items():
            if kind not in FAULT_KINDS or kind == "confirmation":
                raise InputError(f"no random rate for fault kind {kind!r}", code="input.fault")
            if not 0.0 <= float(rate) <= 1.0:
                raise InputError(f"fault rate for {kind} must be in 0..1", code="input.fault")

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> "RandomFaults":
        opts = dict(spec)
        rates = dict(opts.pop("rates", {}))
        for kind in list(opts):  # rates may also be given flat: {seed = 1, noise = 0.1}
            if kind in FAULT_KINDS:
                rates[kind] = opts.pop(kind)
        known = {f.name for f in fields(cls)}
        unknown = set(opts) - known
        if unknown:
            raise InputError(f"unknown random-fault fields: {', '.join(sorted(unknown))}", code="input.fault")
        return cls(rates=rates, **opts)


_PER_COMMAND = frozenset(ANSWER_KINDS) | {"unplug", "reset"}


@dataclass
class Decision:
    """What the fault plan does to one command: an answer override and faults per reply frame."""

    answer_code: int | None = None
    frame_faults: dict[int, list[Fault]] = field(default_factory=dict)

    def at(self, frame: int) -> list[Fault]:
        return self.frame_faults.get(frame, [])


class FaultPlan:
    """The faults waiting for commands: scripted ones (counted per matching command) and random ones.

    Not thread-safe by itself: the virtual module calls it under its lock.
    """

    def __init__(self, faults: Iterable[Fault] = (), random_faults: RandomFaults | None = None):
        self._armed: list[list] = []  # [fault, matching commands seen so far, fires left (None = endless)]
        self.random = random_faults
        self._rng = random.Random(random_faults.seed if random_faults else 0)
        self.fired: list[tuple[str, str, int]] = []  # (kind, instruction name, frame): what actually happened
        for fault in faults:
            self.add(fault)

    def add(self, fault: Fault) -> None:
        self._armed.append([fault, 0, fault.times or None])

    def clear(self) -> None:
        self._armed.clear()

    def set_random(self, random_faults: RandomFaults | None) -> None:
        """Replace the random plan (None: no random faults); its seed restarts the draws."""
        self.random = random_faults
        self._rng.seed(random_faults.seed if random_faults else 0)

    @property
    def pending(self) -> list[Fault]:
        return [entry[0] for entry in self._armed]

    @property
    def rng(self) -> random.Random:
        return self._rng

    def decide(self, instruction: int, frames: int, *, answer_allowed: bool = True) -> Decision:
        """Faults for one command whose reply has `frames` frames (1 ack + data packets)."""
        decision = Decision()
        still: list[list] = []
        for entry in self._armed:
            fault, seen, left = entry
            if fault.instruction is not None and fault.instruction != instruction:
                still.append(entry)
                continue
            seen += 1
            entry[1] = seen
            if seen < fault.occurrence:
                still.append(entry)
                continue
            self._apply(decision, fault, instruction, frames, answer_allowed)
            if left is not None:
                left -= 1
                entry[2] = left
                if left <= 0:
                    continue  # spent
            still.append(entry)
        self._armed = still
        if self.random is not None:
            self._draw(decision, instruction, frames, answer_allowed)
        return decision

    def _apply(self, decision: Decision, fault: Fault, instruction: int, frames: int, answer_allowed: bool) -> None:
        name = P.instruction_name(instruction)
        if fault.kind in ANSWER_KINDS:
            if answer_allowed:
                decision.answer_code = fault.answer_code
                self.fired.append((fault.kind, name, 0))
            return
        # an answer fault shortens the reply to its acknowledgement: line faults on later frames
        # then have nothing to act on, which is what a real line would do too
        decision.frame_faults.setdefault(fault.packet, []).append(fault)
        self.fired.append((fault.kind, name, fault.packet))

    def _draw(self, decision: Decision, instruction: int, frames: int, answer_allowed: bool) -> None:
        rates, rng = self.random.rates, self._rng  # type: ignore[union-attr]
        name = P.instruction_name(instruction)
        for kind in sorted(rates):
            rate = float(rates[kind])
            if kind in ANSWER_KINDS:
                if answer_allowed and ANSWER_KINDS[kind][1] == instruction and rng.random() < rate:
                    decision.answer_code = ANSWER_KINDS[kind][0]
                    self.fired.append((kind, name, 0))
            elif kind in _PER_COMMAND:
                if rng.random() < rate:
                    frame = rng.randrange(frames)
                    fault = Fault(kind, packet=frame, mode="close", replug_after=self.random.replug_after)  # type: ignore[union-attr]
                    decision.frame_faults.setdefault(frame, []).append(fault)
                    self.fired.append((kind, name, frame))
            else:
                for frame in range(frames):
                    if rng.random() < rate:
                        fault = Fault(kind, packet=frame, delay=self.random.delay, count=self.random.noise_count)  # type: ignore[union-attr]
                        decision.frame_faults.setdefault(frame, []).append(fault)
                        self.fired.append((kind, name, frame))



# -- the filter between the device and the line ---------------------------------------------------------


@dataclass(frozen=True)
class Pause:
    """Silence on the line for `seconds`."""

    seconds: float


@dataclass(frozen=True)
class Unplug:
    """The cable is pulled ("close": the port vanishes; "silent": it stays, mute); back after
    `replug_after` s, or only on `replug()` when None. Nothing more of the reply goes out."""

    mode: str
    replug_after: float | None


@dataclass(frozen=True)
class Restart:
    """A brown-out: the device loses its RAM and sends its ready byte; nothing more of the reply goes out."""


LineAction = Union[bytes, Pause, Unplug, Restart]


@dataclass
class Transmission:
    """What goes on the line for one event from the host, and the device's follow-up once all of it went out."""

    actions: list[LineAction]
    after: Callable[[], None] | None = None


class FaultFilter:
    """The device's replies as they reach the line: faults applied per command and per frame.

    Commands to another address, replies to damaged frames and everything but commands pass
    unchanged (no fault counts them). Not thread-safe: the virtual module calls it under its lock.
    """

    def __init__(self, device: "FingerprintDevice", plan: FaultPlan):
        self.device = device
        self.plan = plan

    def receive(self, event: P.Event) -> Transmission | None:
        device = self.device
        command = isinstance(event, P.Packet) and event.pid == P.PacketId.COMMAND
        if not (command and device.ready and device.addressed(event)):  # type: ignore[union-attr]
            reply = device.receive(event)
            return None if reply is None else Transmission(list(reply.frames), reply.after)
        instruction = event.instruction  # type: ignore[union-attr]
        decision = self.plan.decide(instruction, device.frame_count(instruction))
        reply = device.command(event, answer=decision.answer_code)  # type: ignore[arg-type]
        return Transmission(self._line_actions(reply.frames, decision), reply.after)

    def _line_actions(self, frames: list[bytes], decision: Decision) -> list[LineAction]:
        """The frames as the faults aimed at them leave them (see the module docstring's table)."""
        out: list[LineAction] = []
        for index, frame in enumerate(frames):
            faults = decision.at(index)
            for fault in faults:
                if fault.kind == "slow":
                    out.append(Pause(fault.delay))
                elif fault.kind in ("noise", "power_on_byte"):
                    out.append(fault.noise_bytes(self.plan.rng))
                elif fault.kind == "unplug":
                    return out + [Unplug(fault.mode, fault.replug_after)]
                elif fault.kind == "reset":
                    return out + [Restart()]
            kinds = {f.kind for f in faults}
            if "drop_packet" in kinds:
                continue
            if "bad_checksum" in kinds:
                frame = frame[:-1] + bytes([frame[-1] ^ 0xA5])
            truncate = next((f for f in faults if f.kind == "truncate"), None)
            if truncate is not None:
                frame = frame[: truncate.keep if truncate.keep is not None else len(frame) // 2]
            split = next((f for f in faults if f.kind == "split_packet"), None)
            if split is not None:
                size = max(1, math.ceil(len(frame) / split.pieces))
                for i in range(0, len(frame), size):
                    if i:
                        out.append(Pause(split.delay))
                    out.append(frame[i : i + size])
                continue
            out.append(frame)
        return out

"""The virtual camera: camera backend `simulated`, scripted subjects, and a challenge channel.

    cam = VirtualCamera(script="live", subject="lfw:Colin_Powell", fps=15)
    frame = cam.read()                 # BGR uint8 640x480, paced at 15 fps (realtime=False: no waiting)
    cam.respond("blink")               # the CHALLENGE CHANNEL: a live subject blinks over the next frames
    cam.present("printed_photo", photo="nuaa-attack:0001")   # someone else steps up
    server = cam.serve_mjpeg()         # the same frames as MJPEG over HTTP: server.url

Scripts (what `script=`/`present()` accept; see `simulator.camera.presentations` for the timing):

  live                 a customer in front of the camera, looking, swaying slightly, blinking now and then
  approach_look_leave  nobody (10 frames), walks up growing (20), looks (45), walks off (15), nobody
  no_face              the empty vestibule
  two_faces            the customer and a second person (`second_subject`)
  dark / overexposed   the live customer under bad light
  printed_photo        `photo` = "nuaa-attack:<id>" (real NUAA attack captures) or a face image to print
                       (default: the subject's image, printed)
  static_replay        one frame of the live customer repeated exactly
  screen_replay        a recording of the live customer shown on a tablet, looping

The challenge channel: `respond(action)` with an action from ACTIONS ("blink", "turn_left",
"turn_right", "closer"); `prompt(action)` is the same through the Camera interface, with the liveness
names (drivers.base.CHALLENGE_ACTIONS: "move_closer" for "closer") and other instructions ignored. Live subjects perform it over the following frames; attacks do what they
physically can (a photo can be brought closer or tilted as a plane but not blink; replays ignore
it). `respond()` returns nothing: whether the subject complied is for liveness to find in the frames.
`last_info` holds the ground truth of the last frame (tests and timelines only).

The simulated customer's reaction to prompts (`reaction`): "complies" (does what was asked), "ignores"
(does nothing) or "wrong_action" (does another challenge action than the one asked). Every prompt the
terminal shows is passed to `prompt_listeners` (the control service's observation log) before the
customer reacts.

Faults: `unplug()` makes reads fail with device.camera_unavailable until `replug()`; `freeze()` makes
reads time out (device.timeout) until `replug()`.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from drivers.base import Camera
from drivers.camera.errors import CameraTimeout, CameraUnavailable
from edge.errors import InputError
from simulator.camera import presentations as p
from simulator.camera import scene
from simulator.camera.sources import default_subject, resolve_face, resolve_photo_attack
from simulator.camera.subjects import FaceSprite

SCRIPTS = ("live", "approach_look_leave", "no_face", "two_faces", "dark", "overexposed",
           "printed_photo", "static_replay", "screen_replay")
ACTIONS = p.ACTIONS
REACTIONS = ("complies", "ignores", "wrong_action")
# Liveness prompt names (drivers.base.CHALLENGE_ACTIONS) that the simulator calls differently.
PROMPT_TO_ACTION = {"move_closer": "closer"}


def build_presentation(script: str, *, subject: str | Path | None = None, second_subject: str | Path | None = None,
                       photo: str | Path | None = None, size: tuple[int, int] = (640, 480), seed: int = 0,
                       natural_blinks: bool = True, data_dir: Path | None = None) -> p.Presentation:
    """The presentation for a named script (InputError for unknown names or missing images)."""
    if script not in SCRIPTS:
        raise InputError(f"unknown camera script {script!r}; known: {', '.join(SCRIPTS)}",
                         code="input.unknown_script")
    background = scene.room_background(size, seed)
    if script == "no_face":
        return p.EmptyScene(background)

    def sprite_of(spec) -> FaceSprite:
        return FaceSprite.from_file(resolve_face(spec, data_dir) if spec else default_subject(data_dir))

    if script == "printed_photo":
        source = resolve_photo_attack(photo, data_dir) if photo else resolve_face(subject, data_dir) if subject \
            else default_subject(data_dir)
        if isinstance(source, list):
            return p.PrintedPhoto(background, captures=source, seed=seed)
        return p.PrintedPhoto(background, sprite=FaceSprite.from_file(source), seed=seed)
    face = sprite_of(subject)
    if script == "two_faces":
        other = sprite_of(second_subject) if second_subject else _other_default(face, data_dir)
        return p.TwoSubjects(face, other, background, seed=seed)
    if script in ("dark", "overexposed"):
        return p.LiveSubject(face, background, light=script, seed=seed, natural_blinks=natural_blinks)
    live = p.LiveSubject(face, background, motion="approach_look_leave" if script == "approach_look_leave" else "live",
                         seed=seed, natural_blinks=natural_blinks)
    if script == "static_replay":
        return p.StaticReplay(live, seed=seed)
    if script == "screen_replay":
        return p.ScreenReplay(live, background, seed=seed)
    return live


def _other_default(face: FaceSprite, data_dir: Path | None) -> FaceSprite:
    for spec in ("example:biden", "lfw:Colin_Powell", "nuaa:0002"):
        try:
            other = FaceSprite.from_file(resolve_face(spec, data_dir))
        except InputError:
            continue
        if other.source != face.source:
            return other
    return face  # only one face image available: a twin will do for "two faces in view"


class VirtualCamera(Camera):
    """A camera whose scene is scripted; thread-safe (read, respond and present from any thread)."""

    def __init__(self, script: str = "live", subject: str | Path | None = None, *,
                 second_subject: str | Path | None = None, photo: str | Path | None = None,
                 fps: float = 15.0, realtime: bool = True, width: int = 640, height: int = 480,
                 seed: int = 0, natural_blinks: bool = True, data_dir: str | Path | None = None):
        if fps <= 0:
            raise InputError("fps must be positive", code="input.invalid_fps")
        self.fps = float(fps)
        self.realtime = realtime
        self.size = (int(width), int(height))
        self.seed = seed
        self.natural_blinks = natural_blinks
        self.data_dir = Path(data_dir) if data_dir else None
        self._lock = threading.RLock()
        self._rng = np.random.default_rng(seed)
        self._index = 0  # frames delivered since start
        self._t = 0  # frames since the current presentation started
        self._started = time.monotonic()
        self._fault: str | None = None
        self._closed = False
        self.last_info: p.FrameInfo | None = None
        self.script = script
        self.reaction = "complies"
        self.prompt_listeners: list = []   # callables(action): every prompt the terminal showed
        self._presentation = self._build(script, subject=subject, second_subject=second_subject, photo=photo)

    def _build(self, script: str, **kw) -> p.Presentation:
        return build_presentation(script, size=self.size, seed=self.seed, natural_blinks=self.natural_blinks,
                                  data_dir=self.data_dir, **kw)

    # -- the scene ---------------------------------------------------------------------------------
    def present(self, script: str, subject: str | Path | None = None, *, second_subject: str | Path | None = None,
                photo: str | Path | None = None) -> None:
        """Put another scene in front of the camera; its script starts at its frame 0."""
        presentation = self._build(script, subject=subject, second_subject=second_subject, photo=photo)
        with self._lock:
            self._presentation = presentation
            self.script = script
            self._t = 0

    def prompt(self, action: str) -> None:
        """The terminal's instruction to the customer (drivers.base.Camera.prompt).

        Challenge actions reach whoever is in front of the camera through `respond` (the liveness name
        "move_closer" is the simulator's "closer"); other instructions ("look_at_camera", ...) need no
        reaction: the simulated customer already looks at the camera.
        """
        for listener in list(self.prompt_listeners):
            listener(action)
        action = PROMPT_TO_ACTION.get(action, action)
        if action not in ACTIONS or self.reaction == "ignores":
            return
        if self.reaction == "wrong_action":   # the next action of the list: never the one asked
            action = ACTIONS[(ACTIONS.index(action) + 1) % len(ACTIONS)]
        self.respond(action)

    def set_reaction(self, reaction: str) -> None:
        """How the simulated customer reacts to the next prompts (REACTIONS)."""
        if reaction not in REACTIONS:
            raise InputError(f"unknown reaction {reaction!r}; known: {', '.join(REACTIONS)}",
                             code="input.unknown_reaction")
        self.reaction = reaction

    def respond(self, action: str) -> None:
        """The challenge channel: ask whoever is in front of the camera to perform `action`."""
        if action not in ACTIONS:
            raise InputError(f"unknown challenge action {action!r}; known: {', '.join(ACTIONS)}",
                             code="input.unknown_action")
        with self._lock:
            self._presentation.respond(action, self._t)

    # -- faults ------------------------------------------------------------------------------------
    def unplug(self) -> None:
        with self._lock:
            self._fault = "unplugged"

    def freeze(self) -> None:
        with self._lock:
            self._fault = "frozen"

    def replug(self) -> None:
        with self._lock:
            self._fault = None
            self._started = time.monotonic() - self._index / self.fps

    # -- the Camera interface ----------------------------------------------------------------------
    def read(self, timeout: float = 2.0) -> np.ndarray:
        if self._closed:
            raise CameraUnavailable("the virtual camera was closed")
        fault = self._fault
        if fault == "unplugged":
            raise CameraUnavailable("the virtual camera is unplugged", details={"source": "simulated"})
        if fault == "frozen":
            time.sleep(max(0.0, timeout))
            raise CameraTimeout(f"no frame from the virtual camera within {timeout:.2f} s",
                                details={"source": "simulated", "timeout_s": timeout})
        if self.realtime:
            due = self._started + self._index / self.fps
            wait = due - time.monotonic()
            if wait > timeout:
                time.sleep(max(0.0, timeout))
                raise CameraTimeout(f"no frame from the virtual camera within {timeout:.2f} s",
                                    details={"source": "simulated", "timeout_s": timeout})
            if wait > 0:
                time.sleep(wait)
            elif wait < -1.0 / self.fps:  # behind by a frame or more: a real camera drops frames, it does not
                self._started = time.monotonic() - self._index / self.fps   # burst a backlog at the reader
        with self._lock:
            frame, truth = self._presentation.render(self._t, self._rng)
            self.last_info = p.FrameInfo(index=self._index, t=self._t, presentation=self._presentation.name,
                                         **truth)
            self._index += 1
            self._t += 1
        return frame

    @property
    def fault(self) -> str | None:
        """None, "unplugged" or "frozen"."""
        return self._fault

    @property
    def frame_index(self) -> int:
        return self._index

    def serve_mjpeg(self, host: str = "127.0.0.1", port: int = 0, quality: int = 85):
        """Publish this camera as an MJPEG stream; returns the running `MjpegServer` (`.url`)."""
        from simulator.camera.mjpeg import MjpegServer

        server = MjpegServer(self, host=host, port=port, quality=quality)
        server.start()
        return server

    def close(self) -> None:
        self._closed = True

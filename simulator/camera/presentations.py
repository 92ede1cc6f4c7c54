"""What stands in front of the virtual camera, frame by frame.

A `Presentation` renders frame `t` (frames since it was put in front of the camera) and may react to a
liveness challenge. Time is counted in frames, so a script looks the same at any frame rate and in
tests that do not wait in real time.

Live people (`LiveSubject`, `TwoSubjects`) perform a challenge over the frames after `respond()`:

  blink       eyelids close and reopen over BLINK frames
  turn_left   the head turns to the subject's LEFT (nose toward the image's right, yaw > 0) and back
  turn_right  the head turns to the subject's right (nose toward the image's left, yaw < 0) and back
  closer      the subject steps closer: the face grows to CLOSER_SCALE, stays, then steps back

Attacks do not (cannot) do that:
  PrintedPhoto   moves as a flat plane: `closer` brings the photo nearer, a turn tilts the whole photo
                 (a keystone, not a head turn); it never blinks.
  StaticReplay   one frame repeated bit-for-bit; ignores everything.
  ScreenReplay   a recording of a live subject shown on a screen, looping regardless of challenges.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from simulator.camera import scene
from simulator.camera.subjects import FaceSprite

ACTIONS = ("blink", "turn_left", "turn_right", "closer")

# Challenge envelopes, one value per frame after respond() (15 fps: blink 0.47 s, turn 1.3 s, closer 2.4 s).
BLINK = (0.45, 0.9, 1.0, 1.0, 0.85, 0.45, 0.0)
TURN_DEG = 28.0
TURN = tuple([i / 5 for i in range(1, 6)] + [1.0] * 10 + [1 - i / 5 for i in range(1, 6)])
CLOSER_SCALE = 1.5
CLOSER = tuple([i / 8 for i in range(1, 9)] + [1.0] * 20 + [1 - i / 8 for i in range(1, 9)])


@dataclass
class FrameInfo:
    """Ground truth of one frame, for tests and timelines (the pipeline must not read it)."""

    index: int  # frames since the camera started
    t: int  # frames since this presentation started
    presentation: str
    live: bool  # a live person (False for attacks and empty scenes)
    faces: list[tuple[int, int, int, int]] | None  # face boxes (x, y, w, h); None = not known
    eyes_closed: float = 0.0
    yaw_deg: float = 0.0
    scale: float = 1.0
    performing: list[str] = field(default_factory=list)  # challenges being performed in this frame


def _envelope(curve: tuple[float, ...], started: list[int], t: int) -> float:
    value = 0.0
    for start in started:
        k = t - start
        if 0 <= k < len(curve):
            value = max(value, curve[k])
    return value


def _closer_scale(started: list[int], t: int) -> float:
    """How much nearer than at rest at frame `t`. A `closer` comes CLOSER_SCALE nearer from wherever the subject
    is, holds, then goes back to rest; asked again before going back, it comes nearer still from there (a
    person, or the hand holding a photo, does not step back first)."""
    earlier = sorted(st for st in started if st <= t)
    if not earlier:
        return 1.0
    start = earlier[-1]  # the latest request governs; the earlier ones set where it starts from
    k = t - start
    if k >= len(CLOSER):
        return 1.0
    before = _closer_scale(earlier[:-1], start)
    near, c = before * CLOSER_SCALE, CLOSER[k]
    scale = before + (near - before) * c if k < CLOSER.index(1.0) else 1.0 + (near - 1.0) * c
    return scale


class Presentation(abc.ABC):
    name: str = "presentation"
    live: bool = False

    @abc.abstractmethod
    def render(self, t: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """Frame `t` and its ground-truth fields (FrameInfo keyword arguments)."""

    def respond(self, action: str, t: int) -> None:
        """A challenge was issued before frame `t`; attacks ignore it."""


class EmptyScene(Presentation):
    name = "no_face"

    def __init__(self, background: np.ndarray):
        self.background = background

    def render(self, t, rng):
        return scene.sensor_noise(self.background, rng), {"faces": [], "live": False}


class _Actor:
    """One live head: its pose over time (motion script + sway) and the challenges it performs."""

    def __init__(self, sprite: FaceSprite, frame_size: tuple[int, int], motion: str, anchor_x: float,
                 base_scale: float, seed: int, natural_blinks: bool):
        if motion not in ("live", "approach_look_leave"):
            raise ValueError(f"unknown motion {motion!r}")
        self.sprite = sprite
        self.size = frame_size
        self.motion = motion
        self.anchor_x = anchor_x
        self.base_scale = base_scale
        self.started: dict[str, list[int]] = {a: [] for a in ACTIONS}
        rng = np.random.default_rng(seed)
        self.sway_phase = rng.uniform(0, 2 * np.pi)
        # spontaneous blinks every 3-5 s at 15 fps, as people do
        self.natural = list(np.cumsum(rng.integers(45, 75, 40))) if natural_blinks else []

    # the approach / look / leave timeline, in frames
    ABSENT, APPROACH, LOOK, LEAVE = 10, 20, 45, 15

    def pose(self, t: int) -> tuple[bool, float, float, float]:
        """(present, centre x, centre y, scale) before challenges."""
        w, h = self.size
        sway_x = 6.0 * np.sin(2 * np.pi * t / 40.0 + self.sway_phase)
        sway_y = 3.0 * np.sin(2 * np.pi * t / 55.0 + self.sway_phase)
        cx, cy, s = self.anchor_x * w + sway_x, 0.45 * h + sway_y, self.base_scale
        if self.motion == "live":
            return True, cx, cy, s
        a, b, c = self.ABSENT, self.ABSENT + self.APPROACH, self.ABSENT + self.APPROACH + self.LOOK
        if t < a or t >= c + self.LEAVE:
            return False, cx, cy, s
        if t < b:  # walks up from the left, growing
            k = (t - a + 1) / self.APPROACH
            return True, (0.3 + (self.anchor_x - 0.3) * k) * w, cy + 30 * (1 - k), s * (0.35 + 0.65 * k)
        if t < c:
            return True, cx, cy, s
        k = (t - c + 1) / self.LEAVE  # walks off to the right, turning away slightly
        return True, cx + 0.75 * w * k, cy, s * (1 - 0.2 * k)

    def render_into(self, frame: np.ndarray, t: int) -> dict | None:
        present, cx, cy, s = self.pose(t)
        if not present:
            return None
        closed = max(_envelope(BLINK, self.started["blink"] + self.natural, t), 0.0)
        yaw = TURN_DEG * (_envelope(TURN, self.started["turn_left"], t) - _envelope(TURN, self.started["turn_right"], t))
        s *= _closer_scale(self.started["closer"], t)
        img = self.sprite.with_eyes_closed(closed)
        img, alpha = self.sprite.turned(img, self.sprite.alpha, yaw)
        # a turning head also shifts a little the way it turns
        cx += 0.12 * self.sprite.image.shape[1] * s * np.sin(np.deg2rad(yaw))
        rect = scene.paste(frame, img, alpha, (cx, cy), s)
        if rect is None:
            return None
        side = self.sprite.image.shape[1] * s
        fx, fy, fw, fh = self.sprite.face_box
        x0, y0 = cx - side / 2, cy - side / 2
        box = (int(x0 + fx * s), int(y0 + fy * s), int(fw * s), int(fh * s))
        performing = [a for a, starts in self.started.items()
                      if any(0 <= t - st < len(_curve(a)) for st in starts)]
        return {"box": box, "eyes_closed": closed, "yaw_deg": yaw, "scale": s / self.base_scale,
                "performing": performing}

    def respond(self, action: str, t: int) -> None:
        self.started[action].append(t)


def _curve(action: str) -> tuple[float, ...]:
    return {"blink": BLINK, "turn_left": TURN, "turn_right": TURN, "closer": CLOSER}[action]


class LiveSubject(Presentation):
    """A live customer: stands (`live`) or approaches, looks and leaves (`approach_look_leave`)."""

    live = True

    def __init__(self, sprite: FaceSprite, background: np.ndarray, *, motion: str = "live", light: str = "normal",
                 seed: int = 0, natural_blinks: bool = True, name: str | None = None):
        self.background = background
        self.light = light
        h, w = background.shape[:2]
        self.actor = _Actor(sprite, (w, h), motion, 0.5, 1.0, seed, natural_blinks)
        self.name = name or (motion if light == "normal" else light)

    def render(self, t, rng):
        frame = self.background.copy()
        got = self.actor.render_into(frame, t)
        frame = scene.exposure(scene.sensor_noise(frame, rng), self.light, rng)
        if got is None:
            return frame, {"faces": [], "live": False}
        return frame, {"faces": [got["box"]], "live": True, "eyes_closed": got["eyes_closed"],
                       "yaw_deg": got["yaw_deg"], "scale": got["scale"], "performing": got["performing"]}

    def respond(self, action, t):
        self.actor.respond(action, t)


class TwoSubjects(Presentation):
    """Two people in view (a customer with someone looking over the shoulder); both are live."""

    name = "two_faces"
    live = True

    def __init__(self, first: FaceSprite, second: FaceSprite, background: np.ndarray, seed: int = 0):
        self.background = background
        h, w = background.shape[:2]
        self.actors = [_Actor(first, (w, h), "live", 0.32, 0.85, seed, True),
                       _Actor(second, (w, h), "live", 0.70, 0.75, seed + 1, True)]

    def render(self, t, rng):
        frame = self.background.copy()
        boxes = [got["box"] for a in self.actors if (got := a.render_into(frame, t)) is not None]
        return scene.sensor_noise(frame, rng), {"faces": boxes, "live": True}

    def respond(self, action, t):
        for actor in self.actors:
            actor.respond(action, t)


class PrintedPhoto(Presentation):
    """A printed photo held up to the camera.

    From NUAA (`captures`: that subject's real attack captures; the seed picks one, which is then held
    and moved) or synthesised from a face image (printed with a white border and held in the room).
    Either way it can only move as a plane. One capture is held for the whole presentation because
    consecutive NUAA captures are seconds apart: cycling through them frame by frame would make the
    photo jump about the frame, which no hand-held photo does.
    """

    name = "printed_photo"

    def __init__(self, background: np.ndarray, *, captures: list[Path] | None = None,
                 sprite: FaceSprite | None = None, seed: int = 0):
        self.background = background
        self.started: dict[str, list[int]] = {a: [] for a in ACTIONS}
        self.captures = [p for p in (captures or [])]
        self._cache: dict[int, np.ndarray] = {}
        self.seed = seed
        self.photo = None
        if not self.captures:
            if sprite is None:
                raise ValueError("a printed photo needs NUAA captures or a face sprite")
            rng = np.random.default_rng(seed)
            # a passport-style print: the face crop (rectangular, not the head mask) plus a paper margin
            face = sprite.image[16:-16, 40:-40]
            self.photo = cv2.copyMakeBorder(scene.printed(face, rng), 14, 14, 14, 14, cv2.BORDER_CONSTANT,
                                            value=(225, 235, 240))
            self.face_in_photo = (sprite.face_box[0] - 40 + 14, sprite.face_box[1] - 16 + 14,
                                  sprite.face_box[2], sprite.face_box[3])

    def _capture(self, t: int) -> np.ndarray:
        i = self.seed % len(self.captures)
        if i not in self._cache:
            img = cv2.imread(str(self.captures[i]), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"unreadable attack capture {self.captures[i]}")
            h, w = self.background.shape[:2]
            self._cache[i] = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA) if img.shape[:2] != (h, w) else img
        return self._cache[i]

    def render(self, t, rng):
        closer = _closer_scale(self.started["closer"], t)
        tilt = TURN_DEG * (_envelope(TURN, self.started["turn_left"], t) - _envelope(TURN, self.started["turn_right"], t))
        h, w = self.background.shape[:2]
        hand = np.random.default_rng(self.seed * 100003 + t)  # a hand is never still
        jitter = hand.normal(0, 2.0, 2)
        if self.captures:
            # the capture already shows the photo in the attacker's hand; moving it closer/tilting is
            # approximated by a plane transform of the whole capture
            content = self._capture(t)
            quad = scene.plane_pose((w, h), (w, h), (w / 2 + jitter[0], h / 2 + jitter[1]), closer, tilt,
                                    hand.normal(0, 0.4))
            frame = np.zeros_like(content)
            scene.warp_plane(frame, content, quad)
            return scene.sensor_noise(frame, rng), {"faces": None, "live": False, "scale": closer, "yaw_deg": 0.0}
        frame = self.background.copy()
        ph, pw = self.photo.shape[:2]
        quad = scene.plane_pose((w, h), (pw, ph), (w / 2 + jitter[0], 0.47 * h + jitter[1]), closer, tilt,
                                hand.normal(0, 0.6))
        scene.warp_plane(frame, self.photo, quad)
        src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
        hom = cv2.getPerspectiveTransform(src, quad)
        fx, fy, fw, fh = self.face_in_photo
        pts = cv2.perspectiveTransform(np.array([[[fx, fy], [fx + fw, fy + fh]]], np.float32), hom)[0]
        box = (int(pts[0, 0]), int(pts[0, 1]), int(pts[1, 0] - pts[0, 0]), int(pts[1, 1] - pts[0, 1]))
        return scene.sensor_noise(frame, rng), {"faces": [box], "live": False, "scale": closer, "yaw_deg": 0.0}

    def respond(self, action, t):
        if action != "blink":  # a photo can be moved and tilted, never blink
            self.started[action].append(t)


class StaticReplay(Presentation):
    """One frame of a live subject, repeated exactly (a frozen image injected into the feed)."""

    name = "static_replay"

    def __init__(self, source: LiveSubject, at_frame: int = 5, seed: int = 0):
        frame, truth = source.render(at_frame, np.random.default_rng(seed))
        self.frame = frame
        self.faces = truth["faces"]

    def render(self, t, rng):
        return self.frame.copy(), {"faces": list(self.faces), "live": False}


class ScreenReplay(Presentation):
    """A recording of a live subject played on a tablet held in front of the camera, looping."""

    name = "screen_replay"

    def __init__(self, source: LiveSubject, background: np.ndarray, frames: int = 45, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.background = background
        h, w = background.shape[:2]
        self.recording = [source.render(k, rng)[0] for k in range(frames)]
        # the tablet covers most of the view: screen area 84% of the frame, in a dark bezel
        self.screen_size = (int(w * 0.84), int(h * 0.84))
        self.recording = [cv2.resize(f, self.screen_size, interpolation=cv2.INTER_AREA) for f in self.recording]
        self.seed = seed

    def render(self, t, rng):
        h, w = self.background.shape[:2]
        shown = self.recording[t % len(self.recording)]
        content = scene.screen(shown, rng, phase=0.3 * t)
        device = cv2.copyMakeBorder(content, 18, 18, 18, 18, cv2.BORDER_CONSTANT, value=(20, 20, 22))
        hand = np.random.default_rng(self.seed * 7919 + t)
        quad = scene.plane_pose((w, h), device.shape[1::-1], (w / 2 + hand.normal(0, 1.5), h / 2 + hand.normal(0, 1.5)),
                                1.0, 0.0, hand.normal(0, 0.3))
        frame = self.background.copy()
        scene.warp_plane(frame, device, quad)
        return scene.sensor_noise(frame, rng), {"faces": None, "live": False}

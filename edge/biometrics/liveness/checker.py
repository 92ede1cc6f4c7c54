"""The liveness check of a verification session: an active challenge over the camera stream, a passive
detector on the frames before it, and physical tests on the motion. The one public entry point.

    checker = LivenessChecker(config.liveness, config.paths.models_dir, face_pipeline)
    result = checker.check(camera, prompt, rng)     # reads frames, prompts the customer once
    if result.live: match(result.probe_frames())    # the most frontal frames before the prompt, best first
    result.wipe()                                   # zeroise the kept frames

How one check runs:
1. Frames are read until the face has been in view for a random 0.6-1.2 s (`prompt_delay_*`) and has been
   steady for `STEADY_S` (its size and yaw as at rest: a customer still stepping back or turning back from an
   earlier instruction is not at a start pose yet; after `SETTLE_WAIT_S` more the prompt comes anyway). The
   steady frames are the start pose (baseline) the action is measured against. A still image (no
   frame-to-frame change) is refused here, before any prompt.
   The passive detector scores `passive_frames` of these frames; the `CALM_FRAMES` most frontal ones are
   kept as the probe's candidates (frames during and after the action show a moving, turned or nearer face).
2. `prompt(action)` shows one randomly chosen action (`challenges`: blink, turn_left, turn_right,
   move_closer; left/right are the customer's own). Frames are read until the action is seen or
   `challenge_timeout_s` passes.
3. The decision combines everything; each failed test adds a stable reason code:
     liveness.no_face                   a face was in view in too few frames (or never)
     liveness.static_sequence           the frames do not change: a still image
     liveness.challenge_not_performed   nothing like the requested action happened
     liveness.timeout                   the action started but was not completed in time
     liveness.planar_motion             the face moved as a flat picture does: a "turn" without depth, or
                                        together with a medium (photo or screen border, all its surroundings)
     liveness.passive_attack            the passive detector's mean score is below `passive_threshold`
   `live` is True when there is no reason.

Time: a camera that declares `fps` (the virtual camera) is timed in its own frames, so an unpaced
simulation takes as many frames as a real one would; other cameras are timed by the wall clock.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import cv2
import numpy as np

from edge.biometrics.liveness.challenge import (ACTIONS, ActionEvidence, EyeChangeMeter, action_evidence,
                                                frames_for, start_yaw, turn_shift)
from edge.biometrics.liveness.medium import (MediumEvidence, face_motion, is_static, medium_evidence,
                                             nonplanar_motion)
from edge.biometrics.liveness.observe import FaceObserver, FrameObservation
from edge.biometrics.liveness.passive import PassiveDetector
from edge.biometrics.config import LivenessConfig
from edge.errors import ConfigError, InputError

NO_FACE = "liveness.no_face"
STATIC_SEQUENCE = "liveness.static_sequence"
CHALLENGE_NOT_PERFORMED = "liveness.challenge_not_performed"
TIMEOUT = "liveness.timeout"
PLANAR_MOTION = "liveness.planar_motion"
PASSIVE_ATTACK = "liveness.passive_attack"
REASONS = (NO_FACE, STATIC_SEQUENCE, CHALLENGE_NOT_PERFORMED, TIMEOUT, PLANAR_MOTION, PASSIVE_ATTACK)

READ_TIMEOUT_S = 2.0  # one camera read; a camera that stalls longer raises its own device error
# The probe's candidates: the most frontal frames of the start pose. Several, because one of them may catch a
# natural blink; choosing among them (edge.biometrics.face) costs a detection each.
CALM_FRAMES = 4
SETTLE_S = 0.25       # move_closer: the face has stopped growing for this long
# The start pose is steady: for STEADY_S the face's inter-ocular distance stays within STEADY_SCALE of its
# smallest and its yaw signal within `turn_offset` (what a turn must reach). Half the closer growth: a face
# still shrinking back from a step closer, or turning back, moves more than this between a few frames.
STEADY_S = 0.4
STEADY_SCALE = 0.075
SETTLE_WAIT_S = 2.0   # a customer who never keeps still is prompted after this much more anyway


@dataclass
class LivenessResult:
    """The verdict of one check. Holds a few frames (`best_frame`, `calm_frames`) until `wipe()`; everything else
    is numbers."""

    live: bool
    reasons: list[str]
    challenge: str
    passive_score: float | None     # mean bona fide probability of the scored frames (None: none scored)
    frames: int                     # frames examined
    best_frame: np.ndarray | None = None  # BGR, the most frontal face before the prompt (a copy the caller owns)
    calm_frames: list[np.ndarray] = field(default_factory=list)  # the next most frontal ones before it, best first
    prompt_frame: int | None = None  # frame index at which the prompt was shown (None: never prompted)
    measures: dict[str, float] = field(default_factory=dict)  # what each test measured (no biometric data)

    def wipe(self) -> None:
        """Zeroise the kept frames (NIST SP 800-63B: samples are zeroised after the transaction)."""
        for frame in self.probe_frames():
            frame.fill(0)

    def probe_frames(self) -> list[np.ndarray]:
        """The start-pose frames the probe is chosen from: the most frontal first (empty when no face)."""
        return ([self.best_frame] if self.best_frame is not None else []) + list(self.calm_frames)

    def to_dict(self) -> dict:
        """A JSON-ready summary (no image)."""
        return {"live": self.live, "reasons": list(self.reasons), "challenge": self.challenge,
                "passive_score": self.passive_score, "frames": self.frames, "prompt_frame": self.prompt_frame,
                "measures": dict(self.measures)}


class _Clock:
    """Seconds since start: the camera's frame count / fps when it declares a rate, else the wall clock."""

    def __init__(self, fps: float | None):
        self.fps = fps
        self.started = time.monotonic()
        self.frames = 0

    def tick(self) -> None:
        self.frames += 1

    def now(self) -> float:
        if self.fps:
            return self.frames / self.fps
        return time.monotonic() - self.started

    def rate(self, fallback: float) -> float:
        """Frames per second, measured when the camera does not say."""
        if self.fps:
            return self.fps
        elapsed = time.monotonic() - self.started
        return self.frames / elapsed if self.frames >= 5 and elapsed > 0 else fallback


class _Sequence:
    """The frames of one check as they arrive: observations plus the few frames the tests need."""

    def __init__(self, checker: "LivenessChecker", challenge: str, fps: float, expected_baseline: int):
        self.cfg = checker.cfg
        self.observer = checker.observer
        self.passive = checker.passive
        self.challenge = challenge
        self.fps = fps
        self.obs: list[FrameObservation] = []
        self.prompt_at: int | None = None
        self.start_at = 0  # first observation of the start pose the action is measured against
        self.meter: EyeChangeMeter | None = None
        self.start_yaw: float | None = None
        self.first_face: int | None = None
        self.passive_every = max(1, expected_baseline // self.cfg.passive_frames)
        self.passive_scores: list[float] = []
        self._baseline_faces = 0
        self._calm: list[tuple[float, int, np.ndarray]] = []   # (frontality penalty, index, BGR copy), best first
        self._reference: tuple[np.ndarray, tuple] | None = None  # last baseline frame: (grey, eyes)
        self._peak: tuple[float, np.ndarray, tuple] | None = None  # most moved frame after the prompt
        self.peak_at = -1  # observation index of that frame
        self.observer.reset()

    @property
    def baseline_faces(self) -> int:
        return self._baseline_faces

    def add(self, frame_bgr: np.ndarray) -> FrameObservation:
        o = self.observer.observe(frame_bgr, len(self.obs))
        self.obs.append(o)
        if not o.has_face:
            return o
        if self.first_face is None:
            self.first_face = o.index
        if self.prompt_at is None:
            self._baseline(frame_bgr, o)
        elif self._reference is not None:
            grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
            self._track_motion(grey, o)
            if self.start_yaw is not None and abs(turn_shift(o, self.start_yaw, self.challenge, self.cfg)) >= self.cfg.turn_offset:
                # only frames that look turned (either way) need the costlier depth test
                o.depth = nonplanar_motion(self._reference[0], self._reference[1], grey, o.eyes())
            grey.fill(0)
        return o

    def _baseline(self, frame_bgr: np.ndarray, o: FrameObservation) -> None:
        if self._baseline_faces % self.passive_every == 0 and len(self.passive_scores) < self.cfg.passive_frames:
            self.passive_scores.append(self.passive.score(frame_bgr, o.geometry()))
        self._baseline_faces += 1
        left, right = o.eyes()
        nose_offset = abs(float(np.dot(o.keypoints[2] - (left + right) / 2, (right - left))) / max(o.iod, 1e-6) ** 2)
        if len(self._calm) < CALM_FRAMES or nose_offset < self._calm[-1][0]:
            self._calm.append((nose_offset, o.index, frame_bgr.copy()))
            self._calm.sort(key=lambda kept: kept[:2])
            while len(self._calm) > CALM_FRAMES:
                self._calm.pop()[2].fill(0)
        grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        if self._reference is not None:
            self._reference[0].fill(0)
        self._reference = (grey, o.eyes())

    def _track_motion(self, grey: np.ndarray, o: FrameObservation) -> None:
        scale, shift = face_motion(self._reference[1], o.eyes())
        moved = max(abs(np.log(scale)) / np.log(1.1), shift / 0.5)
        if self._peak is None or moved > self._peak[0]:
            if self._peak is not None:
                self._peak[1].fill(0)
            self._peak = (moved, grey.copy(), o.eyes())
            self.peak_at = o.index

    def steady_frames(self) -> int:
        """How many of the latest observations show one steady face (see STEADY_S): each with a face, their
        inter-ocular distances within STEADY_SCALE and their yaw signals within `turn_offset` of each other."""
        n, low, high, left, right = 0, np.inf, -np.inf, np.inf, -np.inf
        for o in reversed(self.obs):
            if not o.has_face:
                break
            low, high = min(low, o.iod), max(high, o.iod)
            left, right = min(left, o.yaw_signal), max(right, o.yaw_signal)
            if high > low * (1 + STEADY_SCALE) or right - left > self.cfg.turn_offset:
                break
            n += 1
        return n

    def steady(self) -> bool:
        return self.steady_frames() >= frames_for(STEADY_S, self.fps)

    def mark_prompt(self) -> None:
        self.prompt_at = len(self.obs)
        steady = self.steady_frames()
        # the action is measured against the steady frames just before the prompt (all of them when the
        # customer never kept still: the check cannot wait for ever)
        self.start_at = self.prompt_at - steady if steady >= frames_for(STEADY_S, self.fps) else 0
        self.meter = EyeChangeMeter(self.prompt_at - self.start_at)
        if self.challenge in ("turn_left", "turn_right"):
            self.start_yaw = start_yaw(self.obs[self.start_at:], self.prompt_at - self.start_at)

    def static(self) -> bool:
        start = self.first_face or 0
        return is_static([o.change for o in self.obs[start:]], self.cfg)

    def evidence(self, final: bool) -> ActionEvidence | None:
        if self.prompt_at is None:
            return None
        return action_evidence(self.challenge, self.obs[self.start_at:], self.prompt_at - self.start_at, self.cfg,
                               self.fps, self.meter, final)

    def medium(self) -> MediumEvidence | None:
        if self._reference is None or self._peak is None:
            return None
        return medium_evidence(self._reference[0], self._reference[1], self._peak[1], self._peak[2])

    def result(self) -> LivenessResult:
        cfg = self.cfg
        reasons: list[str] = []
        measures: dict[str, float] = {}
        seen = self.obs[self.first_face:] if self.first_face is not None else []
        face_fraction = sum(o.has_face for o in seen) / len(seen) if seen else 0.0
        measures["face_fraction"] = round(face_fraction, 3)
        changes = [o.change for o in self.obs if np.isfinite(o.change)]
        if changes:
            measures["frame_change"] = round(float(np.median(changes)), 3)
        static = self.static()
        if static:
            reasons.append(STATIC_SEQUENCE)
        never_prompted = self.prompt_at is None and not static  # the face never stayed long enough
        if self.first_face is None or face_fraction < cfg.min_face_fraction or never_prompted:
            reasons.append(NO_FACE)
        # a still image or a face out of view cannot be judged on the action
        judged = STATIC_SEQUENCE not in reasons and NO_FACE not in reasons
        evidence = self.evidence(final=True) if judged else None
        if evidence is not None:
            measures["action_strength"] = round(evidence.strength, 4)
            if evidence.depth is not None:
                measures["turn_depth"] = round(evidence.depth, 4)
            if evidence.planar:
                reasons.append(PLANAR_MOTION)
            elif not evidence.performed:
                reasons.append(TIMEOUT if evidence.partial else CHALLENGE_NOT_PERFORMED)
        medium = self.medium()
        if medium is not None:
            measures.update(face_scale=round(medium.scale, 3), face_shift_iod=round(medium.shift_iod, 3),
                            medium_edge_iod=round(medium.edge_iod, 3))
            if np.isfinite(medium.surround_fraction):
                measures["medium_surround_fraction"] = round(medium.surround_fraction, 3)
            if medium.flat(cfg):
                reasons.append(PLANAR_MOTION)
        passive_score = float(np.mean(self.passive_scores)) if self.passive_scores else None
        if passive_score is not None:
            measures["passive_score"] = round(passive_score, 4)
            if not self.passive.is_live(passive_score):
                reasons.append(PASSIVE_ATTACK)
        reasons = sorted(set(reasons), key=REASONS.index)
        kept = [frame for _, _, frame in self._calm]
        self._calm = []
        return LivenessResult(live=not reasons, reasons=reasons, challenge=self.challenge,
                              passive_score=passive_score, frames=len(self.obs),
                              best_frame=kept[0] if kept else None, calm_frames=kept[1:],
                              prompt_frame=self.prompt_at, measures=measures)

    def wipe(self) -> None:
        """Zeroise everything kept (the best frame too, unless result() already handed it to the caller)."""
        for _, _, frame in self._calm:
            frame.fill(0)
        self._calm = []
        if self._reference is not None:
            self._reference[0].fill(0)
        if self._peak is not None:
            self._peak[1].fill(0)
        self._reference = self._peak = None
        for o in self.obs:
            o.wipe()
        self.observer.reset()


class LivenessChecker:
    """Active challenge + passive PAD for the face path. One check at a time (a lock serialises them).

    `face_pipeline`: an `edge.biometrics.face.FacePipeline` whose detector and aligner are shared; when
    None they are built from `models_dir`.
    """

    def __init__(self, cfg: LivenessConfig, models_dir: Path, face_pipeline: Any = None):
        if cfg.prompt_delay_max_s < cfg.prompt_delay_min_s:  # load_config checks it; model_copy() does not
            raise ConfigError("liveness.prompt_delay_max_s must not be below prompt_delay_min_s")
        threads = int(getattr(getattr(face_pipeline, "cfg", None), "threads", 1) or 1)
        self.cfg = cfg
        self.observer = FaceObserver.from_pipeline(face_pipeline, Path(models_dir), threads)
        self.passive = PassiveDetector.from_config(cfg, Path(models_dir), threads)
        self._lock = threading.Lock()

    def check(self, camera: Any, prompt: Callable[[str], None], rng: np.random.Generator) -> LivenessResult:
        """Run one check on `camera` (drivers.base.Camera); `prompt(action)` shows the instruction.

        Camera failures propagate as the camera's DeviceError: they are not the customer's doing.
        """
        cfg = self.cfg
        challenge = str(rng.choice(cfg.challenges))
        delay_s = float(rng.uniform(cfg.prompt_delay_min_s, cfg.prompt_delay_max_s))
        with self._lock:
            clock = _Clock(camera.fps)
            fps = clock.rate(cfg.frame_rate)
            seq = _Sequence(self, challenge, fps, max(1, round(delay_s * fps)))
            try:
                return self._run(camera, prompt, seq, clock, delay_s)
            finally:
                seq.wipe()

    def _run(self, camera: Any, prompt: Callable[[str], None], seq: _Sequence, clock: _Clock,
             delay_s: float) -> LivenessResult:
        cfg = self.cfg
        # 1. the start pose: enough frames with a face, at a moment the customer cannot predict, and steady
        long_enough_at: float | None = None
        while True:
            seq.add(camera.read(timeout=READ_TIMEOUT_S))
            clock.tick()
            seq.fps = clock.rate(cfg.frame_rate)
            if seq.static():
                return seq.result()
            if seq.baseline_faces >= max(1, round(delay_s * seq.fps)):
                long_enough_at = clock.now() if long_enough_at is None else long_enough_at
                if seq.steady() or clock.now() - long_enough_at >= SETTLE_WAIT_S:
                    break
            elif clock.now() > cfg.face_wait_s:
                return seq.result()
        # 2. the challenge
        prompt(seq.challenge)
        seq.mark_prompt()
        prompted = clock.now()
        settle = max(1, round(SETTLE_S * seq.fps))
        while clock.now() - prompted < cfg.challenge_timeout_s:
            seq.add(camera.read(timeout=READ_TIMEOUT_S))
            clock.tick()
            if seq.static():
                break
            evidence = seq.evidence(final=False)
            if evidence is not None and evidence.performed:
                # Stepping closer: let the movement finish, so the medium test compares the start pose
                # with the largest face (a photo's border moving with the face shows best there).
                if seq.challenge != "move_closer" or len(seq.obs) - 1 - seq.peak_at >= settle:
                    break
        return seq.result()

    def check_frames(self, frames: Iterable[np.ndarray], challenge: str, prompt_at: int,
                     fps: float | None = None) -> LivenessResult:
        """The same decision on recorded frames: `challenge` was prompted before frame `prompt_at`.

        Nothing is read or prompted; every frame is examined (no early stop). `fps` defaults to
        `frame_rate` of the configuration.
        """
        if challenge not in ACTIONS:
            raise InputError(f"unknown challenge {challenge!r}; known: {', '.join(ACTIONS)}",
                             code="input.unknown_challenge")
        if prompt_at < 1:
            raise InputError("prompt_at must leave at least one frame before the prompt", code="input.invalid")
        fps = float(fps or self.cfg.frame_rate)
        with self._lock:
            seq = _Sequence(self, challenge, fps, prompt_at)
            try:
                for i, frame in enumerate(frames):
                    if i == prompt_at:
                        seq.mark_prompt()
                    seq.add(frame)
                if seq.prompt_at is None:
                    raise InputError(f"{len(seq.obs)} frames end before the prompt at frame {prompt_at}",
                                     code="input.invalid")
                return seq.result()
            finally:
                seq.wipe()

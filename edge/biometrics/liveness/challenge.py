"""Did the customer perform the requested action? Measures over a sequence of `FrameObservation`s.

Every measure is relative to the customer's own start pose (the frames before the prompt, `baseline`),
so a face that is turned a little, far away or wearing glasses starts from zero like any other:

"Partial" (reported as liveness.timeout) means the action was attempted but not completed: a turn that
reached `turn_offset` but was not held or had no depth, a face that grew half of `closer_growth`, eyes that
shut but did not reopen within a second (or too briefly to count).

- blink: both eye regions change against their open-eye appearance while the nose bridge does not, for at
  least `blink_min_s`, then the eyes reopen. Patches are matched to the baseline over a few pixels of
  slack, so hand shake or landmark jitter (which move the whole region) do not count as change; a photo,
  a paused video or a frozen frame never blink.
- turn_left / turn_right: the yaw signal (observe.FrameObservation.yaw_signal) moves `turn_offset` in the
  requested direction and stays there for `turn_hold_s`, and the face's motion is not that of a plane
  (medium.nonplanar_motion >= `turn_nonplanar`): a real nose swings further than the cheeks, while a
  photo tilted or rotated as a plane moves as one picture however the keypoint regressors read it.
- move_closer: the inter-ocular distance grows by `closer_growth` and stays for `closer_hold_s`. A photo
  brought closer grows too: the checker's medium test (medium.py) tells the two apart.

Each detector returns `ActionEvidence`: performed, partial (the action started but did not reach the bar:
the checker reports `liveness.timeout`), its strength and the frame where it was seen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from edge.biometrics.liveness.observe import FrameObservation
from edge.biometrics.config import LivenessConfig

ACTIONS = ("blink", "turn_left", "turn_right", "move_closer")

EYE_W, EYE_H, EYE_Y = 32, 20, 10   # eye crop: corners mapped to (6, EYE_Y) and (EYE_W - 6, EYE_Y)
BRIDGE_W, BRIDGE_H = 32, 16        # nose bridge and upper cheeks, below the eye line
SLACK = 4                          # pixels of misalignment the matching forgives
EYE_CORE = (slice(4, 16), slice(6, 26))  # the eye itself inside the crop
LANDMARK_WINDOW = 4                # landmarks are median-filtered over +-4 frames (a blink lasts longer)


@dataclass(frozen=True)
class ActionEvidence:
    action: str
    performed: bool
    partial: bool
    strength: float          # blink: eye change; turn: yaw shift (IOD); closer: IOD growth ratio
    frame: int | None = None  # observation index where the action was seen
    depth: float | None = None  # turn: the face's motion away from any plane motion (IOD, RMS)
    planar: bool = False     # turn: the pose changed like a turn, but as a flat picture does


def frames_for(seconds: float, fps: float) -> int:
    return max(1, int(math.ceil(seconds * fps - 1e-9)))


def turn_direction(action: str, mirrored: bool) -> float:
    """+1 when the action moves the nose toward the image's right (yaw_signal grows), else -1."""
    sign = 1.0 if action == "turn_left" else -1.0  # the customer's left is the unmirrored image's right
    return -sign if mirrored else sign


def _sustained(values: np.ndarray, hold: int) -> tuple[float, int | None]:
    """Highest level held for `hold` consecutive frames (nan = no face breaks the hold) and where it ended."""
    best, where = -np.inf, None
    for end in range(hold - 1, len(values)):
        window = values[end - hold + 1:end + 1]
        if np.isnan(window).any():
            continue
        level = float(window.min())
        if level > best:
            best, where = level, end
    return best, where


def _started(values: np.ndarray, hold: int, bar: float) -> bool:
    """The measure reached `bar` for two frames in a row (or the whole hold when shorter): attempted."""
    level, _ = _sustained(values, min(2, hold))
    return level >= bar


def _baseline(obs: Sequence[FrameObservation], prompt_at: int) -> list[FrameObservation]:
    return [o for o in obs[:prompt_at] if o.has_face]


# -- turn and closer ----------------------------------------------------------------------------------
def start_yaw(obs: Sequence[FrameObservation], prompt_at: int) -> float | None:
    """The customer's own start pose: median yaw signal of the frames before the prompt."""
    base = _baseline(obs, prompt_at)
    return float(np.median([o.yaw_signal for o in base])) if base else None


def turn_shift(o: FrameObservation, start: float, action: str, cfg: LivenessConfig) -> float:
    """How far this frame has turned in the requested direction (IOD; negative: the other way)."""
    return turn_direction(action, cfg.camera_mirrored) * (o.yaw_signal - start) if o.has_face else float("nan")


def turn_evidence(obs: Sequence[FrameObservation], prompt_at: int, action: str, cfg: LivenessConfig,
                  fps: float) -> ActionEvidence:
    """The yaw signal must hold `turn_offset` for `turn_hold_s`, and within that hold the face's motion must
    leave the plane by `turn_nonplanar` (observation.depth, filled in by the checker for turned frames)."""
    start = start_yaw(obs, prompt_at)
    if start is None:
        return ActionEvidence(action, False, False, 0.0)
    after = obs[prompt_at:]
    shift = np.array([turn_shift(o, start, action, cfg) for o in after])
    depth = np.array([o.depth for o in after])
    hold = frames_for(cfg.turn_hold_s, fps)
    level, end = _sustained(shift, hold)
    level = max(level, 0.0)
    posed = False  # some hold looked like the requested turn
    for e in range(hold - 1, len(after)):
        window = shift[e - hold + 1:e + 1]
        if np.isnan(window).any() or window.min() < cfg.turn_offset:
            continue
        posed = True
        seen = depth[e - hold + 1:e + 1]
        d = float(np.nanmax(seen)) if np.isfinite(seen).any() else float("nan")
        if d >= cfg.turn_nonplanar:
            return ActionEvidence(action, True, True, level, prompt_at + e, d)
    deepest = float(np.nanmax(depth)) if np.isfinite(depth).any() else None
    # A flat picture: it took the pose, and nothing it did after the prompt ever left the plane.
    planar = posed and (deepest is None or deepest < cfg.turn_nonplanar)
    partial = _started(shift, hold, cfg.turn_offset) and not planar  # turned, but not held or not deep
    return ActionEvidence(action, False, partial, level, None if end is None else prompt_at + end, deepest, planar)


def closer_evidence(obs: Sequence[FrameObservation], prompt_at: int, cfg: LivenessConfig,
                    fps: float) -> ActionEvidence:
    base = _baseline(obs, prompt_at)
    if not base:
        return ActionEvidence("move_closer", False, False, 1.0)
    start = float(np.median([o.iod for o in base]))
    growth = np.array([o.iod / start if o.has_face else np.nan for o in obs[prompt_at:]])
    hold = frames_for(cfg.closer_hold_s, fps)
    level, end = _sustained(growth, hold)
    level = max(level, 1.0)
    return ActionEvidence("move_closer", level >= cfg.closer_growth,
                          _started(growth, hold, 1 + (cfg.closer_growth - 1) / 2), level,
                          None if end is None else prompt_at + end)


# -- blink --------------------------------------------------------------------------------------------
def _crop(patch: np.ndarray, transform: np.ndarray, a: np.ndarray, b: np.ndarray, size: tuple[int, int],
          at_a: tuple[float, float], at_b: tuple[float, float]) -> np.ndarray:
    """A crop of `patch` where image points a, b (a left of b) land at `at_a`, `at_b` (+ SLACK margin)."""
    pa = transform[:, :2] @ a + transform[:, 2]
    pb = transform[:, :2] @ b + transform[:, 2]
    normal = np.array([-(pb - pa)[1], (pb - pa)[0]])
    da, db = np.array(at_a) + SLACK, np.array(at_b) + SLACK
    dnormal = np.array([-(db - da)[1], (db - da)[0]])
    m = cv2.getAffineTransform(np.float32([pa, pb, pa + normal]), np.float32([da, db, da + dnormal]))
    w, h = size
    return cv2.warpAffine(patch, m, (w + 2 * SLACK, h + 2 * SLACK), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE).astype(np.float32)


def _regions(o: FrameObservation, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eye (image-left), eye (image-right) and nose-bridge crops of one frame, placed by `landmarks`."""
    a, b = landmarks[0:2], landmarks[2:4]
    first, second = (a, b) if a[:, 0].mean() <= b[:, 0].mean() else (b, a)
    crops = []
    for corners in (first, second):
        p, q = (corners[0], corners[1]) if corners[0][0] <= corners[1][0] else (corners[1], corners[0])
        crops.append(_crop(o.patch, o.patch_transform, p, q, (EYE_W, EYE_H), (6, EYE_Y), (EYE_W - 6, EYE_Y)))
    e1, e2 = first.mean(axis=0), second.mean(axis=0)
    # the bridge spans the eye centres horizontally, from a quarter to about one eye distance below them
    crops.append(_crop(o.patch, o.patch_transform, e1, e2, (BRIDGE_W, BRIDGE_H), (4, -6), (BRIDGE_W - 4, -6)))
    return crops[0], crops[1], crops[2]


def _residual(current: np.ndarray, template: np.ndarray) -> float:
    """Change of `current` against `template` after the best shift within SLACK, in template contrast units."""
    best = float(cv2.matchTemplate(current, template, cv2.TM_SQDIFF).min())
    return math.sqrt(max(best, 0.0) / template.size) / (float(template.std()) + 8.0)


class EyeChangeMeter:
    """How much both eyes changed from their open-eye baseline, beyond the nose bridge's change.

    Landmarks are median-filtered over +-LANDMARK_WINDOW frames first, because the 5-point predictor
    itself drifts when the eyelids close. A frame's value is final once the frames after it are in, so
    values are computed once and cached: the checker calls this after every frame.
    """

    def __init__(self, prompt_at: int):
        self.prompt_at = prompt_at
        self._values: dict[int, float] = {}
        self._templates: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _smoothed(self, obs: Sequence[FrameObservation], i: int) -> np.ndarray:
        window = [o.landmarks for o in obs[max(0, i - LANDMARK_WINDOW):i + LANDMARK_WINDOW + 1] if o.has_face]
        return np.median(np.stack(window), axis=0)

    def values(self, obs: Sequence[FrameObservation], final: bool = False) -> np.ndarray:
        """Per observation whose value is final (nan without a face): the whole sequence when `final`,
        else all but the last LANDMARK_WINDOW observations."""
        ready = len(obs) if final else max(0, len(obs) - LANDMARK_WINDOW)
        if self._templates is None:
            base = [i for i in range(min(self.prompt_at, len(obs))) if obs[i].has_face]
            if not base or ready < self.prompt_at:
                return np.full(ready, np.nan)
            crops = [_regions(obs[i], self._smoothed(obs, i)) for i in base]
            median = [np.median(np.stack([c[k] for c in crops]), axis=0) for k in range(3)]
            core = (slice(SLACK + EYE_CORE[0].start, SLACK + EYE_CORE[0].stop),
                    slice(SLACK + EYE_CORE[1].start, SLACK + EYE_CORE[1].stop))
            inner = (slice(SLACK, -SLACK), slice(SLACK, -SLACK))
            self._templates = (np.ascontiguousarray(median[0][core]), np.ascontiguousarray(median[1][core]),
                               np.ascontiguousarray(median[2][inner]))
        out = np.full(ready, np.nan)
        for i in range(ready):
            if i in self._values:
                out[i] = self._values[i]
            elif obs[i].has_face:
                left, right, bridge = _regions(obs[i], self._smoothed(obs, i))
                eyes = min(_residual(left, self._templates[0]), _residual(right, self._templates[1]))
                out[i] = self._values[i] = eyes - _residual(bridge, self._templates[2])
        return out


def blink_evidence(obs: Sequence[FrameObservation], prompt_at: int, cfg: LivenessConfig, fps: float,
                   meter: EyeChangeMeter | None = None, final: bool = True) -> ActionEvidence:
    meter = meter or EyeChangeMeter(prompt_at)
    change = meter.values(obs, final)[prompt_at:]
    hold = frames_for(cfg.blink_min_s, fps)
    reopen_within = frames_for(1.0, fps)  # eyes shut longer than a second are not a blink
    strongest = 0.0
    i = 0
    while i < len(change):
        if not change[i] >= cfg.blink_change:
            i += 1
            continue
        j = i
        while j < len(change) and not change[j] < cfg.blink_change / 2:  # shut (or unseen) until clearly open
            j += 1
        shut = change[i:j][np.isfinite(change[i:j])]
        strength = float(np.sort(shut)[-hold]) if len(shut) >= hold else float(shut.min())
        strongest = max(strongest, strength)
        reopened = j < len(change)
        if np.count_nonzero(shut >= cfg.blink_change) >= hold and reopened and j - i <= reopen_within:
            return ActionEvidence("blink", True, True, strength, prompt_at + i)
        i = j + 1
    started = bool(np.isfinite(change).any() and np.nanmax(change) >= cfg.blink_change)
    return ActionEvidence("blink", False, started, strongest)


def action_evidence(action: str, obs: Sequence[FrameObservation], prompt_at: int, cfg: LivenessConfig,
                    fps: float, meter: EyeChangeMeter | None = None, final: bool = True) -> ActionEvidence:
    """The evidence for `action` in `obs` (prompt shown before observation `prompt_at`). `meter` caches
    the blink measure between calls on a growing sequence; `final` means no more frames will come."""
    if action == "blink":
        return blink_evidence(obs, prompt_at, cfg, fps, meter, final)
    if action in ("turn_left", "turn_right"):
        return turn_evidence(obs, prompt_at, action, cfg, fps)
    if action == "move_closer":
        return closer_evidence(obs, prompt_at, cfg, fps)
    raise ValueError(f"unknown challenge action {action!r}")

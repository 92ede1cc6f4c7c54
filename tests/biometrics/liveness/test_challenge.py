"""The challenge measures on sequences of drawn faces: what counts as a blink, a turn, a step closer."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.biometrics.liveness.challenge import (EyeChangeMeter, action_evidence, blink_evidence, closer_evidence,
                                                frames_for, turn_evidence)
from edge.biometrics.liveness.observe import FrameObservation, face_patch
from edge.config import LivenessConfig

FPS = 15.0
CFG = LivenessConfig()


def keypoint_face(index: int, yaw: float = 0.0, iod: float = 60.0, cx: float = 320.0, cy: float = 220.0,
                  depth: float = float("nan")) -> FrameObservation:
    """An observation whose nose, nose base and ears sit `yaw` IOD off centre (so yaw_signal == yaw)."""
    h = iod / 2
    keypoints = np.array([[cx - h, cy], [cx + h, cy], [cx + yaw * iod, cy + 0.5 * iod], [cx, cy + 0.9 * iod],
                          [cx - 1.2 * iod - yaw * iod, cy + 0.2 * iod], [cx + 1.2 * iod - yaw * iod, cy + 0.2 * iod]])
    landmarks = np.array([[cx - h - 0.35 * h, cy], [cx - h + 0.35 * h, cy], [cx + h + 0.35 * h, cy],
                          [cx + h - 0.35 * h, cy], [cx + yaw * iod, cy + 0.6 * iod]])
    box = (cx - iod, cy - 0.6 * iod, cx + iod, cy + 1.4 * iod)
    return FrameObservation(index=index, faces=1, change=2.0, box=box, score=0.9, keypoints=keypoints,
                            landmarks=landmarks, depth=depth)


def test_yaw_signal_reads_the_nose_and_ears():
    assert keypoint_face(0, yaw=0.12).yaw_signal == pytest.approx(0.12)
    assert keypoint_face(0, yaw=-0.07, iod=30).yaw_signal == pytest.approx(-0.07)


def sequence(values, prompt_at=10, **kw):
    return [keypoint_face(i, **{k: v[i] if isinstance(v, list) else v for k, v in kw.items()}, yaw=values[i])
            for i in range(len(values))]


def turn(amount: float, frames: int = 8) -> list[float]:
    return [0.0] * 10 + [amount / 4] * 2 + [amount] * frames + [0.0] * 5


def test_a_deep_turn_in_the_asked_direction_is_performed():
    yaws = turn(0.12)
    obs = [keypoint_face(i, yaw=y, depth=0.2 if y else float("nan")) for i, y in enumerate(yaws)]
    ev = turn_evidence(obs, 10, "turn_left", CFG, FPS)  # the customer's left = nose toward the image's right
    assert ev.performed and not ev.planar and ev.strength == pytest.approx(0.12) and ev.depth == pytest.approx(0.2)
    other = turn_evidence(obs, 10, "turn_right", CFG, FPS)
    assert not other.performed and not other.partial


def test_a_mirrored_camera_swaps_left_and_right():
    obs = [keypoint_face(i, yaw=y, depth=0.2) for i, y in enumerate(turn(-0.12))]
    assert not turn_evidence(obs, 10, "turn_left", CFG, FPS).performed
    mirrored = CFG.model_copy(update={"camera_mirrored": True})
    assert turn_evidence(obs, 10, "turn_left", mirrored, FPS).performed


def test_a_turn_without_depth_is_a_flat_picture():
    obs = [keypoint_face(i, yaw=y, depth=0.02) for i, y in enumerate(turn(0.12))]
    ev = turn_evidence(obs, 10, "turn_left", CFG, FPS)
    assert not ev.performed and ev.planar and not ev.partial


def test_a_turn_must_be_held():
    hold = frames_for(CFG.turn_hold_s, FPS)
    short = [keypoint_face(i, yaw=y, depth=0.2) for i, y in enumerate(turn(0.12, frames=hold - 1))]
    assert not turn_evidence(short, 10, "turn_left", CFG, FPS).performed
    held = [keypoint_face(i, yaw=y, depth=0.2) for i, y in enumerate(turn(0.12, frames=hold))]
    assert turn_evidence(held, 10, "turn_left", CFG, FPS).performed


def test_a_brief_turn_is_partial_and_a_slight_or_no_turn_did_nothing():
    brief = [keypoint_face(i, yaw=y, depth=0.2) for i, y in enumerate(turn(0.12, frames=2))]
    ev = turn_evidence(brief, 10, "turn_left", CFG, FPS)
    assert not ev.performed and ev.partial
    slight = [keypoint_face(i, yaw=y) for i, y in enumerate(turn(0.03))]
    ev = turn_evidence(slight, 10, "turn_left", CFG, FPS)
    assert not ev.performed and not ev.partial
    still = [keypoint_face(i, yaw=0.0) for i in range(30)]
    ev = turn_evidence(still, 10, "turn_left", CFG, FPS)
    assert not ev.performed and not ev.partial and ev.strength == 0.0


def test_moving_closer_is_measured_against_the_start_size():
    sizes = [60.0] * 10 + [66.0, 72.0] + [75.0] * 5
    obs = [keypoint_face(i, iod=s) for i, s in enumerate(sizes)]
    ev = closer_evidence(obs, 10, CFG, FPS)
    assert ev.performed and ev.strength == pytest.approx(1.25)
    ev = closer_evidence(obs[:12], 10, CFG, FPS)  # not held yet
    assert not ev.performed and ev.partial
    assert not closer_evidence([keypoint_face(i) for i in range(20)], 10, CFG, FPS).partial


def test_missing_faces_break_a_hold():
    obs = [keypoint_face(i, iod=60.0 if i < 10 else 80.0) for i in range(20)]
    for i in range(10, 20, 2):
        obs[i] = FrameObservation(index=i, faces=0, change=2.0)
    assert not closer_evidence(obs, 10, CFG, FPS).performed


# -- blink: drawn faces whose eyes open and shut -------------------------------------------------------
def drawn_face(shut: float) -> np.ndarray:
    """A grey 480 x 640 frame: skin, two eyes (white, dark iris) with lids `shut` (0 open .. 1 shut)."""
    rng = np.random.default_rng(7)
    img = np.full((480, 640), 150, np.uint8)
    img = cv2.add(img, rng.integers(0, 12, img.shape, dtype=np.uint8))  # skin texture
    cv2.line(img, (320, 230), (320, 270), 120, 3)                      # the nose ridge
    for cx in (290, 350):
        cv2.ellipse(img, (cx, 220), (12, 7), 0, 0, 360, 230, -1)
        cv2.circle(img, (cx, 220), 5, 40, -1)
        if shut > 0:
            cv2.ellipse(img, (cx, 220 - int(8 * (1 - shut))), (14, int(1 + 8 * shut)), 0, 0, 360, 150, -1)
            if shut > 0.7:
                cv2.line(img, (cx - 12, 224), (cx + 12, 224), 60, 2)
    return img


def drawn_observation(index: int, shut: float, jitter: float = 0.0) -> FrameObservation:
    o = keypoint_face(index, iod=60.0, cx=320.0, cy=220.0)
    o.landmarks = np.array([[278.0, 220.0], [302.0, 220.0], [362.0, 220.0], [338.0, 220.0], [320.0, 256.0]])
    grey = drawn_face(shut)
    if jitter:  # the whole picture shifts, as a hand-held photo does
        grey = np.roll(grey, int(jitter), axis=1)
    o.patch, o.patch_transform = face_patch(grey, o.box)
    return o


def blink_sequence(shut_frames: int, reopen: bool = True, jitter: bool = False) -> list[FrameObservation]:
    shut = [0.0] * 10 + [0.5] + [1.0] * shut_frames + ([0.5] + [0.0] * 8 if reopen else [])
    rng = np.random.default_rng(1)
    return [drawn_observation(i, s, float(rng.integers(-2, 3)) if jitter else 0.0) for i, s in enumerate(shut)]


def test_a_blink_is_seen():
    ev = blink_evidence(blink_sequence(3), 10, CFG, FPS)
    assert ev.performed and ev.strength >= CFG.blink_change and ev.frame is not None and ev.frame >= 10


def test_open_eyes_even_on_a_shaking_photo_are_not_a_blink():
    obs = [drawn_observation(i, 0.0, float(np.random.default_rng(i).integers(-3, 4))) for i in range(25)]
    ev = blink_evidence(obs, 10, CFG, FPS)
    assert not ev.performed and not ev.partial


def test_eyes_that_never_reopen_or_blink_too_briefly_do_not_count():
    never = blink_evidence(blink_sequence(6, reopen=False), 10, CFG, FPS)
    assert not never.performed and never.partial
    flicker = [drawn_observation(i, 1.0 if i == 14 else 0.0) for i in range(25)]  # one frame: not a blink at 15 fps
    assert not blink_evidence(flicker, 10, CFG, FPS).performed


def test_the_eye_meter_caches_final_values_only():
    obs = blink_sequence(3)
    meter = EyeChangeMeter(10)
    partial = meter.values(obs[:15])
    assert len(partial) == 15 - 4  # the last frames wait for their neighbours' landmarks
    full = meter.values(obs, final=True)
    assert np.allclose(full[:len(partial)], partial, equal_nan=True)
    assert action_evidence("blink", obs, 10, CFG, FPS, meter).performed


def test_unknown_actions_are_refused():
    with pytest.raises(ValueError):
        action_evidence("smile", [keypoint_face(0)], 0, CFG, FPS)

"""The physical tests on drawn scenes: a still image, a face carried by a flat medium, a face with depth."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.biometrics.liveness.medium import face_motion, is_static, medium_evidence, nonplanar_motion
from edge.config import LivenessConfig

CFG = LivenessConfig()
H, W = 480, 640


def room(seed: int = 0) -> np.ndarray:
    """A still background: soft patches of grey with some fine texture (walls, posters, a door)."""
    rng = np.random.default_rng(seed)
    patches = cv2.resize(rng.integers(60, 200, (H // 60, W // 60), dtype=np.uint8), (W, H),
                         interpolation=cv2.INTER_CUBIC)
    return cv2.add(patches, rng.integers(0, 25, (H, W), dtype=np.uint8))


def head_sprite(side: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """A textured head with a soft elliptical outline (no straight edges), and its alpha."""
    rng = np.random.default_rng(3)
    texture = cv2.GaussianBlur(rng.integers(60, 200, (side, side), dtype=np.uint8), (0, 0), 2)
    alpha = np.zeros((side, side), np.float32)
    cv2.ellipse(alpha, (side // 2, side // 2), (int(side * 0.36), int(side * 0.47)), 0, 0, 360, 1.0, -1)
    return texture, cv2.GaussianBlur(alpha, (0, 0), side * 0.03)


def photo_sprite(side: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """A printed photo: the same head texture on a rectangle with a white paper border."""
    texture, _ = head_sprite(side)
    framed = texture.copy()
    cv2.rectangle(framed, (0, 0), (side - 1, side - 1), 235, 10)
    return framed, np.ones((side, side), np.float32)


def place(background: np.ndarray, sprite: tuple[np.ndarray, np.ndarray], centre, scale: float,
          eye_offset: float = 0.15):
    """Paste the sprite scaled about `centre`; returns the frame and the eyes, `eye_offset` x side from the
    sprite's middle (a photo's face takes about half its width: 0.12; a head sprite is mostly face: 0.15)."""
    texture, alpha = sprite
    side = int(round(texture.shape[0] * scale))
    t = cv2.resize(texture, (side, side)).astype(np.float32)
    a = cv2.resize(alpha, (side, side))
    x0, y0 = int(centre[0] - side / 2), int(centre[1] - side / 2)
    frame = background.astype(np.float32).copy()
    region = frame[y0:y0 + side, x0:x0 + side]
    frame[y0:y0 + side, x0:x0 + side] = region * (1 - a) + t * a
    eyes = (np.array([centre[0] - eye_offset * side, centre[1] - 0.1 * side]),
            np.array([centre[0] + eye_offset * side, centre[1] - 0.1 * side]))
    return frame.astype(np.uint8), eyes


def test_static_needs_a_few_frames_of_no_change():
    assert is_static([float("nan"), 0.0, 0.1, 0.0], CFG)
    assert not is_static([float("nan"), 0.0, 0.0], CFG)       # too few to say
    assert not is_static([2.1, 2.3, 1.9, 0.1], CFG)            # a live camera's read noise alone is ~2


def test_face_motion_in_eye_distances():
    a = (np.array([100.0, 100.0]), np.array([160.0, 100.0]))
    b = (np.array([130.0, 100.0]), np.array([220.0, 100.0]))
    scale, shift = face_motion(a, b)
    assert scale == pytest.approx(1.5) and shift == pytest.approx(45 / 60)


def test_a_head_coming_closer_in_front_of_a_still_room_is_not_a_medium():
    bg = room()
    ref, ref_eyes = place(bg, head_sprite(), (320, 240), 1.0)
    peak, peak_eyes = place(bg, head_sprite(), (322, 238), 1.45)
    ev = medium_evidence(ref, ref_eyes, peak, peak_eyes)
    assert ev.moved and not ev.flat(CFG), ev
    assert ev.edge_iod < CFG.medium_edge_iod and ev.surround_fraction < CFG.medium_surround_fraction


def test_a_photo_coming_closer_shows_its_border():
    bg = room()
    ref, ref_eyes = place(bg, photo_sprite(), (320, 240), 1.0, eye_offset=0.12)
    peak, peak_eyes = place(bg, photo_sprite(), (322, 238), 1.45, eye_offset=0.12)
    ev = medium_evidence(ref, ref_eyes, peak, peak_eyes)
    assert ev.flat(CFG) and ev.edge_iod >= CFG.medium_edge_iod, ev


def test_a_picture_filling_the_view_moves_its_surroundings():
    scene, eyes = place(room(1), head_sprite(), (320, 240), 1.0)
    # the whole view scaled about the frame centre: a tablet or a big print held up and brought closer
    m = cv2.getRotationMatrix2D((320, 240), 0, 1.3)
    peak = cv2.warpAffine(scene, m, (W, H), borderMode=cv2.BORDER_REFLECT)
    peak_eyes = tuple(m[:, :2] @ e + m[:, 2] for e in eyes)
    ev = medium_evidence(scene, eyes, peak, peak_eyes)
    assert ev.flat(CFG) and ev.surround_fraction >= CFG.medium_surround_fraction, ev


def test_without_motion_the_medium_test_abstains():
    bg = room()
    ref, eyes = place(bg, photo_sprite(), (320, 240), 1.0)
    ev = medium_evidence(ref, eyes, ref.copy(), eyes)
    assert not ev.moved and not ev.flat(CFG)


def _face_texture() -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(5)
    img = cv2.GaussianBlur(rng.integers(0, 255, (H, W), dtype=np.uint8), (0, 0), 1.5)
    return img, (np.array([290.0, 220.0]), np.array([350.0, 220.0]))


def test_a_tilted_picture_moves_as_a_plane():
    img, eyes = _face_texture()
    src = np.float32([[0, 0], [W, 0], [W, H], [0, H]])
    dst = np.float32([[20, 10], [W - 40, 30], [W - 40, H - 30], [20, H - 10]])  # a keystone: turned like a door
    hom = cv2.getPerspectiveTransform(src, dst)
    tilted = cv2.warpPerspective(img, hom, (W, H))
    moved = tuple(cv2.perspectiveTransform(e[None, None].astype(np.float32), hom)[0, 0].astype(np.float64)
                  for e in eyes)
    assert nonplanar_motion(img, eyes, tilted, moved) < 0.03


def test_a_head_that_turns_has_depth():
    img, eyes = _face_texture()
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    # A turn moves each point sideways by its depth: an ellipsoid head (front moves most, the sides least)
    # plus a nose standing 0.5 IOD in front, rotated 25 degrees.
    head = 90.0 * np.sqrt(np.clip(1 - ((xs - 320) / 90) ** 2 - ((ys - 250) / 120) ** 2, 0, 1))
    nose = 30.0 * np.exp(-(((xs - 320) / 13) ** 2 + ((ys - 255) / 25) ** 2))
    shift = ((head + nose) * np.sin(np.deg2rad(25))).astype(np.float32)
    turned = cv2.remap(img, xs - shift, ys, cv2.INTER_LINEAR)
    moved_eyes = tuple(e + np.array([float(shift[int(e[1]), int(e[0])]), 0.0]) for e in eyes)
    assert nonplanar_motion(img, eyes, turned, moved_eyes) > CFG.turn_nonplanar

"""Image operations of the virtual camera: the room, placing heads, light, and attack media.

Pure functions on BGR uint8 arrays; everything random takes an explicit `numpy.random.Generator` so a
scenario renders the same frames on every run.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np


def room_background(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """An ATM vestibule-ish backdrop: a lit wall gradient, a door frame, a poster, a floor line."""
    w, h = size
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    base = np.array([150, 160, 170], np.float32) + rng.uniform(-25, 25, 3).astype(np.float32)
    light = 1.05 - 0.25 * y - 0.1 * np.abs(x - 0.5)
    img = base[None, None, :] * light[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    door_x = int(w * rng.uniform(0.05, 0.2))
    cv2.rectangle(img, (door_x, int(h * 0.1)), (door_x + int(w * 0.18), h), (95, 100, 110), -1)
    cv2.rectangle(img, (door_x, int(h * 0.1)), (door_x + int(w * 0.18), h), (60, 60, 70), 4)
    px = int(w * rng.uniform(0.68, 0.78))
    poster = tuple(int(c) for c in rng.integers(60, 200, 3))
    cv2.rectangle(img, (px, int(h * 0.15)), (px + int(w * 0.16), int(h * 0.45)), poster, -1)
    cv2.line(img, (0, int(h * 0.88)), (w, int(h * 0.88)), (80, 85, 90), 3)
    return img


def paste(frame: np.ndarray, sprite: np.ndarray, alpha: np.ndarray, centre: tuple[float, float],
          scale: float) -> tuple[int, int, int, int] | None:
    """Alpha-blend `sprite` scaled by `scale` centred at `centre` into `frame` (in place).

    Returns the pasted rectangle clipped to the frame (x, y, w, h), or None when fully outside.
    """
    side = max(2, int(round(sprite.shape[1] * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    img = cv2.resize(sprite, (side, side), interpolation=interp)
    a = cv2.resize(alpha, (side, side), interpolation=cv2.INTER_LINEAR)
    x0 = int(round(centre[0] - side / 2))
    y0 = int(round(centre[1] - side / 2))
    fh, fw = frame.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(fw, x0 + side), min(fh, y0 + side)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    sub = img[cy0 - y0: cy1 - y0, cx0 - x0: cx1 - x0].astype(np.float32)
    sa = a[cy0 - y0: cy1 - y0, cx0 - x0: cx1 - x0, None]
    region = frame[cy0:cy1, cx0:cx1].astype(np.float32)
    frame[cy0:cy1, cx0:cx1] = np.clip(region * (1 - sa) + sub * sa, 0, 255).astype(np.uint8)
    return (cx0, cy0, cx1 - cx0, cy1 - cy0)


@functools.lru_cache(maxsize=8)
def _noise_bank(size: int, sigma: float) -> np.ndarray:
    """Rounded N(0, sigma) values, twice a frame's worth (int16), drawn once per process from a fixed seed."""
    bank = np.random.default_rng(0x5E750).normal(0.0, sigma, 2 * size)
    return np.rint(bank).astype(np.int16)


def sensor_noise(frame: np.ndarray, rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    """Gaussian read noise: consecutive frames of a real camera are never bit-identical.

    Drawing a fresh normal per pixel cost most of a frame's rendering time, so each frame takes its
    noise from a random window (chosen by `rng`) of a pre-drawn bank: per frame it is the same Gaussian
    noise, and two frames share a pattern only if `rng` picks the same window (1 in ~10^6).
    """
    bank = _noise_bank(frame.size, float(sigma))
    start = int(rng.integers(0, bank.size - frame.size + 1))
    out = frame.astype(np.int16)
    out += bank[start:start + frame.size].reshape(frame.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def exposure(frame: np.ndarray, light: str, rng: np.random.Generator) -> np.ndarray:
    """`normal`, `dark` (an unlit vestibule at night) or `overexposed` (sun straight into the lens)."""
    if light == "normal":
        return frame
    f = frame.astype(np.float32)
    if light == "dark":
        f = f * 0.12 + rng.normal(0.0, 3.0, f.shape)  # little signal, the same read noise
    elif light == "overexposed":
        f = f * 2.6 + 70.0
    else:
        raise ValueError(f"unknown light {light!r}")
    return np.clip(f, 0, 255).astype(np.uint8)


def printed(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a photo printed on paper looks like: compressed dynamic range, warm paper, soft detail."""
    f = image.astype(np.float32)
    f = 40.0 + f * 0.72  # ink never reaches black, paper never reaches the screen's white
    grey = f.mean(axis=2, keepdims=True)
    f = grey + (f - grey) * 0.75  # printers lose saturation
    f = f * np.array([0.93, 0.98, 1.04], np.float32)  # warm paper (BGR)
    f = cv2.GaussianBlur(f, (0, 0), 0.9)
    dots = rng.normal(0.0, 4.0, f.shape[:2]).astype(np.float32)  # paper grain / halftone residue
    return np.clip(f + dots[..., None], 0, 255).astype(np.uint8)


def plane_pose(frame_size: tuple[int, int], quad_size: tuple[int, int], centre: tuple[float, float],
               scale: float, yaw_deg: float, roll_deg: float) -> np.ndarray:
    """The 4 image corners of a flat rectangle (a photo, a tablet) held at a pose, for a homography."""
    qw, qh = quad_size[0] * scale, quad_size[1] * scale
    corners = np.array([[-qw / 2, -qh / 2], [qw / 2, -qh / 2], [qw / 2, qh / 2], [-qw / 2, qh / 2]], np.float32)
    # yaw about the vertical axis: the receding edge gets shorter and closer to the centre
    yaw = np.deg2rad(yaw_deg)
    depth = corners[:, 0] * np.sin(yaw)
    focal = 1.6 * max(frame_size)
    persp = focal / (focal + depth)
    corners = np.stack([corners[:, 0] * np.cos(yaw) * persp, corners[:, 1] * persp], axis=1)
    r = np.deg2rad(roll_deg)
    rot = np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]], np.float32)
    return (corners @ rot.T + np.array(centre, np.float32)).astype(np.float32)


def warp_plane(frame: np.ndarray, content: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """Draw `content` (a flat medium) into `frame` where its corners land at `quad` (in place)."""
    h, w = content.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    hom = cv2.getPerspectiveTransform(src, quad)
    fh, fw = frame.shape[:2]
    warped = cv2.warpPerspective(content, hom, (fw, fh), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), hom, (fw, fh), flags=cv2.INTER_LINEAR)
    m = mask.astype(np.float32) / 255.0
    frame[:] = cv2.blendLinear(warped, frame, m, 1.0 - m)
    return frame


# Display response per 8-bit level and channel (BGR): the display's gamma (0.8) is not the scene's, and a
# cold backlight tints it.
_SCREEN_TONE = (np.power(np.arange(256, dtype=np.float32)[:, None] / 255.0, 0.8)
                * np.array([1.08, 1.0, 0.9], np.float32))[None]  # cv2.LUT table: 1 x level x channel


def screen(image: np.ndarray, rng: np.random.Generator, phase: float = 0.0) -> np.ndarray:
    """A picture as re-captured from a phone/tablet screen: lost resolution, a gamma and colour shift,
    the pixel grid (screen-door), moire between that grid and the sensor, and a glare band."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (w * 2 // 3, h * 2 // 3), interpolation=cv2.INTER_AREA)
    f = cv2.LUT(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), _SCREEN_TONE)
    grid, wave_sin, wave_cos, wave_across, glare = _screen_patterns(h, w)
    # moire = 0.06 sin(wave + phase) sin(across), expanded so the per-frame phase costs two products
    moire = 0.06 * (wave_sin * np.float32(np.cos(phase)) + wave_cos * np.float32(np.sin(phase))) * wave_across
    f = f * (grid * (1 + moire))[..., None] + glare[..., None]
    return np.clip(f * 255.0, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _screen_patterns(h: int, w: int) -> tuple[np.ndarray, ...]:
    """The phase-independent parts of `screen`: pixel grid, the two moire waves, the glare band."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grid = (1.0 - 0.10 * ((xx.astype(np.int32) % 3 == 0) | (yy.astype(np.int32) % 3 == 0))).astype(np.float32)
    angle = 0.07
    wave = 2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / 7.3
    across = np.sin(2 * np.pi * (yy * np.cos(angle) - xx * np.sin(angle)) / 9.1)
    glare = 0.22 * np.exp(-(((xx - 0.3 * w) + 0.6 * (yy - 0.2 * h)) / (0.12 * w)) ** 2)
    patterns = (grid, np.sin(wave), np.cos(wave), across, glare)
    return tuple(np.ascontiguousarray(a, dtype=np.float32) for a in patterns)

"""Synthetic fingerprints: deterministic, fingerprint-like images for benchmarks and the simulator when no
data set is at hand (never for error rates: their ridge statistics are not those of real fingers)."""
from __future__ import annotations

import math

import numpy as np


def synthetic_print(finger: int, impression: int = 0, *, seed: int = 0, size: tuple[int, int] = (300, 300)) -> np.ndarray:
    """An 8-bit, 500 dpi fingerprint-like image (dark ridges on white) of `finger`, `impression`."""
    h, w = size
    frng = np.random.default_rng([seed, finger, 0xF1])
    irng = np.random.default_rng([seed, finger, impression, 0x1A])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)

    # impression: rigid move of the finger under the sensor (impression 0 is the reference pose)
    angle = math.radians(irng.uniform(-8, 8)) if impression else 0.0
    dx, dy = (irng.uniform(-14, 14, size=2) if impression else (0.0, 0.0))
    cx0, cy0 = w / 2, h / 2
    c, s = math.cos(angle), math.sin(angle)
    x = c * (xx - cx0 - dx) + s * (yy - cy0 - dy) + cx0
    y = -s * (xx - cx0 - dx) + c * (yy - cy0 - dy) + cy0

    # finger: a phase field whose level lines are the ridges
    core_x, core_y = cx0 + frng.uniform(-40, 40), cy0 + frng.uniform(-50, 30)
    kind = int(frng.integers(0, 3))
    rx, ry = x - core_x, (y - core_y) * frng.uniform(0.7, 1.3)
    r = np.hypot(rx, ry)
    theta = np.arctan2(ry, rx)
    if kind == 0:  # whorl: closed rings around the core
        phase = r
    elif kind == 1:  # loop: rings opened downwards
        phase = r + frng.uniform(8, 20) * np.cos(theta - frng.uniform(-0.6, 0.6)) * np.exp(-r / 120)
    else:  # arch: waves rising over the core
        phase = (y - core_y) + frng.uniform(20, 45) * np.exp(-((x - core_x) / frng.uniform(50, 90)) ** 2)
    for _ in range(4):  # individual low-frequency warp of the flow
        kx, ky = frng.normal(0, 0.02, size=2)
        phase = phase + frng.uniform(4, 12) * np.sin(kx * x + ky * y + frng.uniform(0, 2 * math.pi))
    period = frng.uniform(8.0, 10.5)
    # minutiae: a spiral phase term (one turn around a point) ends a ridge or forks it there
    n_minutiae = int(frng.integers(30, 45))
    mx = frng.uniform(cx0 - w * 0.38, cx0 + w * 0.38, n_minutiae)
    my = frng.uniform(cy0 - h * 0.45, cy0 + h * 0.45, n_minutiae)
    spin = frng.choice([-1.0, 1.0], n_minutiae)
    spiral = sum(s_ * np.arctan2(y - y_, x - x_) for x_, y_, s_ in zip(mx, my, spin))
    ridges = np.cos(2 * math.pi * phase / period + spiral)

    # finger outline, pressure and ink
    ex, ey = (x - cx0) / (w * 0.42), (y - cy0 - 10) / (h * 0.55)
    contact = np.clip(1.6 - 1.6 * np.hypot(ex, ey) ** 2, 0, 1) * irng.uniform(0.8, 1.0)
    grey = 255 - contact * (95 + 80 * ridges) - contact * 20
    grey += irng.normal(0, 9, size=grey.shape)
    return np.clip(grey, 0, 255).astype(np.uint8)

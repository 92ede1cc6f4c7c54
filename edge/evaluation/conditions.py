"""Capture conditions: the second image of each LFW pair degraded as an ATM camera would see it.

`biogate eval faces --condition NAME[,NAME...]` reruns the pairs protocol once per condition; the first image of
each pair stays as it is (the enrolment photo), the second is degraded (the camera's probe). Each degradation is a
pure function of the image and a seed taken from the file name, so every run sees the same frames.

Names (N an integer):
  clean            the image as it is
  faceN            the image scaled so that the face is about N px wide (LFW_FACE_PX: the face box width in an LFW
                   deep-funneled image), pasted at a seeded place into a 640 x 480 frame of textured background
                   (face50, face75, face100: a customer 0.5-2 m from a wide-angle camera)
  darkN            exposure N % of the original (linear light, sRGB-like gamma), with shot and read noise of a small
                   sensor, then quantised: dark25 keeps a quarter of the light
  low_light        dark20
  jpegN            JPEG quality N (the camera's MJPEG encoder at its lowest settings: jpeg12)
  motionN          horizontal motion blur over N px of the 250-px image (the face moving about N px during exposure)
  motion_blur      motion9 (about 8 % of the face width)
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from edge.errors import InputError

FRAME_W, FRAME_H = 640, 480
# Face box width (BlazeFace short range) in a 250 x 250 LFW deep-funneled image: mean 106.3 px, median 105.5,
# 5-95 % 92-121 over every 10th development image (382), measured by `python -m edge.evaluation.conditions`.
LFW_FACE_PX = 106.0
# Sensor noise at full exposure, in 8-bit grey levels: shot noise grows with the square root of the signal,
# read noise is constant (a small CMOS camera sensor: about 2 levels read noise).
READ_NOISE = 2.0
SHOT_NOISE_AT_WHITE = 3.0

ALIASES = {"low_light": "dark20", "motion_blur": "motion9"}
CONDITION_PATTERN = re.compile(r"(clean)|(face|dark|jpeg|motion)(\d+)")

Degrade = Callable[[np.ndarray, int], np.ndarray]  # (BGR image, seed) -> degraded BGR image


@dataclass(frozen=True)
class Condition:
    name: str          # as asked (e.g. "low_light")
    kind: str          # clean | face | dark | jpeg | motion
    level: int         # px, percent, quality or px, per kind
    degrade: Degrade

    @property
    def canonical(self) -> str:
        return "clean" if self.kind == "clean" else f"{self.kind}{self.level}"


def seed_of(key: str) -> int:
    """A seed that depends only on the image's name (the same degraded frame in every run)."""
    return zlib.crc32(key.encode("utf-8"))


def _background(rng: np.random.Generator) -> np.ndarray:
    """A textured, out-of-focus background (an ATM lobby), not a flat colour that makes detection easy."""
    coarse = rng.uniform(40, 200, size=(6, 8, 3)).astype(np.float32)
    frame = cv2.resize(coarse, (FRAME_W, FRAME_H), interpolation=cv2.INTER_CUBIC)
    frame += rng.normal(0, 6, size=frame.shape).astype(np.float32)
    return np.clip(frame, 0, 255).astype(np.uint8)


def in_frame(image: np.ndarray, seed: int, face_px: int) -> np.ndarray:
    """The image scaled so its face is about `face_px` wide, pasted into a 640 x 480 frame at a seeded place."""
    rng = np.random.default_rng(seed)
    scale = face_px / LFW_FACE_PX
    h, w = image.shape[:2]
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    frame = _background(rng)
    nw, nh = min(nw, FRAME_W), min(nh, FRAME_H)
    x = int(rng.integers(0, FRAME_W - nw + 1))
    y = int(rng.integers(0, FRAME_H - nh + 1))
    frame[y:y + nh, x:x + nw] = small[:nh, :nw]
    return frame


def dark(image: np.ndarray, seed: int, percent: int) -> np.ndarray:
    """Exposure `percent` % in linear light, with the sensor's shot and read noise added in linear light (where
    the sensor makes it), then back to 8-bit gamma-encoded levels: the dark end gets the most visible noise."""
    rng = np.random.default_rng(seed)
    signal = (image.astype(np.float64) / 255.0) ** 2.2 * (percent / 100.0) * 255.0  # linear 8-bit levels
    sigma = np.sqrt(SHOT_NOISE_AT_WHITE ** 2 * signal / 255.0 + READ_NOISE ** 2)
    noisy = np.clip(signal + rng.normal(0.0, 1.0, image.shape) * sigma, 0.0, 255.0)
    return np.round((noisy / 255.0) ** (1 / 2.2) * 255.0).astype(np.uint8)


def jpeg(image: np.ndarray, seed: int, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise InputError("JPEG encoding failed", code="input.corrupt_image")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def motion(image: np.ndarray, seed: int, length: int) -> np.ndarray:
    """Horizontal motion blur: the average of the image shifted over `length` px (a box kernel along x)."""
    if length <= 1:
        return image.copy()
    kernel = np.full((1, length), 1.0 / length, np.float32)
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REPLICATE)


_KINDS: dict[str, Callable[[int], Degrade]] = {
    "face": lambda n: lambda img, seed: in_frame(img, seed, n),
    "dark": lambda n: lambda img, seed: dark(img, seed, n),
    "jpeg": lambda n: lambda img, seed: jpeg(img, seed, n),
    "motion": lambda n: lambda img, seed: motion(img, seed, n),
}
_LIMITS = {"face": (8, 1000), "dark": (1, 100), "jpeg": (1, 100), "motion": (1, 200)}


def parse_condition(name: str) -> Condition:
    """One condition by name (see the module docstring); InputError naming the accepted forms otherwise."""
    asked = name.strip()
    match = CONDITION_PATTERN.fullmatch(ALIASES.get(asked, asked))
    if not match:
        raise InputError(f"unknown condition {asked!r}: use clean, faceN, darkN, jpegN, motionN, "
                         f"{', '.join(ALIASES)}", code="input.bad_condition")
    if match[1]:
        return Condition(asked, "clean", 0, lambda img, seed: img)
    kind, level = match[2], int(match[3])
    lo, hi = _LIMITS[kind]
    if not lo <= level <= hi:
        raise InputError(f"condition {asked!r}: {kind} level must be {lo}-{hi}", code="input.bad_condition")
    return Condition(asked, kind, level, _KINDS[kind](level))


def parse_conditions(spec: str) -> list[Condition]:
    names = [n for n in spec.split(",") if n.strip()]
    if not names:
        raise InputError("no condition given", code="input.bad_condition")
    return [parse_condition(n) for n in names]


def _measure_face_px() -> None:
    """Mean BlazeFace box width over LFW development images (the LFW_FACE_PX constant)."""
    from edge.biometrics.face.detector import FaceDetector
    from edge.biometrics.face.image import load_image
    from edge.config import load_config

    cfg = load_config()
    detector = FaceDetector(cfg.paths.models_dir, 1, cfg.face.detector_score, "short_range")
    paths = sorted((cfg.paths.data_dir / "faces" / "lfw" / "images").glob("*/*.jpg"))[::10]
    widths = []
    for p in paths:
        faces = detector.detect_bgr(load_image(p))
        if faces:
            widths.append(faces[0].width)
    print(f"{len(widths)} of {len(paths)} images: face box width mean {np.mean(widths):.1f} px, "
          f"median {np.median(widths):.1f}, 5-95 % {np.percentile(widths, 5):.1f}-{np.percentile(widths, 95):.1f}")


if __name__ == "__main__":
    _measure_face_px()

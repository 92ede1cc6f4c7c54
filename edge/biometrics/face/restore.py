"""Restoring a frame before the face path reads it: the sensor noise of a dark frame, the 8 x 8 block grid of a
strongly compressed (MJPEG) frame, and a face smeared by movement during the exposure.

The face pipeline undoes what it finds in the reverse of the order the camera made it (the smear happens during
the exposure, the compression after it):
1. Low light (`is_low_light`, `denoise`), on the whole frame before the face is looked for: a dark frame's sensor
   noise, made stronger by the gamma encoding, hides the face from the detector and the embedder. A Gaussian of
   DENOISE_SIGMA px takes most of it out; the frame is then brightened in linear light towards a mid-grey mean
   (never darkened). Brightening without the denoising made things worse.
2. Blocks (`is_blocky`, `deblock`), on the whole frame before the face is looked for (detection and landmarks on
   a blocky frame sit worse): a strongly compressed frame steps at every 8th pixel along both axes. Each shifted
   copy of the frame, compressed again, puts its block edges elsewhere; their average keeps what they agree on,
   the face, and smooths the steps (re-application of JPEG, Nosratinia 2001).
3. Motion, on the face region after alignment (`estimate_motion`, `deblur`): a face that moves during the
   exposure is the frame convolved with a short line (the path of the motion). Such a kernel leaves exact zeros
   in the frame's spectrum at multiples of 1/length along its direction, and the cepstrum (inverse transform of
   the log spectrum) shows them as one strong negative peak at the motion vector. The peak gives the length and
   direction; a Wiener filter with that line undoes the smear. It runs only on a face that the directional-blur
   measure already calls smeared and whose cepstral peak stands out from the rest of the cepstrum: a still face,
   or a compressed frame's block grid, is left as it is.

All tuning constants are here; they were chosen on LFW development pairs, folds 1-2 (models/MODEL_CARD.md
"Capture conditions").
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The directional-blur measure (quality.directional_blur) above which a face is examined for motion: LFW chips
# at rest reach 0.71 at their 95th percentile, faces smeared over 5-25 px have a median of 0.82-0.85.
MIN_DIRECTIONAL_BLUR = 0.72
# Motion lengths looked for, in frame pixels: below 3 px the smear costs nothing; the upper bound is a share of
# the face width (a face smeared over a third of its width is not worth restoring: the terminal asks to hold still).
MIN_LENGTH_PX = 3
MAX_LENGTH_FACE_SHARE = 0.3
# How far the cepstral peak must stand below the median of the searched ring, in median absolute deviations: at 10,
# 2 of the 3,811 development images as they are were "restored" (strength 10.0 and 10.1); every 10th image
# smeared over 5 or 9 px reaches 12 or more (706 of 707), still and JPEG q12 faces stay below.
MIN_PEAK_STRENGTH = 12.0
# Wiener filter's noise-to-signal constant: lower restores more detail and amplifies more noise.
WIENER_K = 0.02
# A low-light frame: dark (mean linear light of the frame at most MAX_DARK) and noisy (robust Immerkaer estimate,
# grey levels, green channel, at least MIN_NOISE). Every 10th development image: as they are, noise 0.25-0.74
# (1-99 %) and mean light 0.054 or more (1 %); shrunk to 60 x 60 px, fine detail reads as noise up to 5.3; exposure
# 20-40 % with shot and read noise: 3.4-12.6, mean light 0.013-0.15; the textured background of the 640 x 480
# frames of conditions.in_frame: noise 5.2 but bright. The Gaussian's width was chosen on folds 1-2 at exposure
# 20 %: 0.7 / 1.0 / 1.3 px gave 26 / 18 / 22 errors of 1,200 (32 without).
MIN_NOISE = 3.0
MAX_DARK = 0.09
NOISE_WINDOW = 512  # px: the noise is read in a central window at most this large (a large photo costs no more)
DENOISE_SIGMA = 1.0
# A low-light frame in which no face is found is smoothed again from the original, this much: at exposure 20 %,
# 10 of the 2,266 development probes showed no face after the first smoothing (the darkest frames, several of them
# of people with darker skin); at 1.5 / 2 / 3 px 2 / 5 / 5 of them were found (chosen on those 10 frames, all folds).
DENOISE_SIGMA_RETRY = 2.0
BRIGHTEN_TARGET = 0.18  # mean linear light of the brightened frame (mid grey)
MAX_GAIN = 8.0
_TO_LINEAR = ((np.arange(256) / 255.0) ** 2.2).astype(np.float32)  # the sRGB-like gamma of conditions.dark
# Block steps: mean grey-level step across the frame's 8 px block edges over the step inside blocks. LFW images as
# they are (JPEG at their own quality): 5-95 % 1.11-1.36, max 1.79; JPEG q20 1.60-2.29; q12 1.96-3.02 (every 10th
# development image).
JPEG_BLOCK = 8
MIN_BLOCKINESS = 1.8
BLOCKINESS_STRIDE = 4
BLOCKINESS_LINES = 128
# The quality each shifted copy is compressed at, and the shifts (a 2 px grid over one block: 16 copies).
DEBLOCK_QUALITY = 20
DEBLOCK_SHIFTS = tuple((dy, dx) for dy in range(0, JPEG_BLOCK, 2) for dx in range(0, JPEG_BLOCK, 2))


@dataclass(frozen=True)
class Restoration:
    """What was undone before a face was embedded."""

    denoised: bool = False
    deblocked: bool = False
    motion: "MotionEstimate | None" = None

    @property
    def any(self) -> bool:
        return self.denoised or self.deblocked or self.motion is not None

    @property
    def undone(self) -> set[str]:
        """What was undone, by name ("denoised", "deblocked", "deblurred": `[face] restored_embedder_for`)."""
        done = {"denoised": self.denoised, "deblocked": self.deblocked, "deblurred": self.motion is not None}
        return {name for name, yes in done.items() if yes}


@dataclass(frozen=True)
class MotionEstimate:
    length: float    # px
    angle_deg: float  # 0 = horizontal, counter-clockwise in image coordinates (y down), 0-180
    strength: float  # the cepstral peak's depth in median absolute deviations of the searched ring


def estimate_motion(grey: np.ndarray, max_length: float) -> MotionEstimate | None:
    """The motion vector of a smeared face region (2-D grey array) from its cepstrum, or None when the region is
    too small for the lengths asked."""
    h, w = grey.shape
    max_length = min(max_length, min(h, w) / 4)
    if max_length < MIN_LENGTH_PX + 1:
        return None
    g = grey.astype(np.float64)
    g -= g.mean()
    window = np.hanning(h)[:, None] * np.hanning(w)[None, :]  # no false zeros from the region's edges
    spectrum = np.abs(np.fft.fft2(g * window))
    cepstrum = np.fft.fftshift(np.real(np.fft.ifft2(np.log(spectrum + 1e-3))))
    cy, cx = h // 2, w // 2
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - cy, xx - cx)
    ring = (r >= MIN_LENGTH_PX) & (r <= max_length) & (yy >= cy)  # half the plane: the cepstrum is symmetric
    values = cepstrum[ring]
    i = int(np.argmin(values))
    dy, dx = int(yy[ring][i] - cy), int(xx[ring][i] - cx)
    median = float(np.median(values))
    spread = float(np.median(np.abs(values - median))) + 1e-12
    return MotionEstimate(float(np.hypot(dx, dy)), float(np.degrees(np.arctan2(dy, dx)) % 180.0),
                          (median - float(values[i])) / spread)


def line_kernel(length: float, angle_deg: float) -> np.ndarray:
    """The point-spread function of a straight motion: a line of `length` px at `angle_deg`, summing to 1."""
    size = int(np.ceil(length)) | 1  # odd, so the line is centred on a pixel
    kernel = np.zeros((size, size), np.float64)
    if length <= 1.0:
        kernel[size // 2, size // 2] = 1.0
        return kernel
    # The line as a dense row of points, each counted in the pixel it falls in: a box of `length` pixels when the
    # line is horizontal or vertical and the length odd (a camera's smear along x is exactly that).
    samples = int(np.ceil(length)) * 16
    t = (np.arange(samples) + 0.5) / samples * length - length / 2
    a = np.radians(angle_deg)
    xs = np.clip(np.round(size // 2 + t * np.cos(a)).astype(int), 0, size - 1)
    ys = np.clip(np.round(size // 2 + t * np.sin(a)).astype(int), 0, size - 1)
    np.add.at(kernel, (ys, xs), 1.0)
    return kernel / kernel.sum()


def deblur(region_bgr: np.ndarray, motion: MotionEstimate) -> np.ndarray:
    """The region with the motion undone by a Wiener filter (edges reflected first, so they do not ring)."""
    kernel = line_kernel(motion.length, motion.angle_deg)
    pad = kernel.shape[0]
    padded = cv2.copyMakeBorder(region_bgr, pad, pad, pad, pad, cv2.BORDER_REFLECT).astype(np.float64)
    h, w = padded.shape[:2]
    psf = np.zeros((h, w))
    k = kernel.shape[0]
    psf[:k, :k] = kernel
    psf = np.roll(psf, (-(k // 2), -(k // 2)), axis=(0, 1))  # kernel centre at the origin: no shift
    transfer = np.fft.rfft2(psf)
    wiener = np.conj(transfer) / (np.abs(transfer) ** 2 + WIENER_K)
    out = np.empty_like(padded)
    for c in range(padded.shape[2]):
        out[:, :, c] = np.fft.irfft2(np.fft.rfft2(padded[:, :, c]) * wiener, s=(h, w))
    return np.clip(np.round(out[pad:-pad, pad:-pad]), 0, 255).astype(np.uint8)


def noise_level(frame_bgr: np.ndarray) -> float:
    """The frame's noise in grey levels, read on the green channel in a central window: Immerkaer's mask (1996),
    which cancels smooth image structure, with the median of its response rather than the mean, so that edges
    and fine detail do not count as noise."""
    h, w = frame_bgr.shape[:2]
    y0, x0 = max(0, (h - NOISE_WINDOW) // 2), max(0, (w - NOISE_WINDOW) // 2)
    green = frame_bgr[y0:y0 + NOISE_WINDOW, x0:x0 + NOISE_WINDOW, 1].astype(np.float32)
    if min(green.shape) < 3:
        return 0.0
    response = cv2.filter2D(green, -1, _NOISE_MASK)[1:-1, 1:-1]
    return float(1.4826 * np.median(np.abs(response)) / 6.0)  # the mask's gain on white noise is 6


_NOISE_MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def mean_light(frame_bgr: np.ndarray) -> float:
    """Mean linear light of the frame's green channel (0-1), on every 4th pixel."""
    return float(_TO_LINEAR[frame_bgr[::4, ::4, 1]].mean())


def is_low_light(frame_bgr: np.ndarray) -> bool:
    """A dark, noisy frame: denoised and brightened before the face is looked for."""
    return mean_light(frame_bgr) <= MAX_DARK and noise_level(frame_bgr) >= MIN_NOISE


def denoise(frame_bgr: np.ndarray, sigma: float = DENOISE_SIGMA) -> np.ndarray:
    """The frame smoothed by a Gaussian of `sigma` px, then brightened in linear light towards BRIGHTEN_TARGET (gain
    1 to MAX_GAIN, from the mean of every 4th pixel's channels; applied as a table over the 256 grey levels)."""
    smooth = cv2.GaussianBlur(frame_bgr, (0, 0), sigma)
    gain = float(np.clip(BRIGHTEN_TARGET / max(float(_TO_LINEAR[smooth[::4, ::4]].mean()), 1e-6), 1.0, MAX_GAIN))
    if gain <= 1.0:
        return smooth
    table = np.round(np.clip(_TO_LINEAR * gain, 0.0, 1.0) ** (1 / 2.2) * 255.0).astype(np.uint8)
    brightened = cv2.LUT(smooth, table)
    smooth.fill(0)
    return brightened


def blockiness(grey: np.ndarray, stride: int = 1) -> float:
    """Mean step across the frame's JPEG block edges over the mean step inside blocks: about 1 when there are no
    blocks. `stride` reads every stride-th row (for the steps along x) and column (along y): the grid is the
    same in all of them, and a large frame is judged at a fraction of the cost."""
    dx = np.abs(np.diff(grey[::stride].astype(np.float32), axis=1))
    dy = np.abs(np.diff(grey[:, ::stride].astype(np.float32), axis=0))
    edge_x = (np.arange(dx.shape[1]) + 1) % JPEG_BLOCK == 0  # the step from column j to j + 1 crosses an edge
    edge_y = (np.arange(dy.shape[0]) + 1) % JPEG_BLOCK == 0
    if not (edge_x.any() and edge_y.any()) or dx.shape[1] < 2 * JPEG_BLOCK or dy.shape[0] < 2 * JPEG_BLOCK:
        return 1.0
    across = (dx[:, edge_x].mean() + dy[edge_y, :].mean()) / 2
    inside = (dx[:, ~edge_x].mean() + dy[~edge_y, :].mean()) / 2
    return float(across / max(inside, 1e-6))


def is_blocky(frame_bgr: np.ndarray) -> bool:
    """A frame compressed hard enough to be deblocked before the face is looked for."""
    # The green channel: the encoder's luma is mostly green, and no colour conversion of the whole frame is needed.
    # At most about BLOCKINESS_LINES rows and columns are read, so a large photo costs no more than a camera frame.
    stride = max(BLOCKINESS_STRIDE, max(frame_bgr.shape[:2]) // BLOCKINESS_LINES)
    return blockiness(frame_bgr[:, :, 1], stride) >= MIN_BLOCKINESS


def deblock(frame_bgr: np.ndarray) -> np.ndarray:
    """The frame with its block steps smoothed: the average of shifted copies compressed again (module
    docstring)."""
    h, w = frame_bgr.shape[:2]
    total = np.zeros(frame_bgr.shape, np.float32)
    for dy, dx in DEBLOCK_SHIFTS:
        shifted = cv2.copyMakeBorder(frame_bgr, dy, JPEG_BLOCK, dx, JPEG_BLOCK, cv2.BORDER_REFLECT)
        ok, data = cv2.imencode(".jpg", shifted, [cv2.IMWRITE_JPEG_QUALITY, DEBLOCK_QUALITY])
        if not ok:  # the encoder refused this region: leave it as it is
            return frame_bgr.copy()
        total += cv2.imdecode(data, cv2.IMREAD_COLOR)[dy:dy + h, dx:dx + w]
    return np.clip(np.round(total / len(DEBLOCK_SHIFTS)), 0, 255).astype(np.uint8)


def motion_to_undo(region_bgr: np.ndarray, face_px: float, directional_blur: float) -> MotionEstimate | None:
    """The motion worth undoing in this face region, or None: only for a face the directional-blur measure calls
    smeared, and only when the cepstrum shows one clear motion vector."""
    if directional_blur < MIN_DIRECTIONAL_BLUR:
        return None
    grey = cv2.cvtColor(region_bgr, cv2.COLOR_BGR2GRAY)
    motion = estimate_motion(grey, MAX_LENGTH_FACE_SHARE * face_px)
    if motion is None or motion.strength < MIN_PEAK_STRENGTH:
        return None
    return motion

"""The fingerprint template: minutiae plus what is needed to interpret them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ENDING = 1        # ISO/IEC 19794-2 type code 01: ridge ending
BIFURCATION = 2   # type code 10: ridge bifurcation
OTHER = 0         # type code 00: other / unknown

# The ridge flow a template may carry besides its minutiae (`FingerTemplate.flow`): the ridge
# orientation of each FLOW_BLOCK x FLOW_BLOCK pixel block, modulo 180 degrees in whole degrees
# (0..179, counter-clockwise as seen, like the minutia angles), FLOW_NONE where the block is not
# on the print.
FLOW_BLOCK = 16
FLOW_CODES = 180
FLOW_NONE = 255


@dataclass(eq=False)
class FingerTemplate:
    """Minutiae of one fingerprint impression.

    Coordinates are pixels (x to the right, y downwards, origin top-left). `angle` is in radians,
    0..2*pi, measured counter-clockwise from the x axis as a person looks at the image (the
    ISO/IEC 19794-2 convention). Ridge endings point out of the ridge tip; bifurcations point along
    the stem away from the fork (so an ending and the bifurcation it turns into under different
    pressure point the same way).
    """

    x: np.ndarray            # int32 (n,)
    y: np.ndarray            # int32 (n,)
    angle: np.ndarray        # float32 (n,), radians
    kind: np.ndarray         # uint8 (n,), ENDING / BIFURCATION / OTHER
    minutia_quality: np.ndarray  # uint8 (n,), 1..100
    width: int
    height: int
    dpi: int = 500
    quality: int = 0         # print quality 0..100
    ridge_period: float = 0.0          # median ridge period in pixels (at `dpi`); 0 = not known
    flow: np.ndarray | None = None     # uint8 (rows, cols) ridge orientation per block (see FLOW_BLOCK) or None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.int32).reshape(-1)
        self.y = np.asarray(self.y, dtype=np.int32).reshape(-1)
        self.angle = np.mod(np.asarray(self.angle, dtype=np.float32).reshape(-1), np.float32(2 * np.pi))
        self.kind = np.asarray(self.kind, dtype=np.uint8).reshape(-1)
        self.minutia_quality = np.asarray(self.minutia_quality, dtype=np.uint8).reshape(-1)
        if not (np.isfinite(self.ridge_period) and self.ridge_period >= 0):
            raise ValueError("ridge_period must be a finite number >= 0")
        self.ridge_period = float(self.ridge_period)
        if self.flow is not None:
            self.flow = np.asarray(self.flow, dtype=np.uint8)
            if self.flow.ndim != 2:
                raise ValueError("flow must be a 2-D array of orientation codes")
            if np.any((self.flow >= FLOW_CODES) & (self.flow != FLOW_NONE)):
                raise ValueError(f"flow codes must be 0..{FLOW_CODES - 1} or {FLOW_NONE}")
        n = self.x.size
        if not (self.y.size == self.angle.size == self.kind.size == self.minutia_quality.size == n):
            raise ValueError("minutia arrays must have the same length")

    @property
    def count(self) -> int:
        return int(self.x.size)

    def __len__(self) -> int:
        return self.count

    def same_minutiae(self, other: "FingerTemplate", xy_tol: int = 0, angle_tol: float = 0.0) -> bool:
        """True when both hold the same minutiae (in the same order) within the given tolerances."""
        if self.count != other.count:
            return False
        dang = np.abs(np.angle(np.exp(1j * (self.angle.astype(np.float64) - other.angle))))
        return bool(np.all(np.abs(self.x - other.x) <= xy_tol) and np.all(np.abs(self.y - other.y) <= xy_tol)
                    and np.all(dang <= angle_tol + 1e-6) and np.array_equal(self.kind, other.kind))

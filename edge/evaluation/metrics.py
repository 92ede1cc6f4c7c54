"""Error rates from comparison scores.

Convention everywhere: a score is a *similarity* (higher = more likely the same source) and a
comparison is accepted when `score >= threshold`. Distances are negated by the caller. A failure to
acquire or extract is passed as `-inf`: it is rejected at every threshold (a genuine error, an
impostor non-error), which is how ISO/IEC 19795-1 system-level rates count it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class ErrorCurve:
    """FMR and FNMR at every distinct threshold, thresholds ascending."""

    thresholds: np.ndarray
    fmr: np.ndarray   # fraction of impostor scores >= threshold
    fnmr: np.ndarray  # fraction of genuine scores < threshold


def error_curve(genuine: Sequence[float], impostor: Sequence[float]) -> ErrorCurve:
    gen = np.sort(np.asarray(genuine, dtype=np.float64))
    imp = np.sort(np.asarray(impostor, dtype=np.float64))
    if gen.size == 0 or imp.size == 0:
        raise ValueError("need at least one genuine and one impostor score")
    finite = np.concatenate([gen, imp])
    finite = finite[np.isfinite(finite)]
    # Every distinct score is a candidate threshold, plus one above all (accept nothing).
    top = finite.max() + 1.0 if finite.size else 0.0
    thresholds = np.unique(np.concatenate([finite, [top]]))
    fnmr = np.searchsorted(gen, thresholds, side="left") / gen.size
    fmr = 1.0 - np.searchsorted(imp, thresholds, side="left") / imp.size
    return ErrorCurve(thresholds, fmr, fnmr)


def equal_error_rate(genuine: Sequence[float], impostor: Sequence[float]) -> float:
    """EER: where FMR and FNMR cross; the midpoint of the two rates at the closest threshold pair.

    FMR falls and FNMR rises with the threshold, so the crossing lies between the last threshold with
    FNMR <= FMR and the first with FNMR > FMR (the FVC interval [EERlow, EERhigh]); we report the
    midpoint of whichever end is tighter.
    """
    c = error_curve(genuine, impostor)
    above = np.nonzero(c.fnmr > c.fmr)[0]
    if above.size == 0:
        i = len(c.thresholds) - 1
        return float((c.fmr[i] + c.fnmr[i]) / 2)
    hi = above[0]
    lo = max(hi - 1, 0)
    candidates = [(abs(c.fmr[j] - c.fnmr[j]), (c.fmr[j] + c.fnmr[j]) / 2) for j in {lo, hi}]
    return float(min(candidates)[1])


def fnmr_at_fmr(genuine: Sequence[float], impostor: Sequence[float], target_fmr: float) -> float:
    """Lowest FNMR over thresholds whose FMR does not exceed `target_fmr` (FMR100 = target 0.01)."""
    c = error_curve(genuine, impostor)
    ok = c.fmr <= target_fmr
    return float(c.fnmr[ok].min())  # the top threshold always has FMR 0, so `ok` is never empty


def threshold_at_fmr(genuine: Sequence[float], impostor: Sequence[float], target_fmr: float) -> float:
    """Smallest threshold whose FMR does not exceed `target_fmr`."""
    c = error_curve(genuine, impostor)
    return float(c.thresholds[np.nonzero(c.fmr <= target_fmr)[0][0]])


def rates_at(genuine: Sequence[float], impostor: Sequence[float], threshold: float) -> tuple[float, float]:
    """(FMR, FNMR) when accepting `score >= threshold`."""
    gen = np.asarray(genuine, dtype=np.float64)
    imp = np.asarray(impostor, dtype=np.float64)
    return float(np.mean(imp >= threshold)), float(np.mean(gen < threshold))


def det_plot(path: str | Path, curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
             title: str = "DET") -> Path:
    """Write a DET plot (FNMR against FMR, log axes) with one line per named system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    for name, (gen, imp) in curves.items():
        c = error_curve(gen, imp)
        floor = 0.5 / max(len(imp), len(gen))  # show zeros at the plot's floor, not at -inf
        ax.plot(np.maximum(c.fmr, floor), np.maximum(c.fnmr, floor),
                label=f"{name} (EER {100 * equal_error_rate(gen, imp):.2f}%)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FMR")
    ax.set_ylabel("FNMR")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path = Path(path)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path

"""The auditors' error-rate picture: DET curves and the operating point, drawn from the committed calibration.

The calibration (`policy.calibration_file`, fitted by `biogate calibrate`) holds the development genuine and
impostor LLR distributions the model card's "Operating points" table is read from (LFW for faces, FVC2000
DB1-DB4 B for fingers). A DET curve sweeps the decision threshold over them: FMR = impostors at or above it,
FNMR = genuine comparisons below it. The operating point is the threshold for `policy.target_fmr`, with the
conservative unseen-tail impostor (the same function the daemon decides with). No evaluation data is read.
"""
from __future__ import annotations

import io
import threading
from functools import lru_cache

import numpy as np

from edge.config import Config
from edge.decision.calibration import Calibration, load_calibration

_PLOTTING = threading.Lock()   # matplotlib is not thread-safe; the server renders charts from a thread pool
CHARTS = {"face": ("face",), "finger": ("finger",), "face_finger": ("face", "finger")}


def _rates(cal: Calibration, factors: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    imp, gen = cal.impostor_distribution(factors), cal.genuine_distribution(factors)
    lo = min(imp.start, gen.start)
    hi = max(imp.start + imp.width * imp.counts.size, gen.start + gen.width * gen.counts.size)
    thresholds = np.arange(lo, hi + imp.width, imp.width)

    def at_or_above(h, thr):
        edges = h.start + h.width * np.arange(h.counts.size)
        p = h.counts / max(h.total, 1e-300)
        return np.array([p[edges >= t - 1e-12].sum() for t in thr])
    fmr = at_or_above(imp, thresholds)
    fnmr = 1.0 - at_or_above(gen, thresholds)
    return thresholds, fmr, fnmr


def operating_point(cfg: Config, name: str, cal: Calibration | None = None) -> dict:
    cal = cal or load_calibration(cfg.policy.calibration_file)
    factors = CHARTS[name]
    thr = cal.threshold(factors, cfg.policy.target_fmr)
    return {"name": name, "factors": "+".join(factors), "target_fmr": cfg.policy.target_fmr,
            "threshold_llr": round(thr, 2), "fnmr": round(cal.expected_fnmr(factors, thr), 4)}


def det_charts(cfg: Config) -> list[dict]:
    cal = load_calibration(cfg.policy.calibration_file)
    return [{**operating_point(cfg, name, cal),
             "provenance": {m: cal.modality(m).provenance.get("data", cal.modality(m).provenance.get("source", ""))
                            for m in CHARTS[name]}} for name in CHARTS]


def chart_png(cfg: Config, name: str) -> bytes:
    if name not in CHARTS:
        from edge.errors import NotFoundError
        raise NotFoundError("no such chart", code="input.not_found")
    with _PLOTTING:
        return _chart_png(str(cfg.policy.calibration_file), cfg.policy.target_fmr, name)


@lru_cache(maxsize=16)
def _chart_png(calibration_file: str, target_fmr: float, name: str) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cal = load_calibration(calibration_file if calibration_file != "None" else None)
    factors = CHARTS[name]
    _, fmr, fnmr = _rates(cal, factors)
    keep = (fmr > 0) & (fnmr > 0)
    thr = cal.threshold(factors, target_fmr)
    op_fnmr = cal.expected_fnmr(factors, thr)
    fig, ax = plt.subplots(figsize=(4.6, 3.6), dpi=100)
    ax.plot(fmr[keep], fnmr[keep], color="#0b4f8a", linewidth=2, label="DET")
    ax.plot([target_fmr], [max(op_fnmr, 1e-4)], "o", color="#b3261e", markersize=8,
            label=f"operating point: FMR {target_fmr:g}, FNMR {op_fnmr:.1%}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(1e-6, 1)
    ax.set_ylim(1e-4, 1)
    ax.set_xlabel("false match rate (FMR)")
    ax.set_ylabel("false non-match rate (FNMR)")
    ax.set_title(" + ".join(factors))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()

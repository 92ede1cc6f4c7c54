"""Synthetic face embeddings for the scale benchmark, drawn so that nearest-neighbour distances look real.

Real embeddings do not fill the 128-d sphere evenly: they sit in a cone around a common mean, spread unevenly
across directions (a few strong ones), and each person's samples scatter around that person's centre. So:

    person centre = mean + sum_i sqrt(between_i) * z_i * u_i      (z ~ N(0, 1), u_i a random orthonormal basis)
    sample        = centre + sum_i sqrt(within_i) * z'_i * v_i,   then scaled to length 1.42 as the embedder does

with the mean's length and the two eigenvalue spectra (`between`, `within`) measured on development faces
(`fit_spectra` on LFW; spectra.json beside this file holds them), each shrunk by one factor fitted so that a
draw of LFW's size has LFW's nearest-other-person distance quantiles (spectra.json's provenance says both). Distances are invariant
under rotation, so the spectra are all that carries over: no real embedding, no real person, is in here.
`nn_distance_profile` gives the quantiles that show the match (printed by `biogate bench search`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.search.index import DIM

TEMPLATE_NORM = 1.42
SPECTRA_FILE = Path(__file__).with_name("spectra.json")


@dataclass(frozen=True)
class Spectra:
    mean_norm: float
    between: np.ndarray            # eigenvalues of the covariance of person centres, descending
    within: np.ndarray             # eigenvalues of the covariance of samples around their person's centre
    provenance: dict
    between_scale: float = 1.0     # applied when drawing (see the provenance's "scales")
    within_scale: float = 1.0

    def to_dict(self) -> dict:
        return {"mean_norm": self.mean_norm, "between": [float(v) for v in self.between],
                "within": [float(v) for v in self.within], "between_scale": self.between_scale,
                "within_scale": self.within_scale, "provenance": self.provenance}

    @classmethod
    def load(cls, path: Path = SPECTRA_FILE) -> "Spectra":
        d = json.loads(path.read_text())
        return cls(float(d["mean_norm"]), np.asarray(d["between"]), np.asarray(d["within"]), d.get("provenance", {}),
                   float(d.get("between_scale", 1.0)), float(d.get("within_scale", 1.0)))


def fit_spectra(embeddings: np.ndarray, names: list[str], provenance: dict | None = None) -> Spectra:
    """The mean's length and the between- and within-person spectra of real embeddings (`names` per row)."""
    x = np.asarray(embeddings, np.float64)
    labels = np.asarray(names)
    mean = x.mean(axis=0)
    people = sorted(set(names))
    centres = np.stack([x[labels == p].mean(axis=0) for p in people])
    residuals = np.concatenate([x[labels == p] - x[labels == p].mean(axis=0) for p in people
                                if (labels == p).sum() >= 2])
    multi = sum(1 for p in people if (labels == p).sum() >= 2)
    between = np.linalg.eigvalsh(np.cov((centres - mean).T))[::-1].clip(0)
    # residuals around a mean of n samples shrink by (n-1)/n; use the unbiased scatter
    dof = sum(max(0, (labels == p).sum() - 1) for p in people)
    within = np.linalg.eigvalsh(residuals.T @ residuals / max(dof, 1))[::-1].clip(0)
    # centres of people seen once still carry their own within-person scatter: take it out of `between`
    between = (between - within / np.maximum(1.0, len(x) / len(people))).clip(0)
    return Spectra(float(np.linalg.norm(mean)), between, within,
                   {**(provenance or {}), "images": int(len(x)), "people": len(people), "people_with_2plus": multi})


class EmbeddingGenerator:
    def __init__(self, spectra: Spectra, seed: int = 0):
        self.spectra = spectra
        self.rng = np.random.default_rng(seed)
        basis = np.linalg.qr(self.rng.normal(size=(DIM, DIM)))[0]
        self._between = basis * np.sqrt(spectra.between * spectra.between_scale)[None, :]
        basis2 = np.linalg.qr(self.rng.normal(size=(DIM, DIM)))[0]
        self._within = basis2 * np.sqrt(spectra.within * spectra.within_scale)[None, :]
        direction = self.rng.normal(size=DIM)
        self._mean = direction / np.linalg.norm(direction) * spectra.mean_norm

    def centres(self, n: int) -> np.ndarray:
        return self._mean + self.rng.normal(size=(n, DIM)) @ self._between.T

    def samples(self, centres: np.ndarray) -> np.ndarray:
        x = centres + self.rng.normal(size=centres.shape) @ self._within.T
        return (x * (TEMPLATE_NORM / np.linalg.norm(x, axis=1, keepdims=True))).astype(np.float32)


def nn_distance_profile(embeddings: np.ndarray, names: list | np.ndarray, limit: int = 2000,
                        seed: int = 0) -> dict:
    """Quantiles of each row's nearest other-person distance and nearest same-person distance (up to `limit` rows)."""
    x = np.asarray(embeddings, np.float64)
    labels = np.asarray(names)
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(x), min(limit, len(x)), replace=False)
    other, same = [], []
    for i in rows:
        d = np.linalg.norm(x - x[i], axis=1)
        d[i] = np.inf
        mine = labels == labels[i]
        other.append(d[~mine].min())
        if (mine.sum() > 1):
            same.append(d[mine].min())
    q = (0.01, 0.1, 0.5, 0.9)
    return {"nearest_other_person": {f"q{int(p * 100):02d}": round(float(np.quantile(other, p)), 4) for p in q},
            "nearest_same_person": ({f"q{int(p * 100):02d}": round(float(np.quantile(same, p)), 4) for p in q}
                                    if same else None),
            "rows": int(len(rows))}

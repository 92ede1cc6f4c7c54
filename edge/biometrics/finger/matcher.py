"""The fingerprint comparison score: MCC local structures plus a global alignment check.

`compare(a, b)` returns a similarity >= 0 (higher = more likely the same finger):

    score = mcc * sqrt(paired)

- `mcc`: the Minutia Cylinder-Code score (greedy LSA-R consolidation, 0..1; see `mcc`): how well
  the best, mutually consistent minutia neighbourhoods agree;
- `paired`: how many minutiae pair up (within 15 px and 30 degrees) under the best rigid alignment
  seeded by MCC's most consistent pairs: the amount of evidence behind that agreement.
Typical values: impostors 0.3-1.2, mated impressions 1.5-6 (a 0.6 MCC score with 25 paired minutiae
gives 3.0). Neither part depends on the image size or the position of the print in the frame, so the
same pair scores alike whatever the crop or padding (DB1 300x300 ... DB3 448x478, the sensor's
256x288); only the minutiae the two impressions share count.
DEFAULT_THRESHOLD is chosen on development data (FVC2000 DB1_B-DB4_B, all four pooled; see
`choose_threshold`): the lowest score whose pooled false-match rate is at most 0.1 %.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from edge.biometrics.finger import mcc
from edge.biometrics.finger.template import FingerTemplate
from edge.errors import InputError

# Chosen on FVC2000 DB1_B..DB4_B pooled (11,520 impostor and 1,120 genuine pairs): FMR <= 0.1 %.
DEFAULT_THRESHOLD = 0.10
PARAMS = mcc.DEFAULT_PARAMS
_CACHE_KEY = "prepared"


@dataclass(eq=False)
class PreparedTemplate:
    """A template with the matcher's precomputation (cylinders, pair geometry, hull)."""

    template: FingerTemplate
    cylinders: mcc.Cylinders

    @property
    def count(self) -> int:
        return self.template.count

    def wipe(self) -> None:
        self.cylinders.wipe()
        wipe(self.template)


Comparable = Union[FingerTemplate, PreparedTemplate]


def prepare(template: Comparable) -> PreparedTemplate:
    """Precompute what comparisons need; cached on the template, so preparing twice is free."""
    if isinstance(template, PreparedTemplate):
        return template
    if not isinstance(template, FingerTemplate):
        raise InputError(f"expected a FingerTemplate, got {type(template).__name__}", code="input.finger_template")
    cached = template._cache.get(_CACHE_KEY)
    if cached is None:
        cached = PreparedTemplate(template, mcc.build_cylinders(template, PARAMS))
        template._cache[_CACHE_KEY] = cached
    return cached


def score_parts(a: Comparable, b: Comparable) -> tuple[float, float, int, int, int]:
    """(mcc, normalised global score, paired minutiae, A's minutiae in B's area, B's in A's): see `compare`."""
    return mcc.similarity_parts(prepare(a).cylinders, prepare(b).cylinders, PARAMS)


def combine(mcc_score: float, paired: int) -> float:
    return float(mcc_score * np.sqrt(paired))


def compare(a: Comparable, b: Comparable) -> float:
    """Similarity >= 0 of two fingerprints; `>= DEFAULT_THRESHOLD` means the same finger."""
    parts = score_parts(a, b)
    return combine(parts[0], parts[2])


def compare_many(probe: Comparable, references: Sequence[Comparable]) -> np.ndarray:
    """Scores of one probe against many references (enrolment consistency, duplicate checks)."""
    p = prepare(probe)
    return np.array([compare(p, r) for r in references], dtype=np.float64)


def wipe(template: Comparable) -> None:
    """Zeroise the minutiae (and any cached precomputation) in place."""
    if isinstance(template, PreparedTemplate):
        template.wipe()
        return
    for arr in (template.x, template.y, template.angle, template.kind, template.minutia_quality):
        arr.fill(0)
    cached = template._cache.pop(_CACHE_KEY, None)
    if cached is not None:
        cached.cylinders.wipe()
    template.quality = 0

"""The fingerprint comparison score: MCC local structures plus a global pairing count, calibrated.

Two raw features per comparison:
- `mcc`: the Minutia Cylinder-Code score (greedy LSA-R consolidation, 0..1; see `mcc`): how well
  the best, mutually consistent minutia neighbourhoods agree;
- `paired`: how many minutiae pair up (within 15 px and 30 degrees) under the best rigid alignment
  seeded by MCC's most consistent pairs: the amount of evidence behind that agreement.
Neither depends on the image size or where the print sits in the frame, so the same pair scores
alike whatever the crop or padding (DB1 300x300 ... DB3 448x478, the sensor's 256x288).

`compare(a, b)` returns a log10 likelihood-ratio-like score:

    score = W_MCC * ln(mcc + 0.02) + W_PAIRED * ln(paired + 1) + BIAS

with the weights fitted by logistic regression on development data (`edge.evaluation.fvc.
fit_calibration` on FVC2000 DB1_B-DB4_B pooled: 1,120 mated and 11,520 non-mated comparisons) and
the training prior taken out, so 0 means "as likely mated as not" on that data, +1 ten times more
likely mated, -1 ten times less. Scores beyond about -4..+4 are extrapolation: 11,520 non-mated
comparisons cannot support likelihood ratios much past 10^4. The integrator may refit on other data.

DEFAULT_THRESHOLD: the lowest score at which the pooled development FMR is at most 0.1 %.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from edge.biometrics.finger import mcc
from edge.biometrics.finger.template import FingerTemplate
from edge.errors import InputError

# Fitted on FVC2000 DB1_B..DB4_B pooled (see module docstring):
#   python -m edge.evaluation.fvc ../shared/data/fingerprints/fvc2000/DB{1,2,3,4}_B
W_MCC = 6.287
W_PAIRED = 1.458
BIAS = 16.589
# FMR <= 0.1 % on the same pooled development comparisons.
DEFAULT_THRESHOLD = 1.36
MCC_FLOOR = 0.02      # keeps ln(mcc) finite for comparisons with no agreeing structure
PARAMS = mcc.DEFAULT_PARAMS
_CACHE_KEY = "prepared"


@dataclass(eq=False)
class PreparedTemplate:
    """A template with the matcher's precomputation (cylinders, pair geometry)."""

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


def score_parts(a: Comparable, b: Comparable) -> tuple[float, int]:
    """(mcc, paired minutiae): the raw features `compare` calibrates."""
    ca = a.cylinders if isinstance(a, PreparedTemplate) else prepare(a).cylinders
    cb = b.cylinders if isinstance(b, PreparedTemplate) else prepare(b).cylinders
    return mcc.similarity_parts(ca, cb, PARAMS)


def features(mcc_score, paired) -> np.ndarray:
    """(n, 2) calibration features of raw parts: ln(mcc + floor), ln(paired + 1)."""
    m = np.asarray(mcc_score, dtype=np.float64).reshape(-1)
    p = np.asarray(paired, dtype=np.float64).reshape(-1)
    return np.column_stack([np.log(m + MCC_FLOOR), np.log(p + 1.0)])


def calibrated_score(mcc_score: float, paired: float) -> float:
    """The same as `features` @ (W_MCC, W_PAIRED) + BIAS, for one comparison (no array overhead)."""
    return W_MCC * math.log(mcc_score + MCC_FLOOR) + W_PAIRED * math.log(paired + 1.0) + BIAS


def compare(a: Comparable, b: Comparable) -> float:
    """log10 likelihood-ratio-like score of two fingerprints; `>= DEFAULT_THRESHOLD` means the same finger."""
    mcc_score, paired = score_parts(a, b)
    return calibrated_score(mcc_score, paired)


def compare_many(probe: Comparable, references: Sequence[Comparable]) -> np.ndarray:
    """Scores of one probe against many references (enrolment consistency, duplicate checks)."""
    p = prepare(probe)
    return np.array([compare(p, r) for r in references], dtype=np.float64)


def warm_up() -> None:
    """Compile (or load from numba's on-disk cache) the comparison kernels now, not on the first
    customer's comparison: the first compile takes tens of seconds, a cache load well under one."""
    rng = np.random.default_rng(0)
    n = 12
    t = FingerTemplate(rng.integers(20, 120, n), rng.integers(20, 120, n), rng.uniform(0, 2 * np.pi, n),
                       np.ones(n), np.full(n, 50), 160, 160)
    compare(t, t)


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

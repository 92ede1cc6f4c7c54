"""The fingerprint comparison score: MCC local structures plus a global pairing, calibrated.

Raw parts per comparison (`ScoreParts`, from `mcc.similarity_parts`):
- `mcc`: the Minutia Cylinder-Code score (greedy LSA-R consolidation, 0..1; see `mcc`): how well
  the best, mutually consistent minutia neighbourhoods agree;
- `paired`: how many minutiae pair up (within 10 px and 30 degrees) under the best rigid alignment
  seeded by MCC's most consistent pairs and refined by least squares;
- `inside_a`, `inside_b`: how many minutiae of each print lie inside the other's area under that
  alignment (the ones that could have paired);
- `paired_similarity`: the summed local (cylinder) similarity of the paired minutiae;
- `flow_agreement`: the mean cos 2(difference) of the two ridge-orientation fields over the overlap
  under that alignment (1 parallel everywhere, about 0.5 between different fingers of a pattern class);
- `flow_overlap`: how many 16 x 16 px (500 dpi) blocks of the two prints overlap under it;
- `period_ratio`: the smaller median ridge period over the larger (0 when a template has no ridge
  field: records from other extractors carry minutiae only).
None depends on the image size or where the print sits in the frame, so the same pair scores alike
whatever the crop or padding (DB1 300x300 ... DB3 448x478, the sensor's 256x288).

Seven calibration features (`features`): ln(mcc + 0.02), ln(paired + 1), ln(paired_similarity + 0.5),
ln(paired_similarity^2 / (inside_a * inside_b) + 0.003), ln(1 - flow_agreement + 0.02),
ln(flow_overlap + 1) and ln(period_ratio). The fourth is the share of the overlap that agrees,
weighted by how well it agrees: two different fingers of the same pattern class pair many minutiae by
chance (ridge directions are alike), but their neighbourhoods disagree and a true mate's overlap pairs
nearly whole. The ridge-field ones catch the chance alignments that survive that: the flow of a
different finger drifts off parallel somewhere in a large overlap, and its ridges are often spaced
differently (ridge density differs between people and fingers).

Two calibrations: `WEIGHTS`/`BIAS` over all seven when both templates carry a ridge field (every
template biogate extracts; kept in its ISO record's extended data), `MINUTIAE_WEIGHTS`/`MINUTIAE_BIAS`
over the first four otherwise. Both are fitted by the same function on the same comparisons.

`compare(a, b)` returns a log10 likelihood-ratio-like score, WEIGHTS . features + BIAS, with the
weights fitted by logistic regression on development data (`edge.evaluation.fvc.fit_calibration` on
FVC2000 DB1_B-DB4_B pooled: 1,120 mated and 11,520 non-mated comparisons) and the training prior
taken out, so 0 means "as likely mated as not" on that data, +1 ten times more likely mated, -1 ten
times less. Scores beyond about -4..+4 are extrapolation: 11,520 non-mated comparisons cannot
support likelihood ratios much past 10^4. `python -m edge.evaluation.fvc DIR...` refits them and
prints the leave-one-database-out figures.

DEFAULT_THRESHOLD: the lowest score at which the pooled development FMR is at most 0.1 %.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Sequence, Union

import numpy as np

from edge.biometrics.finger import mcc
from edge.biometrics.finger.template import FingerTemplate
from edge.errors import InputError

# Fitted on FVC2000 DB1_B..DB4_B pooled (see module docstring):
#   python -m edge.evaluation.fvc ../shared/data/fingerprints/fvc2000/DB{1,2,3,4}_B
FEATURES = ("ln_mcc", "ln_paired", "ln_paired_similarity", "ln_overlap_agreement", "ln_flow_disagreement",
            "ln_flow_overlap", "ln_period_ratio")
N_MINUTIAE_FEATURES = 4   # the first four need only minutiae
# ln_paired and ln_paired_similarity move together (each pair adds up to 1 to the similarity), so only
# their combination reads: more pairs count for, pairs that agree only weakly count less than strong ones.
WEIGHTS = (3.302, 3.1, -1.585, 0.539, -0.775, 0.358, 9.617)
BIAS = 5.223
MINUTIAE_WEIGHTS = (4.236, 3.625, -1.487, 0.653)
MINUTIAE_BIAS = 9.877
# FMR <= 0.1 % on the same pooled development comparisons (with the ridge field).
DEFAULT_THRESHOLD = 1.09
MCC_FLOOR = 0.02          # keeps ln(mcc) finite for comparisons with no agreeing structure
SIMILARITY_FLOOR = 0.5    # the same for the paired similarity (about one weakly agreeing pair)
AGREEMENT_FLOOR = 0.003   # and for the overlap agreement (about 1 pair in 18 x 18 minutiae)
FLOW_FLOOR = 0.02         # ln(1 - agreement) stays finite for identical flows
PERIOD_FLOOR = 0.05       # ln(period ratio) when no ridge field is known (the minutiae calibration ignores it)
PARAMS = mcc.DEFAULT_PARAMS
_CACHE_KEY = "prepared"


class ScoreParts(NamedTuple):
    """The raw comparison parts `compare` calibrates (see the module docstring)."""

    mcc: float
    paired: int
    inside_a: int
    inside_b: int
    paired_similarity: float
    flow_agreement: float = 0.0
    flow_overlap: float = 0.0
    period_ratio: float = 0.0


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


def score_parts(a: Comparable, b: Comparable) -> ScoreParts:
    """The raw parts of one comparison (what `compare` calibrates)."""
    ca = a.cylinders if isinstance(a, PreparedTemplate) else prepare(a).cylinders
    cb = b.cylinders if isinstance(b, PreparedTemplate) else prepare(b).cylinders
    return ScoreParts(*mcc.similarity_parts(ca, cb, PARAMS))


def has_ridge_field(parts) -> np.ndarray:
    """Which rows of (n, k) raw parts come from two templates with ridge fields (the full calibration)."""
    p = np.asarray(parts, dtype=np.float64)
    p = p.reshape(-1, p.shape[-1] if p.ndim > 1 else p.size)
    return p[:, 7] > 0 if p.shape[1] > 7 else np.zeros(len(p), bool)


def features(parts) -> np.ndarray:
    """(n, 7) calibration features (FEATURES) of raw parts given as an (n, k) array of ScoreParts rows
    (rows of the first five fields only are parts without a ridge field)."""
    p = np.asarray(parts, dtype=np.float64)
    width = len(ScoreParts._fields)
    p = p.reshape(-1, p.shape[-1] if p.ndim > 1 else p.size)
    if p.shape[1] < width:
        p = np.column_stack([p, np.zeros((len(p), width - p.shape[1]))])
    m, paired, sim = p[:, 0], p[:, 1], p[:, 4]
    overlap = np.maximum(p[:, 2], 1.0) * np.maximum(p[:, 3], 1.0)
    return np.column_stack([np.log(m + MCC_FLOOR), np.log(paired + 1.0), np.log(sim + SIMILARITY_FLOOR),
                            np.log(sim * sim / overlap + AGREEMENT_FLOOR),
                            np.log(1.0 - np.clip(p[:, 5], -1.0, 1.0) + FLOW_FLOOR), np.log(p[:, 6] + 1.0),
                            np.log(np.where(p[:, 7] > 0, p[:, 7], PERIOD_FLOOR))])


def calibrated_score(parts: ScoreParts) -> float:
    """`features(parts) @ WEIGHTS + BIAS` (or the minutiae calibration without a ridge field), for one
    comparison without array overhead."""
    overlap = max(parts.inside_a, 1) * max(parts.inside_b, 1)
    sim = parts.paired_similarity
    x = (math.log(parts.mcc + MCC_FLOOR), math.log(parts.paired + 1.0), math.log(sim + SIMILARITY_FLOOR),
         math.log(sim * sim / overlap + AGREEMENT_FLOOR))
    if parts.period_ratio <= 0:
        w = MINUTIAE_WEIGHTS
        return w[0] * x[0] + w[1] * x[1] + w[2] * x[2] + w[3] * x[3] + MINUTIAE_BIAS
    w = WEIGHTS
    return (w[0] * x[0] + w[1] * x[1] + w[2] * x[2] + w[3] * x[3]
            + w[4] * math.log(1.0 - min(max(parts.flow_agreement, -1.0), 1.0) + FLOW_FLOOR)
            + w[5] * math.log(parts.flow_overlap + 1.0) + w[6] * math.log(parts.period_ratio) + BIAS)


def compare(a: Comparable, b: Comparable) -> float:
    """log10 likelihood-ratio-like score of two fingerprints; `>= DEFAULT_THRESHOLD` means the same finger."""
    return calibrated_score(score_parts(a, b))


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
    if template.flow is not None:
        template.flow.fill(0)
    template.ridge_period = 0.0
    cached = template._cache.pop(_CACHE_KEY, None)
    if cached is not None:
        cached.cylinders.wipe()
    template.quality = 0

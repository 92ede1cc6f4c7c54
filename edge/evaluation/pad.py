"""PAD evaluation in ISO/IEC 30107-3 terms, and the image lists it reads.

List files (as in `../shared/data/pad/nuaa/live.txt`): one image path per line, relative to the folder
holding the list; blank lines and `#` comments are ignored. The subject of an image is the leading
4-digit id of its file name (NUAA: `0001_00_00_01_109.jpg`), else the name of its parent folder.

Scores are bona fide probabilities (higher = more live) and a presentation is accepted as live when
`score >= threshold`. A face that could not be found scores -inf: a live capture then counts as a
bona fide rejection (BPCER), an attack as correctly refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from edge.errors import InputError
from edge.evaluation.metrics import fnmr_at_fmr, rates_at

_SUBJECT = re.compile(r"^(\d{4})_")


@dataclass(frozen=True)
class PadSample:
    path: Path
    subject: str


def subject_of(path: Path) -> str:
    m = _SUBJECT.match(path.name)
    return m.group(1) if m else path.parent.name


def read_list(list_path: str | Path) -> list[PadSample]:
    list_path = Path(list_path)
    try:
        lines = list_path.read_text().splitlines()
    except (FileNotFoundError, IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read image list {list_path}: {exc.__class__.__name__}",
                         code="input.bad_list") from None
    base = list_path.parent
    samples = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = Path(line) if Path(line).is_absolute() else base / line
        samples.append(PadSample(path=path, subject=subject_of(path)))
    return samples


def filter_subjects(samples: Iterable[PadSample], include: Sequence[str] | None = None,
                    exclude: Sequence[str] | None = None) -> list[PadSample]:
    inc = set(include) if include else None
    exc = set(exclude or ())
    return [s for s in samples if (inc is None or s.subject in inc) and s.subject not in exc]


@dataclass(frozen=True)
class PadRates:
    apcer: float     # attacks accepted as live, at the threshold
    bpcer: float     # live presentations refused, at the threshold
    bpcer20: float   # lowest BPCER with APCER <= 5 % (threshold-free)
    live: int
    attack: int
    threshold: float


def pad_rates(live_scores: Sequence[float], attack_scores: Sequence[float], threshold: float) -> PadRates:
    live = np.asarray(live_scores, dtype=np.float64)
    attack = np.asarray(attack_scores, dtype=np.float64)
    if live.size == 0 or attack.size == 0:
        raise InputError("need at least one live and one attack presentation", code="input.empty_list")
    apcer, bpcer = rates_at(live, attack, threshold)
    return PadRates(apcer=apcer, bpcer=bpcer, bpcer20=fnmr_at_fmr(live, attack, 0.05),
                    live=int(live.size), attack=int(attack.size), threshold=float(threshold))

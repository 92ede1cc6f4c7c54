"""NIST NBIS (mindtct minutiae + bozorth3 matcher) through `nbis-py` (dev extra), as an FVC matcher.

Settings as measured in the project notes: every minutia kept (min_quality 0), no NFIQ 2, no
fingerprint check, resolution taken from the image. Bozorth3 scores are unbounded counts
(about 40 is NIST's usual "same finger" threshold).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.errors import InputError, ModelError
from edge.evaluation.fvc import Matcher


def _extractor() -> Any:
    try:
        import nbis
    except ImportError:
        raise ModelError("the NBIS peer needs nbis-py (pip install 'biogate[dev]')", code="model.peer_missing") from None
    settings = nbis.NbisExtractorSettings(min_quality=0.0, get_center=False, check_fingerprint=False,
                                          compute_nfiq2=False, ppi=None)
    return nbis.new_nbis_extractor(settings)


def nbis_matcher() -> Matcher:
    extractor = _extractor()

    def extract(path: Path) -> Any:
        try:
            return extractor.extract_minutiae_from_image_file(str(path))
        except Exception as exc:  # nbis raises its own error types for undecodable or empty prints
            raise InputError(f"NBIS could not extract {Path(path).name}: {type(exc).__name__}",
                             code="input.peer_extract") from None

    def compare(a: Any, b: Any) -> float:
        return float(a.compare(b))

    return Matcher("nbis", extract, compare)

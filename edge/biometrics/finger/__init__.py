"""Fingerprint biometrics: minutiae extraction, comparison and ISO/ANSI template records.

The public API (called by the daemon, the XFS4IoT bridge and the simulator):

    load_image(path) -> np.ndarray                 8-bit greyscale; InputError on missing/corrupt files
    extract(image, dpi=500) -> FingerTemplate      QualityError quality.finger_* on unusable prints
    prepare(template) -> PreparedTemplate          matcher precomputation, cached on the template
    compare(a, b) -> float                         log10 likelihood-ratio-like score (0 = as likely mated as
                                                   not on the development data); same finger when
                                                   >= DEFAULT_THRESHOLD (FMR 0.1 % on that data)
    compare_many(probe, references) -> np.ndarray
    score_parts(a, b) -> ScoreParts                the raw parts compare() calibrates
    encode_iso / decode_iso                        ISO/IEC 19794-2:2005 records (FINGER_TEMPLATE_FORMAT)
    encode_ansi / decode_ansi                      ANSI INCITS 378-2004 records
    wipe(template)                                 zeroise minutiae and cached precomputation
    warm_up()                                      compile/load the matcher kernels (call at start-up)

May import: as edge.biometrics.
"""
from edge.biometrics.finger.extraction import extract, load_image
from edge.biometrics.finger.iso import FINGER_TEMPLATE_FORMAT, decode_ansi, decode_iso, encode_ansi, encode_iso
from edge.biometrics.finger.matcher import (
    DEFAULT_THRESHOLD,
    PreparedTemplate,
    ScoreParts,
    compare,
    compare_many,
    prepare,
    score_parts,
    warm_up,
    wipe,
)
from edge.biometrics.finger.template import BIFURCATION, ENDING, OTHER, FingerTemplate

__all__ = [
    "BIFURCATION", "DEFAULT_THRESHOLD", "ENDING", "FINGER_TEMPLATE_FORMAT", "OTHER", "FingerTemplate",
    "PreparedTemplate", "ScoreParts",
    "compare", "compare_many", "decode_ansi", "decode_iso", "encode_ansi", "encode_iso", "extract",
    "load_image", "prepare", "score_parts", "warm_up", "wipe",
]

"""Builder of face_embedder_restored.onnx: the face embedder fine-tuned on faces the restoration worked on.

The source is the committed `models/restored/weights.npz` (trained by `python -m models.restored.train`, see its
docstring and models/MODEL_CARD.md "Capture conditions"): the changes fine-tuning made to the float embedder's
weights. The float embedder is built here from its own source (models.build.dlib_resnet, the same dlib .dat) and the
changes are added back (models.restored.weights.apply, which refuses a float graph other than the one trained on),
so the build is a pure function of the .dat and the weights file: the same bytes on every machine.
"""
from __future__ import annotations

from models.build.embedder_int8 import float_embedder_bytes
from models.manifest import Artifact


def build(source: bytes, artifact: Artifact) -> bytes:
    from models.restored.weights import apply, decode

    changes, float_sha256, training = decode(source)
    model = apply(float_embedder_bytes(), changes, float_sha256)
    model.doc_string = (f"{model.doc_string} Fine-tuned on restored faces by biogate models.restored.train "
                        f"({training['data']}).")
    return model.SerializeToString()

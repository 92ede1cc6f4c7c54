"""Builder of the bundled example photos: copied unchanged out of the face_recognition 1.3.0 sdist (MIT)."""
from __future__ import annotations

from models.manifest import Artifact


def build(source: bytes, artifact: Artifact) -> bytes:
    return source

"""The biogate face template: one embedding in a small, versioned binary record.

Layout (integers big-endian; the same bytes in the store, in signed exports and in XFS4IoT
`reservedTemplate1` data):

    magic  b"BGFT"   4 bytes
    version 1        1 byte
    value type 1     1 byte (1 = float32 little-endian)
    dim    128       2 bytes
    model  16 bytes  ASCII name of the embedder, NUL padded ("dlib-resnet-v1n": dlib's ResNet, flip-averaged
                     and scaled to a fixed length, by either build, float or int8, which agree within about 0.03;
                     records of another embedder are refused)
    values dim * 4 bytes

Reading checks every field, so a record from another model or a damaged record is refused
(`InputError` code `input.face_template`) instead of being compared into a meaningless distance.
"""
from __future__ import annotations

import struct

import numpy as np

from edge.errors import InputError

FACE_TEMPLATE_FORMAT = "biogate-face-v1"
FACE_MAGIC = b"BGFT"
FACE_VERSION = 1
FACE_MODEL = "dlib-resnet-v1n"
EMBEDDING_DIM = 128
_HEADER = struct.Struct(">4sBBH16s")


def encode_face_template(embedding: np.ndarray, model: str = FACE_MODEL) -> bytes:
    vec = np.asarray(embedding, dtype="<f4").reshape(-1)
    if vec.size == 0 or vec.size > 4096 or not np.all(np.isfinite(vec)):
        raise InputError("face embedding must be 1..4096 finite values", code="input.face_template")
    name = model.encode("ascii")[:16].ljust(16, b"\0")
    return _HEADER.pack(FACE_MAGIC, FACE_VERSION, 1, vec.size, name) + vec.tobytes()


def decode_face_template(data: bytes, expected_dim: int | None = EMBEDDING_DIM,
                         model: str | None = FACE_MODEL) -> np.ndarray:
    """The embedding in a biogate face template; InputError (code input.face_template) if malformed."""
    def bad(reason: str) -> InputError:
        return InputError(f"not a biogate face template: {reason}", code="input.face_template")

    data = bytes(data)
    if len(data) < _HEADER.size:
        raise bad("too short")
    magic, version, dtype, dim, name = _HEADER.unpack_from(data)
    if magic != FACE_MAGIC:
        raise bad("bad magic")
    if version != FACE_VERSION or dtype != 1:
        raise bad(f"unsupported version {version} / value type {dtype}")
    if dim == 0 or len(data) != _HEADER.size + 4 * dim:
        raise bad("length does not match the dimension")
    if expected_dim is not None and dim != expected_dim:
        raise bad(f"dimension {dim}, expected {expected_dim}")
    if model is not None and name.rstrip(b"\0").decode("ascii", "replace") != model:
        raise bad("made by another embedding model")
    vec = np.frombuffer(data, dtype="<f4", offset=_HEADER.size).astype(np.float32)
    if not np.all(np.isfinite(vec)) or not np.any(vec):
        raise bad("values are not finite or all zero")
    return vec

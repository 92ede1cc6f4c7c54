"""Biometric bytes held in memory only in encrypted form.

The Biometric service keeps imported templates and captured data sealed with AES-256-GCM under a
key generated when the service starts and never written anywhere: a memory dump or a stray log
of the service's state shows ciphertext. Plaintext exists only for the moment of a comparison,
in a bytearray the caller zeroises (`opened` does it for you).

    box = SealedBox()
    sealed = box.seal(template_bytes, label=b"id1")
    with box.opened(sealed, label=b"id1") as plain:   # bytearray, zeroised on exit
        parse(plain)
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.errors import StorageError

_NONCE = 12


class SealedBox:
    def __init__(self) -> None:
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))

    def seal(self, data: bytes | bytearray, label: bytes = b"") -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, bytes(data), label)

    def open(self, sealed: bytes, label: bytes = b"") -> bytearray:
        try:
            return bytearray(self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], label))
        except InvalidTag:
            raise StorageError("sealed biometric data failed authentication", code="storage.tampered") from None

    @contextmanager
    def opened(self, sealed: bytes, label: bytes = b"") -> Iterator[bytearray]:
        plain = self.open(sealed, label)
        try:
            yield plain
        finally:
            plain[:] = bytes(len(plain))

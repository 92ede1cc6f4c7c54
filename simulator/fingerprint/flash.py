"""The virtual module's flash: template library, notepad and settings, kept in a file across restarts.

A real module keeps its library, notepad, password, address and system parameters in flash; they
survive power cycles, `SoftRst` and unplugging. Here they live in one JSON file (or only in memory when
no path is given), rewritten atomically on every change: the new contents go to a temporary file in
the same folder, which is flushed to disk and renamed over the old one, so a crash leaves either the
old or the new library, never half of one.

File format (version 1)::

    {"format": "biogate-virtual-fingerprint-flash", "version": 1, "model": "zfm",
     "capacity": 1000, "template_size": 512,
     "settings": {"password": 0, "address": 4294967295, "security_level": 3, "packet_size_code": 2, "baud_n": 6},
     "notepad": {"<page>": "<hex, 32 bytes>"}, "templates": {"<page>": "<hex, template_size bytes>"}}
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from drivers.fingerprint import protocol as P
from edge.errors import InputError

FORMAT = "biogate-virtual-fingerprint-flash"
VERSION = 1


@dataclass
class Settings:
    """What SetPwd / SetAddr / SetSysPara change and ReadSysPara reports."""

    password: int = P.DEFAULT_PASSWORD
    address: int = P.DEFAULT_ADDRESS
    security_level: int = 3
    packet_size_code: int = 2  # 128 bytes
    baud_n: int = 6  # 57600


class Flash:
    """Non-volatile state of one virtual module. Thread-safe; every change is persisted before returning."""

    def __init__(self, path: str | Path | None, *, model: str, capacity: int, template_size: int,
                 settings: Settings | None = None):
        self.path = Path(path) if path is not None else None
        self.model = model
        self.capacity = capacity
        self.template_size = template_size
        self._lock = threading.RLock()
        self.settings = settings or Settings()
        self.templates: dict[int, bytes] = {}
        self.notepad: dict[int, bytes] = {}
        if self.path is not None and self.path.exists():
            self._load(self.path)

    # -- persistence -------------------------------------------------------------------------------

    def _load(self, path: Path) -> None:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the virtual module's library file {path.name}: {exc}",
                             code="input.library_file", details={"path": str(path)}) from None
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise InputError(f"{path.name} is not a version-{VERSION} virtual fingerprint library",
                             code="input.library_file", details={"path": str(path)})
        if doc.get("model") != self.model or doc.get("template_size") != self.template_size:
            raise InputError(
                f"{path.name} holds a {doc.get('model')} library, not {self.model}",
                code="input.library_file", details={"path": str(path)},
            )
        try:
            self.settings = Settings(**doc.get("settings", {}))
            self.templates = {int(k): bytes.fromhex(v) for k, v in doc.get("templates", {}).items()}
            self.notepad = {int(k): bytes.fromhex(v) for k, v in doc.get("notepad", {}).items()}
        except (TypeError, ValueError) as exc:
            raise InputError(f"{path.name} is corrupt: {exc}", code="input.library_file",
                             details={"path": str(path)}) from None

    def save(self) -> None:
        """Write the whole flash atomically (no-op for an in-memory flash)."""
        if self.path is None:
            return
        with self._lock:
            doc = {
                "format": FORMAT,
                "version": VERSION,
                "model": self.model,
                "capacity": self.capacity,
                "template_size": self.template_size,
                "settings": asdict(self.settings),
                "notepad": {str(k): v.hex() for k, v in sorted(self.notepad.items())},
                "templates": {str(k): v.hex() for k, v in sorted(self.templates.items())},
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(doc, out, separators=(",", ":"))
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            try:  # make the rename itself durable
                dir_fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            except OSError:
                pass

    # -- the library -------------------------------------------------------------------------------

    def store(self, page: int, template: bytes) -> None:
        with self._lock:
            self.templates[page] = bytes(template).ljust(self.template_size, b"\0")[: self.template_size]
            self.save()

    def load(self, page: int) -> bytes | None:
        with self._lock:
            return self.templates.get(page)

    def delete(self, start: int, count: int) -> int:
        """Delete pages [start, start + count); returns how many templates were there."""
        with self._lock:
            gone = [p for p in self.templates if start <= p < start + count]
            for page in gone:
                del self.templates[page]
            self.save()
            return len(gone)

    def empty(self) -> None:
        with self._lock:
            self.templates.clear()
            self.save()

    def pages(self) -> list[int]:
        with self._lock:
            return sorted(self.templates)

    def write_notepad(self, page: int, data: bytes) -> None:
        with self._lock:
            self.notepad[page] = bytes(data).ljust(P.NOTEPAD_PAGE_SIZE, b"\0")[: P.NOTEPAD_PAGE_SIZE]
            self.save()

    def read_notepad(self, page: int) -> bytes:
        with self._lock:
            return self.notepad.get(page, bytes(P.NOTEPAD_PAGE_SIZE))

    def update_settings(self, **changes: int) -> None:
        with self._lock:
            for key, value in changes.items():
                if not hasattr(self.settings, key):
                    raise AttributeError(key)
                setattr(self.settings, key, int(value))
            self.save()

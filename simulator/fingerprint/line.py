"""The serial cable of a virtual device: a pseudo-terminal whose far end a client opens like a serial port.

    line = PtyLine(stable_name="ttyZFM")   # `port`: a link that survives replugs, as /dev/serial/by-id/...
    line.plug()                            # a fresh pseudo-terminal behind `port`
    data = line.read(0.02)                 # what the client sent (b"": nothing yet; None: no line)
    line.write(frame)                      # False when unplugged, stopped, or the client stopped reading
    line.hang_up()                         # the cable is pulled: the client's handle fails, `port` vanishes
    line.close()                           # for good: the link's folder goes too

Only bytes and the cable live here; what the bytes mean is the device's business
(`simulator.fingerprint.device`), what goes wrong on the way is the faults' (`...faults`). The virtual
module and the driver tests' scripted responder (`tests/drivers/fingerprint_responder.py`) both use it.

Thread safety: one thread may read and write while another hangs up or replugs; a descriptor is
never closed under a read or a write in progress (the line's lock covers both).
"""
from __future__ import annotations

import array
import fcntl
import logging
import os
import select
import shutil
import tempfile
import threading
import time
import tty
from pathlib import Path

from drivers.deadline import Deadline

log = logging.getLogger(__name__)

_TCGETS2 = 0x802C542A  # Linux ioctl: termios2, which carries the line speed as a number
_WRITABLE_POLL = 0.05  # seconds a stalled write waits for the client to read before looking again


class PtyLine:
    """One pseudo-terminal pair: this side reads and writes raw bytes, a client opens `port`.

    `stable_name`: when given, `port` is a symbolic link of that name in a private folder, pointing at
    the current pseudo-terminal (it is replaced atomically on replug, and removed on hang-up); when
    omitted, `port` is the pseudo-terminal itself. `stop`: an event that cuts a write short (the owner
    shutting down). `stall_timeout`: seconds a write waits for a client that does not read.
    """

    def __init__(self, stable_name: str | None = None, *, stop: threading.Event | None = None,
                 stall_timeout: float = 3.0):
        self.stable_name = stable_name
        self.stall_timeout = stall_timeout
        self._stop = stop or threading.Event()
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None  # kept open: the client's line settings are read from it
        self.device: str | None = None  # the current pseudo-terminal
        self._link_dir: Path | None = None
        self._link: Path | None = None

    @property
    def port(self) -> str | None:
        """What a client opens: the stable link, or the pseudo-terminal itself."""
        if self.stable_name is None:
            return self.device
        return str(self._link) if self._link is not None else None

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def plug(self) -> None:
        """A fresh pseudo-terminal (raw mode, this side non-blocking); the link now names it."""
        self.hang_up()
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        device = os.ttyname(slave)
        if self.stable_name is not None:
            if self._link_dir is None:
                self._link_dir = Path(tempfile.mkdtemp(prefix="biogate-pty-"))
                self._link = self._link_dir / self.stable_name
            tmp = self._link_dir / f".link-{os.getpid()}-{threading.get_ident()}"
            if tmp.is_symlink():
                tmp.unlink()
            os.symlink(device, tmp)
            os.replace(tmp, self._link)  # atomic: the port path always names a live pseudo-terminal
        with self._lock:
            self._master, self._slave, self.device = master, slave, device

    def hang_up(self) -> None:
        """Pull the cable: the link goes first (nobody opens a terminal being torn down), then both ends."""
        if self._link is not None:
            try:
                os.unlink(self._link)
            except OSError:
                pass
        with self._lock:
            for fd in (self._master, self._slave):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self._master = self._slave = None
            self.device = None

    def close(self) -> None:
        """Hang up for good and remove the link's folder."""
        self.hang_up()
        if self._link_dir is not None:
            shutil.rmtree(self._link_dir, ignore_errors=True)

    def read(self, wait: float) -> bytes | None:
        """Bytes the client sent, waiting up to `wait` s for the first: b"" when none came, None when
        there is no line to read (unplugged, or it broke under the read)."""
        master = self._master
        if master is None:
            return None
        try:
            ready, _, _ = select.select([master], [], [], wait)
        except (OSError, ValueError):
            return None  # closed under us by a hang-up
        if not ready:
            return b""
        with self._lock:
            if self._master != master:
                return None  # replugged between the select and the read
            try:
                return os.read(master, 4096)
            except (BlockingIOError, InterruptedError):
                return b""
            except OSError:
                return b""  # EIO: no client has the port open; the line itself is still there

    def write(self, data: bytes, *, baud: int | None = None) -> bool:
        """Write all of `data`; False when unplugged, stopped, or the client stopped reading for
        `stall_timeout` s (the rest is dropped). `baud`: pace the bytes at that line speed."""
        view = memoryview(bytes(data))
        stalled = Deadline(self.stall_timeout)
        while view:
            if self._stop.is_set():
                return False
            with self._lock:
                master = self._master
                if master is None:
                    return False
                try:
                    n = os.write(master, view)
                except BlockingIOError:
                    n = 0
                except OSError:
                    return False
            if n:
                if baud:
                    time.sleep(n * 10 / baud)  # 10 bits a byte on the wire: 8N1
                view = view[n:]
                stalled.restart()
                continue
            if stalled.expired():
                log.warning("pseudo-terminal line: the client stopped reading; %d bytes dropped", len(view))
                return False
            try:
                select.select([], [master], [], _WRITABLE_POLL)
            except (OSError, ValueError):
                pass
        return True

    def client_baud(self) -> int | None:
        """The speed the client set on its end (Linux termios2), or None when it cannot be read."""
        slave = self._slave
        if slave is None:
            return None
        buf = array.array("I", [0] * 16)
        try:
            fcntl.ioctl(slave, _TCGETS2, buf)
        except OSError:
            return None
        return int(buf[9]) or None  # c_ispeed

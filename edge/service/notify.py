"""systemd's notification protocol (sd_notify), for `Type=notify` units with a watchdog (edge/systemd/).

    notifier = Notifier.from_environment()       # None outside systemd (no NOTIFY_SOCKET)
    notifier.ready(); notifier.keep_alive(is_healthy)    # READY=1, then WATCHDOG=1 while is_healthy() holds

The watchdog is pinged at half its interval and only while the service's own probe passes, so a daemon whose
store or event loop hangs stops pinging and systemd restarts it.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Callable

log = logging.getLogger("biogate.notify")


class Notifier:
    def __init__(self, address: str, watchdog_s: float | None):
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_s = watchdog_s
        self._stop = threading.Event()

    @classmethod
    def from_environment(cls, env: dict | None = None) -> "Notifier | None":
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET")
        if not address:
            return None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        watchdog = int(usec) / 1e6 if usec and usec.isdigit() and (not pid or pid == str(os.getpid())) else None
        return cls(address, watchdog)

    def send(self, message: str) -> None:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.sendto(message.encode(), self.address)
        except OSError as exc:   # the supervisor went away: nothing to tell, the service goes on
            log.warning("sd_notify failed", extra={"error": type(exc).__name__})

    def ready(self, status: str = "") -> None:
        self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> None:
        self._stop.set()
        self.send("STOPPING=1")

    def keep_alive(self, is_healthy: Callable[[], bool]) -> None:
        """Ping the watchdog at half its interval while `is_healthy()` is true (no watchdog: nothing)."""
        if not self.watchdog_s:
            return

        def loop() -> None:
            while not self._stop.wait(self.watchdog_s / 2):
                try:
                    healthy = is_healthy()
                except Exception:
                    healthy = False
                if healthy:
                    self.send("WATCHDOG=1")
                else:
                    log.warning("not pinging the watchdog: the health probe failed")
        threading.Thread(target=loop, name="sd-watchdog", daemon=True).start()

"""The control service's event log: everything the simulated devices did or were told, in order.

    log = EventLog()
    log.add("terminal", "prompt", action="blink")      # -> {"seq": 1, "t": 1733..., "device": ..., "event": ...}
    log.since(0, device="terminal")                    # the events after seq 0 (optionally of one device)
    queue = log.subscribe(loop)                        # an asyncio.Queue fed from any thread (WebSocket)

Events carry names and counts, never a biometric sample (no frames, no prints, no templates).
"""
from __future__ import annotations

import asyncio
import threading
import time

MAX_EVENTS = 10_000  # the oldest are dropped beyond this: the log is for watching, not for keeping


class EventLog:
    def __init__(self, clock=time.time):
        self._lock = threading.Lock()
        self._events: list[dict] = []
        self._seq = 0
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = []
        self.clock = clock

    def add(self, device: str, event: str, **details) -> dict:
        with self._lock:
            self._seq += 1
            entry = {"seq": self._seq, "t": self.clock(), "device": device, "event": event, **details}
            self._events.append(entry)
            del self._events[:-MAX_EVENTS]
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, entry)
            except RuntimeError:  # that subscriber's loop has closed
                self.unsubscribe(queue)
        return entry

    def since(self, seq: int = 0, device: str | None = None, event: str | None = None) -> list[dict]:
        with self._lock:
            return [dict(e) for e in self._events
                    if e["seq"] > seq and (device is None or e["device"] == device)
                    and (event is None or e["event"] == event)]

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._seq

    def subscribe(self, loop: asyncio.AbstractEventLoop) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        with self._lock:
            self._subscribers.append((loop, queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        with self._lock:
            self._subscribers = [(lp, q) for lp, q in self._subscribers if q is not queue]

"""One deadline helper for every wait in the drivers (the idea of pyserial's `serialutil.Timeout`).

    deadline = Deadline(2.0)               # two seconds from now
    while not deadline.expired():          # time_left(): how long one blocking call may still take
        if got_something():
            deadline.restart()             # two seconds from now again (a gap between packets)

- `Deadline(0)` has expired from the start: the caller makes one non-blocking try, then gives up.
  Zero means zero, never "the default". A negative duration is a time already past: the same.
- `Deadline(None)` never expires.
- `within=outer` bounds a deadline by another one (the silence allowed between two packets inside
  the budget of a whole transfer): it has expired as soon as either has.
- `extend(s)` moves the end to at least `s` from now, never earlier (a reply that keeps coming).

The clock is injectable, so code that waits can be tested without waiting.
"""
from __future__ import annotations

import math
import time
from typing import Callable


class Deadline:
    """A moment ahead on a monotonic clock: time left, expired(), restart(), extend()."""

    def __init__(
        self,
        seconds: float | None,
        *,
        within: "Deadline | None" = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._clock = clock
        self.within = within
        self.seconds = None if seconds is None else max(0.0, float(seconds))
        self._end: float | None = None
        self.restart()

    def restart(self) -> None:
        """Start again from now, for the same duration."""
        self._end = None if self.seconds is None else self._clock() + self.seconds

    def extend(self, seconds: float) -> None:
        """End no earlier than `seconds` from now (an end already later stays); `within` still bounds it."""
        if self._end is not None:
            self._end = max(self._end, self._clock() + max(0.0, float(seconds)))

    def time_left(self) -> float:
        """Seconds until the end (0.0 once expired; `math.inf` for a deadline that never ends)."""
        own = math.inf if self._end is None else max(0.0, self._end - self._clock())
        return own if self.within is None else min(own, self.within.time_left())

    def expired(self) -> bool:
        return self.time_left() <= 0.0

    def __repr__(self) -> str:
        return f"Deadline({self.seconds!r}, time_left={self.time_left():.3f})"

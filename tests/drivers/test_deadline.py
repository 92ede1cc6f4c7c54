"""`drivers.deadline.Deadline` on a hand-driven clock: no test here waits."""
from __future__ import annotations

import math

from drivers.deadline import Deadline


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_time_left_runs_down_and_expires():
    clock = Clock()
    deadline = Deadline(2.0, clock=clock)
    assert deadline.time_left() == 2.0 and not deadline.expired()
    clock.now += 1.5
    assert math.isclose(deadline.time_left(), 0.5)
    clock.now += 0.5
    assert deadline.time_left() == 0.0 and deadline.expired()
    clock.now += 10
    assert deadline.time_left() == 0.0  # never negative


def test_zero_means_zero_and_none_means_never():
    clock = Clock()
    assert Deadline(0, clock=clock).expired()  # one non-blocking try, not "the default"
    assert Deadline(-3, clock=clock).expired()  # a time already past
    endless = Deadline(None, clock=clock)
    clock.now += 1e9
    assert not endless.expired() and endless.time_left() == math.inf


def test_restart_and_extend():
    clock = Clock()
    gap = Deadline(1.0, clock=clock)
    clock.now += 0.9
    gap.restart()  # something arrived: a full second again
    clock.now += 0.9
    assert not gap.expired()
    gap.extend(0.05)  # it already ends later than 0.05 s from now: unchanged
    assert math.isclose(gap.time_left(), 0.1)
    gap.extend(2.0)
    assert math.isclose(gap.time_left(), 2.0)


def test_within_bounds_an_inner_deadline_by_an_outer_one():
    clock = Clock()
    transfer = Deadline(3.0, clock=clock)
    gap = Deadline(1.0, within=transfer, clock=clock)
    for _ in range(2):
        clock.now += 0.9
        gap.restart()
        assert not gap.expired()
    clock.now += 0.9  # 2.7 s into the transfer: the gap has 0.1 s left of its own, the transfer 0.3 s
    gap.restart()
    assert math.isclose(gap.time_left(), 0.3)  # the transfer's budget, not a fresh second
    gap.extend(5.0)
    assert math.isclose(gap.time_left(), 0.3)
    clock.now += 0.3
    assert gap.expired() and transfer.expired()

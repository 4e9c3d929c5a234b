"""Time as the pipeline sees it: a monotonic clock and a way to wait on it.

The clock is passed in, never read from a global, so that tests can replace it with
:class:`ManualClock` and a 30-second throttle pause takes milliseconds.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """What the pipeline needs of time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Wait until ``event`` is set or ``timeout`` seconds of this clock passed.

        Returns whether the event is set.
        """
        ...


class SystemClock:
    """The real clock."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        return event.wait(timeout)

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that moves only when told to, for tests.

    ``advance(30)`` makes every ``wait`` whose deadline has passed return at once, so code that
    pauses for 30 s resumes in milliseconds of real time. Waiters poll their event every
    ``poll_interval`` real seconds, so a set event is seen promptly.
    """

    def __init__(self, start: float = 1_000.0, *, poll_interval: float = 0.001) -> None:
        self._now = start
        self._poll = poll_interval
        self._cond = threading.Condition()

    def monotonic(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` and wake every waiter."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back, got advance({seconds})")
        with self._cond:
            self._now += seconds
            self._cond.notify_all()

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        deadline = None if timeout is None else self._now + timeout
        with self._cond:
            while not event.is_set() and (deadline is None or self._now < deadline):
                self._cond.wait(self._poll)
        return event.is_set()

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now:.3f})"

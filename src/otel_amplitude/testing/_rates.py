"""Rate bookkeeping on an explicit clock reading: a sliding-window counter and a request spacing.

Both take ``now`` as an argument instead of reading a clock, so that a test drives them with a
:class:`~otel_amplitude._clock.ManualClock` and a 30-second window slides in no real time. They
hold no lock: the server calls them under its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

__all__ = ["RequestSpacing", "SlidingWindowCounter"]


class SlidingWindowCounter:
    """How many times each key was counted during the last ``window`` seconds."""

    def __init__(self, window: float) -> None:
        self._window = window
        self._marks: dict[Hashable, deque[tuple[float, int]]] = {}
        self._totals: dict[Hashable, int] = {}

    def add(self, key: Hashable, now: float, count: int = 1) -> int:
        """Count ``count`` occurrences of ``key`` at ``now``; return its count in the window."""
        self._prune(key, now)
        self._marks.setdefault(key, deque()).append((now, count))
        total = self._totals.get(key, 0) + count
        self._totals[key] = total
        return total

    def count(self, key: Hashable, now: float) -> int:
        """The occurrences of ``key`` less than ``window`` seconds before ``now``."""
        self._prune(key, now)
        return self._totals.get(key, 0)

    def clear(self) -> None:
        """Forget everything counted."""
        self._marks.clear()
        self._totals.clear()

    def _prune(self, key: Hashable, now: float) -> None:
        marks = self._marks.get(key)
        if marks is None:
            return
        horizon = now - self._window
        while marks and marks[0][0] <= horizon:
            self._totals[key] -= marks.popleft()[1]
        if not marks:
            del self._marks[key]
            del self._totals[key]


class RequestSpacing:
    """Admit at most one request per key every ``interval`` seconds (refused ones do not count)."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._last: dict[Hashable, float] = {}

    def admit(self, key: Hashable, now: float) -> bool:
        """True, and remember ``now``, if the last admitted request of ``key`` is old enough."""
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            return False
        self._last[key] = now
        return True

    def clear(self) -> None:
        """Forget every admitted request."""
        self._last.clear()

"""Retry timing as pure values: exponential backoff with full jitter, and throttle pauses."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["THROTTLE_PAUSE_SECONDS", "Backoff", "throttle_pause"]

#: How long Amplitude asks a throttled user or device to wait (amplitude-api.md §3, 429).
THROTTLE_PAUSE_SECONDS = 30.0

#: The longest pause a Retry-After header may impose; larger values are taken as this.
MAX_PAUSE_SECONDS = 3_600.0


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff, full jitter: retry n waits uniform(0, min(cap, base * 2**(n-1)))."""

    base: float = 0.5
    cap: float = 30.0

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the wait before retry number ``attempt`` (1-based)."""
        if attempt < 1:
            return 0.0
        return min(self.cap, self.base * 2.0 ** min(attempt - 1, 62))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """A jittered wait before retry number ``attempt``, spreading a fleet's retries apart."""
        return rng.uniform(0.0, self.ceiling(attempt))


def throttle_pause(retry_after: str | None) -> float:
    """Seconds to pause a throttled id: 30 s, or longer when a Retry-After header says so."""
    if retry_after:
        try:
            seconds = float(retry_after.strip())
        except ValueError:
            return THROTTLE_PAUSE_SECONDS
        if not math.isnan(seconds):
            return min(max(seconds, THROTTLE_PAUSE_SECONDS), MAX_PAUSE_SECONDS)
    return THROTTLE_PAUSE_SECONDS

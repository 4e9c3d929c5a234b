"""Backoff and throttle pauses are pure values."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from otel_amplitude._backoff import THROTTLE_PAUSE_SECONDS, Backoff, throttle_pause


def test_ceiling_doubles_from_the_base_up_to_the_cap():
    backoff = Backoff(base=0.5, cap=30.0)
    assert [backoff.ceiling(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


@given(st.integers(min_value=1, max_value=10_000), st.integers())
def test_full_jitter_stays_between_zero_and_the_ceiling(attempt, seed):
    backoff = Backoff()
    delay = backoff.delay(attempt, random.Random(seed))
    assert 0.0 <= delay <= backoff.ceiling(attempt)


def test_jitter_spreads_retries_apart():
    backoff = Backoff()
    rng = random.Random(1)
    delays = {round(backoff.delay(6, rng), 3) for _ in range(50)}
    assert len(delays) > 40


def test_throttle_pause_is_30_seconds_unless_retry_after_says_longer():
    assert throttle_pause(None) == THROTTLE_PAUSE_SECONDS == 30.0
    assert throttle_pause("90") == 90.0
    assert throttle_pause("1") == 30.0
    assert throttle_pause("soon") == 30.0
    assert throttle_pause("1e9") == 3600.0

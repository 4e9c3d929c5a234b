"""The delivery soak at full size: 50,000 events, 500 devices, 20 % of requests failing,
3 users throttled."""

from __future__ import annotations

from benchmarks.soak import run_soak


def test_every_event_arrives_exactly_once_in_order_through_faults_and_throttling():
    result = run_soak(events=50_000, users=500, fault_rate=0.2, throttled=3)

    assert result.exactly_once, result
    assert result.in_order, result
    assert result.conserved, result
    # The faults really happened: about a fifth of requests failed, and the throttled users were
    # refused before they were let through.
    assert result.failed_requests / result.requests > 0.1
    assert result.throttled_requests >= 2
    assert result.duplicates_absorbed > 0

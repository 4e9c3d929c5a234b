"""``health()``: a pure verdict over two stats snapshots, each rule on its own."""

from __future__ import annotations

from typing import Any, cast

import pytest

from otel_amplitude._health import health
from otel_amplitude._stats import Stats


def snapshot(**changes: Any) -> Stats:
    """A quiet pipeline's stats, with ``changes``."""
    stats: dict[str, Any] = {
        "submitted": 0,
        "accepted": 0,
        "rejected": 0,
        "dropped": 0,
        "dead_lettered": 0,
        "buffered": 0,
        "in_flight": 0,
        "retried": 0,
        "throttled": 0,
        "paused_partitions": 0,
        "rejected_by_reason": {},
        "dropped_by_reason": {},
        "dead_lettered_by_reason": {},
        "requests": 0,
        "responses_by_status": {},
        "destination_paused": False,
        "latency_ms_mean": 0.0,
        "latency_ms_max": 0.0,
    }
    stats.update(changes)
    return cast(Stats, stats)


def test_a_quiet_client_is_ok():
    verdict = health(snapshot())

    assert verdict.status == "ok"
    assert verdict.reasons == ()
    assert verdict.reason == "no problem seen since the client started"


def test_successful_delivery_is_ok():
    current = snapshot(submitted=10, accepted=10, requests=1, responses_by_status={"200": 1})

    assert health(current, snapshot(), seconds=60).status == "ok"


def test_a_paused_destination_is_failing_and_names_the_settings_to_check():
    verdict = health(snapshot(destination_paused=True, buffered=7, submitted=7))

    assert verdict.status == "failing"
    assert "7 events are kept" in verdict.reason
    assert "AMPLITUDE_API_KEY" in verdict.reason
    assert "AMPLITUDE_SERVER_ZONE" in verdict.reason


def test_dead_letters_in_the_window_are_failing():
    before = snapshot(dead_lettered=2, dead_lettered_by_reason={"retries_exhausted": 2})
    after = snapshot(dead_lettered=5, dead_lettered_by_reason={"retries_exhausted": 5})

    verdict = health(after, before, seconds=60)

    assert verdict.status == "failing"
    assert "3 events dead-lettered in the last 60 s (retries_exhausted: 3)" in verdict.reason


def test_dead_letters_before_the_window_are_forgotten():
    old = snapshot(dead_lettered=2, dead_lettered_by_reason={"retries_exhausted": 2})

    assert health(old, old, seconds=60).status == "ok"


@pytest.mark.parametrize(
    "outcome", ["500", "502", "503", "504", "408", "timeout", "connection_reset"]
)
def test_failed_requests_with_no_success_are_failing(outcome: str):
    before = snapshot(responses_by_status={"200": 3, outcome: 1})
    after = snapshot(responses_by_status={"200": 3, outcome: 5}, buffered=10)

    verdict = health(after, before, seconds=60)

    assert verdict.status == "failing"
    assert f"4 requests failed in the last 60 s ({outcome}: 4) and none succeeded" in (
        verdict.reason
    )


def test_failed_requests_among_successes_are_degraded():
    verdict = health(snapshot(responses_by_status={"200": 9, "503": 1}), snapshot(), seconds=30)

    assert verdict.status == "degraded"
    assert "1 requests failed in the last 30 s (503: 1); their events are being retried" in (
        verdict.reason
    )


def test_a_throttled_id_is_degraded():
    verdict = health(snapshot(paused_partitions=2, responses_by_status={"429": 1}))

    assert verdict.status == "degraded"
    assert "2 user or device ids are throttled" in verdict.reason


def test_429_rejections_and_413_are_not_request_failures():
    verdict = health(snapshot(responses_by_status={"429": 3, "400": 1, "413": 2}))

    assert verdict.status == "ok"


@pytest.mark.parametrize("reason", ["overflow", "daily_quota", "error", "consent_unavailable"])
def test_events_lost_by_the_pipeline_are_degraded(reason: str):
    verdict = health(snapshot(dropped=5, dropped_by_reason={reason: 5}), snapshot(), seconds=60)

    assert verdict.status == "degraded"
    assert f"5 events lost in the last 60 s ({reason}: 5)" in verdict.reason


@pytest.mark.parametrize(
    "reason",
    ["no_identity", "invalid", "not_an_event", "opted_out", "deleted", "no_consent", "disabled"],
)
def test_drops_that_are_decisions_do_not_affect_health(reason: str):
    assert health(snapshot(dropped=5, dropped_by_reason={reason: 5})).status == "ok"


def test_rejected_events_are_degraded():
    current = snapshot(rejected=1, rejected_by_reason={"invalid_field:time": 1})

    verdict = health(current)

    assert verdict.status == "degraded"
    assert "1 events rejected by Amplitude since the client started (invalid_field:time: 1)" in (
        verdict.reason
    )


def test_resent_events_are_degraded():
    verdict = health(snapshot(retried=12), snapshot(retried=2), seconds=60)

    assert verdict.status == "degraded"
    assert "10 events sent again in the last 60 s" in verdict.reason


def test_every_finding_is_reported_worst_first():
    current = snapshot(
        destination_paused=True,
        paused_partitions=1,
        dropped_by_reason={"overflow": 1},
        dropped=1,
    )

    verdict = health(current)

    assert verdict.status == "failing"
    assert len(verdict.reasons) == 3
    assert "refused the API key" in verdict.reasons[0]
    assert verdict.reason == "; ".join(verdict.reasons)

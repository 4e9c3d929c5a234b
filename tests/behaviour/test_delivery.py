"""Delivery over real HTTP against the local Amplitude-compatible server, with faults injected.

What is asserted is what users rely on: what arrives at the server, in what order, exactly once,
and that the client's counters account for every event.
"""

from __future__ import annotations

import logging
import time

import pytest

from otel_amplitude import Client
from otel_amplitude._event import Event
from otel_amplitude.testing import AmplitudeServer, Fault, ManualClock

from .conftest import MakeClient, assert_conserved, assert_in_order, drive


def track_many(client: Client, users: int, per_user: int, *, prefix: str = "user") -> list[str]:
    ids = []
    for seq in range(per_user):
        for u in range(users):
            ids.append(
                client.track(
                    "page_viewed",
                    user_id=f"{prefix}-{u:04d}",
                    event_properties={"seq": seq},
                )
            )
    return ids


def test_accepted_events_arrive_once_and_are_counted(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client()
    ids = track_many(client, users=10, per_user=10)

    assert client.flush(timeout=5)

    assert sorted(e["insert_id"] for e in server.events) == sorted(ids)
    stats = client.stats()
    assert stats["accepted"] == stats["submitted"] == 100
    assert stats["buffered"] == stats["in_flight"] == 0
    assert stats["requests"] == len(server.requests)
    assert_in_order(server.events)


def test_events_are_sent_after_the_flush_interval_without_an_explicit_flush(
    server: AmplitudeServer, make_client: MakeClient, clock: ManualClock
):
    client = make_client(flush_interval_ms=1000)
    client.track("signed_up", user_id="user-00001")

    clock.advance(1.01)

    assert server.wait_for_events(1, timeout=5)


def test_a_full_batch_is_sent_without_waiting_for_the_interval(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client(flush_interval_ms=3_600_000, flush_max_events=50)
    track_many(client, users=50, per_user=1)

    assert server.wait_for_events(50, timeout=5)


def test_400_rejects_only_the_invalid_event_and_delivers_the_rest(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client()
    client.track("ok", user_id="user-00001", event_properties={"seq": 0})
    # An event Amplitude refuses although it passed local checks (built by hand: a float time).
    client.submit(Event("bad", "user-00002", None, 1.5, "bad-insert-id"))  # type: ignore[arg-type]
    client.track("ok", user_id="user-00003", event_properties={"seq": 0})

    assert client.flush(timeout=5)

    assert sorted(e["user_id"] for e in server.events) == ["user-00001", "user-00003"]
    stats = client.stats()
    assert stats["rejected_by_reason"] == {"invalid_field:time": 1}
    assert stats["accepted"] == 2


def test_invalid_api_key_pauses_delivery_keeps_the_events_and_logs_one_error(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
):
    with AmplitudeServer(api_keys=["the-right-key"]) as strict:
        client = make_client(server_url=strict.url, api_key="the-wrong-key-42")
        caplog.set_level(logging.WARNING, logger="otel_amplitude")
        track_many(client, users=5, per_user=2)

        assert not client.flush(timeout=0.5)

        stats = client.stats()
        assert stats["destination_paused"]
        assert stats["buffered"] == 10
        assert stats["rejected"] == stats["dropped"] == 0
        assert strict.events == []
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1
        assert "AMPLITUDE_API_KEY" in errors[0].getMessage()
        assert "the-wrong-key-42" not in caplog.text
        client.shutdown(timeout=0.2)
        assert client.stats()["dead_lettered_by_reason"] == {"shutdown": 10}


def test_403_is_not_retried(server: AmplitudeServer, make_client: MakeClient):
    client = make_client()
    server.faults.script(Fault(403, body=b'{"code":403,"error":"Forbidden"}'))
    track_many(client, users=3, per_user=1)

    assert client.flush(timeout=5)

    assert len(server.requests) == 1
    assert client.stats()["rejected_by_reason"] == {"forbidden": 3}


def test_413_bisects_deterministically_and_a_split_is_not_a_retry(make_client: MakeClient):
    sizes = []
    for _ in range(2):
        with AmplitudeServer() as small:
            small.faults.max_events = 10
            client = make_client(server_url=small.url, flush_max_events=100, senders=1)
            track_many(client, users=4, per_user=25)  # one request of 100 events
            assert client.flush(timeout=10)
            assert len(small.events) == 100
            assert small.duplicates == 0
            assert_in_order(small.events)
            assert client.stats()["retried"] == 0
            sizes.append([(r.status, r.events_count) for r in small.requests])
    assert sizes[0] == sizes[1]
    assert sizes[0][:3] == [(413, 100), (413, 50), (413, 25)]


def test_a_single_event_too_large_to_send_is_rejected(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client()
    server.faults.max_request_bytes = 300
    client.track("big", user_id="user-00001", event_properties={"text": "x" * 1000})
    client.track("small", user_id="user-00002")

    assert client.flush(timeout=5)

    assert [e["event_type"] for e in server.events] == ["small"]
    assert client.stats()["rejected_by_reason"] == {"too_large": 1}


def test_throttled_user_is_paused_30_s_while_50_other_users_keep_flowing(
    server: AmplitudeServer, make_client: MakeClient, clock: ManualClock
):
    client = make_client()
    server.faults.throttle(users=["user-throttled"])
    for seq in range(3):
        client.track("click", user_id="user-throttled", event_properties={"seq": seq})
    track_many(client, users=50, per_user=2)

    assert not client.flush(timeout=1)  # the throttled user's events wait out the pause
    assert len(server.events) == 100
    assert client.stats()["paused_partitions"] == 1
    first_429s = sum(1 for r in server.requests if r.status == 429)

    # 29 s later the others still flow at once, and the throttled user's new events wait too.
    clock.advance(29)
    client.track("click", user_id="user-throttled", event_properties={"seq": 3})
    track_many(client, users=50, per_user=1, prefix="later")
    assert not client.flush(timeout=1)
    assert len(server.events) == 150
    assert sum(1 for r in server.requests if r.status == 429) == first_429s
    assert all(e["user_id"] != "user-throttled" for e in server.events)

    server.faults.unthrottle()
    clock.advance(1.5)
    assert client.flush(timeout=5)
    theirs = [e for e in server.events if e["user_id"] == "user-throttled"]
    assert [e["event_properties"]["seq"] for e in theirs] == [0, 1, 2, 3]
    assert server.duplicates == 0 or len(server.events) == 154
    assert len(server.events) == 154
    assert client.stats()["throttled"] >= 3


def test_events_over_the_daily_quota_are_dropped_and_counted(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client()
    server.faults.daily_quota(users=["user-spammy"])
    client.track("a", user_id="user-spammy")
    client.track("b", user_id="user-fine-1")

    assert client.flush(timeout=5)

    assert [e["user_id"] for e in server.events] == ["user-fine-1"]
    assert client.stats()["dropped_by_reason"] == {"daily_quota": 1}


@pytest.mark.parametrize(
    "fault",
    [
        Fault(500),
        Fault(502, body=b"<html>Bad Gateway</html>", content_type="text/html"),
        Fault(503),
        Fault(504, body=b""),
        Fault(reset=True),
        Fault(reset=True, ingest=True),
        Fault(500, ingest=True),
    ],
    ids=["500", "502-html", "503", "504-empty", "reset", "reset-after-ingest", "accepted-then-500"],
)
def test_failures_are_retried_until_delivered_exactly_once(
    server: AmplitudeServer, make_client: MakeClient, clock: ManualClock, fault: Fault
):
    client = make_client()
    server.faults.script(fault, fault)
    ids = track_many(client, users=5, per_user=4)

    drive(client, clock, lambda: client.stats()["accepted"] == 20)

    assert sorted(e["insert_id"] for e in server.events) == sorted(ids)
    assert_in_order(server.events)
    stats = client.stats()
    assert stats["retried"] >= 20
    if fault.ingest:
        assert server.duplicates >= 20  # the resend was absorbed by insert_id deduplication


def test_a_timeout_is_retried_and_deduplicated(
    server: AmplitudeServer, make_client: MakeClient, clock: ManualClock
):
    client = make_client(timeout_ms=200)
    server.faults.script(Fault(200, delay=0.6, ingest=True))
    ids = track_many(client, users=2, per_user=3)

    drive(client, clock, lambda: client.stats()["accepted"] == 6)

    assert sorted(e["insert_id"] for e in server.events) == sorted(ids)
    assert client.stats()["responses_by_status"].get("timeout", 0) >= 1


def test_retry_budget_exhausted_dead_letters_and_hands_events_to_the_callback(
    server: AmplitudeServer, make_client: MakeClient, clock: ManualClock
):
    dead: list[tuple[list[dict[str, object]], str]] = []
    client = make_client(
        max_retries=2, on_dead_letter=lambda events, reason: dead.append((events, reason))
    )
    server.faults.script(*[Fault(503)] * 3)
    client.track("doomed", user_id="user-00001")

    drive(client, clock, lambda: client.stats()["dead_lettered"] == 1)

    assert server.events == []
    assert len(server.requests) == 3  # the first try and 2 retries
    assert client.stats()["dead_lettered_by_reason"] == {"retries_exhausted": 1}
    assert client.flush(timeout=2)
    assert [(len(events), reason) for events, reason in dead] == [(1, "retries_exhausted")]
    assert dead[0][0][0]["event_type"] == "doomed"


def test_drop_newest_keeps_the_first_events_when_the_buffer_is_full(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client(
        max_buffered_events=10, overflow="drop_newest", flush_interval_ms=3_600_000
    )
    ids = [client.track("e", user_id=f"user-{n:04d}") for n in range(15)]

    assert client.flush(timeout=5)

    assert sorted(e["insert_id"] for e in server.events) == sorted(ids[:10])
    assert client.stats()["dropped_by_reason"] == {"overflow": 5}


def test_drop_oldest_keeps_the_latest_events_when_the_buffer_is_full(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client(
        max_buffered_events=10, overflow="drop_oldest", flush_interval_ms=3_600_000
    )
    ids = [client.track("e", user_id=f"user-{n:04d}") for n in range(15)]

    assert client.flush(timeout=5)

    assert sorted(e["insert_id"] for e in server.events) == sorted(ids[5:])
    assert client.stats()["dropped_by_reason"] == {"overflow": 5}


def test_one_users_partition_capacity_does_not_limit_other_users(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client(partition_capacity=3, flush_interval_ms=3_600_000)
    for seq in range(5):
        client.track("e", user_id="user-noisy", event_properties={"seq": seq})
    client.track("e", user_id="user-quiet", event_properties={"seq": 0})

    assert client.flush(timeout=5)

    noisy = [e["event_properties"]["seq"] for e in server.events if e["user_id"] == "user-noisy"]
    assert noisy == [0, 1, 2]
    assert [e for e in server.events if e["user_id"] == "user-quiet"]
    assert client.stats()["dropped_by_reason"] == {"overflow": 2}


def test_disabled_client_accepts_and_discards_counted(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client(enabled=False, api_key=None)
    client.track("e", user_id="user-00001")

    assert client.flush(timeout=2)

    assert server.requests == []
    assert client.stats()["dropped_by_reason"] == {"disabled": 1}


def test_flush_returns_false_at_its_deadline_and_shutdown_dead_letters_what_is_left(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client(timeout_ms=5000)
    server.faults.delay_seconds = 2.0
    track_many(client, users=3, per_user=1)

    started = time.monotonic()
    assert not client.flush(timeout=0.3)
    assert time.monotonic() - started < 1.0
    client.shutdown(timeout=0.3)
    assert time.monotonic() - started < 2.0

    stats = client.stats()
    assert stats["dead_lettered_by_reason"] == {"shutdown": 3}
    assert_conserved(stats)
    client.track("late", user_id="user-00001")
    assert client.stats()["dropped_by_reason"] == {"shutdown": 1}


def test_submit_never_waits_for_a_slow_server(server: AmplitudeServer, make_client: MakeClient):
    client = make_client(flush_max_events=10, timeout_ms=5000)
    server.faults.delay_seconds = 1.0
    track_many(client, users=100, per_user=20)  # 200 full batches, senders all blocked

    stats = client.stats()
    assert stats["submitted"] == 2000
    assert len(server.events) == 0  # every sender is still waiting on the first replies
    assert stats["in_flight"] <= 4 * 10
    server.faults.delay_seconds = 0.0
    assert client.flush(timeout=10)


def test_purge_removes_buffered_and_retrying_events_and_a_resend_is_screened(
    server: AmplitudeServer, make_client: MakeClient, clock: ManualClock
):
    blocked: set[str] = set()
    client = make_client(flush_interval_ms=3_600_000)
    dispatcher = client._dispatcher
    dispatcher.screen = lambda event: "opted_out" if event.user_id in blocked else None
    server.faults.script(Fault(503))
    client.track("first", user_id="user-leaving", event_properties={"seq": 0})
    client.track("first", user_id="user-staying", event_properties={"seq": 0})
    assert not client.flush(timeout=0.3)  # the 503 puts both into backoff
    client.track("second", user_id="user-leaving", event_properties={"seq": 1})

    blocked.add("user-leaving")
    removed = dispatcher.purge(lambda event: event.user_id in blocked, "opted_out")

    # The retrying event is purged; the one in transit is dropped by the screen as it is admitted.
    assert removed == 1
    drive(client, clock, lambda: client.stats()["accepted"] == 1)
    assert [e["user_id"] for e in server.events] == ["user-staying"]
    assert client.stats()["dropped_by_reason"] == {"opted_out": 2}


def test_track_applies_the_event_prefix(server: AmplitudeServer, make_client: MakeClient):
    client = make_client(event_prefix="acme_")
    client.track("signed_up", user_id="user-00001")
    assert client.flush(timeout=5)
    assert [e["event_type"] for e in server.events] == ["acme_signed_up"]


def test_requests_unanswered_at_the_shutdown_deadline_reach_the_dead_letter_callback(
    server: AmplitudeServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
):
    dead: list[tuple[int, str]] = []
    client = make_client(
        timeout_ms=5000, on_dead_letter=lambda events, reason: dead.append((len(events), reason))
    )
    caplog.set_level(logging.WARNING, logger="otel_amplitude")
    server.faults.delay_seconds = 2.0
    track_many(client, users=3, per_user=1)  # one request, still on the wire at the deadline
    client.track("late", user_id="user-99999")

    client.shutdown(timeout=0.3)

    assert sum(n for n, _ in dead) == 4
    assert {reason for _, reason in dead} == {"shutdown"}
    assert "4 events dead-lettered (shutdown)" in caplog.text


def test_overflow_is_logged_rate_limited(make_client: MakeClient, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="otel_amplitude")
    client = make_client(max_buffered_events=2, flush_interval_ms=3_600_000)
    for n in range(6):
        client.track("e", user_id=f"user-{n:04d}")
    assert client.flush(timeout=5)
    lines = [
        r.getMessage() for r in caplog.records if "AMPLITUDE_MAX_BUFFERED_EVENTS" in r.getMessage()
    ]
    assert len(lines) == 1
    assert client.stats()["dropped_by_reason"] == {"overflow": 4}

"""Self-observability end to end: metrics equal ``stats()``, health follows real failures, and
nothing the library logs or exports as a metric attribute carries an id, a key or a payload."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

from otel_amplitude import Client, Settings
from otel_amplitude._event import Event
from otel_amplitude.testing import AmplitudeServer, Fault, ManualClock

from .conftest import API_KEY, assert_conserved, drive

SECRET_KEY = "key-SENTINEL-5150"
SECRET_USER = "user-SENTINEL-0042"
SECRET_DEVICE = "device-SENTINEL-0043"
SECRET_VALUE = "prop-value-SENTINEL-93"
SENTINEL = re.compile("SENTINEL")

MakeClient = Callable[..., Client]


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[reader])
    yield provider
    provider.shutdown()


@pytest.fixture
def make(
    server: AmplitudeServer, clock: ManualClock, provider: MeterProvider
) -> Iterator[MakeClient]:
    """Clients on the local server and the injected clock, reporting to ``provider``."""
    clients: list[Client] = []

    def build(*, name: str = "default", url: str | None = None, **overrides: Any) -> Client:
        options: dict[str, Any] = {
            "api_key": API_KEY,
            "server_url": url or server.url,
            "flush_interval_ms": 1000,
            "flush_max_events": 100,
            "timeout_ms": 2000,
        }
        options.update(overrides)
        client = Client(Settings(**options), clock=clock, name=name, meter_provider=provider)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.shutdown(timeout=2.0)
        assert_conserved(client.stats())


def points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """Metric name -> [(attributes, value or histogram point)] of one collection."""
    found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    data = reader.get_metrics_data()
    if data is None:
        return found
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    value = point.value if isinstance(point, NumberDataPoint) else point
                    found.setdefault(metric.name, []).append((dict(point.attributes or {}), value))
    return found


def total(found: dict[str, list[tuple[dict[str, Any], Any]]], name: str, **match: str) -> int:
    return sum(
        value
        for attributes, value in found.get(name, [])
        if all(attributes.get(k) == v for k, v in match.items())
    )


def by_reason(found: dict[str, list[tuple[dict[str, Any], Any]]], name: str) -> dict[str, int]:
    return {attributes["reason"]: value for attributes, value in found.get(name, [])}


def mixed_workload(client: Client, server: AmplitudeServer, clock: ManualClock) -> None:
    """Accepted, rejected, dropped (quota, overflow, no identity), throttled and retried events."""
    server.faults.throttle(users=[SECRET_USER])
    server.faults.daily_quota(users=["user-SENTINEL-quota"])
    for seq in range(3):
        client.track(
            "click",
            user_id=SECRET_USER,
            device_id=SECRET_DEVICE,
            event_properties={"secret": SECRET_VALUE, "seq": seq},
        )
    for n in range(20):
        client.track("page_viewed", user_id=f"user-SENTINEL-{n:04d}", event_properties={"seq": 0})
    client.track("spam", user_id="user-SENTINEL-quota")
    # Refused by Amplitude although it passed local checks: a float time.
    client.submit(Event("bad", "user-SENTINEL-bad", None, 1.5, "bad-insert-id"))  # type: ignore[arg-type]
    client.discard("no_identity")
    server.faults.script(Fault(503))
    drive(client, clock, lambda: client.stats()["in_flight"] == 0 and client.stats()["retried"] > 0)
    assert not client.flush(timeout=1)  # the throttled device's events wait out their pause


def test_exported_metrics_equal_stats(
    server: AmplitudeServer, clock: ManualClock, make: MakeClient, reader: InMemoryMetricReader
):
    client = make(name="checkout")
    mixed_workload(client, server, clock)

    found = points(reader)
    stats = client.stats()

    for name, key in [
        ("otel_amplitude.event.submitted", "submitted"),
        ("otel_amplitude.event.accepted", "accepted"),
        ("otel_amplitude.event.rejected", "rejected"),
        ("otel_amplitude.event.dropped", "dropped"),
        ("otel_amplitude.event.dead_lettered", "dead_lettered"),
        ("otel_amplitude.event.retried", "retried"),
        ("otel_amplitude.event.throttled", "throttled"),
        ("otel_amplitude.event.buffered", "buffered"),
        ("otel_amplitude.event.in_flight", "in_flight"),
        ("otel_amplitude.partition.paused", "paused_partitions"),
    ]:
        assert total(found, name, client="checkout", endpoint="httpapi") == stats[key], name  # type: ignore[literal-required]
    assert by_reason(found, "otel_amplitude.event.rejected") == stats["rejected_by_reason"]
    assert by_reason(found, "otel_amplitude.event.dropped") == stats["dropped_by_reason"]
    assert stats["dropped_by_reason"] == {"daily_quota": 1, "no_identity": 1}
    assert stats["rejected_by_reason"] == {"invalid_field:time": 1}
    assert stats["throttled"] >= 3
    assert stats["paused_partitions"] >= 1
    durations = {a["outcome"]: p.count for a, p in found["otel_amplitude.request.duration"]}
    assert durations == stats["responses_by_status"]
    [(_, delivery)] = found["otel_amplitude.delivery.duration"]
    assert delivery.max == pytest.approx(stats["latency_ms_max"] / 1000.0)
    assert delivery.count <= stats["requests"]


def test_no_metric_attribute_carries_an_id_a_key_or_a_payload(
    server: AmplitudeServer, clock: ManualClock, make: MakeClient, reader: InMemoryMetricReader
):
    client = make(api_key=SECRET_KEY, max_buffered_events=30)
    mixed_workload(client, server, clock)
    for n in range(40):  # past the buffer: overflow
        client.track("burst", user_id=f"user-SENTINEL-b{n:03d}")

    found = points(reader)

    assert found["otel_amplitude.event.dropped"]
    for name, series in found.items():
        for attributes, _ in series:
            assert set(attributes) <= {"client", "endpoint", "reason", "outcome", "destination"}
            assert attributes.get("destination", "default") == "default"  # configured names only
            for value in attributes.values():
                assert not SENTINEL.search(str(value)), (name, attributes)
                assert "bad-insert-id" not in str(value)


def test_two_clients_report_under_their_own_names(
    server: AmplitudeServer, make: MakeClient, reader: InMemoryMetricReader
):
    us = make(name="us")
    eu = make(name="eu", use_batch=True)
    us.track("a", user_id="user-00001")
    eu.track("b", user_id="user-00002")
    eu.track("c", user_id="user-00003")
    assert us.flush(timeout=5)
    assert eu.flush(timeout=5)

    found = points(reader)

    assert total(found, "otel_amplitude.event.accepted", client="us", endpoint="httpapi") == 1
    assert total(found, "otel_amplitude.event.accepted", client="eu", endpoint="batch") == 2
    outcomes = {(a["client"], a["outcome"]) for a, _ in found["otel_amplitude.request.duration"]}
    assert outcomes == {("us", "200"), ("eu", "200")}


# -- health --------------------------------------------------------------------------------------


def test_healthy_delivery_is_ok(server: AmplitudeServer, make: MakeClient):
    client = make()
    client.track("a", user_id="user-00001")
    assert client.flush(timeout=5)

    assert client.health().status == "ok"


def test_an_invalid_key_is_failing_with_the_fix(make: MakeClient):
    with AmplitudeServer(api_keys=["the-right-key"]) as strict:
        client = make(url=strict.url, api_key="the-wrong-key-42")
        client.track("a", user_id="user-00001")
        assert not client.flush(timeout=0.5)

        verdict = client.health()

        assert verdict.status == "failing"
        assert "AMPLITUDE_API_KEY" in verdict.reason
        assert "the-wrong-key-42" not in verdict.reason


def test_a_throttled_user_is_degraded_while_paused(
    server: AmplitudeServer, clock: ManualClock, make: MakeClient
):
    client = make()
    server.faults.throttle(users=["user-throttled"])
    client.track("a", user_id="user-throttled")
    client.track("b", user_id="user-fine-01")
    assert not client.flush(timeout=1)

    verdict = client.health()

    assert verdict.status == "degraded"
    assert "1 user or device ids are throttled" in verdict.reason
    server.faults.unthrottle()
    clock.advance(31)
    assert client.flush(timeout=5)


def test_persistent_server_errors_are_failing(
    server: AmplitudeServer, clock: ManualClock, make: MakeClient
):
    client = make()
    server.faults.script(*[Fault(503)] * 3)
    client.track("a", user_id="user-00001")
    drive(client, clock, lambda: client.stats()["responses_by_status"].get("503", 0) == 3, step=2)

    verdict = client.health()

    assert verdict.status == "failing"
    assert "3 requests failed" in verdict.reason
    assert "none succeeded" in verdict.reason
    drive(client, clock, lambda: client.stats()["accepted"] == 1)


def test_dead_letters_are_failing(server: AmplitudeServer, clock: ManualClock, make: MakeClient):
    client = make(max_retries=0)
    server.faults.script(Fault(503))
    client.track("a", user_id="user-00001")
    drive(client, clock, lambda: client.stats()["dead_lettered"] == 1)

    verdict = client.health()

    assert verdict.status == "failing"
    assert "1 events dead-lettered" in verdict.reason


def test_overflow_is_degraded_until_a_quiet_window_passes(
    server: AmplitudeServer, clock: ManualClock, make: MakeClient
):
    client = make(max_buffered_events=10, flush_interval_ms=3_600_000)
    for n in range(15):
        client.track("e", user_id=f"user-{n:04d}")
    assert client.flush(timeout=5)

    verdict = client.health(window=60)
    assert verdict.status == "degraded"
    assert "5 events lost since the client started (overflow: 5)" in verdict.reason

    clock.advance(30)
    assert client.health(window=60).status == "degraded"  # still within the window
    clock.advance(31)
    assert client.health(window=60).status == "degraded"  # measured from the start still
    clock.advance(30)
    assert client.health(window=60).status == "ok"  # measured from the call 61 s ago


def test_health_refuses_a_window_that_is_not_positive(make: MakeClient):
    with pytest.raises(ValueError, match="window"):
        make().health(window=0)


# -- log lines -----------------------------------------------------------------------------------


def test_a_successful_request_logs_one_debug_line_with_counts_and_a_correlation_id(
    server: AmplitudeServer, make: MakeClient, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="otel_amplitude")
    client = make()
    for n in range(7):
        client.track("a", user_id=f"user-{n:04d}")
    assert client.flush(timeout=5)

    [line] = [r for r in caplog.records if r.name == "otel_amplitude"]
    assert line.levelno == logging.DEBUG
    message = line.getMessage()
    assert message.startswith("Amplitude answered 200 in ")
    assert "events_ingested=7; the request had 7 events" in message
    assert re.search(r"in \d+ ms \(attempt 1\)", message)
    assert message.endswith("[request 1]")


def test_a_retried_request_logs_its_attempt_and_correlation_id(
    server: AmplitudeServer, clock: ManualClock, make: MakeClient, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="otel_amplitude")
    client = make()
    server.faults.script(Fault(503), Fault(503))
    client.track("a", user_id="user-00001")
    drive(client, clock, lambda: client.stats()["accepted"] == 1)

    messages = [r.getMessage() for r in caplog.records if r.name == "otel_amplitude"]
    # The second 503 is the same warning within a minute: rate-limited away.
    assert len(messages) == 2
    assert "Amplitude answered 503 (server_error)" in messages[0]
    assert "the request had 1 events" in messages[0]
    assert "(attempt 1)" in messages[0]
    assert messages[0].endswith("[request 1]")
    assert "Amplitude answered 200" in messages[1]
    assert "(attempt 3)" in messages[1]
    assert messages[1].endswith("[request 3]")


def _track_secrets(client: Client, count: int = 3) -> None:
    for seq in range(count):
        client.track(
            "checkout",
            user_id=SECRET_USER,
            device_id=f"{SECRET_DEVICE}-{seq}",
            event_properties={"secret": SECRET_VALUE, "seq": seq},
            user_properties={"email": SECRET_VALUE},
        )


def _until_done(client: Client) -> Callable[[], bool]:
    return lambda: (s := client.stats())["buffered"] == 0 and s["in_flight"] == 0


ECHO = b'{"code":500,"error":"key-SENTINEL-5150 prop-value-SENTINEL-93 user-SENTINEL-0042"}'


@pytest.mark.parametrize(
    "scenario",
    [
        "invalid_key",
        "400_partial",
        "413",
        "429",
        "500_echoing_the_payload",
        "401",
        "reset",
        "timeout",
        "dead_letter",
        "overflow",
    ],
)
def test_no_log_line_carries_the_key_an_id_or_a_payload_on_any_failure_path(
    scenario: str,
    server: AmplitudeServer,
    clock: ManualClock,
    make: MakeClient,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.DEBUG, logger="otel_amplitude")
    caplog.set_level(logging.DEBUG, logger="urllib3")
    faults = server.faults
    if scenario == "invalid_key":
        with AmplitudeServer(api_keys=["the-right-key"]) as strict:
            client = make(url=strict.url, api_key=SECRET_KEY)
            _track_secrets(client)
            assert not client.flush(timeout=0.5)
            client.shutdown(timeout=0.2)  # dead-letters what the paused destination kept
    else:
        options: dict[str, Any] = {"api_key": SECRET_KEY}
        if scenario == "timeout":
            options["timeout_ms"] = 200
            faults.script(Fault(200, delay=0.6, ingest=True))
        elif scenario == "dead_letter":
            options["max_retries"] = 1
            faults.script(Fault(503), Fault(503))
        elif scenario == "overflow":
            options.update(max_buffered_events=2, flush_interval_ms=3_600_000)
        elif scenario == "413":
            faults.max_events = 2
            faults.max_request_bytes = 600
        elif scenario == "429":
            faults.throttle(users=[SECRET_USER])
        elif scenario == "500_echoing_the_payload":
            faults.script(Fault(500, body=ECHO))
        elif scenario == "401":
            faults.script(Fault(401, body=ECHO.replace(b"500", b"401")))
        elif scenario == "reset":
            faults.script(Fault(reset=True))
        client = make(**options)
        _track_secrets(client)
        if scenario == "400_partial":
            bad = Event("bad", SECRET_USER, None, 1.5, "bad-insert-id-SENTINEL")  # type: ignore[arg-type]
            bad.event_properties = {"secret": SECRET_VALUE}
            client.submit(bad)
        if scenario == "413":
            client.track("huge", user_id=SECRET_USER, event_properties={"text": SECRET_VALUE * 40})
        if scenario == "401":
            assert not client.flush(timeout=0.5)
        elif scenario == "429":
            assert not client.flush(timeout=1)
            faults.unthrottle()
            drive(client, clock, _until_done(client), step=31)
        else:
            drive(client, clock, _until_done(client))
        client.shutdown(timeout=0.5)

    ours = [r for r in caplog.records if r.name.startswith("otel_amplitude")]
    if scenario != "overflow":  # an overflow is counted, not logged
        assert ours, "the failure should have been logged"
    assert all("[request " in r.getMessage() for r in ours if "Amplitude" in r.getMessage()), (
        "every response line carries its correlation id"
    )
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + (record.exc_text or "")
        assert not SENTINEL.search(text), f"{record.name}: {text}"
    assert not SENTINEL.search(caplog.text)


def test_repeated_warnings_are_rate_limited(
    server: AmplitudeServer, clock: ManualClock, make: MakeClient, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING, logger="otel_amplitude")
    client = make(max_retries=20)
    server.faults.script(*[Fault(503)] * 5)
    client.track("a", user_id="user-00001")
    # Five 503s within one minute of the client's clock (backoff ceilings 0.5 + 1 + 2 + 4 + 8 s).
    drive(client, clock, lambda: client.stats()["accepted"] == 1, step=0.5)
    assert clock.monotonic() - 1_000.0 < 60

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert client.stats()["responses_by_status"]["503"] == 5

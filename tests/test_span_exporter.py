"""``AmplitudeSpanExporter``'s contract with the OTel SDK and with its client, without a network.

The client here is a recorder: what the exporter submits, discards and flushes is the subject.
Delivery to a server is in ``tests/behaviour/test_otel_delivery.py``.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
from opentelemetry.sdk._configuration import _import_exporters
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_amplitude import _client, _exporting
from otel_amplitude._client import Client
from otel_amplitude._event import Event
from otel_amplitude._log import RateLimitedLog
from otel_amplitude._settings import Settings
from otel_amplitude._span_exporter import AmplitudeSpanExporter
from otel_amplitude.exceptions import ConfigError

USER = "user-00001"
TAGGED = {"amplitude.event_type": "Signed Up", "enduser.id": USER}


class RecordingClient:
    """Stands in for :class:`Client`: records what an integration hands it."""

    def __init__(self, **settings: Any) -> None:
        self.settings = Settings(api_key="test-api-key-0001", **settings)
        self.routes_tenants = False
        self.submitted: list[Event] = []
        self.discarded: list[str] = []
        self.flushes: list[float | None] = []
        self.shutdowns = 0
        self.flush_result = True

    def submit(self, event: Event) -> None:
        self.submitted.append(event)

    def discard(self, reason: str) -> None:
        self.discarded.append(reason)

    def flush(self, timeout: float | None = None) -> bool:
        self.flushes.append(timeout)
        return self.flush_result

    def shutdown(self, timeout: float | None = None) -> None:
        self.shutdowns += 1


@pytest.fixture
def client() -> RecordingClient:
    return RecordingClient()


@pytest.fixture
def exporter(client: RecordingClient) -> AmplitudeSpanExporter:
    return AmplitudeSpanExporter(cast(Client, client))


class Captured:
    """Real finished spans: ended through a provider into memory, then handed to the exporter."""

    def __init__(self) -> None:
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider(shutdown_on_exit=False)
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.tracer = self.provider.get_tracer("tests")

    def spans(self, *spans: tuple[str, dict[str, Any]]) -> list[ReadableSpan]:
        self.memory.clear()
        for name, attributes in spans:
            self.tracer.start_span(name, attributes=attributes).end()
        return list(self.memory.get_finished_spans())


@pytest.fixture
def captured() -> Iterator[Captured]:
    made = Captured()
    yield made
    made.provider.shutdown()


# -- export -------------------------------------------------------------------------------------


def test_export_queues_tagged_spans_and_returns_success(
    exporter: AmplitudeSpanExporter, client: RecordingClient, captured: Captured
):
    spans = captured.spans(("a", TAGGED), ("health", {}), ("b", TAGGED))

    assert exporter.export(spans) is SpanExportResult.SUCCESS

    assert [e.event_type for e in client.submitted] == ["Signed Up", "Signed Up"]
    assert client.discarded == []


def test_export_of_an_empty_batch_succeeds(exporter: AmplitudeSpanExporter):
    assert exporter.export([]) is SpanExportResult.SUCCESS


def test_span_without_identity_is_counted_as_no_identity(
    exporter: AmplitudeSpanExporter, client: RecordingClient, captured: Captured
):
    exporter.export(captured.spans(("a", {"amplitude.event_type": "Signed Up"})))

    assert client.submitted == []
    assert client.discarded == ["no_identity"]


def test_invalid_event_is_counted_and_warned_about_without_its_values(
    exporter: AmplitudeSpanExporter,
    client: RecordingClient,
    captured: Captured,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(_exporting, "_warnings", RateLimitedLog(time.monotonic))
    secret = "4111-1111-1111-1111"
    spans = captured.spans(("a", {**TAGGED, "amplitude.revenue": secret}))

    with caplog.at_level(logging.WARNING, logger="otel_amplitude"):
        assert exporter.export(spans) is SpanExportResult.SUCCESS

    assert client.discarded == ["invalid"]
    assert "revenue" in caplog.text
    assert secret not in caplog.text


def test_one_bad_span_does_not_lose_the_others(
    exporter: AmplitudeSpanExporter, client: RecordingClient, captured: Captured
):
    spans = captured.spans(
        ("a", TAGGED),
        ("b", {"amplitude.event_type": "x", "enduser.id": "null"}),
        ("c", TAGGED),
    )

    exporter.export(spans)

    assert len(client.submitted) == 2
    assert client.discarded == ["invalid"]


def test_settings_of_the_client_apply(captured: Captured):
    client = RecordingClient(span_events=("checkout.*",), event_prefix="shop_")
    exporter = AmplitudeSpanExporter(cast(Client, client))

    exporter.export(captured.spans(("checkout.paid", {"enduser.id": USER})))

    assert [e.event_type for e in client.submitted] == ["shop_checkout.paid"]


# -- force_flush and shutdown -------------------------------------------------------------------


def test_force_flush_delegates_to_the_client_in_seconds(
    exporter: AmplitudeSpanExporter, client: RecordingClient
):
    assert exporter.force_flush(2500) is True
    client.flush_result = False
    assert exporter.force_flush() is False

    assert client.flushes == [2.5, 30.0]


def test_export_fails_after_shutdown(
    exporter: AmplitudeSpanExporter, client: RecordingClient, captured: Captured
):
    spans = captured.spans(("a", TAGGED))

    exporter.shutdown()

    assert exporter.export(spans) is SpanExportResult.FAILURE
    assert client.submitted == []


def test_shutdown_flushes_within_the_shutdown_timeout_but_never_shuts_the_client_down(
    client: RecordingClient,
):
    exporter = AmplitudeSpanExporter(cast(Client, client))

    exporter.shutdown()
    exporter.shutdown()  # idempotent

    assert client.flushes == [client.settings.shutdown_timeout_ms / 1000]
    assert client.shutdowns == 0


def test_shutdown_flush_is_bounded_by_the_callers_timeout_too(client: RecordingClient):
    AmplitudeSpanExporter(cast(Client, client)).shutdown(timeout_millis=300)

    assert client.flushes == [0.3]


def test_batch_span_processor_passes_its_remaining_time_to_shutdown():
    # BatchSpanProcessor hands the rest of its shutdown budget to exporters whose shutdown
    # takes ``timeout_millis``; that is what bounds the exit flush by the processor's timeout.
    assert "timeout_millis" in inspect.getfullargspec(AmplitudeSpanExporter.shutdown).args


def test_processor_shutdown_exports_queued_spans_and_flushes(client: RecordingClient):
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(AmplitudeSpanExporter(cast(Client, client))))
    provider.get_tracer("tests").start_span("a", attributes=TAGGED).end()

    provider.shutdown()

    assert [e.event_type for e in client.submitted] == ["Signed Up"]
    assert len(client.flushes) == 1
    assert client.shutdowns == 0


# -- construction -------------------------------------------------------------------------------


@pytest.fixture
def fresh_default_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No process-wide client yet; the one a test makes is shut down and forgotten after it."""
    monkeypatch.setattr(_client, "_default_client", None)
    yield
    made = _client._default_client
    if made is not None:
        made.shutdown(timeout=1)


def test_without_a_client_the_default_client_is_used(
    fresh_default_client: None, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AMPLITUDE_API_KEY", "test-api-key-0001")
    monkeypatch.setenv("AMPLITUDE_SPAN_EVENTS", "checkout.*")

    exporter = AmplitudeSpanExporter()

    assert exporter.client is _client.default_client()
    assert exporter.client.settings.span_events == ("checkout.*",)


def test_without_an_api_key_construction_fails_early_with_a_clear_error(
    fresh_default_client: None, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("AMPLITUDE_API_KEY", raising=False)

    with pytest.raises(ConfigError, match="AMPLITUDE_API_KEY"):
        AmplitudeSpanExporter()


def test_it_is_a_span_exporter():
    assert issubclass(AmplitudeSpanExporter, SpanExporter)


def test_entry_point_names_the_exporter_for_otel_traces_exporter():
    (entry_point,) = importlib.metadata.entry_points(
        group="opentelemetry_traces_exporter", name="amplitude"
    )
    assert entry_point.load() is AmplitudeSpanExporter

    traces, _, _ = _import_exporters(["amplitude"], [], [])

    assert traces == {"amplitude": AmplitudeSpanExporter}


def test_exporters_are_exported_by_the_package():
    from otel_amplitude import AmplitudeLogExporter, AmplitudeSpanExporter

    assert AmplitudeSpanExporter.__module__ == "otel_amplitude._span_exporter"
    assert AmplitudeLogExporter.__module__ == "otel_amplitude._log_exporter"

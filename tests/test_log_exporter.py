"""``AmplitudeLogExporter``: which OTel log records are events, what each becomes, and the SDK
contract, with real ``LoggerProvider`` records and a recording client (no network)."""

from __future__ import annotations

import importlib.metadata
import logging
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
from opentelemetry.context import get_current
from opentelemetry.sdk._configuration import _import_exporters
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_amplitude import _client, _exporting
from otel_amplitude._client import Client
from otel_amplitude._context import bind
from otel_amplitude._event import Event, to_wire
from otel_amplitude._log import RateLimitedLog
from otel_amplitude._log_exporter import AmplitudeLogExporter
from otel_amplitude._log_record_mapping import log_insert_id
from otel_amplitude.exceptions import ConfigError

from .test_span_exporter import RecordingClient

USER = "user-00001"
TIMESTAMP_NS = 1_700_000_000_123_456_789


class Logs:
    """A real LoggerProvider feeding an AmplitudeLogExporter (synchronously) and a memory."""

    def __init__(self, client: RecordingClient) -> None:
        self.client = client
        self.exporter = AmplitudeLogExporter(cast(Client, client))
        self.memory = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
        resource = Resource.create({"service.name": "shop", "service.version": "2.4.1"})
        self.provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        self.provider.add_log_record_processor(SimpleLogRecordProcessor(self.exporter))
        self.provider.add_log_record_processor(SimpleLogRecordProcessor(self.memory))

    def emit(self, body: Any = None, logger: str = "app", **fields: Any) -> None:
        fields.setdefault("timestamp", TIMESTAMP_NS)
        self.provider.get_logger(logger).emit(body=body, **fields)

    def events(self) -> list[dict[str, Any]]:
        return [to_wire(event) for event in self.client.submitted]

    def event(self) -> dict[str, Any]:
        (event,) = self.events()
        return event


def make_logs(**settings: Any) -> Logs:
    return Logs(RecordingClient(**settings))


@pytest.fixture
def logs() -> Iterator[Logs]:
    made = make_logs()
    yield made
    made.provider.shutdown()


# -- which records are events -------------------------------------------------------------------


def test_string_body_is_the_event_type_and_attributes_are_the_event(logs: Logs):
    logs.emit(
        "Report Exported",
        attributes={"user_id": USER, "format": "pdf", "platform": "Web", "pages": 3},
    )

    event = logs.event()

    assert event["event_type"] == "Report Exported"
    assert event["user_id"] == USER
    assert event["platform"] == "Web"  # an Amplitude field: top level
    assert event["event_properties"] == {"format": "pdf", "pages": 3}
    assert event["time"] == TIMESTAMP_NS // 1_000_000
    assert event["app_version"] == "2.4.1"  # the resource's service.version


def test_event_name_is_the_event_type_and_a_mapping_body_its_values(logs: Logs):
    logs.emit(
        {"plan": "pro", "seats": 3},
        event_name="Plan Changed",
        attributes={"user_id": USER, "seats": 5},
    )

    event = logs.event()

    assert event["event_type"] == "Plan Changed"
    assert event["event_properties"] == {"plan": "pro", "seats": 5}  # attributes win


def test_amplitude_event_type_attribute_wins(logs: Logs):
    logs.emit("user signed up", attributes={"amplitude.event_type": "Signed Up", "user_id": USER})

    assert logs.event()["event_type"] == "Signed Up"


@pytest.mark.parametrize("body", [{"a": 1}, b"bytes", 42, None])
def test_record_without_a_string_body_or_event_name_is_not_an_event(logs: Logs, body: Any):
    logs.emit(body, attributes={"user_id": USER})

    assert logs.client.submitted == []
    assert logs.client.discarded == ["not_an_event"]


def test_event_prefix_is_applied():
    logs = make_logs(event_prefix="shop_")
    try:
        logs.emit("Signed Up", attributes={"user_id": USER})
        assert logs.event()["event_type"] == "shop_Signed Up"
    finally:
        logs.provider.shutdown()


@pytest.mark.parametrize("logger", ["otel_amplitude", "otel_amplitude.dispatcher", "urllib3.pool"])
def test_records_of_the_librarys_own_and_urllib3s_loggers_are_skipped_uncounted(
    logs: Logs, logger: str
):
    logs.emit("Starting new HTTPS connection", logger=logger, attributes={"user_id": USER})

    assert logs.client.submitted == []
    assert logs.client.discarded == []


def test_a_logger_merely_named_like_the_library_is_not_skipped(logs: Logs):
    logs.emit("Signed Up", logger="otel_amplitude_app", attributes={"user_id": USER})

    assert len(logs.client.submitted) == 1


# -- identity -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["amplitude.user_id", "enduser.id", "user.id"])
def test_semconv_user_attributes_name_the_user(logs: Logs, key: str):
    logs.emit("Signed Up", attributes={key: USER})

    event = logs.event()

    assert event["user_id"] == USER
    assert "event_properties" not in event


def test_amplitude_device_id_names_the_device(logs: Logs):
    logs.emit("Opened", attributes={"amplitude.device_id": "device-0001"})

    assert logs.event()["device_id"] == "device-0001"


def test_bound_identity_applies_when_exported_on_the_emitting_thread(logs: Logs):
    with bind(user_id="user-bound", session_id=1_699_999_000_000):
        logs.emit("Signed Up")

    event = logs.event()

    assert event["user_id"] == "user-bound"
    assert event["session_id"] == 1_699_999_000_000


def test_the_user_of_the_span_in_the_records_context_applies(logs: Logs):
    tracers = TracerProvider(shutdown_on_exit=False)
    try:
        with tracers.get_tracer("t").start_as_current_span("req", attributes={"enduser.id": USER}):
            context = get_current()
        logs.emit("Signed Up", context=context)  # emitted outside the span, in its context
    finally:
        tracers.shutdown()

    assert logs.event()["user_id"] == USER


def test_record_without_identity_is_counted_as_no_identity(logs: Logs):
    logs.emit("Signed Up", attributes={"plan": "pro"})

    assert logs.client.submitted == []
    assert logs.client.discarded == ["no_identity"]


def test_invalid_record_is_counted_and_warned_about_without_values(
    logs: Logs, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(_exporting, "_warnings", RateLimitedLog(time.monotonic))

    with caplog.at_level(logging.WARNING, logger="otel_amplitude"):
        logs.emit(
            "Payment Failed",
            attributes={"user_id": USER, "revenue": float("nan"), "card": "4111-1111-1111-1111"},
        )

    assert logs.client.discarded == ["invalid"]
    assert "revenue" in caplog.text
    assert "4111" not in caplog.text


# -- semantic conventions -----------------------------------------------------------------------


def test_semconv_attributes_map_like_spans(logs: Logs):
    logs.emit(
        "Signed Up",
        attributes={
            "user_id": USER,
            "user_agent.original": "UA/1",
            "client.address": "203.0.113.7",
            "network.peer.address": "10.0.0.1",
            "session.id": "1699999000000",
            "amplitude.platform": "Web",
        },
    )

    event = logs.event()

    assert event["user_agent"] == "UA/1"
    assert event["session_id"] == 1_699_999_000_000
    assert event["platform"] == "Web"
    assert "ip" not in event
    assert "event_properties" not in event  # addresses never become properties


def test_amplitude_prefix_on_a_non_field_leaves_an_ordinary_property(logs: Logs):
    logs.emit("Signed Up", attributes={"user_id": USER, "amplitude.campaign": "spring"})

    assert logs.event()["event_properties"] == {"amplitude.campaign": "spring"}


def test_client_address_is_the_ip_with_send_ip():
    logs = make_logs(send_ip=True)
    try:
        logs.emit("Signed Up", attributes={"user_id": USER, "client.address": "203.0.113.7"})
        assert logs.event()["ip"] == "203.0.113.7"
    finally:
        logs.provider.shutdown()


def test_non_numeric_session_id_is_kept_as_a_property(logs: Logs):
    session = "6f9619ff-8b86-d011-b42d-00cf4fc964ff"
    logs.emit("Signed Up", attributes={"user_id": USER, "session.id": session})

    event = logs.event()

    assert "session_id" not in event
    assert event["event_properties"] == {"session.id": session}


def test_stdlib_records_bridged_by_the_otel_logging_handler_leave_their_plumbing_out(logs: Logs):
    # The SDK's LoggingHandler is deprecated in 1.45 in favour of the logging instrumentation
    # package, but it is what OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED installs.
    with pytest.warns(DeprecationWarning, match="LoggingHandler"):
        handler = LoggingHandler(logger_provider=logs.provider)
    logger = logging.getLogger("tests.bridged")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("card 4111")
        except ValueError:
            logger.exception("Payment Failed", extra={"user_id": USER, "amount": 12})
    finally:
        logger.removeHandler(handler)
        logger.propagate = True

    event = logs.event()

    assert event["event_type"] == "Payment Failed"
    assert event["event_properties"] == {"amount": 12}  # no code.*, no exception.*


def test_include_logger_adds_logger_and_level():
    logs = make_logs(log_include_logger=True)
    try:
        logs.emit(
            "Signed Up", logger="shop.accounts", severity_text="WARN", attributes={"user_id": USER}
        )
        properties = logs.event()["event_properties"]
    finally:
        logs.provider.shutdown()

    assert properties == {"logger": "shop.accounts", "level": "WARNING"}


# -- insert_id ----------------------------------------------------------------------------------


def test_record_emitted_in_a_span_has_a_stable_insert_id_so_a_reexport_is_deduplicated(
    logs: Logs,
):
    tracers = TracerProvider(shutdown_on_exit=False)
    try:
        with tracers.get_tracer("t").start_as_current_span("req") as span:
            logs.emit("Signed Up", attributes={"user_id": USER})
            context = span.get_span_context()
    finally:
        tracers.shutdown()
    (record,) = logs.memory.get_finished_logs()

    logs.exporter.export([record])

    first, again = logs.events()
    assert first["insert_id"] == again["insert_id"]
    assert first["insert_id"] == log_insert_id(
        context.trace_id, context.span_id, TIMESTAMP_NS, "Signed Up"
    )


def test_record_outside_a_span_gets_a_fresh_insert_id(logs: Logs):
    logs.emit("Signed Up", attributes={"user_id": USER})
    logs.emit("Signed Up", attributes={"user_id": USER})

    first, second = logs.events()

    assert first["insert_id"] != second["insert_id"]


def test_observed_timestamp_is_the_time_when_there_is_no_timestamp(logs: Logs):
    logs.emit(
        "Signed Up", timestamp=None, observed_timestamp=TIMESTAMP_NS, attributes={"user_id": USER}
    )

    assert logs.event()["time"] == TIMESTAMP_NS // 1_000_000


# -- the SDK contract ---------------------------------------------------------------------------


def _records(logs: Logs) -> tuple[ReadableLogRecord, ...]:
    logs.emit("Signed Up", attributes={"user_id": USER})
    logs.client.submitted.clear()
    return logs.memory.get_finished_logs()


def test_export_returns_success_once_queued_and_failure_after_shutdown(logs: Logs):
    records = _records(logs)

    assert logs.exporter.export(records) is LogRecordExportResult.SUCCESS
    assert len(logs.client.submitted) == 1

    logs.exporter.shutdown()

    assert logs.exporter.export(records) is LogRecordExportResult.FAILURE
    assert len(logs.client.submitted) == 1


def test_force_flush_delegates_to_the_client_in_seconds(logs: Logs):
    assert logs.exporter.force_flush(1500) is True
    logs.client.flush_result = False
    assert logs.exporter.force_flush() is False

    assert logs.client.flushes == [1.5, 30.0]


def test_shutdown_flushes_bounded_and_never_shuts_the_client_down(logs: Logs):
    logs.exporter.shutdown(timeout_millis=400)
    logs.exporter.shutdown()

    assert logs.client.flushes == [0.4]
    assert logs.client.shutdowns == 0


@pytest.fixture
def fresh_default_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_client, "_default_client", None)
    yield
    made = _client._default_client
    if made is not None:
        made.shutdown(timeout=1)


def test_without_a_client_the_default_client_is_used(
    fresh_default_client: None, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AMPLITUDE_API_KEY", "test-api-key-0001")

    assert AmplitudeLogExporter().client is _client.default_client()


def test_without_an_api_key_construction_fails_early(
    fresh_default_client: None, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("AMPLITUDE_API_KEY", raising=False)

    with pytest.raises(ConfigError, match="AMPLITUDE_API_KEY"):
        AmplitudeLogExporter()


def test_it_is_a_log_record_exporter_named_by_the_entry_point():
    assert issubclass(AmplitudeLogExporter, LogRecordExporter)
    (entry_point,) = importlib.metadata.entry_points(
        group="opentelemetry_logs_exporter", name="amplitude"
    )
    assert entry_point.load() is AmplitudeLogExporter

    _, _, exporters = _import_exporters([], [], ["amplitude"])

    assert exporters == {"amplitude": AmplitudeLogExporter}


def test_events_are_submitted_as_events(logs: Logs):
    logs.emit("Signed Up", attributes={"user_id": USER})

    assert all(isinstance(e, Event) for e in logs.client.submitted)

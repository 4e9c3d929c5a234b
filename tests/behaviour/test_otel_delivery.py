"""Spans and OTel log records delivered end to end: real SDK providers and client, local server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from otel_amplitude._log_exporter import AmplitudeLogExporter
from otel_amplitude._span_exporter import AmplitudeSpanExporter
from otel_amplitude.testing import AmplitudeServer

from .conftest import MakeClient

USER = "user-00001"
RESOURCE = Resource.create({"service.name": "shop", "service.version": "2.4.1"})


@pytest.fixture
def tracer_provider() -> Iterator[TracerProvider]:
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    yield provider
    provider.shutdown()


@pytest.fixture
def logger_provider() -> Iterator[LoggerProvider]:
    provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False)
    yield provider
    provider.shutdown()


def sent_events(server: AmplitudeServer) -> list[dict[str, Any]]:
    return [
        event
        for request in server.requests
        if isinstance(request.json, dict)
        for event in request.json.get("events", [])
    ]


def test_tagged_span_is_delivered_with_its_fields(
    server: AmplitudeServer, make_client: MakeClient, tracer_provider: TracerProvider
):
    client = make_client(send_ip=True)
    exporter = AmplitudeSpanExporter(client)
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = tracer_provider.get_tracer("shop")

    with tracer.start_as_current_span(
        "POST /checkout",
        attributes={
            "amplitude.event_type": "Order Placed",
            "enduser.id": USER,
            "session.id": "1699999000000",
            "client.address": "203.0.113.7",
            "user_agent.original": "Mozilla/5.0",
            "cart.items": ("book", "pen"),
        },
    ) as span:
        span.set_status(Status(StatusCode.ERROR, "card declined"))
        context = span.get_span_context()
    tracer.start_span("GET /health", attributes={"enduser.id": USER}).end()  # not an event

    assert tracer_provider.force_flush()
    assert exporter.force_flush(5000)

    (event,) = server.events
    assert event["event_type"] == "Order Placed"
    assert event["user_id"] == USER
    assert event["session_id"] == 1_699_999_000_000
    assert event["ip"] == "203.0.113.7"
    assert event["user_agent"] == "Mozilla/5.0"
    assert event["app_version"] == "2.4.1"
    properties = event["event_properties"]
    assert properties["cart.items"] == ["book", "pen"]
    assert properties["status"] == "error"
    assert properties["status_description"] == "card declined"
    assert properties["duration_ms"] >= 0
    assert len(event["insert_id"]) == 32
    assert context.trace_id  # the id the insert_id was derived from
    assert client.stats()["accepted"] == 1


def test_exporting_the_same_span_twice_stores_one_event(
    server: AmplitudeServer, make_client: MakeClient, tracer_provider: TracerProvider
):
    client = make_client()
    exporter = AmplitudeSpanExporter(client)
    memory = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer_provider.get_tracer("shop").start_span(
        "signup", attributes={"amplitude.event_type": "Signed Up", "enduser.id": USER}
    ).end()
    spans: tuple[ReadableSpan, ...] = memory.get_finished_spans()

    exporter.export(spans)
    assert exporter.force_flush(5000)
    exporter.export(spans)  # a retrying processor, or a second pipeline, sends it again
    assert exporter.force_flush(5000)

    assert len(server.events) == 1
    assert server.duplicates == 1
    first, again = sent_events(server)
    assert first["insert_id"] == again["insert_id"]


def test_matched_span_and_tagged_span_event_are_delivered(
    server: AmplitudeServer, make_client: MakeClient, tracer_provider: TracerProvider
):
    client = make_client(span_events=("report.*",))
    exporter = AmplitudeSpanExporter(client)
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = tracer_provider.get_tracer("shop")

    with tracer.start_as_current_span("report.export", attributes={"user.id": USER}):
        pass
    with tracer.start_as_current_span("GET /cart", attributes={"enduser.id": USER}) as span:
        span.add_event("coupon", {"amplitude.event_type": "Coupon Applied", "code": "SPRING"})

    assert tracer_provider.force_flush()
    assert exporter.force_flush(5000)

    assert sorted(e["event_type"] for e in server.events) == ["Coupon Applied", "report.export"]
    assert {e["user_id"] for e in server.events} == {USER}


def test_spans_without_identity_are_counted_not_sent(
    server: AmplitudeServer, make_client: MakeClient, tracer_provider: TracerProvider
):
    client = make_client()
    exporter = AmplitudeSpanExporter(client)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = tracer_provider.get_tracer("shop")

    tracer.start_span("a", attributes={"amplitude.event_type": "Anonymous"}).end()
    tracer.start_span("b", attributes={"amplitude.event_type": "Known", "enduser.id": USER}).end()
    assert exporter.force_flush(5000)

    assert [e["event_type"] for e in server.events] == ["Known"]
    stats = client.stats()
    assert stats["dropped_by_reason"] == {"no_identity": 1}
    assert stats["accepted"] == 1


def test_provider_shutdown_delivers_the_spans_still_queued(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client()
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(AmplitudeSpanExporter(client)))
    tracer = provider.get_tracer("shop")
    for n in range(20):
        tracer.start_span(
            "op", attributes={"amplitude.event_type": "Step", "enduser.id": USER, "n": n}
        ).end()

    provider.shutdown()  # exports what the processor holds, then the exporter flushes

    assert sorted(e["event_properties"]["n"] for e in server.events) == list(range(20))


def test_otel_log_records_are_delivered(
    server: AmplitudeServer, make_client: MakeClient, logger_provider: LoggerProvider
):
    client = make_client()
    exporter = AmplitudeLogExporter(client)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = logger_provider.get_logger("shop.reports")

    logger.emit(body="Report Exported", attributes={"user_id": USER, "format": "pdf"})
    logger.emit(body={"plan": "pro"}, event_name="Plan Changed", attributes={"user_id": USER})
    logger.emit(body="GET /health 200")  # nobody's: counted, not sent

    assert logger_provider.force_flush()
    assert exporter.force_flush(5000)

    by_type = {e["event_type"]: e for e in server.events}
    assert set(by_type) == {"Report Exported", "Plan Changed"}
    assert by_type["Report Exported"]["event_properties"] == {"format": "pdf"}
    assert by_type["Plan Changed"]["event_properties"] == {"plan": "pro"}
    assert by_type["Plan Changed"]["app_version"] == "2.4.1"
    assert client.stats()["dropped_by_reason"] == {"no_identity": 1}


def test_logger_provider_shutdown_delivers_the_records_still_queued(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client()
    provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(AmplitudeLogExporter(client)))
    for n in range(10):
        provider.get_logger("shop").emit(body="Step", attributes={"user_id": USER, "n": n})

    provider.shutdown()

    assert sorted(e["event_properties"]["n"] for e in server.events) == list(range(10))


def test_no_threads_are_left_behind(server: AmplitudeServer, make_client: MakeClient):
    before = set(threading.enumerate())
    client = make_client()
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(AmplitudeSpanExporter(client)))
    provider.get_tracer("shop").start_span(
        "op", attributes={"amplitude.event_type": "Step", "enduser.id": USER}
    ).end()

    provider.shutdown()
    client.shutdown(timeout=2)

    assert len(server.events) == 1
    leftover = [
        t.name
        for t in threading.enumerate()
        if t not in before and not t.name.startswith("amplitude-server")  # the fixture's
    ]
    assert leftover == []

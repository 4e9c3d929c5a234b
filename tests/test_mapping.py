"""The shared mapping rules: top-level fields vs properties, and where identity comes from."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from otel_amplitude import Settings, bind
from otel_amplitude._event import to_wire
from otel_amplitude._mapping import EventMapper


@pytest.fixture
def tracer() -> Iterator[object]:
    provider = TracerProvider()
    yield provider.get_tracer("test")
    provider.shutdown()


def test_a_field_name_with_a_value_of_another_type_stays_a_property():
    mapper = EventMapper(Settings())
    event = mapper.build("x", {"user_id": "user-1", "plan": "pro", "country": "US", "price": "n/a"})
    assert event is not None
    wire = to_wire(event)
    assert wire["country"] == "US"
    assert wire["event_properties"] == {"plan": "pro", "price": "n/a"}


def test_a_bound_session_alone_still_takes_the_user_from_the_current_span(tracer):
    mapper = EventMapper(Settings())
    with tracer.start_as_current_span("request") as span, bind(session_id=1_700_000_000_000):
        span.set_attribute("enduser.id", "user-from-span")
        event = mapper.build("x", {})
    assert event is not None
    assert event.user_id == "user-from-span"
    assert to_wire(event)["session_id"] == 1_700_000_000_000


def test_a_bound_user_wins_over_the_span_and_the_mapping_wins_over_both(tracer):
    mapper = EventMapper(Settings())
    with tracer.start_as_current_span("request") as span, bind(user_id="user-bound"):
        span.set_attribute("enduser.id", "user-from-span")
        bound = mapper.build("x", {})
        explicit = mapper.build("x", {"user_id": "user-explicit"})
    assert bound is not None
    assert bound.user_id == "user-bound"
    assert explicit is not None
    assert explicit.user_id == "user-explicit"


def test_ip_is_dropped_unless_sending_ips_is_enabled():
    values = {"user_id": "user-1", "ip": "203.0.113.9"}
    assert "ip" not in to_wire(EventMapper(Settings()).build("x", values))  # type: ignore[arg-type]
    kept = EventMapper(Settings(send_ip=True)).build("x", values)
    assert kept is not None
    assert to_wire(kept)["ip"] == "203.0.113.9"

"""The shared mapping rules: top-level fields vs properties, and where identity comes from."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider

from otel_amplitude import Settings, bind
from otel_amplitude._event import Event, to_wire
from otel_amplitude._fields import TOP_LEVEL_FIELDS
from otel_amplitude._mapping import EventMapper
from otel_amplitude._validate import make_event
from otel_amplitude.exceptions import InvalidEventError


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


@pytest.mark.parametrize(
    ("key", "wire", "fitting", "other"),
    [
        ("country", "country", "US", 3),  # a string field
        ("quantity", "quantity", 2, True),  # an integer field: a bool is not an integer
        ("price", "price", 3.5, "n/a"),  # a number field
        ("skip_user_properties_sync", "$skip_user_properties_sync", True, 1),  # a boolean one
        ("plan", "plan", {"branch": "main"}, "pro"),  # an object field
    ],
)
def test_a_field_name_goes_to_the_top_level_only_with_its_type(key, wire, fitting, other):
    mapper = EventMapper(Settings())
    fitted = mapper.build("x", {"user_id": "user-1", key: fitting})
    unfitted = mapper.build("x", {"user_id": "user-1", key: other})
    assert fitted is not None
    assert unfitted is not None
    top, kept = to_wire(fitted), to_wire(unfitted)
    assert top[wire] == fitting
    assert "event_properties" not in top
    assert key not in kept
    assert kept["event_properties"] == {key: other}


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


_PROPERTY_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=1_100),
    st.lists(st.integers(), max_size=2),
)


@given(
    values=st.dictionaries(
        st.text(max_size=1_100).filter(lambda key: key not in TOP_LEVEL_FIELDS),
        _PROPERTY_VALUES,
        max_size=6,
    )
)
def test_properties_come_out_as_make_event_converts_them(values: dict[str, object]) -> None:
    """The mapper's fast path (plain values kept in the dict it built) changes nothing."""
    mapper = EventMapper(Settings())

    def outcome(build: Callable[[], Event | None]) -> object:
        try:
            event = build()
        except InvalidEventError as error:
            return ("invalid", error.field)
        assert event is not None
        properties = event.event_properties
        if properties is not None:
            assert properties is not values
        return None if properties is None else list(properties.items())

    assert outcome(lambda: mapper.build("x", {"user_id": "user-1", **values})) == outcome(
        lambda: make_event("x", user_id="user-1", event_properties=values)
    )


def test_added_properties_are_converted_too_and_lose_to_the_mappings_own():
    mapper = EventMapper(Settings())
    event = mapper.build(
        "x",
        {"user_id": "user-1", "level": "mine", "format": "pdf"},
        properties={"logger": "é" * 2_000, "level": "INFO"},
    )
    assert event is not None
    assert event.event_properties == {"logger": "é" * 1_024, "level": "mine", "format": "pdf"}

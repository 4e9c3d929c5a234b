"""Which spans are events and what each becomes: real SDK spans, no client, no network."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags, Tracer

from otel_amplitude._event import Event, to_wire
from otel_amplitude._settings import Settings
from otel_amplitude._span_mapping import Skipped, SpanMapper, session_id_of, span_insert_id

USER = "user-00001"
START_NS = 1_700_000_000_123_456_789
END_NS = START_NS + 42_500_000  # 42.5 ms later


class Spans:
    """A real TracerProvider whose finished spans are kept in memory."""

    def __init__(self, resource: Resource) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer: Tracer = self.provider.get_tracer("tests")

    def one(
        self,
        name: str = "op",
        attributes: dict[str, Any] | None = None,
        *,
        status: Status | None = None,
        events: Sequence[tuple[str, dict[str, Any], int]] = (),
    ) -> ReadableSpan:
        """End one span (started at START_NS, ended at END_NS) and return what was exported."""
        self.exporter.clear()
        span = self.tracer.start_span(name, attributes=attributes, start_time=START_NS)
        for event_name, event_attributes, timestamp in events:
            span.add_event(event_name, event_attributes, timestamp=timestamp)
        if status is not None:
            span.set_status(status)
        span.end(end_time=END_NS)
        (finished,) = self.exporter.get_finished_spans()
        return finished


@pytest.fixture
def spans() -> Iterator[Spans]:
    made = Spans(Resource.create({"service.name": "shop", "service.version": "2.4.1"}))
    yield made
    made.provider.shutdown()


def settings(**overrides: Any) -> Settings:
    return Settings(api_key="test-api-key-0001", **overrides)


def mapper(**overrides: Any) -> SpanMapper:
    return SpanMapper(settings(**overrides))


def only_event(outcomes: Any) -> dict[str, Any]:
    (outcome,) = outcomes
    assert isinstance(outcome, Event), outcome
    return to_wire(outcome)


# -- which spans are events ---------------------------------------------------------------------


def test_span_tagged_with_amplitude_event_type_is_an_event(spans: Spans):
    span = spans.one("POST /signup", {"amplitude.event_type": "Signed Up", "enduser.id": USER})

    event = only_event(mapper().map(span))

    assert event["event_type"] == "Signed Up"
    assert event["user_id"] == USER


def test_untagged_span_is_not_an_event(spans: Spans):
    assert list(mapper().map(spans.one("GET /health", {"enduser.id": USER}))) == []


def test_span_whose_name_matches_a_pattern_is_an_event_named_after_the_span(spans: Spans):
    patterns = mapper(span_events=("checkout.*", "report_?"))

    assert (
        only_event(patterns.map(spans.one("checkout.paid", {"enduser.id": USER})))["event_type"]
        == "checkout.paid"
    )
    assert (
        only_event(patterns.map(spans.one("report_1", {"enduser.id": USER})))["event_type"]
        == "report_1"
    )
    assert list(patterns.map(spans.one("report_12", {"enduser.id": USER}))) == []
    assert list(patterns.map(spans.one("Checkout.paid", {"enduser.id": USER}))) == []  # case


def test_pattern_matches_are_remembered_per_span_name_with_the_same_answer(spans: Spans):
    patterns = mapper(span_events=("checkout.*",))
    span = spans.one("checkout.paid", {"enduser.id": USER})

    first = only_event(patterns.map(span))
    second = only_event(patterns.map(span))

    assert first["event_type"] == second["event_type"] == "checkout.paid"


def test_tag_wins_over_the_span_name_for_a_matched_span(spans: Spans):
    span = spans.one("checkout.paid", {"amplitude.event_type": "Order Paid", "enduser.id": USER})

    assert only_event(mapper(span_events=("checkout.*",)).map(span))["event_type"] == "Order Paid"


def test_event_prefix_is_applied(spans: Spans):
    span = spans.one("op", {"amplitude.event_type": "Signed Up", "enduser.id": USER})

    assert only_event(mapper(event_prefix="shop_").map(span))["event_type"] == "shop_Signed Up"


def test_a_span_of_the_librarys_own_request_is_skipped_even_when_a_pattern_matches(spans: Spans):
    own = SpanMapper(settings(span_events=("*",)), own_hosts={"api2.amplitude.com"})
    request = {"enduser.id": USER, "server.address": "api2.amplitude.com"}
    old_semconv = {"enduser.id": USER, "http.url": "https://api2.amplitude.com/2/httpapi"}

    assert list(own.map(spans.one("POST", request))) == []
    assert list(own.map(spans.one("POST", old_semconv))) == []
    assert len(own.map(spans.one("POST", {"enduser.id": USER, "server.address": "shop"}))) == 1


# -- span events --------------------------------------------------------------------------------


def test_tagged_span_event_is_an_event_even_when_its_span_is_not(spans: Spans):
    at = START_NS + 5_000_000
    span = spans.one(
        "GET /cart",
        {"enduser.id": USER, "session.id": 1_699_999_000_000, "user_agent.original": "UA/1"},
        events=[
            ("log", {"note": "not an event"}, at),
            ("coupon", {"amplitude.event_type": "Coupon Applied", "code": "SPRING"}, at),
        ],
    )

    event = only_event(mapper().map(span))

    assert event["event_type"] == "Coupon Applied"
    assert event["user_id"] == USER  # from the span
    assert event["session_id"] == 1_699_999_000_000  # from the span
    assert event["user_agent"] == "UA/1"  # from the span
    assert event["app_version"] == "2.4.1"
    assert event["time"] == at // 1_000_000
    assert event["event_properties"] == {"code": "SPRING"}  # its own, no duration or status
    assert event["insert_id"] == span_insert_id(span.context.trace_id, span.context.span_id, 1)


def test_span_event_names_its_own_user_over_its_spans(spans: Spans):
    span = spans.one(
        "op",
        {"enduser.id": USER},
        events=[
            (
                "invite",
                {"amplitude.event_type": "Invited", "amplitude.user_id": "user-00002"},
                START_NS,
            )
        ],
    )

    assert only_event(mapper().map(span))["user_id"] == "user-00002"


def test_tagged_span_and_its_tagged_events_are_separate_events_with_distinct_ids(spans: Spans):
    span = spans.one(
        "op",
        {"amplitude.event_type": "Checkout", "enduser.id": USER},
        events=[
            ("a", {"amplitude.event_type": "Step"}, START_NS + 1),
            ("b", {"amplitude.event_type": "Step"}, START_NS + 2),
        ],
    )

    events = [to_wire(e) for e in mapper().map(span) if isinstance(e, Event)]

    assert [e["event_type"] for e in events] == ["Checkout", "Step", "Step"]
    assert len({e["insert_id"] for e in events}) == 3


# -- insert_id ----------------------------------------------------------------------------------


def test_insert_id_is_derived_from_trace_and_span_ids_so_a_reexport_is_deduplicated(spans: Spans):
    span = spans.one("op", {"amplitude.event_type": "Signed Up", "enduser.id": USER})

    first = only_event(mapper().map(span))
    again = only_event(mapper().map(span))

    assert first["insert_id"] == again["insert_id"]
    assert first["insert_id"] == span_insert_id(span.context.trace_id, span.context.span_id)
    assert len(first["insert_id"]) == 32
    int(first["insert_id"], 16)


def test_insert_ids_differ_between_spans(spans: Spans):
    tags = {"amplitude.event_type": "Signed Up", "enduser.id": USER}

    ids = {only_event(mapper().map(spans.one("op", tags)))["insert_id"] for _ in range(20)}

    assert len(ids) == 20


def test_span_insert_id_is_stable_and_separates_span_events():
    assert span_insert_id(1, 2) == span_insert_id(1, 2)
    assert (
        len(
            {
                span_insert_id(1, 2),
                span_insert_id(1, 2, 0),
                span_insert_id(1, 2, 1),
                span_insert_id(1, 3),
                span_insert_id(2, 2),
            }
        )
        == 5
    )


# -- identity -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "user_id"),
    [
        ({"user.id": "user-user"}, "user-user"),
        ({"enduser.id": "user-enduser", "user.id": "user-user"}, "user-enduser"),
        ({"amplitude.user_id": "user-amp", "enduser.id": "user-enduser"}, "user-amp"),
        ({"enduser.id": 123456}, "123456"),
    ],
)
def test_user_id_comes_from_amplitude_then_enduser_then_user_attributes(
    spans: Spans, attributes: dict[str, Any], user_id: str
):
    span = spans.one("op", {"amplitude.event_type": "e", **attributes})

    event = only_event(mapper().map(span))

    assert event["user_id"] == user_id
    assert not {"enduser.id", "user.id", "amplitude.user_id"} & set(event["event_properties"])


def test_device_id_comes_from_amplitude_device_id(spans: Spans):
    span = spans.one("op", {"amplitude.event_type": "e", "amplitude.device_id": "device-0001"})

    event = only_event(mapper().map(span))

    assert event["device_id"] == "device-0001"
    assert "user_id" not in event


def test_span_without_identity_is_skipped_as_no_identity(spans: Spans):
    (outcome,) = mapper().map(spans.one("op", {"amplitude.event_type": "e", "plan": "pro"}))

    assert outcome == Skipped("no_identity")


def test_span_with_an_unusable_id_is_invalid_naming_the_field(spans: Spans):
    (outcome,) = mapper().map(spans.one("op", {"amplitude.event_type": "e", "enduser.id": "u1"}))

    assert isinstance(outcome, Skipped)
    assert outcome.reason == "invalid"
    assert outcome.error is not None
    assert outcome.error.field == "user_id"


# -- session ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "session_id", "property_kept"),
    [
        (1_699_999_000_000, 1_699_999_000_000, False),
        ("1699999000000", 1_699_999_000_000, False),
        ("-1", -1, False),
        ("6f9619ff-8b86-d011-b42d-00cf4fc964ff", None, True),
        ("12ab", None, True),
        ("１２３", None, True),  # fullwidth digits are not a time  # noqa: RUF001
        (1.5, None, True),
    ],
)
def test_session_id_is_taken_only_when_it_is_a_number_else_kept_as_a_property(
    spans: Spans, value: Any, session_id: int | None, property_kept: bool
):
    span = spans.one("op", {"amplitude.event_type": "e", "enduser.id": USER, "session.id": value})

    event = only_event(mapper().map(span))

    assert event.get("session_id") == session_id
    assert ("session.id" in event["event_properties"]) is property_kept
    if property_kept:
        assert event["event_properties"]["session.id"] == value


def test_amplitude_session_id_wins_over_session_id(spans: Spans):
    span = spans.one(
        "op",
        {
            "amplitude.event_type": "e",
            "enduser.id": USER,
            "session.id": "1699999000000",
            "amplitude.session_id": 1_700_000_000_000,
        },
    )

    assert only_event(mapper().map(span))["session_id"] == 1_700_000_000_000


def test_session_id_of():
    assert session_id_of(5) == 5
    assert session_id_of(True) is None
    assert session_id_of("007") == 7
    assert session_id_of("-") is None
    assert session_id_of("9" * 20) is None
    assert session_id_of(None) is None


# -- time, duration, status -----------------------------------------------------------------------


def test_time_is_the_span_start_in_ms_and_duration_and_status_are_properties(spans: Spans):
    span = spans.one("op", {"amplitude.event_type": "e", "enduser.id": USER})

    event = only_event(mapper().map(span))

    assert event["time"] == START_NS // 1_000_000
    assert event["event_properties"] == {"duration_ms": 42.5, "status": "unset"}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (Status(StatusCode.OK), {"status": "ok"}),
        (
            Status(StatusCode.ERROR, "card declined"),
            {"status": "error", "status_description": "card declined"},
        ),
        (Status(StatusCode.ERROR), {"status": "error"}),
    ],
)
def test_span_status_becomes_status_and_description(
    spans: Spans, status: Status, expected: dict[str, str]
):
    span = spans.one("op", {"amplitude.event_type": "e", "enduser.id": USER}, status=status)

    properties = only_event(mapper().map(span))["event_properties"]

    assert {k: v for k, v in properties.items() if k.startswith("status")} == expected


def test_span_attributes_win_over_the_added_properties(spans: Spans):
    span = spans.one("op", {"amplitude.event_type": "e", "enduser.id": USER, "status": "paid"})

    assert only_event(mapper().map(span))["event_properties"]["status"] == "paid"


# -- semantic conventions and other fields ---------------------------------------------------------


def test_other_attributes_are_event_properties_and_sequences_become_lists(spans: Spans):
    span = spans.one(
        "op",
        {
            "amplitude.event_type": "e",
            "enduser.id": USER,
            "plan": "pro",
            "seats": 3,
            "trial": False,
            "ratio": 0.5,
            "tags": ("a", "b"),
            "http.route": "/signup",
        },
    )

    properties = only_event(mapper().map(span))["event_properties"]

    assert properties == {
        "plan": "pro",
        "seats": 3,
        "trial": False,
        "ratio": 0.5,
        "tags": ["a", "b"],
        "http.route": "/signup",
        "duration_ms": 42.5,
        "status": "unset",
    }


def test_app_version_comes_from_the_resource_service_version(spans: Spans):
    event = only_event(
        mapper().map(spans.one("op", {"amplitude.event_type": "e", "enduser.id": USER}))
    )

    assert event["app_version"] == "2.4.1"


def test_without_service_version_there_is_no_app_version():
    no_version = Spans(Resource.create({"service.name": "shop"}))
    try:
        span = no_version.one("op", {"amplitude.event_type": "e", "enduser.id": USER})
        assert "app_version" not in only_event(mapper().map(span))
    finally:
        no_version.provider.shutdown()


def test_user_agent_comes_from_user_agent_original(spans: Spans):
    for key in ("user_agent.original", "http.user_agent"):
        span = spans.one("op", {"amplitude.event_type": "e", "enduser.id": USER, key: "UA/2"})

        event = only_event(mapper().map(span))

        assert event["user_agent"] == "UA/2"
        assert key not in event["event_properties"]


def test_client_address_is_sent_as_ip_only_when_send_ip_is_on(spans: Spans):
    span = spans.one(
        "op",
        {
            "amplitude.event_type": "e",
            "enduser.id": USER,
            "client.address": "203.0.113.7",
            "network.peer.address": "10.0.0.1",
        },
    )

    without = only_event(mapper().map(span))
    with_ip = only_event(mapper(send_ip=True).map(span))

    assert "ip" not in without
    assert with_ip["ip"] == "203.0.113.7"
    for event in (without, with_ip):  # an address is never an event property
        assert not {"client.address", "network.peer.address"} & set(event["event_properties"])


def test_amplitude_ip_is_also_dropped_without_send_ip(spans: Spans):
    span = spans.one(
        "op", {"amplitude.event_type": "e", "enduser.id": USER, "amplitude.ip": "203.0.113.7"}
    )

    assert "ip" not in only_event(mapper().map(span))
    assert only_event(mapper(send_ip=True).map(span))["ip"] == "203.0.113.7"


def test_amplitude_prefixed_attributes_set_top_level_fields_and_user_properties(spans: Spans):
    span = spans.one(
        "op",
        {
            "amplitude.event_type": "Purchased",
            "enduser.id": USER,
            "amplitude.platform": "Web",
            "amplitude.revenue": 9.99,
            "amplitude.app_version": "9.9",
            "amplitude.user_properties.plan": "pro",
            "item": "book",
        },
    )

    event = only_event(mapper().map(span))

    assert event["platform"] == "Web"
    assert event["revenue"] == 9.99
    assert event["app_version"] == "9.9"  # wins over service.version
    assert event["user_properties"] == {"plan": "pro"}
    assert set(event["event_properties"]) == {"item", "duration_ms", "status"}


def test_unknown_amplitude_attribute_makes_the_event_invalid_naming_it(spans: Spans):
    span = spans.one(
        "op", {"amplitude.event_type": "e", "enduser.id": USER, "amplitude.app_verison": "1.0"}
    )

    (outcome,) = mapper().map(span)

    assert isinstance(outcome, Skipped)
    assert outcome.reason == "invalid"
    assert outcome.error is not None
    assert outcome.error.field == "amplitude.app_verison"
    assert "1.0" not in str(outcome.error)  # never the value


def test_non_string_event_type_is_invalid(spans: Spans):
    (outcome,) = mapper().map(spans.one("op", {"amplitude.event_type": 7, "enduser.id": USER}))

    assert isinstance(outcome, Skipped)
    assert outcome.reason == "invalid"


def test_a_readable_span_built_by_hand_maps_like_one_from_the_sdk(spans: Spans):
    # Spans that did not come through the SDK's tracer (a bridge, a test double) carry plain
    # attribute dicts: the mapping reads them through the public API.
    sdk_span = spans.one("op", {"amplitude.event_type": "e", "enduser.id": USER, "plan": "pro"})
    context = SpanContext(sdk_span.context.trace_id, sdk_span.context.span_id, False, TraceFlags(1))
    by_hand = ReadableSpan(
        name="op",
        context=context,
        resource=sdk_span.resource,
        attributes={"amplitude.event_type": "e", "enduser.id": USER, "plan": "pro"},
        start_time=START_NS,
        end_time=END_NS,
    )

    assert only_event(mapper().map(by_hand)) == only_event(mapper().map(sdk_span))


def test_span_insert_ids_are_those_of_earlier_versions():
    """The ids are Amplitude's dedup keys: a re-export after an upgrade must still match."""
    trace_id, span_id = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    key = trace_id.to_bytes(16, "big") + span_id.to_bytes(8, "big")
    assert span_insert_id(trace_id, span_id) == hashlib.blake2b(key, digest_size=16).hexdigest()
    assert span_insert_id(trace_id, span_id, 2) == (
        hashlib.blake2b(key + (2).to_bytes(4, "big"), digest_size=16).hexdigest()
    )
    assert span_insert_id(trace_id, span_id) == "af2ca25ee7e3422062488dbdcf7351bf"

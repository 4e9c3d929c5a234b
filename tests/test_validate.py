"""make_event and json_safe: what is accepted, how it is normalised, what is refused and how."""

from __future__ import annotations

import enum
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from datetime import time as dt_time
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_amplitude._event import Event, to_wire
from otel_amplitude._validate import (
    INVALID_IDS,
    USER_PROPERTY_OPERATIONS,
    _id,
    json_safe,
    kept_as_is,
    make_event,
    new_event,
)
from otel_amplitude.exceptions import InvalidEventError

USER = "user-12345"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_MS = 253_402_214_399_999  # 9999-12-30T23:59:59.999Z: a day's margin for any UTC offset


def event(**kwargs: Any) -> Event:
    kwargs.setdefault("user_id", USER)
    return make_event(kwargs.pop("event_type", "Signed Up"), **kwargs)


def rejected(**kwargs: Any) -> InvalidEventError:
    with pytest.raises(InvalidEventError) as info:
        event(**kwargs)
    return info.value


def roundtrip(e: Event) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(to_wire(e)))
    return loaded


class Color(enum.Enum):
    RED = "red"
    PAIR = ("a", 1)


class Level(enum.IntEnum):
    HIGH = 3


class Opaque:
    def __str__(self) -> str:
        return "opaque"


class Broken:
    def __str__(self) -> str:
        raise RuntimeError("no")


# -- a typical event -----------------------------------------------------------------------------


def test_a_typical_event_reaches_the_wire_as_given() -> None:
    e = make_event(
        "Signed Up",
        user_id=USER,
        device_id="device-1",
        time=1_700_000_000_123,
        insert_id="abc-1",
        event_properties={"plan": "pro", "seats": 3, "trial": False, "coupon": None},
        created=12.5,
    )
    assert roundtrip(e) == {
        "event_type": "Signed Up",
        "user_id": USER,
        "device_id": "device-1",
        "time": 1_700_000_000_123,
        "insert_id": "abc-1",
        "event_properties": {"plan": "pro", "seats": 3, "trial": False, "coupon": None},
    }
    assert e.created == 12.5
    assert e.fields is None
    assert e.user_properties is None


def test_every_slot_of_the_event_is_set() -> None:
    # new_event fills the slots itself rather than calling Event(): none may be forgotten.
    e = event(event_properties={"plan": "pro"})
    assert {name: getattr(e, name) for name in Event.__slots__ if name not in VARYING} == {
        "attempts": 0,
        "destination": "",
        "device_id": None,
        "epoch": 0,
        "event_properties": {"plan": "pro"},
        "event_type": "Signed Up",
        "fields": None,
        "spool_id": 0,
        "user_id": USER,
        "user_properties": None,
    }


VARYING = {"created", "insert_id", "time"}


def test_new_event_takes_make_events_arguments_by_position() -> None:
    arguments: dict[str, Any] = {
        "user_id": USER,
        "device_id": "device-1",
        "time": 1_700_000_000_123,
        "insert_id": "abc-1",
        "event_properties": {"plan": "pro"},
        "user_properties": {"$set": {"tier": 2}},
        "fields": {"app_version": "1.2"},
        "min_id_length": 3,
        "created": 12.5,
    }
    by_name = make_event("Signed Up", **arguments)
    by_position = new_event(
        "Signed Up", USER, "device-1", 1_700_000_000_123, "abc-1", {"plan": "pro"},
        {"$set": {"tier": 2}}, {"app_version": "1.2"}, 3, 12.5, False,
    )  # fmt: skip
    assert {name: getattr(by_position, name) for name in Event.__slots__} == {
        name: getattr(by_name, name) for name in Event.__slots__
    }


def test_the_first_invalid_argument_is_the_one_reported() -> None:
    assert rejected(event_type="", user_id="ab", event_properties={"x": math.nan}).field == (
        "event_type"
    )
    assert rejected(user_id="ab", time=-1, event_properties={"x": math.nan}).field == "user_id"
    assert rejected(time=-1, insert_id="", event_properties={"x": math.nan}).field == "time"
    assert rejected(insert_id="", event_properties={"x": math.nan}).field == "insert_id"


def test_created_defaults_to_the_monotonic_clock() -> None:
    before = time.monotonic()
    e = event()
    assert before <= e.created <= time.monotonic()


# -- event_type ----------------------------------------------------------------------------------


def test_event_type_is_kept_as_given_including_surrounding_spaces() -> None:
    assert event(event_type=" Signed Up ").event_type == " Signed Up "


@pytest.mark.parametrize("event_type", ["", " ", "\t\n "])
def test_an_empty_or_blank_event_type_is_invalid(event_type: str) -> None:
    error = rejected(event_type=event_type)
    assert error.field == "event_type"
    assert "empty" in error.reason


@pytest.mark.parametrize("event_type", [None, 3, b"Signed Up", ["Signed Up"]])
def test_an_event_type_that_is_not_a_string_is_invalid(event_type: object) -> None:
    error = rejected(event_type=event_type)
    assert error.field == "event_type"
    assert "must be a string" in error.reason


def test_a_long_event_type_is_capped_at_1024_characters() -> None:
    assert event(event_type="x" * 2000).event_type == "x" * 1024


@pytest.mark.parametrize(
    "event_type",
    [
        "[Amplitude] Start Session",
        "[Amplitude] End Session",
        "[Amplitude] Revenue",
        "[Amplitude] Revenue (Verified)",
        "[Amplitude] Revenue (Unverified)",
        "[Amplitude] Merged User",
        "$identify",
        "$groupidentify",
    ],
)
def test_reserved_event_types_are_allowed_when_sent_deliberately(event_type: str) -> None:
    assert event(event_type=event_type).event_type == event_type


def test_a_str_subclass_event_type_becomes_a_plain_str() -> None:
    class Name(str):
        pass

    e = event(event_type=Name("Signed Up"))
    assert type(e.event_type) is str
    assert e.event_type == "Signed Up"


# -- user_id and device_id -----------------------------------------------------------------------


def test_an_event_needs_a_user_id_or_a_device_id() -> None:
    error = rejected(user_id=None)
    assert error.field == "user_id"
    assert error.reason == "an event needs a user_id or a device_id"


def test_a_device_id_alone_is_enough() -> None:
    e = event(user_id=None, device_id="device-1")
    assert e.user_id is None
    assert e.device_id == "device-1"
    assert "user_id" not in roundtrip(e)


@pytest.mark.parametrize("field", ["user_id", "device_id"])
def test_int_ids_are_sent_as_their_decimal_string(field: str) -> None:
    e = event(**{field: 1234567})
    assert getattr(e, field) == "1234567"


@pytest.mark.parametrize("field", ["user_id", "device_id"])
@pytest.mark.parametrize("value", [True, 12345.0, b"user-12345", uuid.UUID(int=1)])
def test_ids_of_other_types_are_invalid(field: str, value: object) -> None:
    error = rejected(**{field: value})
    assert error.field == field
    assert "must be a string" in error.reason


@st.composite
def case_mixes(draw: st.DrawFn) -> str:
    value = draw(st.sampled_from(sorted(INVALID_IDS)))
    upper = draw(st.lists(st.booleans(), min_size=len(value), max_size=len(value)))
    return "".join(c.upper() if up else c for c, up in zip(value, upper, strict=True))


@given(value=case_mixes(), field=st.sampled_from(["user_id", "device_id"]))
def test_amplitudes_invalid_id_values_are_rejected_in_any_case(value: str, field: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        make_event("Signed Up", **{field: value}, min_id_length=1)  # type: ignore[arg-type]
    assert info.value.field == field
    assert info.value.reason == (
        f"is {value!r}, which Amplitude rejects as an invalid id; omit it instead"
    )


@pytest.mark.parametrize("value", [0, -1])
def test_the_invalid_id_list_applies_to_int_ids_too(value: int) -> None:
    assert rejected(user_id=value, min_id_length=1).field == "user_id"


def test_a_short_id_is_invalid_and_the_error_explains_without_echoing_it() -> None:
    error = rejected(user_id="ab12")
    assert error.field == "user_id"
    assert "4 characters" in error.reason
    assert "minimum of 5" in error.reason
    assert "ab12" not in str(error)


def test_min_id_length_lowers_or_raises_the_minimum() -> None:
    assert event(user_id="ab1", min_id_length=3).user_id == "ab1"
    assert rejected(user_id="user-12345", min_id_length=20).field == "user_id"


def test_an_empty_id_is_invalid_whatever_the_minimum() -> None:
    error = rejected(device_id="", min_id_length=0)
    assert error.field == "device_id"
    assert "empty" in error.reason


def test_an_id_longer_than_1024_characters_is_invalid_not_truncated() -> None:
    assert event(user_id="u" * 1024).user_id == "u" * 1024
    error = rejected(user_id="u" * 1025)
    assert error.field == "user_id"
    assert "1024" in error.reason


def test_an_id_with_a_lone_surrogate_is_invalid() -> None:
    assert rejected(user_id="user-\ud800x").field == "user_id"


@given(
    value=st.one_of(
        st.text(max_size=40),
        st.text(alphabet="ab-", min_size=1020, max_size=1030),
        st.sampled_from(sorted(INVALID_IDS)),
    ),
    min_id_length=st.one_of(st.none(), st.integers(-1, 40)),
)
def test_an_id_is_kept_converted_or_refused_exactly_as_the_full_check_says(
    value: str, min_id_length: int | None
) -> None:
    # make_event lets the common id through without calling _id: never one _id would change.
    minimum = 5 if min_id_length is None else max(min_id_length, 1)
    try:
        expected: object = _id("user_id", value, minimum)
    except InvalidEventError as error:
        expected = (error.field, error.reason)
    try:
        got: object = make_event("x", user_id=value, min_id_length=min_id_length).user_id
    except InvalidEventError as error:
        got = (error.field, error.reason)
    assert got == expected


def test_non_ascii_ids_are_fine() -> None:
    assert event(user_id="utilisateur-é").user_id == "utilisateur-é"


# -- time ----------------------------------------------------------------------------------------


def test_time_defaults_to_now_in_integer_ms() -> None:
    before = time.time_ns() // 1_000_000
    e = event()
    assert before <= e.time <= time.time_ns() // 1_000_000
    assert type(e.time) is int


def test_an_int_time_is_ms_since_the_epoch_as_is() -> None:
    assert event(time=1_700_000_000_123).time == 1_700_000_000_123
    assert event(time=0).time == 0


def test_a_float_time_is_seconds_since_the_epoch_rounded_to_the_nearest_ms() -> None:
    assert event(time=1_700_000_000.123).time == 1_700_000_000_123
    assert event(time=1_700_000_000.0).time == 1_700_000_000_000
    assert event(time=0.0004).time == 0


@given(ms=st.integers(0, 8_000_000_000_000))
def test_float_seconds_of_a_whole_ms_give_that_ms(ms: int) -> None:
    assert event(time=ms / 1000).time == ms


@given(
    ms=st.integers(0, MAX_MS),
    micros=st.integers(0, 999),
    offset_minutes=st.integers(-23 * 60, 23 * 60),
)
def test_an_aware_datetime_converts_exactly_rounding_down(
    ms: int, micros: int, offset_minutes: int
) -> None:
    instant = EPOCH + timedelta(milliseconds=ms, microseconds=micros)
    local = instant.astimezone(timezone(timedelta(minutes=offset_minutes)))
    assert event(time=local).time == ms


@given(ms=st.integers(0, MAX_MS))
def test_a_naive_datetime_is_taken_as_utc(ms: int) -> None:
    naive = (EPOCH + timedelta(milliseconds=ms)).replace(tzinfo=None)
    assert event(time=naive).time == ms


def test_a_date_is_midnight_utc() -> None:
    assert event(time=date(1970, 1, 2)).time == 86_400_000
    assert event(time=date(2024, 5, 1)).time == 1_714_521_600_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", 1_714_564_800_000),
        ("2024-05-01T12:00:00z", 1_714_564_800_000),
        ("2024-05-01T12:00:00.123456Z", 1_714_564_800_123),
        ("2024-05-01T14:00:00+02:00", 1_714_564_800_000),
        ("2024-05-01T12:00:00", 1_714_564_800_000),
        ("2024-05-01", 1_714_521_600_000),
        (" 2024-05-01T12:00:00.500+00:00 ", 1_714_564_800_500),
    ],
)
def test_an_iso_8601_string_is_parsed(text: str, expected: int) -> None:
    assert event(time=text).time == expected


@given(ms=st.integers(0, MAX_MS), offset_minutes=st.integers(-23 * 60, 23 * 60))
def test_an_isoformat_string_converts_like_its_datetime(ms: int, offset_minutes: int) -> None:
    instant = (EPOCH + timedelta(milliseconds=ms)).astimezone(
        timezone(timedelta(minutes=offset_minutes))
    )
    assert event(time=instant.isoformat()).time == ms


@pytest.mark.parametrize(
    "value",
    [
        True,
        math.nan,
        math.inf,
        -1,
        -0.5,
        datetime(1969, 12, 31, 23, 59, tzinfo=timezone.utc),
        date(1969, 12, 31),
        "yesterday",
        "1714564800000",
        "",
        2**63,
        Decimal(5),
        [1],
    ],
)
def test_times_that_cannot_be_ms_since_the_epoch_are_invalid(value: object) -> None:
    error = rejected(time=value)
    assert error.field == "time"
    if isinstance(value, str) and value:
        assert value not in error.reason


# -- insert_id -----------------------------------------------------------------------------------


def test_an_insert_id_is_generated_when_none_is_given() -> None:
    first, second = event(), event()
    assert first.insert_id
    assert first.insert_id != second.insert_id
    assert len(first.insert_id) <= 36


def test_a_given_insert_id_is_kept_unchanged() -> None:
    assert event(insert_id=" span-1 ").insert_id == " span-1 "
    assert event(insert_id="i" * 1024).insert_id == "i" * 1024


@pytest.mark.parametrize("value", ["", "i" * 1025, 12345, b"abc", "a\udc80b"])
def test_an_unusable_insert_id_is_invalid(value: object) -> None:
    assert rejected(insert_id=value).field == "insert_id"


# -- properties ----------------------------------------------------------------------------------


PLAIN_VALUES = st.one_of(
    st.text(max_size=20),
    st.text(alphabet="ab", min_size=1020, max_size=1030),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.booleans(),
    st.none(),
)


@given(
    properties=st.dictionaries(
        st.one_of(st.text(max_size=10), st.text(alphabet="k", min_size=1020, max_size=1030)),
        PLAIN_VALUES,
        max_size=8,
    )
)
def test_properties_are_copied_or_converted_exactly_as_json_safe_says(
    properties: dict[str, Any],
) -> None:
    # make_event copies a dict kept_as_is() accepts without converting it: never one that
    # json_safe would change.
    try:
        expected: object = json_safe(properties, field="event_properties") or None
    except InvalidEventError as error:
        expected = (error.field, error.reason)
    try:
        e = event(event_properties=properties)
    except InvalidEventError as error:
        got: object = (error.field, error.reason)
    else:
        got = e.event_properties
        assert got is not properties
        if kept_as_is(properties) and properties:
            assert got == properties
    assert got == expected


def test_changing_the_callers_properties_afterwards_does_not_change_the_event() -> None:
    nested: dict[str, Any] = {"tags": ["a"], "meta": {"k": "v"}}
    props: dict[str, object] = {"plan": "pro", "nested": nested}
    e = event(event_properties=props, user_properties={"$set": {"plan": "pro"}})
    props["plan"] = "free"
    props["new"] = 1
    nested["tags"].append("b")
    nested["meta"]["k"] = "changed"
    assert e.event_properties == {"plan": "pro", "nested": {"tags": ["a"], "meta": {"k": "v"}}}


@pytest.mark.parametrize("field", ["event_properties", "user_properties"])
def test_empty_properties_are_not_sent(field: str) -> None:
    e = event(**{field: {}})
    assert getattr(e, field) is None
    assert field not in roundtrip(e)


@pytest.mark.parametrize("field", ["event_properties", "user_properties"])
@pytest.mark.parametrize("value", [[("a", 1)], "a=1", 3])
def test_properties_must_be_a_mapping(field: str, value: object) -> None:
    error = rejected(**{field: value})
    assert error.field == field
    assert "mapping" in error.reason


def test_more_than_1024_properties_are_invalid_as_amplitude_would_drop_them_all() -> None:
    assert event(event_properties={str(i): i for i in range(1024)}).event_properties
    error = rejected(event_properties={str(i): i for i in range(1025)})
    assert error.field == "event_properties"
    assert "1024" in error.reason


def test_any_mapping_is_accepted_and_becomes_a_dict() -> None:
    e = event(event_properties=OrderedDict(a=1))
    assert type(e.event_properties) is dict
    assert e.event_properties == {"a": 1}


def test_non_string_keys_become_their_str() -> None:
    props: dict[Any, object] = {1: "a", None: "b", (1, 2): "c", Color.RED: "d"}
    assert event(event_properties=props).event_properties == {
        "1": "a",
        "None": "b",
        "(1, 2)": "c",
        "Color.RED": "d",
    }


def test_long_strings_and_keys_are_capped_at_1024_characters() -> None:
    e = event(event_properties={"k" * 2000: "v" * 2000, "list": ["w" * 1500]})
    assert e.event_properties == {"k" * 1024: "v" * 1024, "list": ["w" * 1024]}


def test_lone_surrogates_are_replaced_so_the_event_is_valid_utf8() -> None:
    e = event(event_properties={"name\udc80": "a\ud800b", "emoji": "\ud83d\ude00"})
    assert e.event_properties == {"name\ufffd": "a\ufffdb", "emoji": "\U0001f600"}
    orjson.dumps(to_wire(e))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_float_is_invalid_and_named_by_its_path(bad: float) -> None:
    error = rejected(event_properties={"latency": bad})
    assert error.field == "event_properties.latency"
    error = rejected(event_properties={"a": {"b": [1, bad]}})
    assert error.field == "event_properties.a.b[1]"
    error = rejected(user_properties={"$set": {"score": bad}})
    assert error.field == "user_properties.$set.score"


def test_properties_may_nest_40_levels_deep_but_not_41() -> None:
    def nested(levels: int) -> dict[str, object]:
        value: dict[str, object] = {"leaf": 1}
        for _ in range(levels - 1):
            value = {"n": value}
        return value

    assert event(event_properties=nested(40)).event_properties
    error = rejected(event_properties=nested(41))
    assert error.field.startswith("event_properties.n.n")
    assert "40" in error.reason


def test_a_self_referencing_list_is_invalid_not_a_recursion_error() -> None:
    loop: list[object] = []
    loop.append(loop)
    assert "deeper" in rejected(event_properties={"loop": loop}).reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (("a", 1), ["a", 1]),
        ({3, 1, 2}, [1, 2, 3]),
        (frozenset({"b", "a"}), ["a", "b"]),
        (datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc), "2024-05-01T12:00:00+00:00"),
        (datetime(2024, 5, 1, 12, 0, 0, 5000), "2024-05-01T12:00:00.005000"),
        (date(2024, 5, 1), "2024-05-01"),
        (dt_time(12, 30), "12:30:00"),
        (Decimal("12"), 12),
        (Decimal("1.5"), 1.5),
        (Decimal("1E+30"), "1E+30"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (Color.RED, "red"),
        (Color.PAIR, ["a", 1]),
        (Level.HIGH, 3),
        (Fraction(1, 4), 0.25),
        (2**70, str(2**70)),
        (-(2**63), -(2**63)),
        (range(3), [0, 1, 2]),
        (Opaque(), "opaque"),
        (1 + 2j, "(1+2j)"),
        (timedelta(seconds=90), "0:01:30"),
    ],
)
def test_json_safe_converts_by_the_documented_rule(value: object, expected: object) -> None:
    converted = json_safe(value)
    assert converted == expected
    assert type(converted) is type(expected)


def test_sets_of_mixed_types_convert_the_same_way_every_time() -> None:
    assert json_safe({1, "a", None}) == json_safe({None, "a", 1})


@pytest.mark.parametrize("value", [b"secret", bytearray(b"secret"), memoryview(b"secret")])
def test_bytes_are_invalid_and_the_error_says_to_decode_them(value: object) -> None:
    error = rejected(event_properties={"token": value})
    assert error.field == "event_properties.token"
    assert "decode" in error.reason
    assert "secret" not in str(error)


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("-Infinity"), Decimal("sNaN")])
def test_a_non_finite_decimal_is_invalid(value: Decimal) -> None:
    assert rejected(event_properties={"amount": value}).field == "event_properties.amount"


def test_an_object_whose_str_fails_is_invalid_not_a_crash() -> None:
    error = rejected(event_properties={"thing": Broken()})
    assert error.field == "event_properties.thing"
    assert "Broken" in error.reason
    error = rejected(event_properties={Broken(): 1})
    assert error.field == "event_properties"


def test_errors_never_echo_a_property_value() -> None:
    secret = "4111-1111-1111-1111"
    for props in ({"card": [secret, math.nan]}, {"card": {"number": secret, "cvv": b"123"}}):
        error = rejected(event_properties=props)
        assert secret not in str(error)


def test_user_property_operations_take_mappings() -> None:
    ops = {op: {"plan": "pro"} for op in USER_PROPERTY_OPERATIONS}
    assert event(user_properties=ops).user_properties == ops


@pytest.mark.parametrize("operation", sorted(USER_PROPERTY_OPERATIONS))
def test_a_user_property_operation_with_a_non_mapping_value_is_invalid(operation: str) -> None:
    error = rejected(user_properties={operation: "pro"})
    assert error.field == f"user_properties.{operation}"
    assert "mapping" in error.reason


def test_the_operation_names_are_amplitudes() -> None:
    assert {
        "$set",
        "$setOnce",
        "$add",
        "$append",
        "$prepend",
        "$unset",
        "$preInsert",
        "$postInsert",
        "$remove",
    } == USER_PROPERTY_OPERATIONS


# -- other top-level fields ----------------------------------------------------------------------


def test_fields_are_stored_under_their_wire_names() -> None:
    e = event(
        fields={
            "product_id": "sku-1",
            "revenueType": "purchase",
            "skip_user_properties_sync": True,
            "price": 9.99,
            "quantity": 2,
            "session_id": 1_700_000_000_000,
            "app_version": "1.2.3",
            "ip": "$remote",
            "groups": {"company": "acme", "team": ["a", "b"]},
            "plan": {"branch": "main", "version": "3"},
        }
    )
    assert e.fields == {
        "productId": "sku-1",
        "revenueType": "purchase",
        "$skip_user_properties_sync": True,
        "price": 9.99,
        "quantity": 2,
        "session_id": 1_700_000_000_000,
        "app_version": "1.2.3",
        "ip": "$remote",
        "groups": {"company": "acme", "team": ["a", "b"]},
        "plan": {"branch": "main", "version": "3"},
    }
    wire = roundtrip(e)
    assert wire["productId"] == "sku-1"
    assert wire["$skip_user_properties_sync"] is True


def test_no_fields_and_fields_that_are_none_or_empty_send_nothing() -> None:
    assert event().fields is None
    assert event(fields={}).fields is None
    assert event(fields={"app_version": None, "plan": {}}).fields is None


def test_an_unknown_field_is_invalid_and_points_to_event_properties() -> None:
    error = rejected(fields={"latency_ms": 12})
    assert error.field == "latency_ms"
    assert error.reason == "is not an Amplitude event field; put it in event_properties"


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("sesion_id", "session_id"), ("productid", "productId"), ("App_Version", "app_version")],
)
def test_an_unknown_field_close_to_a_real_one_gets_a_suggestion(name: str, suggestion: str) -> None:
    error = rejected(fields={name: "x"})
    assert error.field == name
    assert f"did you mean {suggestion!r}" in error.reason


def test_a_make_event_argument_passed_as_a_field_is_redirected() -> None:
    error = rejected(fields={"user_id": "someone"})
    assert error.field == "user_id"
    assert "pass user_id=" in error.reason


def test_a_field_given_under_both_spellings_is_invalid() -> None:
    error = rejected(fields={"product_id": "a", "productId": "b"})
    assert "twice" in error.reason


def test_session_id_minus_one_means_no_session() -> None:
    assert event(fields={"session_id": -1}).fields == {"session_id": -1}


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("app_version", "v" * 2000, "v" * 1024),
        ("quantity", 3.0, 3),
        ("quantity", Decimal("4"), 4),
        ("event_id", Level.HIGH, 3),
        ("price", 10, 10),
        ("price", Decimal("9.5"), 9.5),
        ("location_lat", -33.86, -33.86),
        ("skip_user_properties_sync", False, False),
        ("ingestion_metadata", {"source_name": "svc", "source_version": 2}, None),
    ],
)
def test_field_values_are_normalised_by_kind(name: str, value: object, expected: object) -> None:
    fields = event(fields={name: value}).fields
    assert fields is not None
    converted = next(iter(fields.values()))
    assert converted == (value if expected is None else expected)
    if expected is not None:
        assert type(converted) is type(expected)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("app_version", 3, "must be a string"),
        ("quantity", True, "must be an integer"),
        ("quantity", 2.5, "must be an integer"),
        ("quantity", math.nan, "must be an integer"),
        ("quantity", "2", "must be an integer"),
        ("session_id", 2**64, "64-bit"),
        ("price", True, "must be a number"),
        ("price", "9.99", "must be a number"),
        ("price", math.inf, "infinite"),
        ("price", Decimal("sNaN"), "infinite"),
        ("revenue", Fraction(10**400, 3), "infinite"),
        ("skip_user_properties_sync", 1, "True or False"),
        ("groups", ["acme"], "mapping"),
        ("groups", {f"type{i}": "v" for i in range(6)}, "at most 5"),
        ("plan", {"version": math.nan}, "infinite"),
    ],
)
def test_field_values_of_the_wrong_kind_are_invalid(name: str, value: object, problem: str) -> None:
    error = rejected(fields={name: value})
    assert problem in error.reason
    assert error.field.startswith(name)


def test_fields_must_be_a_mapping() -> None:
    assert rejected(fields=[("ip", "1.2.3.4")]).field == "fields"


# -- properties of the whole conversion ----------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=8)


@given(event_properties=json_objects, user_properties=json_objects)
def test_any_json_safe_properties_survive_the_wire_unchanged(
    event_properties: dict[str, Any], user_properties: dict[str, Any]
) -> None:
    user_properties = {k: v for k, v in user_properties.items() if not k.startswith("$")}
    e = event(event_properties=event_properties, user_properties=user_properties)
    wire = roundtrip(e)
    assert wire.get("event_properties", {}) == event_properties
    assert wire.get("user_properties", {}) == user_properties


_zones = st.sampled_from([None, timezone.utc, timezone(timedelta(hours=5, minutes=30))])
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(st.characters(categories=("Cs", "Ll", "Nd", "So")), max_size=8)
    | st.decimals()
    | st.fractions()
    | st.complex_numbers()
    | st.uuids()
    | st.datetimes(timezones=_zones)
    | st.dates()
    | st.times()
    | st.timedeltas()
    | st.binary(max_size=4)
    | st.sampled_from(Color)
    | st.sampled_from(Level)
    | st.builds(Opaque)
    | st.builds(Broken)
)
# Decimals stay out of sets: a signalling NaN cannot be hashed.
set_members = scalars.filter(lambda v: not isinstance(v, Decimal))
anything = st.recursive(
    scalars | st.frozensets(set_members, max_size=4),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(
            st.text(max_size=4) | st.integers() | st.none() | st.tuples(st.integers()),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@given(value=anything)
def test_json_safe_either_gives_serialisable_json_or_raises_invalid_event_error(
    value: object,
) -> None:
    try:
        converted = json_safe(value)
    except InvalidEventError:
        return
    orjson.dumps(converted)
    assert json_safe(converted) == converted  # the conversion is idempotent


@given(value=anything)
def test_make_event_either_gives_a_serialisable_event_or_raises_invalid_event_error(
    value: object,
) -> None:
    try:
        e = event(event_properties={"value": value}, fields={"groups": {"g": value}})
    except InvalidEventError:
        return
    orjson.dumps(to_wire(e))


def test_make_event_accepts_read_only_mappings() -> None:
    props: Mapping[str, object] = MappingProxyType({"a": 1})
    assert event(event_properties=props).event_properties == {"a": 1}

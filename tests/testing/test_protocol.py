"""The test server's pure parts, without sockets: protocol rules, fault plan, rate windows."""

from __future__ import annotations

import base64
import datetime
import gzip
import zlib
from typing import Any

import orjson
import pytest

from otel_amplitude.testing import Fault, FaultPlan
from otel_amplitude.testing._faults import RANDOM_FAULT_KINDS
from otel_amplitude.testing._protocol import (
    DAILY_EVENT_QUOTA,
    INVALID_ID_VALUES,
    MAX_STRING_LENGTH,
    RequestError,
    Throttling,
    decode_body,
    deletion_body,
    eps_of,
    find_throttled,
    invalid_events_body,
    parse_basic_auth,
    parse_deletion,
    parse_form,
    parse_identify,
    parse_ingestion,
    parse_json,
    partition_key,
    success_body,
    throttled_body,
    truncate_strings,
    validate_events,
)
from otel_amplitude.testing._rates import RequestSpacing, SlidingWindowCounter


def rejection(error: RequestError) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(error.body)
    return body


def event(**fields: Any) -> dict[str, Any]:
    return {"event_type": "Clicked", "user_id": "user-1", **fields}


# --- bodies ---------------------------------------------------------------------------------------


def test_identity_body_is_returned_unchanged() -> None:
    assert decode_body(b"abc", None, max_size=10) == b"abc"
    assert decode_body(b"abc", "identity", max_size=10) == b"abc"


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("x-gzip", gzip.compress), ("deflate", zlib.compress)],
)
def test_compressed_body_is_decompressed(encoding: str, compress: Any) -> None:
    assert decode_body(compress(b'{"a": 1}'), encoding, max_size=100) == b'{"a": 1}'


def test_decompression_stops_just_past_the_limit() -> None:
    bomb = gzip.compress(b"0" * 10_000_000)
    assert len(decode_body(bomb, "gzip", max_size=1000)) == 1001


@pytest.mark.parametrize("raw", [b"not gzip at all", gzip.compress(b"x" * 100)[:-12]])
def test_corrupt_or_truncated_gzip_is_a_400(raw: bytes) -> None:
    with pytest.raises(RequestError) as caught:
        decode_body(raw, "gzip", max_size=1000)
    assert caught.value.status == 400
    assert rejection(caught.value)["error"] == "Invalid JSON request body"


def test_unknown_content_encoding_is_a_415() -> None:
    with pytest.raises(RequestError) as caught:
        decode_body(b"x", "br", max_size=10)
    assert caught.value.status == 415


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "Missing request body"),
        (b"  ", "Missing request body"),
        (b"{", "Invalid JSON request body"),
    ],
)
def test_unreadable_json_is_a_400(body: bytes, error: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_json(body)
    assert rejection(caught.value) == {"code": 400, "error": error}


def test_urlencoded_form_keeps_the_first_value_of_each_field() -> None:
    form = parse_form(
        b"api_key=k&identification=%7B%7D&api_key=other", "application/x-www-form-urlencoded"
    )
    assert form == {"api_key": "k", "identification": "{}"}


def test_multipart_form_is_read() -> None:
    body = (
        b'--XX\r\nContent-Disposition: form-data; name="api_key"\r\n\r\nk1\r\n'
        b'--XX\r\nContent-Disposition: form-data; name="identification"\r\n\r\n'
        b'{"user_id":"abcde"}\r\n'
        b"--XX--\r\n"
    )
    form = parse_form(body, "multipart/form-data; boundary=XX")
    assert form == {"api_key": "k1", "identification": '{"user_id":"abcde"}'}


def test_a_json_body_is_not_a_form() -> None:
    assert parse_form(b"{}", "application/json") is None
    assert parse_form(b"a=b", None) is None


def test_truncate_strings_cuts_every_long_string_and_copies() -> None:
    long = "x" * 2000
    value = {"a": long, "b": [long, {"c": long}], "n": 5, "short": "s"}
    truncated = truncate_strings(value)
    assert truncated == {
        "a": "x" * 1024,
        "b": ["x" * 1024, {"c": "x" * 1024}],
        "n": 5,
        "short": "s",
    }
    assert value["a"] == long


def test_partition_key_is_the_device_else_the_user() -> None:
    assert partition_key({"user_id": "u", "device_id": "d"}) == "d"
    assert partition_key({"user_id": "u"}) == "u"
    assert partition_key({"device_id": ""}) is None


# --- HTTP V2 / Batch request level ----------------------------------------------------------------


def test_ingestion_request_fields_are_read() -> None:
    batch = parse_ingestion(
        {"api_key": "k", "events": [event()], "options": {"min_id_length": 2}},
        api_keys=None,
        max_events=10,
    )
    assert (batch.api_key, batch.events, batch.min_id_length) == ("k", [event()], 2)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"events": []}, {"error": "Request missing required field", "missing_field": "api_key"}),
        (
            {"api_key": "", "events": []},
            {"error": "Request missing required field", "missing_field": "api_key"},
        ),
        ({"api_key": "k"}, {"error": "Request missing required field", "missing_field": "events"}),
        (
            {"api_key": "k", "Events": []},
            {"error": "Request missing required field", "missing_field": "events"},
        ),
        ({"api_key": "k", "events": {}}, {"error": "Invalid event JSON"}),
        ({"api_key": "k", "events": ["x"]}, {"error": "Invalid event JSON"}),
        ({"api_key": "bad", "events": []}, {"error": "Invalid API key: bad"}),
        ([1, 2], {"error": "Invalid JSON request body"}),
        (
            {"api_key": "k", "events": [], "options": {"min_id_length": "5"}},
            {"error": "Invalid JSON request body"},
        ),
    ],
)
def test_request_level_faults_are_a_400(payload: Any, expected: dict[str, Any]) -> None:
    with pytest.raises(RequestError) as caught:
        parse_ingestion(payload, api_keys={"k"}, max_events=10)
    assert caught.value.status == 400
    assert rejection(caught.value) == {"code": 400, **expected}


def test_too_many_events_is_a_413() -> None:
    parse_ingestion({"api_key": "k", "events": [event()] * 3}, api_keys=None, max_events=3)
    with pytest.raises(RequestError) as caught:
        parse_ingestion({"api_key": "k", "events": [event()] * 4}, api_keys=None, max_events=3)
    assert rejection(caught.value) == {"code": 413, "error": "Payload too large"}


# --- per-event validation -------------------------------------------------------------------------


def test_valid_events_pass() -> None:
    check = validate_events([event(), event(device_id="device-1", time=1_700_000_000_000)], 5)
    assert check.ok
    assert len(check.events) == 2


def test_every_index_of_every_kind_is_listed() -> None:
    events = [
        event(),
        {"user_id": "user-1"},
        event(event_type=3),
        {"event_type": "E"},
        event(user_id="null"),
        event(time="2024-01-01T00:00:00Z"),
        event(user_id="abc"),
        {"event_type": "E", "device_id": "abc"},
        event(time=1.5),
    ]
    check = validate_events(events, 5)
    assert not check.ok
    assert check.missing == {"event_type": [1, 2], "device_id": [3]}
    assert check.invalid == {"user_id": [4], "time": [5, 8]}
    assert check.invalid_id_lengths == {"user_id": [6], "device_id": [7]}
    body = orjson.loads(invalid_events_body(check))
    assert body == {
        "code": 400,
        "error": "Request missing required field",
        "events_with_missing_fields": {"event_type": [1, 2], "device_id": [3]},
        "events_with_invalid_fields": {"user_id": [4], "time": [5, 8]},
        "events_with_invalid_id_lengths": {"user_id": [6], "device_id": [7]},
    }


def test_an_event_with_only_too_short_ids_names_both() -> None:
    check = validate_events([{"event_type": "E", "user_id": "ab", "device_id": "cd"}], 5)
    assert check.invalid_id_lengths == {"user_id": [0], "device_id": [0]}
    assert orjson.loads(invalid_events_body(check)) == {
        "code": 400,
        "error": "Invalid id length for user_id or device_id",
        "events_with_invalid_id_lengths": {"user_id": [0], "device_id": [0]},
    }


def test_a_too_short_id_is_removed_when_the_other_id_is_valid() -> None:
    check = validate_events([event(device_id="abc")], 5)
    assert check.ok
    assert check.events == [{"event_type": "Clicked", "user_id": "user-1"}]


def test_min_id_length_option_is_honoured() -> None:
    assert validate_events([event(user_id="ab")], 2).ok
    assert not validate_events([event(user_id="ab")], 3).ok


@pytest.mark.parametrize("value", [*sorted(INVALID_ID_VALUES), "NULL", "Anonymous", "UNDEFINED"])
@pytest.mark.parametrize("field", ["user_id", "device_id"])
def test_amplitude_invalid_id_values_are_invalid_fields(field: str, value: str) -> None:
    check = validate_events(
        [{"event_type": "E", "device_id": "device-1", "user_id": "user-1", field: value}], 0
    )
    assert check.invalid == {field: [0]}


def test_a_non_string_id_is_an_invalid_field() -> None:
    assert validate_events([event(user_id=12345)], 5).invalid == {"user_id": [0]}


@pytest.mark.parametrize("value", [1.7e12, 1.0, True, "1700000000000", [1]])
def test_time_must_be_a_json_integer(value: Any) -> None:
    assert validate_events([event(time=value)], 5).invalid == {"time": [0]}


def test_null_fields_count_as_absent() -> None:
    assert validate_events([event(time=None, device_id=None, insert_id=None)], 5).ok


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_properties", []),
        ("user_properties", "x"),
        ("insert_id", 5),
        ("session_id", "1"),
        ("groups", 1),
    ],
)
def test_typed_fields_of_the_wrong_type_are_invalid(field: str, value: Any) -> None:
    assert validate_events([event(**{field: value})], 5).invalid == {field: [0]}


def test_group_identify_events_need_no_id() -> None:
    group_event = {"event_type": "$groupidentify", "group_properties": {"$set": {"a": 1}}}
    assert validate_events([group_event], 5).ok


def test_long_strings_are_truncated_in_the_stored_event() -> None:
    check = validate_events([event(event_properties={"text": "y" * 5000})], 5)
    assert check.events[0]["event_properties"]["text"] == "y" * MAX_STRING_LENGTH


def test_invalid_fields_only_name_their_own_error() -> None:
    check = validate_events([event(time="x")], 5)
    assert (
        orjson.loads(invalid_events_body(check))["error"] == "Invalid field values on some events"
    )


def test_success_body_shape() -> None:
    body = orjson.loads(
        success_body(events_ingested=3, payload_size_bytes=120, server_upload_time=7)
    )
    assert body == {
        "code": 200,
        "events_ingested": 3,
        "payload_size_bytes": 120,
        "server_upload_time": 7,
    }


# --- throttling -----------------------------------------------------------------------------------


def test_find_throttled_marks_events_of_throttled_and_over_quota_ids() -> None:
    items = [
        {"user_id": "hot-user"},
        {"user_id": "calm-user", "device_id": "hot-device"},
        {"user_id": "calm-user"},
        {"device_id": "quota-device"},
    ]
    throttling = find_throttled(
        items,
        over_users={"hot-user": 31, "absent-user": 40},
        over_devices={"hot-device": 33},
        quota_devices={"quota-device"},
    )
    assert throttling == Throttling(
        events=(0, 1, 3),
        users={"hot-user": 31},
        devices={"hot-device": 33},
        quota_users={},
        quota_devices={"quota-device": DAILY_EVENT_QUOTA},
    )


def test_throttled_body_has_the_documented_shape() -> None:
    body = orjson.loads(throttled_body(Throttling((0, 2), {"u": 31}, {"d": 32}), eps_threshold=30))
    assert body == {
        "code": 429,
        "error": "Too many requests for some devices and users",
        "eps_threshold": 30,
        "throttled_devices": {"d": 32},
        "throttled_users": {"u": 31},
        "throttled_events": [0, 2],
    }


def test_throttled_body_adds_daily_quota_maps_only_when_over_quota() -> None:
    body = orjson.loads(
        throttled_body(Throttling((0,), quota_users={"u": DAILY_EVENT_QUOTA}), eps_threshold=30)
    )
    assert body["exceeded_daily_quota_users"] == {"u": DAILY_EVENT_QUOTA}
    assert body["exceeded_daily_quota_devices"] == {}


def test_eps_rounds_up() -> None:
    assert eps_of(30) == 1
    assert eps_of(31) == 2
    assert eps_of(901) == 31


# --- Identify -------------------------------------------------------------------------------------


def test_identify_accepts_an_object_or_a_list() -> None:
    one = parse_identify({"api_key": "k", "identification": '{"user_id": "user-1"}'}, api_keys=None)
    assert one.identifications == [{"user_id": "user-1"}]
    many = parse_identify(
        {"api_key": "k", "identification": '[{"user_id": "user-1"}, {"device_id": "device-1"}]'},
        api_keys=None,
    )
    assert len(many.identifications) == 2


@pytest.mark.parametrize(
    ("form", "body"),
    [
        (None, b"invalid_api_key"),
        ({"identification": '{"user_id": "user-1"}'}, b"invalid_api_key"),
        ({"api_key": "other", "identification": '{"user_id": "user-1"}'}, b"invalid_api_key"),
        ({"api_key": "k"}, b"missing_event"),
        ({"api_key": "k", "identification": "{"}, b"missing_event"),
        ({"api_key": "k", "identification": "[]"}, b"missing_event"),
        ({"api_key": "k", "identification": '"user-1"'}, b"missing_event"),
        ({"api_key": "k", "identification": '{"user_properties": {}}'}, b"missing_event"),
    ],
)
def test_identify_rejections_are_plain_text(form: dict[str, str] | None, body: bytes) -> None:
    with pytest.raises(RequestError) as caught:
        parse_identify(form, api_keys={"k"})
    assert (caught.value.status, caught.value.body, caught.value.content_type) == (
        400,
        body,
        "text/plain",
    )


def test_group_identify_needs_group_type_and_value() -> None:
    ok = '{"group_type": "org", "group_value": "acme"}'
    assert parse_identify({"api_key": "k", "identification": ok}, api_keys=None, group=True)
    with pytest.raises(RequestError):
        parse_identify(
            {"api_key": "k", "identification": '{"group_type": "org"}'}, api_keys=None, group=True
        )


# --- User Privacy API -----------------------------------------------------------------------------


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def test_basic_auth_is_parsed() -> None:
    assert parse_basic_auth(basic("key:secret")) == ("key", "secret")
    assert parse_basic_auth(basic("key:sec:ret")) == ("key", "sec:ret")


@pytest.mark.parametrize(
    "header", [None, "", "Bearer abc", "Basic !!!", basic("key"), basic(":secret"), basic("key:")]
)
def test_unusable_basic_auth_is_none(header: str | None) -> None:
    assert parse_basic_auth(header) is None


@pytest.mark.parametrize(
    ("flags", "ignore"),
    [
        ({}, False),
        ({"ignore_invalid_id": True}, True),
        ({"ignore_invalid_ids": True}, True),
        ({"ignore_invalid_id": "true"}, True),
        ({"ignore_invalid_ids": "True"}, True),
        ({"ignore_invalid_ids": "false"}, False),
        ({"delete_from_org": "true"}, True),
    ],
)
def test_deletion_accepts_both_spellings_and_string_booleans(
    flags: dict[str, Any], ignore: bool
) -> None:
    deletion = parse_deletion({"user_ids": ["user-1"], "requester": "dpo@example.com", **flags})
    assert deletion.ignore_invalid_ids is ignore
    assert deletion.requester == "dpo@example.com"


def test_deletion_reads_amplitude_ids_as_integers() -> None:
    deletion = parse_deletion({"amplitude_ids": [123, "456"], "user_ids": ["user-1"]})
    assert (deletion.amplitude_ids, deletion.user_ids) == ((123, 456), ("user-1",))


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"user_ids": []},
        {"user_ids": ["u"] * 60, "amplitude_ids": list(range(41))},
        {"user_ids": "user-1"},
        {"user_ids": [""]},
        {"amplitude_ids": [1.5]},
        {"amplitude_ids": [True]},
        {"user_ids": ["user-1"], "ignore_invalid_ids": "yes"},
        {"user_ids": ["user-1"], "requester": 5},
        [],
    ],
)
def test_bad_deletion_bodies_are_a_400(payload: Any) -> None:
    with pytest.raises(RequestError) as caught:
        parse_deletion(payload)
    assert caught.value.status == 400


def test_a_hundred_ids_are_allowed() -> None:
    deletion = parse_deletion({"user_ids": ["u"] * 60, "amplitude_ids": list(range(40))})
    assert len(deletion.user_ids) + len(deletion.amplitude_ids) == 100


def test_deletion_body_shape() -> None:
    body = orjson.loads(
        deletion_body(
            scheduled=[(101, "user-1"), (102, None)],
            requester="dpo",
            today=datetime.date(2026, 1, 10),
            invalid_ids=["ghost"],
        )
    )
    assert body == {
        "day": "2026-02-09",
        "status": "staging",
        "amplitude_ids": [
            {
                "amplitude_id": 101,
                "requested_on_day": "2026-01-10",
                "requester": "dpo",
                "user_id": "user-1",
            },
            {"amplitude_id": 102, "requested_on_day": "2026-01-10", "requester": "dpo"},
        ],
        "invalid_ids": ["ghost"],
    }


# --- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "name"),
    [
        (Fault(500), "500"),
        (Fault(500, ingest=True), "accept_then_500"),
        (Fault(reset=True), "reset"),
        (Fault(reset=True, ingest=True), "reset_after_ingest"),
        (Fault(delay=0.5), "delay"),
        (Fault(), "none"),
    ],
)
def test_fault_names(fault: Fault, name: str) -> None:
    assert fault.name == name


def test_fault_default_body_is_amplitude_json() -> None:
    assert orjson.loads(Fault(500).response_body()) == {
        "code": 500,
        "error": "Internal Server Error",
    }
    assert orjson.loads(Fault(503).response_body()) == {"code": 503, "error": "Service Unavailable"}
    assert (
        Fault(502, body=b"<html>bad gateway</html>").response_body() == b"<html>bad gateway</html>"
    )


@pytest.mark.parametrize(
    "arguments",
    [{"status": 42}, {"status": 500, "reset": True}, {"body": b"x"}, {"delay": -1.0}],
)
def test_contradictory_faults_are_refused(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Fault(**arguments)


@pytest.mark.parametrize("kind", RANDOM_FAULT_KINDS)
def test_random_kinds_round_trip_through_their_names(kind: str) -> None:
    assert Fault.of_kind(kind).name == kind


def test_unknown_random_kind_is_refused() -> None:
    with pytest.raises(ValueError):
        FaultPlan().random(0.5, seed=1, kinds=["explode"])


def test_scripted_faults_come_first_and_in_order() -> None:
    plan = FaultPlan()
    plan.script(Fault(500), Fault(503))
    plan.script_privacy(Fault(502))
    assert plan.pending == 3
    assert plan.take_ingestion_fault() == Fault(500)
    assert plan.take_ingestion_fault() == Fault(503)
    assert plan.take_ingestion_fault() is None
    assert plan.take_privacy_fault() == Fault(502)
    assert plan.take_privacy_fault() is None


def test_random_faults_are_deterministic_by_seed() -> None:
    def draws(seed: int) -> list[str | None]:
        plan = FaultPlan()
        plan.random(0.5, seed=seed)
        return [
            fault.name if fault else None
            for fault in (plan.take_ingestion_fault() for _ in range(50))
        ]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    assert 10 < sum(name is not None for name in draws(7)) < 40


def test_random_rate_zero_turns_random_faults_off() -> None:
    plan = FaultPlan()
    plan.random(1.0, seed=1)
    assert plan.take_ingestion_fault() is not None
    plan.random(0, seed=1)
    assert plan.take_ingestion_fault() is None


def test_unthrottle_removes_only_the_ids_given_or_all() -> None:
    plan = FaultPlan()
    plan.throttle(users=["u1", "u2"], devices=["d1"])
    plan.unthrottle(users=["u1"])
    state = plan.throttle_state()
    assert (state.users, state.devices) == (frozenset({"u2"}), frozenset({"d1"}))
    plan.unthrottle()
    state = plan.throttle_state()
    assert (state.users, state.devices) == (frozenset(), frozenset())


def test_throttling_one_string_is_refused() -> None:
    with pytest.raises(TypeError):
        FaultPlan().throttle(users="user-1")


def test_clear_restores_the_documented_limits() -> None:
    plan = FaultPlan()
    plan.max_events = 3
    plan.eps_threshold = 1
    plan.daily_quota(users=["u"])
    plan.clear()
    state = plan.throttle_state()
    assert (plan.max_events, plan.max_request_bytes) == (2000, 1_000_000)
    assert (state.eps_threshold, state.quota_users) == (None, frozenset())


# --- rate windows ---------------------------------------------------------------------------------


def test_sliding_window_forgets_counts_older_than_the_window() -> None:
    window = SlidingWindowCounter(30.0)
    assert window.add("d", now=100.0, count=10) == 10
    assert window.add("d", now=110.0, count=5) == 15
    assert window.count("d", now=129.9) == 15
    assert window.count("d", now=130.0) == 5
    assert window.count("d", now=140.0) == 0
    assert window.count("other", now=140.0) == 0


def test_request_spacing_admits_one_request_per_interval_per_key() -> None:
    spacing = RequestSpacing(1.0)
    assert spacing.admit("k", now=10.0)
    assert not spacing.admit("k", now=10.5)
    assert spacing.admit("other", now=10.5)
    assert spacing.admit("k", now=11.0)

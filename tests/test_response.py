"""The response classifier: what Amplitude's answer means for each event (amplitude-api.md §3)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_amplitude._event import Event
from otel_amplitude._response import Action, Verdict, classify, classify_failure


def events(*ids: tuple[str | None, str | None]) -> list[Event]:
    return [Event("e", user, device, 1, f"i{n}") for n, (user, device) in enumerate(ids)]


def body(**fields: object) -> bytes:
    return orjson.dumps(fields)


def actions(verdict: Verdict, count: int) -> list[tuple[Action, str | None]]:
    return [verdict.action_for(i) for i in range(count)]


USERS = events(("user-a", None), ("user-b", None), ("user-c", None))


def test_200_accepts_every_event():
    verdict = classify(USERS, 200, body(code=200, events_ingested=3, payload_size_bytes=90))
    assert actions(verdict, 3) == [(Action.ACCEPT, None)] * 3
    assert verdict.ingested == 3


def test_200_that_ingested_fewer_events_than_sent_resends_them_all():
    verdict = classify(USERS, 200, body(code=200, events_ingested=2))
    assert verdict.kind == "partially_ingested"
    assert actions(verdict, 3) == [(Action.RETRY, None)] * 3


def test_200_with_a_body_that_is_not_json_is_still_accepted():
    verdict = classify(USERS, 200, b"<html>ok</html>")
    assert verdict.action is Action.ACCEPT


def test_http_200_carrying_a_429_code_in_the_body_is_a_throttle():
    verdict = classify(USERS, 200, body(code=429, throttled_users={"user-b": 31}))
    assert verdict.kind == "throttled"
    assert verdict.action_for(1) == (Action.THROTTLE, None)
    assert verdict.action_for(0) == (Action.RESEND, None)


def test_400_rejects_exactly_the_listed_events_and_resends_the_rest():
    verdict = classify(
        USERS,
        400,
        body(
            code=400,
            error="Invalid field values on some events",
            events_with_invalid_fields={"time": [2]},
            events_with_missing_fields={"event_type": [0]},
        ),
    )
    assert actions(verdict, 3) == [
        (Action.REJECT, "missing_field:event_type"),
        (Action.RESEND, None),
        (Action.REJECT, "invalid_field:time"),
    ]


def test_400_invalid_id_length_and_silenced_events_are_rejected_with_their_reason():
    verdict = classify(
        USERS,
        400,
        body(code=400, events_with_invalid_id_lengths={"user_id": [1]}, silenced_events=[2]),
    )
    assert verdict.action_for(1) == (Action.REJECT, "invalid_id_length:user_id")
    assert verdict.action_for(2) == (Action.REJECT, "silenced")
    assert verdict.action_for(0) == (Action.RESEND, None)


def test_400_indexes_out_of_range_or_of_the_wrong_type_are_ignored():
    verdict = classify(
        USERS, 400, body(code=400, events_with_invalid_fields={"time": [7, "1", True, 1]})
    )
    assert actions(verdict, 3) == [
        (Action.RESEND, None),
        (Action.REJECT, "invalid_field:time"),
        (Action.RESEND, None),
    ]


def test_400_invalid_api_key_holds_the_events_and_never_keeps_the_key_text():
    verdict = classify(USERS, 400, body(code=400, error="Invalid API key: 0123456789abcdef"))
    assert verdict.kind == "invalid_api_key"
    assert verdict.action is Action.HOLD
    assert "0123456789abcdef" not in repr(verdict)


def test_400_missing_request_field_rejects_everything_without_retry():
    verdict = classify(
        USERS, 400, body(code=400, error="Request missing required field", missing_field="api_key")
    )
    assert actions(verdict, 3) == [(Action.REJECT, "missing_request_field:api_key")] * 3


@pytest.mark.parametrize(
    "payload", [body(code=400, error="Invalid JSON request body"), b"<html>400</html>", b""]
)
def test_400_naming_no_event_is_not_retried(payload):
    verdict = classify(USERS, 400, payload)
    assert verdict.action is Action.REJECT
    assert verdict.reason == "invalid_request"


def test_403_is_rejected_not_retried():
    verdict = classify(USERS, 403, body(code=403, error="Forbidden"))
    assert actions(verdict, 3) == [(Action.REJECT, "forbidden")] * 3


def test_413_splits_a_request_and_rejects_a_single_event_that_is_still_too_large():
    assert classify(USERS, 413, body(code=413, error="Payload too large")).action is Action.SPLIT
    single = classify(USERS[:1], 413, b"")
    assert single.action_for(0) == (Action.REJECT, "too_large")


def test_429_throttles_only_the_listed_ids_and_resends_the_others_at_once():
    sent = events(("user-a", "dev-1"), ("user-b", "dev-2"), (None, "dev-3"), ("user-d", None))
    verdict = classify(
        sent,
        429,
        body(
            code=429,
            error="Too many requests for some devices and users",
            eps_threshold=30,
            throttled_users={"user-a": 31},
            throttled_devices={"dev-3": 40},
            throttled_events=[0, 2],
        ),
    )
    assert actions(verdict, 4) == [
        (Action.THROTTLE, None),
        (Action.RESEND, None),
        (Action.THROTTLE, None),
        (Action.RESEND, None),
    ]
    assert verdict.throttled_users == {"user-a"}
    assert verdict.throttled_devices == {"dev-3"}
    assert verdict.pause == 30.0


def test_429_event_named_only_by_index_pauses_its_device():
    sent = events(("user-a", "dev-1"), ("user-b", None))
    verdict = classify(sent, 429, body(code=429, throttled_events=[0, 1]))
    assert verdict.throttled_devices == {"dev-1"}
    assert verdict.throttled_users == {"user-b"}


def test_429_over_the_daily_quota_drops_those_events():
    sent = events(("user-a", None), ("user-b", "dev-2"), ("user-c", None))
    verdict = classify(
        sent,
        429,
        body(
            code=429,
            exceeded_daily_quota_users={"user-a": 500001},
            exceeded_daily_quota_devices={"dev-2": 1},
        ),
    )
    assert actions(verdict, 3) == [
        (Action.DROP, "daily_quota"),
        (Action.DROP, "daily_quota"),
        (Action.RESEND, None),
    ]


def test_429_retry_after_longer_than_30_seconds_is_honoured():
    verdict = classify(
        USERS, 429, body(code=429, throttled_users={"user-a": 40}), retry_after="120"
    )
    assert verdict.pause == 120.0
    assert classify(USERS, 429, body(code=429), retry_after="5").pause == 30.0


def test_429_without_a_json_body_throttles_every_id_of_the_request():
    verdict = classify(USERS, 429, b"Too Many Requests")
    assert verdict.action is Action.THROTTLE
    assert verdict.throttled_users == {"user-a", "user-b", "user-c"}


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
def test_server_errors_retry_every_event(status):
    verdict = classify(USERS, status, b"<html>bad gateway</html>")
    assert actions(verdict, 3) == [(Action.RETRY, None)] * 3


def test_no_response_at_all_retries_every_event():
    assert classify_failure("connection_reset").action is Action.RETRY


@pytest.mark.parametrize("status", [401, 404])
def test_wrong_credentials_or_path_hold_the_events(status):
    assert classify(USERS, status, b"").action is Action.HOLD


def test_unknown_error_text_is_never_echoed():
    verdict = classify(USERS, 500, body(code=500, error="user alice@example.com broke it"))
    assert verdict.error is None
    assert "alice" not in repr(verdict)


@given(st.binary(max_size=300), st.integers(min_value=100, max_value=599))
def test_any_status_and_body_classify_without_raising(raw, status):
    verdict = classify(USERS, status, raw)
    for i in range(3):
        action, _ = verdict.action_for(i)
        assert isinstance(action, Action)

"""The test server over real HTTP on 127.0.0.1, as a client of it sees it."""

from __future__ import annotations

import base64
import contextlib
import gzip
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import urllib3

from otel_amplitude.testing import AmplitudeServer, Fault, ManualClock

pytest_plugins = ["pytester"]

API_KEY = "test-api-key"
SECRET_KEY = "test-secret-key"


# --- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_server_threads_left() -> Iterator[None]:
    """Every test must stop what it started: no server thread may outlive it."""
    yield
    leftovers = [t.name for t in threading.enumerate() if t.name.startswith("amplitude-server")]
    assert leftovers == []


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def server(clock: ManualClock) -> Iterator[AmplitudeServer]:
    with AmplitudeServer(clock=clock, secret_keys={API_KEY: SECRET_KEY}) as running:
        yield running


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    pool = urllib3.PoolManager(retries=False, timeout=5.0)
    yield pool
    pool.clear()


def event(user_id: str | None = "user-0001", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"event_type": "Clicked"}
    if user_id is not None:
        base["user_id"] = user_id
    return {**base, **fields}


def post(
    http: urllib3.PoolManager,
    server: AmplitudeServer,
    events: list[dict[str, Any]],
    *,
    path: str = "/2/httpapi",
    api_key: str = API_KEY,
    **fields: Any,
) -> urllib3.BaseHTTPResponse:
    body = orjson.dumps({"api_key": api_key, "events": events, **fields})
    return http.request(
        "POST", server.url + path, body=body, headers={"Content-Type": "application/json"}
    )


def json_of(response: urllib3.BaseHTTPResponse) -> Any:
    return orjson.loads(response.data)


def identify(
    http: urllib3.PoolManager,
    server: AmplitudeServer,
    identification: Any,
    *,
    path: str = "/identify",
    api_key: str = API_KEY,
) -> urllib3.BaseHTTPResponse:
    return http.request_encode_body(
        "POST",
        server.url + path,
        fields={"api_key": api_key, "identification": orjson.dumps(identification).decode()},
        encode_multipart=False,
    )


def delete(
    http: urllib3.PoolManager,
    server: AmplitudeServer,
    body: dict[str, Any],
    *,
    credentials: str | None = f"{API_KEY}:{SECRET_KEY}",
) -> urllib3.BaseHTTPResponse:
    headers = {"Content-Type": "application/json"}
    if credentials is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    return http.request(
        "POST", server.url + "/api/2/deletions/users", body=orjson.dumps(body), headers=headers
    )


# --- HTTP V2 and Batch ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/2/httpapi", "/batch"])
def test_valid_events_are_ingested_and_stored(
    server: AmplitudeServer, http: urllib3.PoolManager, path: str
) -> None:
    events = [event(insert_id="a"), event(device_id="device-0001", insert_id="b")]
    response = post(http, server, events, path=path)

    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    body = json_of(response)
    assert body["code"] == 200
    assert body["events_ingested"] == 2
    assert body["payload_size_bytes"] == len(server.requests[0].body)
    assert abs(body["server_upload_time"] - time.time() * 1000) < 60_000
    assert server.events == events
    [request] = server.requests
    assert (request.path, request.method, request.status, request.events_count) == (
        path,
        "POST",
        200,
        2,
    )
    assert request.headers["content-type"] == "application/json"
    assert request.json["events"] == events
    assert request.fault is None


def test_empty_events_are_a_200_with_nothing_ingested(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    response = post(http, server, [])
    assert (response.status, json_of(response)["events_ingested"]) == (200, 0)


def test_resent_insert_ids_are_counted_ingested_but_stored_once(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    first = [event(insert_id="1"), event(insert_id="2"), event()]
    post(http, server, first)
    response = post(
        http,
        server,
        [event(insert_id="1"), event(insert_id="2", device_id="device-0002"), event()],
    )
    post(http, server, [event(insert_id="1")], api_key="other-project")

    assert json_of(response)["events_ingested"] == 3
    assert server.duplicates == 1
    assert [e.get("insert_id") for e in server.events] == ["1", "2", None, "2", None, "1"]
    assert len(server.events_for("other-project")) == 1


def test_duplicates_within_one_request_are_stored_once(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    response = post(http, server, [event(insert_id="x"), event(insert_id="x")])
    assert json_of(response)["events_ingested"] == 2
    assert (len(server.events), server.duplicates) == (1, 1)


def test_invalid_events_are_a_400_listing_every_index_and_nothing_is_stored(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    events = [
        event(),
        {"user_id": "user-0001"},
        event(user_id=None),
        event(user_id="undefined"),
        event(user_id="abc"),
        event(time=1.5),
        event(time="2024-01-01"),
        event(user_id=None, device_id="xy"),
    ]
    response = post(http, server, events)

    assert response.status == 400
    assert json_of(response) == {
        "code": 400,
        "error": "Request missing required field",
        "events_with_missing_fields": {"event_type": [1], "device_id": [2]},
        "events_with_invalid_fields": {"user_id": [3], "time": [5, 6]},
        "events_with_invalid_id_lengths": {"user_id": [4], "device_id": [7]},
    }
    assert server.events == []


def test_a_too_short_id_alone_is_the_real_amplitude_answer(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    response = post(http, server, [event(user_id="abcd")])
    assert json_of(response) == {
        "code": 400,
        "error": "Invalid id length for user_id or device_id",
        "events_with_invalid_id_lengths": {"user_id": [0]},
    }


def test_min_id_length_option_allows_short_ids(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    response = post(http, server, [event(user_id="ab")], options={"min_id_length": 2})
    assert response.status == 200
    assert server.events == [event(user_id="ab")]


def test_long_strings_are_stored_truncated(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    post(http, server, [event(event_properties={"text": "z" * 3000})])
    assert server.events[0]["event_properties"]["text"] == "z" * 1024


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", {"code": 400, "error": "Missing request body"}),
        (b"{not json", {"code": 400, "error": "Invalid JSON request body"}),
        (
            b'{"events": []}',
            {"code": 400, "error": "Request missing required field", "missing_field": "api_key"},
        ),
        (
            b'{"api_key": "test-api-key", "Events": []}',
            {"code": 400, "error": "Request missing required field", "missing_field": "events"},
        ),
    ],
)
def test_unusable_request_bodies_are_a_400(
    server: AmplitudeServer, http: urllib3.PoolManager, body: bytes, expected: dict[str, Any]
) -> None:
    response = http.request("POST", server.url + "/2/httpapi", body=body)
    assert (response.status, json_of(response)) == (400, expected)


def test_an_unknown_api_key_is_a_400(http: urllib3.PoolManager) -> None:
    with AmplitudeServer(api_keys=[API_KEY]) as server:
        response = post(http, server, [event()], api_key="eu-project-key")
        assert json_of(response) == {"code": 400, "error": "Invalid API key: eu-project-key"}
        assert post(http, server, [event()]).status == 200


def test_a_body_over_one_million_bytes_is_a_413(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    def body_of_size(size: int) -> bytes:
        skeleton = orjson.dumps({"api_key": API_KEY, "events": [event(pad="")]})
        return orjson.dumps(
            {"api_key": API_KEY, "events": [event(pad="p" * (size - len(skeleton)))]}
        )

    at_limit = http.request("POST", server.url + "/2/httpapi", body=body_of_size(1_000_000))
    over_limit = http.request("POST", server.url + "/2/httpapi", body=body_of_size(1_000_001))

    assert at_limit.status == 200
    assert (over_limit.status, json_of(over_limit)) == (
        413,
        {"code": 413, "error": "Payload too large"},
    )
    assert len(server.events) == 1


def test_batch_has_its_own_byte_limit(server: AmplitudeServer, http: urllib3.PoolManager) -> None:
    big = [event(pad="q" * 1000) for _ in range(1200)]  # ~1.3 MB: over HTTP V2, fine for Batch
    assert post(http, server, big, path="/2/httpapi").status == 413
    assert post(http, server, big, path="/batch").status == 200
    server.faults.max_batch_bytes = 1000
    assert post(http, server, big, path="/batch").status == 413


def test_more_than_2000_events_is_a_413(server: AmplitudeServer, http: urllib3.PoolManager) -> None:
    assert post(http, server, [event()] * 2000).status == 200
    response = post(http, server, [event()] * 2001, path="/batch")
    assert (response.status, json_of(response)["error"]) == (413, "Payload too large")


def test_gzip_bodies_are_accepted_and_measured_decompressed(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    payload = orjson.dumps({"api_key": API_KEY, "events": [event(insert_id="g")]})
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = http.request(
        "POST", server.url + "/2/httpapi", body=gzip.compress(payload), headers=headers
    )
    assert response.status == 200
    assert server.requests[0].body == payload
    assert server.events == [event(insert_id="g")]

    server.faults.max_request_bytes = len(payload) - 1
    response = http.request(
        "POST", server.url + "/2/httpapi", body=gzip.compress(payload), headers=headers
    )
    assert response.status == 413


def test_a_chunked_body_is_read(server: AmplitudeServer, http: urllib3.PoolManager) -> None:
    payload = orjson.dumps({"api_key": API_KEY, "events": [event()]})
    response = http.request(
        "POST", server.url + "/2/httpapi", body=iter([payload[:10], payload[10:]]), chunked=True
    )
    assert response.status == 200
    assert len(server.events) == 1


# --- throttling -----------------------------------------------------------------------------------


def test_throttled_ids_get_a_429_and_nothing_is_stored_by_default(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    server.faults.throttle(users=["hot-user-1"], devices=["hot-device"])
    events = [
        event(user_id="calm-user-1"),
        event(user_id="hot-user-1"),
        event(user_id="calm-user-2", device_id="hot-device"),
    ]
    response = post(http, server, events)

    assert response.status == 429
    assert json_of(response) == {
        "code": 429,
        "error": "Too many requests for some devices and users",
        "eps_threshold": 30,
        "throttled_devices": {"hot-device": 31},
        "throttled_users": {"hot-user-1": 31},
        "throttled_events": [1, 2],
    }
    assert server.events == []
    assert server.requests[0].fault == "throttle"

    server.faults.unthrottle()
    assert post(http, server, events).status == 200
    assert server.events == events


def test_non_throttled_events_of_a_429_can_be_stored(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    server.faults.ingest_unthrottled_on_429 = True
    server.faults.throttle(users=["hot-user-1"])
    events = [
        event(user_id="calm-user-1"),
        event(user_id="hot-user-1"),
        event(user_id="calm-user-2"),
    ]

    assert post(http, server, events).status == 429
    assert [e["user_id"] for e in server.events] == ["calm-user-1", "calm-user-2"]


def test_eps_threshold_is_a_sliding_window_on_the_server_clock(
    server: AmplitudeServer, http: urllib3.PoolManager, clock: ManualClock
) -> None:
    server.faults.eps_threshold = 1  # 30 events per 30 s per id
    device = {"device_id": "busy-device"}
    assert post(http, server, [event(user_id=None, **device)] * 20).status == 200
    clock.advance(10)
    assert post(http, server, [event(user_id=None, **device)] * 10).status == 200
    response = post(http, server, [event("calm-user-1"), event(user_id=None, **device)])

    assert response.status == 429
    body = json_of(response)
    assert body["eps_threshold"] == 1
    assert body["throttled_devices"] == {"busy-device": 2}
    assert body["throttled_users"] == {}
    assert body["throttled_events"] == [1]
    assert server.requests[-1].fault == "eps"

    clock.advance(20)  # the first 20 events leave the window; 10 + the rejected 1 + this 1 remain
    assert post(http, server, [event(user_id=None, **device)]).status == 200
    assert len(server.events) == 31


def test_eps_counts_resends_of_the_same_events(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    server.faults.eps_threshold = 1
    batch = [event(insert_id=str(i)) for i in range(30)]
    assert post(http, server, batch).status == 200
    assert post(http, server, batch[:1]).status == 429


def test_daily_quota_ids_get_a_429_with_the_quota_maps(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    server.faults.daily_quota(users=["spammer-1"], devices=["spam-device"])
    events = [
        event("spammer-1"),
        event("calm-user-1"),
        event("calm-user-2", device_id="spam-device"),
    ]
    response = post(http, server, events, path="/batch")

    body = json_of(response)
    assert response.status == 429
    assert body["eps_threshold"] == 1000
    assert body["throttled_events"] == [0, 2]
    assert body["exceeded_daily_quota_users"] == {"spammer-1": 500_000}
    assert body["exceeded_daily_quota_devices"] == {"spam-device": 500_000}
    assert server.events == []
    assert server.requests[0].fault == "daily_quota"

    server.faults.ingest_unthrottled_on_429 = True
    post(http, server, events, path="/batch")
    assert server.events == [events[1]]


# --- scripted and random faults -------------------------------------------------------------------


def test_scripted_faults_apply_once_each_in_order(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    server.faults.script(
        Fault(500),
        Fault(503, body=b"<html>Service Unavailable</html>", content_type="text/html"),
        Fault(502, body=b""),
        Fault(200, body=b"OK but not JSON"),
    )
    first = post(http, server, [event()])
    second = post(http, server, [event()])
    third = post(http, server, [event()])
    fourth = post(http, server, [event()])
    fifth = post(http, server, [event()])

    assert (first.status, json_of(first)) == (500, {"code": 500, "error": "Internal Server Error"})
    assert (second.status, second.data, second.headers["Content-Type"]) == (
        503,
        b"<html>Service Unavailable</html>",
        "text/html",
    )
    assert (third.status, third.data) == (502, b"")
    assert (fourth.status, fourth.data) == (200, b"OK but not JSON")
    assert fifth.status == 200
    assert len(server.events) == 1
    assert [r.fault for r in server.requests] == ["500", "503", "502", "200", None]


def test_accept_then_500_stores_the_events(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    server.faults.script(Fault(500, ingest=True))
    response = post(http, server, [event(insert_id="once")])
    assert response.status == 500
    assert server.events == [event(insert_id="once")]

    assert post(http, server, [event(insert_id="once")]).status == 200
    assert (len(server.events), server.duplicates) == (1, 1)
    assert server.requests[0].fault == "accept_then_500"


def test_reset_drops_the_connection_without_a_response(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    server.faults.script(Fault(reset=True), Fault(reset=True, ingest=True))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        post(http, server, [event(insert_id="first")])
    assert server.events == []
    with pytest.raises(urllib3.exceptions.ProtocolError):
        post(http, server, [event(insert_id="second")])
    assert server.events == [event(insert_id="second")]
    assert [(r.status, r.fault) for r in server.requests] == [
        (0, "reset"),
        (0, "reset_after_ingest"),
    ]
    assert post(http, server, [event()]).status == 200


def test_scripted_faults_do_not_touch_identify(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    server.faults.script(Fault(500))
    assert identify(http, server, {"user_id": "user-0001"}).status == 200
    assert server.faults.pending == 1


def test_random_faults_are_deterministic_by_seed(http: urllib3.PoolManager) -> None:
    def outcomes(seed: int) -> list[tuple[int, str | None]]:
        with AmplitudeServer() as server:
            server.faults.random(0.5, seed=seed)
            for i in range(30):
                with contextlib.suppress(urllib3.exceptions.ProtocolError):
                    post(http, server, [event(insert_id=str(i))])
            return [(r.status, r.fault) for r in server.requests]

    first = outcomes(seed=42)
    assert first == outcomes(seed=42)
    faulted = {fault for _, fault in first if fault}
    assert len(faulted) >= 3
    assert faulted <= {"500", "502", "503", "504", "reset", "accept_then_500", "reset_after_ingest"}


def test_random_rate_zero_is_off(server: AmplitudeServer, http: urllib3.PoolManager) -> None:
    server.faults.random(1.0, seed=1, kinds=["503"])
    assert post(http, server, [event()]).status == 503
    server.faults.random(0, seed=1)
    assert post(http, server, [event()]).status == 200


def test_slow_replies_time_out_a_client(server: AmplitudeServer, http: urllib3.PoolManager) -> None:
    server.faults.script(Fault(delay=0.3))
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        http.request(
            "POST",
            server.url + "/2/httpapi",
            body=orjson.dumps({"api_key": API_KEY, "events": [event()]}),
            timeout=0.05,
        )
    server.faults.delay_seconds = 0.1
    started = time.monotonic()
    assert post(http, server, [event()]).status == 200
    assert time.monotonic() - started >= 0.1


def test_stop_does_not_wait_for_a_slow_reply(http: urllib3.PoolManager) -> None:
    server = AmplitudeServer().start()
    server.faults.delay_seconds = 30.0
    client = threading.Thread(target=lambda: _swallow(lambda: post(http, server, [event()])))
    client.start()
    assert server.wait_for_requests(1)
    started = time.monotonic()
    server.stop()
    client.join(5)
    assert time.monotonic() - started < 2.0


def _swallow(call: Any) -> None:
    with contextlib.suppress(urllib3.exceptions.HTTPError):
        call()


# --- Identify and Group Identify ------------------------------------------------------------------


def test_identify_is_answered_success_and_recorded(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    identification = {"user_id": "user-0001", "user_properties": {"$set": {"plan": "pro"}}}
    response = identify(http, server, identification)
    assert (response.status, response.data) == (200, b"success")
    assert response.headers["Content-Type"].startswith("text/plain")
    assert server.identifications == [identification]
    assert server.requests[0].form == {
        "api_key": API_KEY,
        "identification": orjson.dumps(identification).decode(),
    }
    assert server.requests[0].events_count == 1
    assert server.events == []


def test_identify_accepts_a_list_multipart_and_get(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    multipart = http.request(
        "POST",
        server.url + "/identify",
        fields={
            "api_key": API_KEY,
            "identification": '[{"user_id": "user-0001"}, {"device_id": "device-0001"}]',
        },
    )
    query = http.request(
        "GET",
        server.url + "/identify",
        fields={"api_key": API_KEY, "identification": '{"user_id": "user-0002"}'},
    )
    assert (multipart.status, query.status) == (200, 200)
    assert [i.get("user_id") or i.get("device_id") for i in server.identifications] == [
        "user-0001",
        "device-0001",
        "user-0002",
    ]


def test_identify_refusals_are_plain_text(http: urllib3.PoolManager) -> None:
    with AmplitudeServer(api_keys=[API_KEY]) as server:
        bad_key = identify(http, server, {"user_id": "user-0001"}, api_key="nope")
        no_id = identify(http, server, {"user_properties": {}})
        malformed = http.request_encode_body(
            "POST", server.url + "/identify", fields={"api_key": API_KEY}, encode_multipart=False
        )
        assert (bad_key.status, bad_key.data) == (400, b"invalid_api_key")
        assert (no_id.status, no_id.data) == (400, b"missing_event")
        assert (malformed.status, malformed.data) == (400, b"missing_event")
        assert server.identifications == []


def test_identify_of_a_throttled_user_is_a_429(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    server.faults.throttle(users=["hot-user-1"])
    response = identify(http, server, [{"user_id": "calm-user-1"}, {"user_id": "hot-user-1"}])
    assert response.status == 429
    assert json_of(response)["throttled_users"] == {"hot-user-1": 31}
    assert json_of(response)["throttled_events"] == [1]
    assert server.identifications == []


def test_group_identify_is_recorded_separately(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    group = {
        "group_type": "org",
        "group_value": "acme",
        "group_properties": {"$set": {"tier": "gold"}},
    }
    response = identify(http, server, group, path="/groupidentify")
    assert (response.status, response.data) == (200, b"success")
    assert server.group_identifications == [group]
    assert server.identifications == []


# --- User Privacy API -----------------------------------------------------------------------------


def seen_users(http: urllib3.PoolManager, server: AmplitudeServer, *users: str) -> None:
    assert post(http, server, [event(user) for user in users]).status == 200


def test_deletion_of_known_users_is_scheduled(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    seen_users(http, server, "user-0001", "user-0002")
    body = {"user_ids": ["user-0001", "user-0002"], "requester": "dpo@example.com"}
    response = delete(http, server, body)

    assert response.status == 200
    answer = json_of(response)
    assert answer["status"] == "staging"
    assert answer["day"] > answer["amplitude_ids"][0]["requested_on_day"]
    assert [(e["user_id"], e["requester"]) for e in answer["amplitude_ids"]] == [
        ("user-0001", "dpo@example.com"),
        ("user-0002", "dpo@example.com"),
    ]
    assert answer["amplitude_ids"][0]["amplitude_id"] == server.amplitude_id_of(
        "user-0001", API_KEY
    )
    assert "invalid_ids" not in answer
    assert server.deletions == [body]


def test_deletion_by_amplitude_id(
    server: AmplitudeServer, http: urllib3.PoolManager, clock: ManualClock
) -> None:
    seen_users(http, server, "user-0001")
    amplitude_id = server.amplitude_id_of("user-0001", API_KEY)
    assert amplitude_id is not None
    response = delete(http, server, {"amplitude_ids": [amplitude_id]})
    assert json_of(response)["amplitude_ids"][0] == {
        "amplitude_id": amplitude_id,
        "requested_on_day": json_of(response)["amplitude_ids"][0]["requested_on_day"],
        "user_id": "user-0001",
    }


@pytest.mark.parametrize(
    "credentials", [None, f"{API_KEY}:wrong-secret", f"other-key:{SECRET_KEY}", f"{API_KEY}:"]
)
def test_deletion_needs_basic_auth_with_the_secret_key(
    server: AmplitudeServer, http: urllib3.PoolManager, credentials: str | None
) -> None:
    seen_users(http, server, "user-0001")
    response = delete(http, server, {"user_ids": ["user-0001"]}, credentials=credentials)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert server.deletions == []


def test_without_secret_keys_any_secret_is_accepted(http: urllib3.PoolManager) -> None:
    with AmplitudeServer() as server:
        seen_users(http, server, "user-0001")
        response = delete(
            http, server, {"user_ids": ["user-0001"]}, credentials=f"{API_KEY}:anything"
        )
        assert response.status == 200


def test_deletion_of_more_than_100_ids_is_a_400(
    server: AmplitudeServer, http: urllib3.PoolManager, clock: ManualClock
) -> None:
    users = [f"user-{i:04}" for i in range(101)]
    seen_users(http, server, *users)
    assert delete(http, server, {"user_ids": users}).status == 400
    clock.advance(1)
    assert delete(http, server, {"user_ids": users[:100]}).status == 200


def test_deletion_is_limited_to_one_request_per_second(
    server: AmplitudeServer, http: urllib3.PoolManager, clock: ManualClock
) -> None:
    seen_users(http, server, "user-0001")
    body = {"user_ids": ["user-0001"]}
    assert delete(http, server, body).status == 200
    clock.advance(0.5)
    refused = delete(http, server, body)
    assert refused.status == 429
    assert json_of(refused)["code"] == 429
    clock.advance(0.5)
    assert delete(http, server, body).status == 200
    assert len(server.deletions) == 2


@pytest.mark.parametrize("spelling", ["ignore_invalid_id", "ignore_invalid_ids"])
@pytest.mark.parametrize("value", [True, "true"])
def test_unknown_user_ids_are_reported_when_ignored(
    server: AmplitudeServer, http: urllib3.PoolManager, spelling: str, value: Any
) -> None:
    seen_users(http, server, "user-0001")
    body = {"user_ids": ["user-0001", "never-seen"], "amplitude_ids": [42], spelling: value}
    response = delete(http, server, body)
    assert response.status == 200
    answer = json_of(response)
    assert answer["invalid_ids"] == [42, "never-seen"]
    assert [e["user_id"] for e in answer["amplitude_ids"]] == ["user-0001"]
    assert server.deletions == [body]


def test_unknown_user_ids_are_a_400_unless_ignored(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    seen_users(http, server, "user-0001")
    response = delete(
        http, server, {"user_ids": ["user-0001", "never-seen"], "ignore_invalid_ids": "false"}
    )
    assert response.status == 400
    assert json_of(response)["invalid_ids"] == ["never-seen"]
    assert server.deletions == []


def test_users_are_known_per_project(server: AmplitudeServer, http: urllib3.PoolManager) -> None:
    post(http, server, [event("user-0001")], api_key="another-project")
    assert delete(http, server, {"user_ids": ["user-0001"]}).status == 400


def test_privacy_faults_are_scripted_separately(
    server: AmplitudeServer, http: urllib3.PoolManager, clock: ManualClock
) -> None:
    seen_users(http, server, "user-0001")
    server.faults.script_privacy(Fault(503), Fault(500, ingest=True))
    assert delete(http, server, {"user_ids": ["user-0001"]}).status == 503
    assert delete(http, server, {"user_ids": ["user-0001"]}).status == 500
    assert len(server.deletions) == 1
    assert post(http, server, [event()]).status == 200


# --- HTTP behaviour -------------------------------------------------------------------------------


def test_unknown_paths_are_a_404(server: AmplitudeServer, http: urllib3.PoolManager) -> None:
    response = http.request("POST", server.url + "/2/httpapi/v3", body=b"{}")
    assert (response.status, json_of(response)) == (
        404,
        {"code": 404, "error": "Invalid request path"},
    )
    assert server.requests[0].status == 404


def test_a_wrong_method_is_a_405(server: AmplitudeServer, http: urllib3.PoolManager) -> None:
    response = http.request("GET", server.url + "/2/httpapi")
    assert response.status == 405
    assert response.headers["Allow"] == "POST"


def test_requests_share_one_keep_alive_connection(server: AmplitudeServer) -> None:
    with urllib3.HTTPConnectionPool("127.0.0.1", server.port, maxsize=1, retries=False) as pool:
        for _ in range(3):
            body = orjson.dumps({"api_key": API_KEY, "events": [event()]})
            assert pool.request("POST", "/2/httpapi", body=body).status == 200
        assert pool.num_connections == 1
    assert len(server.events) == 3


def test_concurrent_clients_are_all_served(server: AmplitudeServer) -> None:
    def send(worker: int) -> None:
        for i in range(20):
            post(pool, server, [event(f"user-{worker:04}", insert_id=f"{worker}-{i}")])

    with urllib3.PoolManager(maxsize=8, retries=False, timeout=5.0) as pool:
        workers = [threading.Thread(target=send, args=(n,)) for n in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert len(server.events) == 160
    by_device = server.events_by_device()
    assert sorted(by_device) == [f"user-{n:04}" for n in range(8)]
    assert [e["insert_id"] for e in by_device["user-0003"]] == [f"3-{i}" for i in range(20)]


def test_stop_closes_idle_keep_alive_connections(http: urllib3.PoolManager) -> None:
    server = AmplitudeServer().start()
    assert post(http, server, [event()]).status == 200
    started = time.monotonic()
    server.stop()
    server.stop()
    assert time.monotonic() - started < 1.0
    assert not server.running


def test_a_stopped_server_restarts_on_the_same_port(http: urllib3.PoolManager) -> None:
    server = AmplitudeServer().start()
    url = server.url
    post(http, server, [event()])
    server.stop()
    http.clear()
    with pytest.raises(urllib3.exceptions.NewConnectionError):
        http.request("POST", url + "/2/httpapi", body=b"{}")
    with server:
        assert server.url == url
        assert post(http, server, [event()]).status == 200
        assert len(server.events) == 2


def test_wait_for_events(server: AmplitudeServer, http: urllib3.PoolManager) -> None:
    assert not server.wait_for_events(1, timeout=0.01)
    timer = threading.Timer(0.05, lambda: post(http, server, [event(), event()]))
    timer.start()
    assert server.wait_for_events(2, timeout=5.0)
    timer.join()


def test_reset_forgets_records_and_faults(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    post(http, server, [event(insert_id="a")])
    server.faults.throttle(users=["user-0001"])
    server.faults.script(Fault(500))
    server.reset()
    assert (server.events, server.requests, server.duplicates, server.faults.pending) == (
        [],
        [],
        0,
        0,
    )
    assert post(http, server, [event(insert_id="a")]).status == 200
    assert server.duplicates == 0


def test_inspection_returns_copies(server: AmplitudeServer, http: urllib3.PoolManager) -> None:
    post(http, server, [event(event_properties={"a": 1})])
    server.events[0]["event_properties"]["a"] = 2
    assert server.events[0]["event_properties"] == {"a": 1}


def test_url_and_repr_show_no_secrets(server: AmplitudeServer) -> None:
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert SECRET_KEY not in repr(server)
    assert "running" not in repr(AmplitudeServer())


def test_one_string_of_api_keys_is_refused() -> None:
    with pytest.raises(TypeError):
        AmplitudeServer(api_keys=API_KEY)


# --- pytest plugin and command line ---------------------------------------------------------------


def test_the_fixture_yields_a_running_server(
    amplitude_server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    assert amplitude_server.running
    assert post(http, amplitude_server, [event()]).status == 200
    assert amplitude_server.wait_for_events(1)


def test_the_fixture_stops_the_server_after_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import urllib3, pytest

        seen = []

        def test_uses_it(amplitude_server):
            seen.append(amplitude_server)
            assert amplitude_server.running

        def test_it_was_stopped():
            assert not seen[0].running
            with pytest.raises(urllib3.exceptions.NewConnectionError):
                pool = urllib3.HTTPConnectionPool("127.0.0.1", seen[0].port, retries=False)
                pool.request("GET", "/")
        """
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_module_runs_standalone_until_terminated() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_amplitude.testing", "--port", "0", "--api-key", API_KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        prefix = "Amplitude-compatible server listening on "
        assert line.startswith(prefix + "http://127.0.0.1:")
        url = line[len(prefix) :]
        with urllib3.PoolManager(retries=False, timeout=5.0) as http:
            good = http.request(
                "POST",
                url + "/2/httpapi",
                body=orjson.dumps({"api_key": API_KEY, "events": [event()]}),
            )
            bad = http.request(
                "POST", url + "/2/httpapi", body=orjson.dumps({"api_key": "x", "events": []})
            )
        assert (good.status, bad.status) == (200, 400)
        process.terminate()
        _, errors = process.communicate(timeout=10)
        assert process.returncode == 0
        assert errors == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_a_2xx_fault_without_body_looks_like_a_success(
    server: AmplitudeServer, http: urllib3.PoolManager
) -> None:
    server.faults.script(Fault(200, ingest=True, delay=0.01), Fault(200))
    stored = post(http, server, [event(insert_id="kept")])
    lost = post(http, server, [event(insert_id="lost"), event()])

    assert (stored.status, json_of(stored)["events_ingested"]) == (200, 1)
    assert (lost.status, json_of(lost)["events_ingested"]) == (200, 2)
    assert server.events == [event(insert_id="kept")]
    assert [r.fault for r in server.requests] == ["accept_then_200", "200"]


def test_serve_is_exported_for_the_package_cli() -> None:
    from otel_amplitude.testing import serve

    assert serve("256.0.0.1", 0) == 1  # an address that cannot be bound is an error, not a hang

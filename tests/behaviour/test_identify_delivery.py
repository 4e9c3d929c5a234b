"""Identify over real HTTP: the Identify API, in order with events, coalesced, deduplicated."""

from __future__ import annotations

import logging

import pytest

from otel_amplitude import Settings
from otel_amplitude.testing import AmplitudeServer

from .conftest import MakeClient


def test_an_update_reaches_the_identify_api_form_encoded(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client()

    assert client.identify("user-123", set={"plan": "pro"}, add={"logins": 1})
    assert client.flush(timeout=5)

    assert server.identifications == [
        {"user_id": "user-123", "user_properties": {"$set": {"plan": "pro"}, "$add": {"logins": 1}}}
    ]
    (request,) = server.requests
    assert request.path == "/identify"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert client.stats()["accepted"] == 1


def test_updates_and_events_of_one_user_keep_their_order(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client()
    client.track("before", user_id="user-123")
    client.identify("user-123", set={"plan": "pro"})
    client.track("after", user_id="user-123")

    assert client.flush(timeout=5)

    assert [r.path for r in server.requests] == ["/2/httpapi", "/identify", "/2/httpapi"]
    assert [e["event_type"] for e in server.events] == ["before", "after"]


def test_updates_queued_together_are_coalesced_into_one_identification(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client()
    for plan in ("free", "team", "pro"):
        client.identify("user-123", set={"plan": plan}, add={"logins": 1})
    client.identify("user-456", set={"plan": "free"})

    assert client.flush(timeout=5)

    by_user = {i["user_id"]: i["user_properties"] for i in server.identifications}
    assert by_user == {
        "user-123": {"$set": {"plan": "pro"}, "$add": {"logins": 3}},
        "user-456": {"$set": {"plan": "free"}},
    }
    assert client.stats()["accepted"] == 4  # every update accounted for


def test_a_set_repeating_the_accepted_values_is_skipped(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client()
    assert client.identify("user-123", set={"plan": "pro", "seats": 3})
    assert client.flush(timeout=5)

    assert not client.identify("user-123", set={"plan": "pro"})
    assert client.identify("user-123", set={"plan": "team"})
    assert client.flush(timeout=5)

    assert [i["user_properties"] for i in server.identifications] == [
        {"$set": {"plan": "pro", "seats": 3}},
        {"$set": {"plan": "team"}},
    ]


def test_a_throttled_users_updates_wait_while_others_flow(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client()
    server.faults.throttle(users=["user-hot"])
    client.identify("user-hot", set={"plan": "pro"})
    client.identify("user-calm", set={"plan": "pro"})

    assert not client.flush(timeout=0.5)

    assert [i["user_id"] for i in server.identifications] == ["user-calm"]
    assert client.stats()["paused_partitions"] == 1


def test_an_invalid_key_holds_updates(make_client: MakeClient):
    with AmplitudeServer(api_keys=["the-right-key"]) as strict:
        client = make_client(server_url=strict.url, api_key="the-wrong-key")
        client.identify("user-123", set={"plan": "pro"})
        assert not client.flush(timeout=0.5)
        stats = client.stats()
        assert stats["destination_paused"]
        assert stats["buffered"] == 1
        client.shutdown(timeout=0.2)


def test_a_user_nearing_the_hourly_update_limit_is_warned_about(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING, logger="otel_amplitude")
    client = make_client(flush_interval_ms=3_600_000)
    for _ in range(1_500):
        client.identify("user-busy", add={"clicks": 1})

    assert client.flush(timeout=10)

    assert client.stats()["identify_limit_warnings"] == 1
    assert any("1500 property updates this hour" in r.getMessage() for r in caplog.records)
    assert "user-busy" not in caplog.text


def test_identify_needs_an_operation(make_client: MakeClient):
    from otel_amplitude import InvalidEventError

    with pytest.raises(InvalidEventError, match="needs an operation"):
        make_client().identify("user-123")


def test_eu_updates_go_to_the_eu_host():
    assert Settings(server_zone="EU").identify_url == "https://api.eu.amplitude.com/identify"
    assert Settings().identify_url == "https://api2.amplitude.com/identify"


def test_updates_of_opted_out_or_deleted_users_are_never_sent(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client(secret_key="test-secret-key-01")
    client.consent.opt_out("user-gone")
    client.consent.delete_user("user-erased")

    client.identify("user-gone", set={"plan": "pro"})
    client.identify("user-erased", set={"plan": "pro"})
    client.identify("user-here", set={"plan": "pro"})
    assert client.flush(timeout=5)

    assert [i["user_id"] for i in server.identifications] == ["user-here"]
    assert client.stats()["dropped_by_reason"] == {"opted_out": 1, "deleted": 1}

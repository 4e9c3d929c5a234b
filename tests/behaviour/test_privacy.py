"""Privacy end to end over real HTTP: consent on every path, purges, deletions, PII, IP.

What is asserted is what reaches the local Amplitude-compatible server, and the counters.
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_amplitude import Client
from otel_amplitude._handler import AmplitudeHandler
from otel_amplitude._log_exporter import AmplitudeLogExporter
from otel_amplitude._span_exporter import AmplitudeSpanExporter
from otel_amplitude.structlog import AmplitudeProcessor
from otel_amplitude.testing import AmplitudeServer, Fault, ManualClock
from tests.test_handler import restored_logging

from .conftest import API_KEY, MakeClient, drive

SECRET_KEY = "test-secret-key-0001"
SALT = "a-test-salt-of-32-characters-xx"
PATHS = ("track", "logging", "structlog", "span", "otel_log")


@pytest.fixture
def server(clock: ManualClock) -> Iterator[AmplitudeServer]:
    """The local server, its privacy API limited to 1 request/s on the tests' manual clock."""
    with AmplitudeServer(clock=clock, secret_keys={API_KEY: SECRET_KEY}) as running:
        yield running


@pytest.fixture(autouse=True)
def _restore_logging_and_structlog() -> Iterator[None]:
    with restored_logging():
        yield
        structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _no_threads_left() -> Iterator[None]:
    yield
    deadline = time.monotonic() + 5
    while (left := _library_threads()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not left


def _library_threads() -> list[str]:
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith(("otel_amplitude.deletions", "otel_amplitude.consent"))
    ]


class Paths:
    """One event through each integration: track, logging, structlog, a span, an OTel log."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.handler = AmplitudeHandler(client)
        self.logger = logging.getLogger("app.privacy")
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        structlog.configure(
            processors=[AmplitudeProcessor(client), structlog.processors.JSONRenderer()],
            logger_factory=structlog.PrintLoggerFactory(io.StringIO()),
        )
        self.tracer_provider = TracerProvider(shutdown_on_exit=False)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(AmplitudeSpanExporter(client)))
        self.logger_provider = LoggerProvider(shutdown_on_exit=False)
        self.logger_provider.add_log_record_processor(
            SimpleLogRecordProcessor(AmplitudeLogExporter(client))
        )

    def emit(self, user_id: str | None = None, device_id: str | None = None) -> None:
        ids: dict[str, Any] = {}
        if user_id is not None:
            ids["user_id"] = user_id
        if device_id is not None:
            ids["device_id"] = device_id
        self.client.track("via-track", **ids)
        self.logger.info("via-logging", extra=ids)
        structlog.get_logger().info("via-structlog", **ids)
        attributes: dict[str, Any] = {"amplitude.event_type": "via-span"}
        if user_id is not None:
            attributes["enduser.id"] = user_id
        if device_id is not None:
            attributes["amplitude.device_id"] = device_id
        self.tracer_provider.get_tracer("shop").start_span("op", attributes=attributes).end()
        self.logger_provider.get_logger("shop").emit(body="via-otel_log", attributes=ids)

    def close(self) -> None:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.logger.removeHandler(self.handler)


@pytest.fixture
def paths_for(make_client: MakeClient) -> Iterator[Any]:
    made: list[Paths] = []

    def make(**settings: Any) -> Paths:
        paths = Paths(make_client(**settings))
        made.append(paths)
        return paths

    yield make
    for paths in made:
        paths.close()


def arrived(server: AmplitudeServer) -> set[tuple[str, str | None]]:
    return {(e["event_type"], e.get("user_id") or e.get("device_id")) for e in server.events}


def every_path(subject: str) -> set[tuple[str, str]]:
    return {(f"via-{path}", subject) for path in PATHS}


# --- consent on every path ------------------------------------------------------------------------


def test_an_opted_out_user_is_sent_on_no_path(server: AmplitudeServer, paths_for: Any):
    paths = paths_for()
    paths.client.consent.opt_out("user-leaving")

    paths.emit("user-leaving")
    paths.emit("user-staying")

    assert paths.client.flush(5)
    assert arrived(server) == every_path("user-staying")
    assert paths.client.stats()["dropped_by_reason"] == {"opted_out": len(PATHS)}


def test_opt_in_mode_sends_only_users_who_consented_on_every_path(
    server: AmplitudeServer, paths_for: Any
):
    paths = paths_for(consent_mode="opt_in")
    paths.client.consent.opt_in("user-consented")

    paths.emit("user-consented")
    paths.emit("user-unknown")
    paths.emit(device_id="device-unknown")

    assert paths.client.flush(5)
    assert arrived(server) == every_path("user-consented")
    assert paths.client.stats()["dropped_by_reason"] == {"no_consent": 2 * len(PATHS)}


def test_a_deleted_user_is_sent_on_no_path_even_after_opting_in(
    server: AmplitudeServer, paths_for: Any
):
    paths = paths_for(secret_key=SECRET_KEY)
    paths.client.consent.delete_user("user-deleted")
    paths.client.consent.opt_in("user-deleted")

    paths.emit("user-deleted")

    assert paths.client.flush(5)
    assert server.events == []
    assert paths.client.stats()["dropped_by_reason"] == {"deleted": len(PATHS)}


# --- purges ---------------------------------------------------------------------------------------


def test_opt_out_purges_buffered_events(server: AmplitudeServer, make_client: MakeClient):
    client = make_client(flush_interval_ms=3_600_000)
    for n in range(5):
        client.track("Viewed", user_id="user-leaving", event_properties={"n": n})
        client.track("Viewed", user_id="user-staying", event_properties={"n": n})
    client._dispatcher.wake.set()
    deadline = time.monotonic() + 5
    while client._dispatcher._buffered < 10:  # admitted by the dispatcher; nothing is due yet
        assert time.monotonic() < deadline
        time.sleep(0.005)

    client.consent.opt_out("user-leaving")

    assert client.flush(5)
    assert {e["user_id"] for e in server.events} == {"user-staying"}
    assert client.stats()["dropped_by_reason"] == {"opted_out": 5}


def test_opt_out_purges_a_throttled_users_paused_events(
    server: AmplitudeServer, make_client: MakeClient, clock: ManualClock
):
    client = make_client()
    server.faults.throttle(users=["user-throttled"])
    for n in range(3):
        client.track("Viewed", user_id="user-throttled", event_properties={"n": n})
        client.track("Viewed", user_id="user-free", event_properties={"n": n})
    drive(client, clock, lambda: len(server.events) == 3, step=1.0)
    assert client.stats()["paused_partitions"] == 1  # the throttled user's events wait

    client.consent.opt_out("user-throttled")
    server.faults.unthrottle()
    clock.advance(60)  # the pause is over: nothing of theirs is left to send

    assert client.flush(5)
    assert {e["user_id"] for e in server.events} == {"user-free"}
    assert client.stats()["dropped_by_reason"] == {"opted_out": 3}


def test_opt_out_purges_events_waiting_for_a_retry(
    server: AmplitudeServer, make_client: MakeClient, clock: ManualClock
):
    client = make_client()
    server.faults.script(Fault(503))
    client.track("Viewed", user_id="user-leaving")
    client.track("Viewed", user_id="user-staying")
    assert not client.flush(0.3)  # both wait to be retried

    client.consent.opt_out("user-leaving")

    drive(client, clock, lambda: client.stats()["accepted"] == 1)
    assert [e["user_id"] for e in server.events] == ["user-staying"]
    assert client.stats()["dropped_by_reason"] == {"opted_out": 1}


# --- durability -----------------------------------------------------------------------------------


def test_an_opt_out_in_sqlite_survives_a_restart(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path
):
    db = str(tmp_path / "consent.db")
    first = make_client(consent_db=db)
    first.consent.opt_out("user-leaving")
    first.consent.opt_in(device_id="device-ok")
    first.shutdown()

    second = make_client(consent_db=db)
    second.track("Viewed", user_id="user-leaving")
    second.track("Viewed", user_id="user-staying")

    assert second.flush(5)
    assert [e["user_id"] for e in server.events] == ["user-staying"]
    assert second.consent.status("user-leaving") == "opted_out"
    assert second.consent.status(device_id="device-ok") == "opted_in"


def test_two_clients_sharing_sqlite_hear_each_other_within_a_second(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path
):
    db = str(tmp_path / "consent.db")
    here, there = make_client(consent_db=db), make_client(consent_db=db)
    there.track("Viewed", user_id="user-staying")  # started: it polls the store

    started = time.monotonic()
    here.consent.opt_out("user-leaving")
    while there.consent.status("user-leaving") != "opted_out":
        assert time.monotonic() - started < 1.0
        time.sleep(0.01)

    there.track("Viewed", user_id="user-leaving")
    assert there.flush(5)
    assert [e["user_id"] for e in server.events] == ["user-staying"]


# --- deletions ------------------------------------------------------------------------------------


def known_user(server: AmplitudeServer, client: Client, clock: ManualClock, user_id: str) -> None:
    """Make the server know ``user_id``, so that deleting it is not an invalid id."""
    client.track("Signed Up", user_id=user_id)
    drive(client, clock, lambda: server.amplitude_id_of(user_id, API_KEY) is not None)


def test_delete_user_blocks_purges_and_reaches_the_privacy_api(
    server: AmplitudeServer, make_client: MakeClient, clock: ManualClock
):
    client = make_client(secret_key=SECRET_KEY, flush_interval_ms=3_600_000)
    known_user(server, client, clock, "user-deleted")
    client.track("Viewed", user_id="user-deleted")  # buffered

    client.consent.delete_user("user-deleted", requester="dpo@example.com")
    client.track("Viewed", user_id="user-deleted")

    drive(client, clock, lambda: client.consent.pending_deletions() == 0, step=1.0)
    assert [e["event_type"] for e in server.events] == ["Signed Up"]
    [body] = server.deletions
    assert body["user_ids"] == ["user-deleted"]
    assert body["requester"] == "dpo@example.com"
    stats = client.consent.stats()
    assert (stats["deleted_users"], stats["invalid_ids"]) == (1, 0)
    assert client.stats()["dropped_by_reason"] == {"deleted": 2}


def test_pending_deletions_resume_after_a_restart_from_sqlite(
    server: AmplitudeServer, make_client: MakeClient, clock: ManualClock, tmp_path: Path
):
    db = str(tmp_path / "consent.db")
    first = make_client(consent_db=db)  # no secret key: the deletions wait
    for n in range(3):
        first.consent.delete_user(f"user-{n}")
    assert first.consent.pending_deletions() == 3
    first.shutdown()

    second = make_client(consent_db=db, secret_key=SECRET_KEY)  # resumes on its own

    drive(second, clock, lambda: second.consent.pending_deletions() == 0, step=1.0)
    assert [body["user_ids"] for body in server.deletions] == [["user-0", "user-1", "user-2"]]
    assert second.consent.status("user-1") == "deleted"


def test_without_a_secret_key_a_deleted_user_is_blocked_and_the_deletion_waits(
    server: AmplitudeServer,
    make_client: MakeClient,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
):
    client = make_client(flush_interval_ms=3_600_000)
    client.track("Viewed", user_id="user-deleted")

    client.consent.delete_user("user-deleted")
    client.track("Viewed", user_id="user-deleted")
    clock.advance(10)

    assert client.flush(5)
    assert server.events == []
    assert server.deletions == []
    assert client.consent.pending_deletions() == 1
    assert client.consent.stats()["deletions_waiting_for"] == "AMPLITUDE_SECRET_KEY"
    assert "AMPLITUDE_SECRET_KEY is not set" in caplog.text
    assert "user-deleted" not in caplog.text


# --- PII and IP -----------------------------------------------------------------------------------


def test_personal_property_values_arrive_redacted(server: AmplitudeServer, make_client: MakeClient):
    client = make_client()

    client.track(
        "Contact Saved",
        user_id="user-123",
        event_properties={"plan": "pro", "note": "call +44 20 7946 0958", "tags": ["a@b.co", "x"]},
        user_properties={"email": "anything at all", "city": "Leeds"},
    )

    assert client.flush(5)
    [event] = server.events
    assert event["event_properties"] == {
        "plan": "pro",
        "note": "[redacted]",
        "tags": ["[redacted]", "x"],
    }
    assert event["user_properties"] == {"email": "[redacted]", "city": "Leeds"}


def test_hash_mode_sends_joinable_hashes_and_hashes_an_email_user_id(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client(pii="hash", pii_salt=SALT)

    client.track("Viewed", user_id="jane@example.com", event_properties={"who": "jane@example.com"})

    assert client.flush(5)
    [event] = server.events
    assert re.fullmatch(r"hmac:[0-9a-f]{16}", event["user_id"])
    assert event["event_properties"]["who"] == event["user_id"]
    assert "jane" not in str(server.events)


def test_an_email_user_id_is_never_sent_in_redact_mode(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client()

    client.track("Viewed", user_id="jane@example.com")
    client.track("Viewed", user_id="user-123")

    assert client.flush(5)
    assert [e["user_id"] for e in server.events] == ["user-123"]
    assert client.stats()["dropped_by_reason"] == {"pii_user_id": 1}


@pytest.mark.parametrize("send_ip", [False, True])
def test_the_ip_is_sent_only_when_enabled(
    server: AmplitudeServer, make_client: MakeClient, send_ip: bool
):
    client = make_client(send_ip=send_ip)

    client.track("Viewed", user_id="user-123", ip="203.0.113.7")

    assert client.flush(5)
    [event] = server.events
    assert ("ip" in event) is send_ip


def test_pii_off_sends_values_as_they_are(server: AmplitudeServer, make_client: MakeClient):
    client = make_client(pii="off")

    client.track("Viewed", user_id="user-123", event_properties={"who": "jane@example.com"})

    assert client.flush(5)
    assert server.events[0]["event_properties"] == {"who": "jane@example.com"}


# --- fork -----------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_keeps_consent_and_starts_its_own_deletion_worker(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path
):
    client = make_client(consent_db=str(tmp_path / "consent.db"))
    client.consent.opt_out("user-leaving")
    client.track("Viewed", user_id="user-staying")
    assert client.flush(5)

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running the parent's exit hooks
        try:
            client.consent.opt_out("user-child")  # its own SQLite connection
            status = client.consent.status("user-leaving")
            threads = sorted(t.name for t in threading.enumerate() if t.name != "MainThread")
            os.write(write, f"{status}|{','.join(threads)}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)

    child_status, child_threads = report.split("|")
    assert child_status == "opted_out"
    assert "otel_amplitude.deletions" not in child_threads  # nothing to delete: no worker
    deadline = time.monotonic() + 2
    while client.consent.status("user-child") != "opted_out":  # heard from the child
        assert time.monotonic() < deadline
        time.sleep(0.01)

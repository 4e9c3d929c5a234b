"""User deletions: the request, what a response means, and the worker against the local server."""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from otel_amplitude import Settings
from otel_amplitude._consent_store import MemoryConsentStore
from otel_amplitude._deletion import (
    MAX_IDS_PER_REQUEST,
    DeletionOutcome,
    DeletionWorker,
    classify_deletion,
    deletion_body,
)
from otel_amplitude.testing import AmplitudeServer, Fault, ManualClock

API_KEY = "test-api-key-0001"
SECRET_KEY = "test-secret-key-0001"
PROJECT = "project-a"

# --- the request and the response, as pure functions -------------------------------------------


def test_the_body_lists_the_ids_asks_to_ignore_unknown_ones_and_names_the_requester() -> None:
    assert orjson.loads(deletion_body(["user-1", "user-2"], "dpo@example.com")) == {
        "user_ids": ["user-1", "user-2"],
        "ignore_invalid_id": True,
        "requester": "dpo@example.com",
    }
    assert "requester" not in orjson.loads(deletion_body(["user-1"], None))


@pytest.mark.parametrize(
    ("status", "body", "retry_after", "outcome"),
    [
        (200, b'{"day": "2024-02-01", "amplitude_ids": []}', None, DeletionOutcome("done")),
        (200, b'{"invalid_ids": ["a", "b"]}', None, DeletionOutcome("done", invalid=2)),
        (200, b"not json", None, DeletionOutcome("done")),
        (429, b"", None, DeletionOutcome("throttled", pause=1.0)),
        (429, b"", "5", DeletionOutcome("throttled", pause=5.0)),
        (429, b"", "0.1", DeletionOutcome("throttled", pause=1.0)),
        (429, b"", "nan", DeletionOutcome("throttled", pause=1.0)),
        (429, b"", "soon", DeletionOutcome("throttled", pause=1.0)),
        (401, b"", None, DeletionOutcome("refused")),
        (403, b"", None, DeletionOutcome("refused")),
        (500, b"", None, DeletionOutcome("retry")),
        (503, b"<html>", None, DeletionOutcome("retry")),
        (408, b"", None, DeletionOutcome("retry")),
        (None, b"", None, DeletionOutcome("retry")),
        (400, b'{"error": "bad"}', None, DeletionOutcome("rejected")),
    ],
)
def test_what_a_response_means(
    status: int | None, body: bytes, retry_after: str | None, outcome: DeletionOutcome
) -> None:
    assert classify_deletion(status, body, retry_after) == outcome


# --- the worker against the local server -------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def server(clock: ManualClock) -> Iterator[AmplitudeServer]:
    # The server's 1 request/s limit runs on the same manual clock: a request less than one
    # second (of that clock) after the previous one would be answered 429.
    with AmplitudeServer(clock=clock, secret_keys={API_KEY: SECRET_KEY}) as running:
        yield running


Make = Callable[..., tuple[DeletionWorker, MemoryConsentStore]]


@pytest.fixture
def make_worker(server: AmplitudeServer, clock: ManualClock) -> Iterator[Make]:
    workers: list[DeletionWorker] = []

    def make(**changes: Any) -> tuple[DeletionWorker, MemoryConsentStore]:
        options: dict[str, Any] = {
            "api_key": API_KEY,
            "secret_key": SECRET_KEY,
            "server_url": server.url,
            "timeout_ms": 2000,
        }
        options.update(changes)
        store = MemoryConsentStore()
        worker = DeletionWorker(Settings(**options), clock, store, PROJECT)
        workers.append(worker)
        return worker, store

    yield make
    for worker in workers:
        worker.stop(time.monotonic() + 5)
    assert not [t for t in threading.enumerate() if t.name == "otel_amplitude.deletions"]


def run(clock: ManualClock, until: Callable[[], bool], *, step: float = 0.5) -> list[float]:
    """Advance the clock until ``until()``; return the clock times at which it was checked."""
    deadline = time.monotonic() + 20
    times = []
    while not until():
        assert time.monotonic() < deadline, "not done in time"
        times.append(clock.monotonic())
        time.sleep(0.02)
        clock.advance(step)
    return times


def queue(store: MemoryConsentStore, count: int, requester: str | None = None) -> list[str]:
    users = [f"user-{n:04d}" for n in range(count)]
    for user in users:
        store.record_deletion(PROJECT, user, requester)
    return users


def deletion_requests(server: AmplitudeServer) -> list[Any]:
    return [r for r in server.requests if r.path.endswith("/api/2/deletions/users")]


def test_250_users_go_out_in_3_requests_at_least_a_second_apart(
    server: AmplitudeServer, clock: ManualClock, make_worker: Make
) -> None:
    worker, store = make_worker()
    users = queue(store, 250)
    seen_at: dict[int, float] = {}

    def three_requests() -> bool:
        count = len(deletion_requests(server))
        seen_at.setdefault(count, clock.monotonic())
        return len(server.deletions) == 3

    worker.start()
    run(clock, three_requests, step=0.25)

    bodies = server.deletions
    assert [len(body["user_ids"]) for body in bodies] == [100, 100, 50]
    assert [u for body in bodies for u in body["user_ids"]] == users
    assert all(body["ignore_invalid_id"] is True for body in bodies)
    assert [r.status for r in deletion_requests(server)] == [200, 200, 200]  # never a 429
    assert seen_at[3] - seen_at[1] >= 2.0
    run(clock, lambda: store.pending_deletions(PROJECT) == 0)
    assert worker.stats()["deletion_requests"] == 3
    assert worker.stats()["invalid_ids"] == 250  # the server never saw these users' events


def test_requests_use_basic_auth_with_the_api_and_secret_keys(
    server: AmplitudeServer, clock: ManualClock, make_worker: Make
) -> None:
    worker, store = make_worker()
    queue(store, 1, requester="dpo@example.com")

    worker.start()
    run(clock, lambda: len(server.deletions) == 1)

    [request] = deletion_requests(server)
    scheme, _, encoded = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == f"{API_KEY}:{SECRET_KEY}"
    assert server.deletions[0]["requester"] == "dpo@example.com"


def test_a_wrong_secret_key_keeps_the_jobs_and_says_so_without_the_key(
    server: AmplitudeServer,
    clock: ManualClock,
    make_worker: Make,
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker, store = make_worker(secret_key="wrong-secret-key-0001")
    queue(store, 2)

    worker.start()
    run(clock, lambda: len(deletion_requests(server)) == 1)
    run(clock, lambda: worker.stats()["deletion_failures"] == 1)

    assert deletion_requests(server)[0].status == 401
    assert store.pending_deletions(PROJECT) == 2
    assert "AMPLITUDE_SECRET_KEY" in caplog.text
    assert "wrong-secret-key" not in caplog.text
    assert "user-0000" not in caplog.text


@pytest.mark.parametrize("fault", [Fault(503), Fault(500), Fault(reset=True), Fault(429)], ids=repr)
def test_a_failed_request_is_retried_until_accepted(
    server: AmplitudeServer, clock: ManualClock, make_worker: Make, fault: Fault
) -> None:
    worker, store = make_worker()
    users = queue(store, 3)
    server.faults.script_privacy(fault, fault)

    worker.start()
    run(clock, lambda: len(server.deletions) == 1)

    assert server.deletions[0]["user_ids"] == users
    assert len(deletion_requests(server)) == 3
    run(clock, lambda: store.pending_deletions(PROJECT) == 0)
    stats = worker.stats()
    assert stats["deletion_failures"] + stats["deletion_throttled"] == 2


def test_requesters_are_never_mixed_in_one_request(
    server: AmplitudeServer, clock: ManualClock, make_worker: Make
) -> None:
    worker, store = make_worker()
    store.record_deletion(PROJECT, "user-a1", "alice")
    store.record_deletion(PROJECT, "user-n1", None)
    store.record_deletion(PROJECT, "user-a2", "alice")

    worker.start()
    run(clock, lambda: len(server.deletions) == 2)

    assert [(b.get("requester"), b["user_ids"]) for b in server.deletions] == [
        ("alice", ["user-a1", "user-a2"]),
        (None, ["user-n1"]),
    ]


def test_invalid_ids_are_counted_and_logged_as_a_count(
    server: AmplitudeServer,
    clock: ManualClock,
    make_worker: Make,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="otel_amplitude")
    worker, store = make_worker()
    queue(store, 3)

    worker.start()
    run(clock, lambda: store.pending_deletions(PROJECT) == 0)

    assert worker.stats()["invalid_ids"] == 3
    assert "3 of 3 user ids" in caplog.text
    assert "user-0001" not in caplog.text


def test_a_job_queued_while_idle_is_sent_without_waiting_for_the_idle_check(
    server: AmplitudeServer, clock: ManualClock, make_worker: Make
) -> None:
    worker, store = make_worker()
    worker.start()
    time.sleep(0.05)  # the worker found nothing and waits

    queue(store, 1)
    worker.wake()

    deadline = time.monotonic() + 5
    while not server.deletions:
        assert time.monotonic() < deadline
        time.sleep(0.01)  # no clock advance needed


def test_a_stopped_worker_leaves_its_jobs_for_the_next_one(make_worker: Make) -> None:
    worker, store = make_worker(server_url="http://127.0.0.1:9")  # nothing listens there
    queue(store, 2)
    worker.start()
    time.sleep(0.1)

    worker.stop(time.monotonic() + 5)

    assert store.pending_deletions(PROJECT) == 2
    assert len(store.claim_deletions(PROJECT, "the-next-worker", MAX_IDS_PER_REQUEST)) == 2

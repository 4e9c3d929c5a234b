"""Consent stores: the protocol's contract (memory and SQLite), durability, several processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from otel_amplitude._consent_store import (
    DELETION_LEASE_SECONDS,
    Change,
    ConsentStore,
    MemoryConsentStore,
    Snapshot,
    SQLiteConsentStore,
)

PROJECT = "project-a"


class Recorder:
    """A watcher that keeps what it was told."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changes: list[Change] = []
        self.snapshots: list[Snapshot] = []

    def update(self, read: Callable[[], Snapshot | Sequence[Change] | None]) -> None:
        with self.lock:
            result = read()
            if isinstance(result, Snapshot):
                self.snapshots.append(result)
            elif result is not None:
                self.changes.extend(result)

    def wait_for(self, change: Change, timeout: float = 5.0) -> float:
        """Seconds until ``change`` was heard (fails after ``timeout``)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            with self.lock:
                if change in self.changes:
                    return time.monotonic() - started
            time.sleep(0.01)
        raise AssertionError(f"{change} not heard within {timeout} s")


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ConsentStore]:
    made: ConsentStore
    if request.param == "memory":
        made = MemoryConsentStore()
    else:
        made = SQLiteConsentStore(str(tmp_path / "consent.db"))
    yield made
    made.close()


# --- the contract, for every store ----------------------------------------------------------------


def test_a_new_store_is_empty(store: ConsentStore) -> None:
    snapshot = store.load()

    assert (snapshot.users, snapshot.devices) == ({}, {})
    assert store.pending_deletions(PROJECT) == 0


def test_recorded_states_are_loaded_by_kind(store: ConsentStore) -> None:
    assert store.record("user", "user-1", "opted_out") == "opted_out"
    assert store.record("user", "user-2", "opted_in") == "opted_in"
    assert store.record("device", "device-1", "opted_out") == "opted_out"
    assert store.record("user", "user-2", "opted_out") == "opted_out"

    snapshot = store.load()

    assert snapshot.users == {"user-1": "opted_out", "user-2": "opted_out"}
    assert snapshot.devices == {"device-1": "opted_out"}


def test_a_deleted_user_stays_deleted_whatever_is_recorded_later(store: ConsentStore) -> None:
    store.record_deletion(PROJECT, "user-1", None)

    assert store.record("user", "user-1", "opted_in") == "deleted"
    assert store.record("user", "user-1", "opted_out") == "deleted"
    assert store.load().users == {"user-1": "deleted"}


def test_deletion_jobs_are_claimed_oldest_first_at_most_limit(store: ConsentStore) -> None:
    for n in range(5):
        store.record_deletion(PROJECT, f"user-{n}", None)
    store.record_deletion("project-b", "user-9", None)

    first = store.claim_deletions(PROJECT, "worker-1", 3)

    assert [job.user_id for job in first] == ["user-0", "user-1", "user-2"]
    assert [job.user_id for job in store.claim_deletions(PROJECT, "worker-2", 10)] == [
        "user-3",
        "user-4",
    ]  # another worker gets only what is not held
    assert store.pending_deletions(PROJECT) == 5
    assert store.pending_deletions("project-b") == 1


def test_an_owner_claims_its_jobs_again_until_they_are_completed(store: ConsentStore) -> None:
    store.record_deletion(PROJECT, "user-1", None)
    store.record_deletion(PROJECT, "user-2", None)
    assert len(store.claim_deletions(PROJECT, "worker-1", 100)) == 2

    store.complete_deletions(PROJECT, ["user-1"])

    assert [job.user_id for job in store.claim_deletions(PROJECT, "worker-1", 100)] == ["user-2"]
    assert store.pending_deletions(PROJECT) == 1


def test_a_released_job_can_be_claimed_at_once_by_another_worker(store: ConsentStore) -> None:
    store.record_deletion(PROJECT, "user-1", "dpo@example.com")
    store.claim_deletions(PROJECT, "worker-1", 100)
    assert store.claim_deletions(PROJECT, "worker-2", 100) == []

    store.release_deletions(PROJECT, "worker-1")

    [job] = store.claim_deletions(PROJECT, "worker-2", 100)
    assert (job.user_id, job.requester) == ("user-1", "dpo@example.com")


def test_one_claim_holds_jobs_of_one_requester(store: ConsentStore) -> None:
    store.record_deletion(PROJECT, "user-1", "alice")
    store.record_deletion(PROJECT, "user-2", None)
    store.record_deletion(PROJECT, "user-3", "alice")

    first = store.claim_deletions(PROJECT, "worker", 100)
    store.complete_deletions(PROJECT, [job.user_id for job in first])
    second = store.claim_deletions(PROJECT, "worker", 100)

    assert [(job.user_id, job.requester) for job in first] == [
        ("user-1", "alice"),
        ("user-3", "alice"),
    ]
    assert [(job.user_id, job.requester) for job in second] == [("user-2", None)]


def test_deleting_a_user_twice_queues_one_job(store: ConsentStore) -> None:
    store.record_deletion(PROJECT, "user-1", None)
    store.record_deletion(PROJECT, "user-1", None)

    assert store.pending_deletions(PROJECT) == 1


def test_a_lease_runs_out(store: ConsentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.record_deletion(PROJECT, "user-1", None)
    store.claim_deletions(PROJECT, "crashed-worker", 100)
    later = time.time() + DELETION_LEASE_SECONDS + 1
    monkeypatch.setattr(time, "time", lambda: later)

    assert [job.user_id for job in store.claim_deletions(PROJECT, "worker-2", 100)] == ["user-1"]


# --- SQLite: durable, shared ----------------------------------------------------------------------


def test_sqlite_state_and_jobs_survive_reopening(tmp_path: Path) -> None:
    path = str(tmp_path / "consent.db")
    first = SQLiteConsentStore(path)
    first.record("user", "user-1", "opted_out")
    first.record("device", "device-1", "opted_in")
    first.record_deletion(PROJECT, "user-2", "dpo")
    first.close()

    reopened = SQLiteConsentStore(path)
    try:
        snapshot = reopened.load()
        assert snapshot.users == {"user-1": "opted_out", "user-2": "deleted"}
        assert snapshot.devices == {"device-1": "opted_in"}
        assert reopened.pending_deletions(PROJECT) == 1
    finally:
        reopened.close()


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    store = SQLiteConsentStore(str(tmp_path / "consent.db"))
    store.close()

    import sqlite3

    conn = sqlite3.connect(str(tmp_path / "consent.db"))
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_sqlite_watch_hears_another_connections_changes_within_a_second(tmp_path: Path) -> None:
    path = str(tmp_path / "consent.db")
    watched, other = SQLiteConsentStore(path), SQLiteConsentStore(path)
    recorder = Recorder()
    try:
        watched.record("user", "mine", "opted_out")
        watched.watch(recorder)
        other.record("user", "user-1", "opted_out")

        assert recorder.wait_for(("user", "user-1", "opted_out")) < 1.0
    finally:
        watched.close()
        other.close()
    assert not [t for t in threading.enumerate() if t.name == "otel_amplitude.consent-sqlite"]


def test_sqlite_watch_catches_up_before_returning(tmp_path: Path) -> None:
    path = str(tmp_path / "consent.db")
    watched, other = SQLiteConsentStore(path, poll_interval=60), SQLiteConsentStore(path)
    watched.load()
    other.record("device", "device-1", "opted_out")
    recorder = Recorder()
    try:
        watched.watch(recorder)

        assert recorder.changes == [("device", "device-1", "opted_out")]
    finally:
        watched.close()
        other.close()


_WRITER = textwrap.dedent(
    """
    import sys
    from otel_amplitude._consent_store import SQLiteConsentStore

    store = SQLiteConsentStore(sys.argv[1])
    for n in range(int(sys.argv[3])):
        store.record("user", f"{sys.argv[2]}-{n}", "opted_out")
        if n % 10 == 0:
            store.record_deletion("project-a", f"{sys.argv[2]}-deleted-{n}", None)
    store.close()
    print("done")
    """
)


def test_sqlite_is_shared_by_processes_writing_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "consent.db")
    here = SQLiteConsentStore(path)
    recorder = Recorder()
    here.watch(recorder)
    try:
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", _WRITER, path, name, "200"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in ("alpha", "beta")
        ]
        for n in range(200):
            here.record("user", f"here-{n}", "opted_out")
        for writer in writers:
            out, err = writer.communicate(timeout=60)
            assert writer.returncode == 0, err
            assert out.strip() == "done"

        recorder.wait_for(("user", "beta-199", "opted_out"))  # heard by the poll
        recorder.wait_for(("user", "alpha-199", "opted_out"))
        users = here.load().users
        assert len(users) == 600 + 40
        assert all(users[f"{w}-{n}"] == "opted_out" for w in ("alpha", "beta") for n in range(200))
        assert here.pending_deletions(PROJECT) == 40
    finally:
        here.close()


def test_an_unusable_sqlite_path_fails_at_once(tmp_path: Path) -> None:
    import sqlite3

    with pytest.raises(sqlite3.Error):
        SQLiteConsentStore(str(tmp_path / "missing-dir" / "consent.db"))


def test_store_reprs_show_no_secret(tmp_path: Path) -> None:
    store = SQLiteConsentStore(str(tmp_path / "consent.db"))
    try:
        assert repr(store) == f"SQLiteConsentStore(path={str(tmp_path / 'consent.db')!r})"
        assert repr(MemoryConsentStore()) == "MemoryConsentStore()"
    finally:
        store.close()

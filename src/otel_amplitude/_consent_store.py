"""Where consent lives: the store protocol, an in-memory store and an SQLite store.

The consent gate never reads a store on the hot path: it reads the in-memory copy that the
:class:`~otel_amplitude._consent.Consent` object keeps. A store makes changes durable, holds the
pending user deletions, and tells every process about changes made by the others
(:meth:`ConsentStore.watch`). A ``deleted`` user stays deleted in every store, whatever is
recorded later.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

from ._log import RateLimitedLog, mark_library_thread
from .exceptions import ConsentStoreError

__all__ = [
    "SCOPE",
    "Change",
    "ConsentStore",
    "ConsentStoreError",
    "DeletionJob",
    "Kind",
    "MemoryConsentStore",
    "SQLiteConsentStore",
    "Snapshot",
    "State",
    "Watcher",
]

Kind = Literal["user", "device"]
State = Literal["opted_in", "opted_out", "deleted"]
STATES: frozenset[str] = frozenset(("opted_in", "opted_out", "deleted"))

#: One recorded change: (kind, id, state).
Change = tuple[Kind, str, State]

#: How long a claimed deletion job belongs to its worker before another may take it over.
DELETION_LEASE_SECONDS = 60.0

#: Joins a tenant and an id into the subject of a record (or deletion job) scoped to that
#: tenant's destination: ``"acme\x1fuser-1"``. Stores keep such subjects as they are.
SCOPE = "\x1f"


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a store records, as of ``version`` (a store-specific change counter).

    ``complete`` is False when the store is known to have lost data (its counter went back):
    what it holds is then added to what a process knows, rather than replacing it.
    """

    users: dict[str, State]
    devices: dict[str, State]
    version: int = 0
    complete: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class DeletionJob:
    """A user whose deletion must still be sent to Amplitude's User Privacy API."""

    user_id: str
    requester: str | None


class Watcher(Protocol):
    """What a store tells about changes made elsewhere (implemented by ``Consent``)."""

    def update(self, read: Callable[[], Snapshot | Sequence[Change] | None]) -> None:
        """Call ``read`` under the consent lock and apply what it returns.

        A :class:`Snapshot` replaces everything known (``deleted`` is never forgotten); a
        sequence of changes is applied in order; None changes nothing. Reading under the lock
        orders the update with this process's own changes.
        """


class ConsentStore(Protocol):
    """Durable consent state and pending deletions, shared by every process that opens it."""

    def load(self) -> Snapshot:
        """Everything recorded."""

    def record(self, kind: Kind, subject: str, state: State) -> State:
        """Make ``state`` durable for ``subject``; return the state now recorded.

        That is ``deleted`` when the subject was deleted before: deletion is forever.
        """

    def record_deletion(self, project: str, user_id: str, requester: str | None) -> None:
        """Record ``user_id`` as deleted and queue its deletion job, atomically."""

    def claim_deletions(self, project: str, owner: str, limit: int) -> list[DeletionJob]:
        """Take up to ``limit`` pending jobs of one requester for ``owner``, oldest first.

        A job stays with its owner while the owner claims it again at least every
        :data:`DELETION_LEASE_SECONDS`; after that any worker may take it over.
        """

    def complete_deletions(self, project: str, user_ids: Sequence[str]) -> None:
        """Forget the jobs of ``user_ids``: Amplitude accepted their deletion."""

    def release_deletions(self, project: str, owner: str) -> None:
        """Give back every job ``owner`` holds, so that another worker takes them at once."""

    def pending_deletions(self, project: str) -> int:
        """How many deletion jobs wait to be sent."""

    def watch(self, watcher: Watcher) -> None:
        """Tell ``watcher`` about changes made by other processes, from now on (idempotent).

        Catches up before returning, so the watcher is current when this returns.
        """

    def close(self) -> None:
        """Stop watching and close connections. Later calls reopen what they need."""

    def after_fork_in_child(self) -> None:
        """In a forked child: replace locks, forget the parent's threads and connections."""


# --- In memory ----------------------------------------------------------------------------------


class MemoryConsentStore:
    """The default store: this process only, forgotten at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, State] = {}
        self._devices: dict[str, State] = {}
        self._jobs: dict[tuple[str, str], tuple[DeletionJob, str | None, float]] = {}
        self._version = 0

    def load(self) -> Snapshot:
        with self._lock:
            return Snapshot(dict(self._users), dict(self._devices), self._version)

    def record(self, kind: Kind, subject: str, state: State) -> State:
        with self._lock:
            table = self._users if kind == "user" else self._devices
            if table.get(subject) != "deleted":
                table[subject] = state
                self._version += 1
            return table[subject]

    def record_deletion(self, project: str, user_id: str, requester: str | None) -> None:
        with self._lock:
            self._users[user_id] = "deleted"
            self._version += 1
            self._jobs.setdefault((project, user_id), (DeletionJob(user_id, requester), None, 0.0))

    def claim_deletions(self, project: str, owner: str, limit: int) -> list[DeletionJob]:
        with self._lock:
            now = time.time()
            claimable = [
                key
                for key, (_, holder, until) in self._jobs.items()
                if key[0] == project and (holder == owner or until < now)
            ]
            if not claimable:
                return []
            requester = self._jobs[claimable[0]][0].requester
            claimed: list[DeletionJob] = []
            for key in claimable:
                job = self._jobs[key][0]
                if job.requester == requester and len(claimed) < limit:
                    self._jobs[key] = (job, owner, now + DELETION_LEASE_SECONDS)
                    claimed.append(job)
            return claimed

    def complete_deletions(self, project: str, user_ids: Sequence[str]) -> None:
        with self._lock:
            for user_id in user_ids:
                self._jobs.pop((project, user_id), None)

    def release_deletions(self, project: str, owner: str) -> None:
        with self._lock:
            for key, (job, holder, _) in list(self._jobs.items()):
                if key[0] == project and holder == owner:
                    self._jobs[key] = (job, None, 0.0)

    def pending_deletions(self, project: str) -> int:
        with self._lock:
            return sum(1 for key in self._jobs if key[0] == project)

    def watch(self, watcher: Watcher) -> None:
        """Nothing to watch: no other process shares this store."""

    def close(self) -> None:
        """Nothing to close."""

    def after_fork_in_child(self) -> None:
        """A lock held by another thread at fork time stays held in the child: replace it."""
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "MemoryConsentStore()"


# --- SQLite ------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS consent (
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    state TEXT NOT NULL,
    seq INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (kind, subject)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS consent_by_seq ON consent (seq);
CREATE TABLE IF NOT EXISTS deletion_jobs (
    project TEXT NOT NULL,
    user_id TEXT NOT NULL,
    requester TEXT,
    owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    queued_at REAL NOT NULL,
    UNIQUE (project, user_id)
);
"""

_UPSERT = """
INSERT INTO consent (kind, subject, state, seq, updated_at)
VALUES (?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM consent), ?)
ON CONFLICT (kind, subject) DO UPDATE
SET state = excluded.state, seq = excluded.seq, updated_at = excluded.updated_at
WHERE consent.state != 'deleted'
"""

#: Abandoned connections inherited through fork: never closed in the child, whose close could
#: checkpoint or remove the WAL that the parent is still using.
_inherited: list[sqlite3.Connection] = []


class SQLiteConsentStore:
    """Consent in one SQLite file (WAL), shared by the processes of one machine.

    Every write is committed (``synchronous=FULL``) before the call returns. Other processes'
    changes are found by a poll every ``poll_interval`` seconds (real time) that costs one
    ``PRAGMA data_version`` when nothing changed, and reads only the rows changed since.
    """

    def __init__(self, path: str, *, poll_interval: float = 0.25) -> None:
        self._path = path
        self._poll_interval = poll_interval
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._seen_seq = 0
        self._data_version = -1
        self._watcher: Watcher | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._log = RateLimitedLog(time.monotonic)
        with self._lock:
            self._connection()  # fail now, at configuration time, on an unusable path

    @property
    def path(self) -> str:
        return self._path

    def _connection(self) -> sqlite3.Connection:
        """This process's connection (held under ``_lock``), opened on first use."""
        if self._pid != os.getpid():
            self._after_fork()
        if self._conn is None:
            conn = sqlite3.connect(
                self._path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _after_fork(self) -> None:
        if self._conn is not None:
            _inherited.append(self._conn)
        self._conn = None
        self._pid = os.getpid()
        self._thread = None
        self._stop = threading.Event()
        self._data_version = -1

    def _write(self, statements: Callable[[sqlite3.Connection], None]) -> None:
        """Run ``statements`` in one immediate transaction, committed before returning."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                statements(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def load(self) -> Snapshot:
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                users: dict[str, State] = {}
                devices: dict[str, State] = {}
                rows = conn.execute("SELECT kind, subject, state FROM consent")
                for kind, subject, state in rows:
                    if state in STATES:
                        (users if kind == "user" else devices)[subject] = state
                (version,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM consent").fetchone()
            finally:
                conn.execute("COMMIT")
            self._seen_seq = max(self._seen_seq, version)
            return Snapshot(users, devices, version)

    def record(self, kind: Kind, subject: str, state: State) -> State:
        result: list[State] = []

        def upsert(conn: sqlite3.Connection) -> None:
            conn.execute(_UPSERT, (kind, subject, state, time.time()))
            row = conn.execute(
                "SELECT state FROM consent WHERE kind = ? AND subject = ?", (kind, subject)
            ).fetchone()
            result.append(row[0])

        self._write(upsert)
        return result[0]

    def record_deletion(self, project: str, user_id: str, requester: str | None) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            now = time.time()
            conn.execute(_UPSERT, ("user", user_id, "deleted", now))
            conn.execute(
                "INSERT OR IGNORE INTO deletion_jobs (project, user_id, requester, queued_at)"
                " VALUES (?, ?, ?, ?)",
                (project, user_id, requester, now),
            )

        self._write(delete)

    def claim_deletions(self, project: str, owner: str, limit: int) -> list[DeletionJob]:
        claimed: list[DeletionJob] = []

        def claim(conn: sqlite3.Connection) -> None:
            now = time.time()
            claimable = "project = ? AND (owner = ? OR lease_until < ?)"
            first = conn.execute(
                f"SELECT requester FROM deletion_jobs WHERE {claimable} ORDER BY rowid LIMIT 1",  # noqa: S608 - constant text
                (project, owner, now),
            ).fetchone()
            if first is None:
                return
            requester = first[0]
            rows = conn.execute(
                f"SELECT user_id FROM deletion_jobs WHERE {claimable} AND requester IS ?"  # noqa: S608 - constant text
                " ORDER BY rowid LIMIT ?",
                (project, owner, now, requester, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE deletion_jobs SET owner = ?, lease_until = ?"
                " WHERE project = ? AND user_id = ?",
                [(owner, now + DELETION_LEASE_SECONDS, project, row[0]) for row in rows],
            )
            claimed.extend(DeletionJob(row[0], requester) for row in rows)

        self._write(claim)
        return claimed

    def complete_deletions(self, project: str, user_ids: Sequence[str]) -> None:
        def complete(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "DELETE FROM deletion_jobs WHERE project = ? AND user_id = ?",
                [(project, user_id) for user_id in user_ids],
            )

        self._write(complete)

    def release_deletions(self, project: str, owner: str) -> None:
        def release(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE deletion_jobs SET owner = NULL, lease_until = 0"
                " WHERE project = ? AND owner = ?",
                (project, owner),
            )

        self._write(release)

    def pending_deletions(self, project: str) -> int:
        with self._lock:
            row = (
                self._connection()
                .execute("SELECT COUNT(*) FROM deletion_jobs WHERE project = ?", (project,))
                .fetchone()
            )
        return int(row[0])

    # -- watching other processes --------------------------------------------------------------

    def watch(self, watcher: Watcher) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._after_fork()
            self._watcher = watcher
            if self._thread is None or not self._thread.is_alive():
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._poll_loop,
                    args=(self._stop,),
                    name="otel_amplitude.consent-sqlite",
                    daemon=True,
                )
                self._thread.start()
        watcher.update(self._changes)  # catch up now: the caller relies on it

    def _poll_loop(self, stop: threading.Event) -> None:
        mark_library_thread()
        while not stop.wait(self._poll_interval):
            watcher = self._watcher
            if watcher is None:
                continue
            try:
                watcher.update(self._changes)
            except Exception as exc:  # noqa: BLE001 - the poll must outlive a bad moment
                self._log.log(
                    logging.WARNING,
                    "sqlite-poll",
                    "reading consent changes from the SQLite store failed (%s); will retry",
                    type(exc).__name__,
                )

    def _changes(self) -> list[Change] | None:
        """Rows changed by any process since the last look; None when nothing changed."""
        with self._lock:
            conn = self._connection()
            (data_version,) = conn.execute("PRAGMA data_version").fetchone()
            if data_version == self._data_version:
                return None
            self._data_version = data_version
            rows = conn.execute(
                "SELECT kind, subject, state, seq FROM consent WHERE seq > ? ORDER BY seq",
                (self._seen_seq,),
            ).fetchall()
        changes: list[Change] = []
        for kind, subject, state, seq in rows:
            self._seen_seq = max(self._seen_seq, seq)
            if state in STATES and kind in ("user", "device"):
                changes.append((kind, subject, state))
        return changes

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
            self._watcher = None
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def after_fork_in_child(self) -> None:
        """Replace the lock (it may have been held at fork time); reconnect on next use."""
        self._lock = threading.Lock()
        self._after_fork()

    def __repr__(self) -> str:
        return f"SQLiteConsentStore(path={self._path!r})"

"""The durable spool (``AMPLITUDE_SPOOL_DIR``): events on disk until Amplitude has them.

The dispatcher hands events to :meth:`Spool.add` and, once Amplitude accepted or rejected them
for good, to :meth:`Spool.remove`; both only queue work in memory. A writer thread commits what
is queued every ``sync_ms`` in one SQLite transaction (a group commit), so the guarantee is:

* an event added more than ``sync_ms`` (plus the time of one commit) before the process crashes
  is in the spool when it starts again, and is replayed (:meth:`Spool.load`) with its
  ``insert_id``, in the order it was added;
* a row leaves the spool only when :meth:`Spool.remove` or :meth:`Spool.purge` says so.

WAL with ``synchronous=NORMAL``: a process crash (``kill -9`` included) loses nothing committed;
a power loss or OS crash may lose the last commits. Each process owns its own segment of the
directory (see :mod:`otel_amplitude._spool_files`); segments of dead processes are adopted by a
live one, so no event is replayed by two processes at once. POSIX only.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import orjson

from ._event import Event, to_wire
from ._log import RateLimitedLog, logger, mark_library_thread
from ._spool_files import (
    ROW_OVERHEAD,
    ROW_SIZE_SQL,
    check_db,
    connect_owner,
    create_segment,
    remove_segment_files,
    row_size,
    scan,
    try_lock,
)
from ._spool_inspect import SegmentSummary, SpoolSummary, inspect_spool
from .exceptions import SpoolError

__all__ = [
    "ROW_OVERHEAD",
    "SegmentSummary",
    "Spool",
    "SpoolError",
    "SpoolSummary",
    "inspect_spool",
    "open_spool",
]

# A row as queued: (destination, user_id, device_id, event_type, created, attempts, body);
# its seq is the key it is queued under.
_Row = tuple[str, str | None, str | None, str, float, int, bytes]


def _encode(event: Event) -> bytes:
    """``event``'s wire JSON, in a bytes object of its own size.

    orjson writes into a buffer of about 4 KB and shrinks it in place, and the allocator cannot
    reuse the rest: a row held until the writer thread takes it kept all 4 KB (470 MB of
    resident memory for a burst of 100,000 spooled events). The copy costs about 0.2 µs.
    """
    return bytes(memoryview(orjson.dumps(to_wire(event))))


_INSERT = (
    "INSERT INTO events (seq, destination, user_id, device_id, event_type, created, attempts, "
    "body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_CHUNK = 500  # seqs per DELETE ... IN (...): under SQLite's oldest limit of 999 parameters


class Spool:
    """This process's segment of a spool directory: queues in memory, a writer thread, SQLite.

    Built by :func:`open_spool`. ``add`` and ``remove`` are meant for the dispatcher thread;
    ``purge``, ``sync``, ``load``, ``adopt_orphans`` and ``close`` may be called from any thread.
    One small lock guards the queues and totals, held only to read or swap them; a second one
    serialises the use of the SQLite connection.
    """

    def __init__(
        self,
        directory: Path,
        stem: str,
        lock_fd: int,
        *,
        max_bytes: int,
        sync_ms: int,
        clock_monotonic: Callable[[], float],
    ) -> None:
        self.directory = directory
        self.segment = stem
        self._lock_fd = lock_fd
        self._max_bytes = max_bytes
        self._sync_s = sync_ms / 1000.0
        self._monotonic = clock_monotonic
        self._conn = connect_owner(directory / f"{stem}.db")
        self._lock = threading.Lock()  # the queues and totals below
        self._db_lock = threading.Lock()  # the connection; taken before self._lock, never after
        self._pending: dict[int, _Row] = {}  # seq -> row, ascending seq
        self._removals: list[int] = []
        self._next_seq = 1 + (self._conn.execute("SELECT max(seq) FROM events").fetchone()[0] or 0)
        self._rows = 0
        self._bytes = 0
        #: Write transactions committed (group commits, purges, adoptions): for tests and stats.
        self.commits = 0
        self._closed = False
        self._stop = threading.Event()
        self._warnings = RateLimitedLog(time.monotonic)
        self._thread = threading.Thread(target=self._run, name="otel_amplitude.spool", daemon=True)
        _live.add(self)

    # --- the dispatcher's side: memory only ----------------------------------------------------

    def add(self, events: Sequence[Event]) -> int:
        """Queue ``events`` for the disk, in order; return how many were taken.

        Takes events until the next would push :attr:`bytes` past ``max_bytes``; the caller
        applies its overflow policy to ``events[taken:]``. Sets each taken event's ``spool_id``.
        An event that already has a row (``spool_id`` set) counts as taken and gets no second.
        No I/O: encodes the events (orjson) and appends them to the writer's queue.
        """
        if self._closed or self._bytes + ROW_OVERHEAD >= self._max_bytes:
            return 0
        wall = time.time()
        to_wall = wall - self._monotonic()
        rows: list[_Row] = [
            (
                event.destination,
                event.user_id,
                event.device_id,
                event.event_type,
                event.created + to_wall if event.created else wall,
                event.attempts,
                _encode(event),
            )
            for event in events
        ]
        limit = self._max_bytes
        taken = 0
        with self._lock:
            pending = self._pending
            seq = self._next_seq
            total = self._bytes
            for event, row in zip(events, rows, strict=True):
                if not event.spool_id:
                    size = row_size(row[0], row[1], row[2], row[3], row[6])
                    if total + size > limit:
                        break
                    total += size
                    pending[seq] = row
                    event.spool_id = seq
                    seq += 1
                taken += 1
            self._rows += seq - self._next_seq
            self._next_seq = seq
            self._bytes = total
        return taken

    def remove(self, events: Iterable[Event]) -> None:
        """Queue the deletion of ``events``' rows (Amplitude has them, or refused them for good).

        Resets their ``spool_id`` to 0; events without one are ignored. A row not yet written
        is dropped from the queue and never written. No I/O.
        """
        with self._lock:
            pending = self._pending
            for event in events:
                seq = event.spool_id
                if seq:
                    event.spool_id = 0
                    row = pending.pop(seq, None)
                    if row is None:
                        self._removals.append(seq)
                    else:
                        self._rows -= 1
                        self._bytes -= row_size(row[0], row[1], row[2], row[3], row[6])

    @property
    def rows(self) -> int:
        """Rows stored or queued (a removed stored row counts until its deletion commits)."""
        return self._rows

    @property
    def bytes(self) -> int:
        """The size of :attr:`rows` as :func:`~otel_amplitude._spool_files.row_size` counts it.

        What ``max_bytes`` bounds: within ~10% of the database's size (plus up to a few MB of
        WAL between checkpoints, and free pages that deleted rows leave for reuse).
        """
        return self._bytes

    # --- any thread: disk -----------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The seq of the newest row handed out (0: none yet)."""
        return self._next_seq - 1

    def load(self, after_seq: int, limit: int, destination: str | None = None) -> list[Event]:
        """Up to ``limit`` events whose seq is above ``after_seq``, oldest first.

        Only those of ``destination`` when given. Includes rows still only queued (no
        :meth:`sync` needed first) and rows this process added itself. Each event is rebuilt
        from its wire form: same body, same ``insert_id``; ``destination``, ``attempts`` and
        ``spool_id`` restored, ``created`` set to now.
        """
        if limit <= 0:
            return []
        with self._db_lock:
            self._check_open()
            if destination is None:
                stored: list[tuple[int, str, int, bytes]] = self._conn.execute(
                    "SELECT seq, destination, attempts, body FROM events WHERE seq > ? "
                    "ORDER BY seq LIMIT ?",
                    (after_seq, limit),
                ).fetchall()
            else:
                stored = self._conn.execute(
                    "SELECT seq, destination, attempts, body FROM events WHERE destination = ?"
                    " AND seq > ? ORDER BY seq LIMIT ?",
                    (destination, after_seq, limit),
                ).fetchall()
            with self._lock:
                queued = list(
                    itertools.islice(
                        (
                            (seq, row[0], row[5], row[6])
                            for seq, row in self._pending.items()
                            if seq > after_seq and (destination is None or row[0] == destination)
                        ),
                        limit,
                    )
                )
        now = self._monotonic()
        merged = sorted(stored + queued) if queued else stored
        return [_decode(*row, now) for row in merged[:limit]]

    def purge(
        self,
        *,
        user_id: str | None = None,
        device_id: str | None = None,
        destination: str | None = None,
        above_seq: int = 0,
    ) -> int:
        """Delete every row, queued or stored, of ``user_id`` or of ``device_id``; return how many.

        For an opt-out or a deletion: given both, rows matching either go. ``destination``
        narrows it to one destination's rows (alone: all of them); ``above_seq`` to rows newer
        than that seq. Commits before returning.
        """
        if user_id is None and device_id is None and destination is None:
            raise ValueError("purge needs a user_id, a device_id or a destination")
        anyone = user_id is None and device_id is None
        with self._db_lock:
            self._check_open()
            with self._lock:
                pending = self._pending
                doomed = [
                    seq
                    for seq, row in pending.items()
                    if seq > above_seq
                    and (destination is None or row[0] == destination)
                    and (
                        anyone
                        or (user_id is not None and row[1] == user_id)
                        or (device_id is not None and row[2] == device_id)
                    )
                ]
                for seq in doomed:
                    row = pending.pop(seq)
                    self._rows -= 1
                    self._bytes -= row_size(row[0], row[1], row[2], row[3], row[6])
            where = "seq > ?"
            params: list[object] = [above_seq]
            if destination is not None:
                where += " AND destination = ?"
                params.append(destination)
            if not anyone:
                where += " AND (user_id = ? OR device_id = ?)"
                params.extend((user_id, device_id))
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                count, size = conn.execute(
                    f"SELECT count(*), total({ROW_SIZE_SQL}) FROM events WHERE {where}",  # noqa: S608
                    params,
                ).fetchone()
                conn.execute(f"DELETE FROM events WHERE {where}", params)  # noqa: S608
                conn.execute("COMMIT")
            except sqlite3.Error as error:
                _rollback(conn)
                raise SpoolError(f"cannot purge spool segment {self._path}: {error}") from None
            with self._lock:
                self._rows -= count
                self._bytes -= int(size)
                self.commits += 1
        return len(doomed) + int(count)

    def counts(self, above_seq: int = 0) -> dict[str, int]:
        """Rows newer than ``above_seq`` (queued or stored) by destination."""
        with self._db_lock:
            self._check_open()
            found: dict[str, int] = dict(
                self._conn.execute(
                    "SELECT destination, count(*) FROM events WHERE seq > ? GROUP BY destination",
                    (above_seq,),
                ).fetchall()
            )
            with self._lock:
                for seq, row in self._pending.items():
                    if seq > above_seq:
                        found[row[0]] = found.get(row[0], 0) + 1
        return found

    def sync(self) -> None:
        """Commit everything queued now (blocking): for shutdown and tests."""
        with self._db_lock:
            self._check_open()
            try:
                self._commit()
            except sqlite3.Error as error:
                raise SpoolError(f"cannot write spool segment {self._path}: {error}") from None

    def adopt_orphans(self) -> int:
        """Take the rows of every segment whose owner is dead; return how many rows were taken.

        Each orphan's rows move, in their order, into this segment in one transaction, then its
        files are deleted. A crash between that commit and the deletion leaves the rows in both
        segments: they are replayed twice, and Amplitude drops the second copy by ``insert_id``.
        Segments of live processes are left alone. Raises :class:`SpoolError` for a foreign or
        corrupt file in the directory.
        """
        self._check_open()
        taken = 0
        for stem in scan(self.directory):
            if stem == self.segment:
                continue
            fd = try_lock(self.directory, stem)
            if fd is None:  # its owner lives, or another process is adopting it
                continue
            try:
                db = self.directory / f"{stem}.db"
                if check_db(db, self.directory):
                    taken += self._take(db)
                remove_segment_files(self.directory, stem)
            finally:
                os.close(fd)
        return taken

    def close(self) -> None:
        """Commit what is queued, stop the writer, release the segment (idempotent).

        An empty segment is deleted: an empty spool leaves no file behind. A segment with rows
        stays, for the next process to adopt.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._db_lock:
            try:
                self._commit()
            except sqlite3.Error as error:
                logger.warning(
                    "spool: %d queued events lost at close: cannot write %s: %s",
                    len(self._pending),
                    self._path,
                    error,
                )
            empty = self._conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0
            self._conn.close()
        _live.discard(self)
        if empty:
            remove_segment_files(self.directory, self.segment)
        os.close(self._lock_fd)  # releases the lock: the segment is now an orphan to adopt

    # --- internals -------------------------------------------------------------------------------

    @property
    def _path(self) -> Path:
        return self.directory / f"{self.segment}.db"

    def _check_open(self) -> None:
        if self._closed:
            raise SpoolError(f"spool segment {self._path} is closed")

    def _start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        """The writer: a group commit every ``sync_ms``, on a fixed schedule."""
        mark_library_thread()
        deadline = time.monotonic() + self._sync_s
        while not self._stop.wait(max(0.0, deadline - time.monotonic())):
            deadline = max(deadline + self._sync_s, time.monotonic())
            try:
                with self._db_lock:
                    if not self._closed:
                        self._commit()
            except sqlite3.Error as error:  # kept queued; retried at the next tick
                self._warnings.log(
                    logging.WARNING,
                    "commit",
                    "spool: cannot write %s, events stay queued in memory: %s",
                    self._path,
                    error,
                )

    def _commit(self) -> None:
        """Write the queued adds and removals in one transaction. Holds ``_db_lock``.

        On failure the queues are restored (in order) and the error raised.
        """
        with self._lock:
            if not self._pending and not self._removals:
                return
            batch, self._pending = self._pending, {}
            removals, self._removals = self._removals, []
        conn = self._conn
        count = size = 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            if batch:
                conn.executemany(_INSERT, ((seq, *row) for seq, row in batch.items()))
            for start in range(0, len(removals), _CHUNK):
                chunk = removals[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                found, found_size = conn.execute(
                    f"SELECT count(*), total({ROW_SIZE_SQL}) FROM events WHERE seq IN ({marks})",  # noqa: S608
                    chunk,
                ).fetchone()
                conn.execute(f"DELETE FROM events WHERE seq IN ({marks})", chunk)  # noqa: S608
                count += found
                size += int(found_size)
            conn.execute("COMMIT")
        except sqlite3.Error:
            _rollback(conn)
            with self._lock:
                self._pending = {**batch, **self._pending}
                self._removals = removals + self._removals
            raise
        with self._lock:
            self._rows -= count
            self._bytes -= size
            self.commits += 1

    def _take(self, orphan: Path) -> int:
        """Move every row of the ``orphan`` database, in order, after ours; return how many."""
        with self._db_lock:
            self._check_open()
            conn = self._conn
            conn.execute("ATTACH DATABASE ? AS orphan", (str(orphan),))
            try:
                conn.execute("BEGIN IMMEDIATE")
                count, size, low, high = conn.execute(
                    f"SELECT count(*), total({ROW_SIZE_SQL}), min(seq), max(seq) "  # noqa: S608
                    "FROM orphan.events"
                ).fetchone()
                if count:
                    with self._lock:  # reserve seqs after every one handed out so far
                        shift = self._next_seq - low
                        self._next_seq += high - low + 1
                    conn.execute(
                        "INSERT INTO main.events (seq, destination, user_id, device_id, "
                        "event_type, created, attempts, body) SELECT seq + ?, destination, "
                        "user_id, device_id, event_type, created, attempts, body "
                        "FROM orphan.events ORDER BY seq",
                        (shift,),
                    )
                conn.execute("COMMIT")
            except sqlite3.Error as error:
                _rollback(conn)
                raise SpoolError(f"cannot adopt spool segment {orphan}: {error}") from None
            finally:
                conn.execute("DETACH DATABASE orphan")
            with self._lock:
                self._rows += count
                self._bytes += int(size)
                self.commits += 1
        return int(count)

    def _after_fork_in_child(self) -> None:
        """In a forked child: let go of the parent's segment without touching its files."""
        self._closed = True
        self._lock = threading.Lock()  # a parent thread may have held them at the fork
        self._db_lock = threading.Lock()
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)  # the parent's own descriptor still holds the lock
        _forked_connections.append(self._conn)  # never closed here: it is the parent's


def open_spool(
    directory: str | os.PathLike[str],
    *,
    max_bytes: int,
    sync_ms: int,
    clock_monotonic: Callable[[], float] = time.monotonic,
) -> Spool:
    """Open the spool in ``directory``: validate it, create our segment, adopt the orphans.

    Creates the directory (mode 0o700) if missing. Raises :class:`SpoolError`, naming the file
    and the fix, when the directory holds anything but sound spool segments, or cannot be
    written.
    """
    path = Path(directory)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise SpoolError(
            f"cannot create the spool directory AMPLITUDE_SPOOL_DIR={path}: {error.strerror}"
        ) from None
    if not path.is_dir():
        raise SpoolError(f"AMPLITUDE_SPOOL_DIR={path} is not a directory")
    for stem, suffixes in scan(path).items():
        if ".db" in suffixes:
            check_db(path / f"{stem}.db", path)
    try:
        stem, fd = create_segment(path)
    except (OSError, sqlite3.Error) as error:
        reason = error.strerror if isinstance(error, OSError) else str(error)
        raise SpoolError(
            f"cannot write to the spool directory AMPLITUDE_SPOOL_DIR={path}: {reason}; "
            "it must be writable by this process"
        ) from None
    spool = Spool(
        path, stem, fd, max_bytes=max_bytes, sync_ms=sync_ms, clock_monotonic=clock_monotonic
    )
    try:
        spool.adopt_orphans()
    except BaseException:
        spool.close()
        raise
    spool._start()
    return spool


def _decode(seq: int, destination: str, attempts: int, body: bytes, created: float) -> Event:
    """The event a row stores, as :func:`~otel_amplitude._validate.make_event` made it."""
    wire = orjson.loads(body)
    event = Event(
        wire.pop("event_type"),
        wire.pop("user_id", None),
        wire.pop("device_id", None),
        wire.pop("time"),
        wire.pop("insert_id"),
        wire.pop("event_properties", None),
        wire.pop("user_properties", None),
        wire or None,
        created=created,
        destination=destination,
    )
    event.attempts = attempts
    event.spool_id = seq
    return event


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


_live: weakref.WeakSet[Spool] = weakref.WeakSet()
_forked_connections: list[sqlite3.Connection] = []


def _after_fork_in_child() -> None:
    for spool in list(_live):
        spool._after_fork_in_child()
    _live.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

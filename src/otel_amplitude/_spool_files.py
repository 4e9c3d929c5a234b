"""The spool directory on disk: segment names, owner locks, the schema and file validation.

A spool directory holds one *segment* per owning process, named after a *stem*
``segment-<pid>-<8 hex>``: ``<stem>.lock`` (held with ``flock(LOCK_EX)`` by the owner for the
segment's whole life; the kernel releases it when the owner dies, even on ``kill -9``),
``<stem>.db`` (an SQLite database in WAL mode, with SQLite's ``-wal`` and ``-shm`` files beside
it) and, only while the owner creates it, ``<stem>.tmp`` (and its companion files): a database
is built under that name and renamed to ``.db`` once complete, so every ``.db`` is whole.

Lock protocol (who may touch a segment): whoever holds the ``.lock`` file's flock. Files are
deleted while holding it, the ``.lock`` file last; after taking a lock, the taker checks that
the path still names the inode it locked (:func:`try_lock`), so a lock file deleted and created
again in between is never mistaken for the one its owner holds.

POSIX only (``fcntl.flock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import sqlite3
from pathlib import Path

from .exceptions import SpoolError

__all__ = [
    "APPLICATION_ID",
    "ROW_OVERHEAD",
    "ROW_SIZE_SQL",
    "SCHEMA_VERSION",
    "check_db",
    "connect_owner",
    "connect_read_only",
    "create_segment",
    "lock_is_held",
    "remove_segment_files",
    "row_size",
    "scan",
    "try_lock",
]

#: ``PRAGMA application_id`` of every segment: "OAMS" (otel-amplitude spool).
APPLICATION_ID = 0x4F414D53
#: ``PRAGMA user_version``: the schema version this code writes and reads.
SCHEMA_VERSION = 1

#: Bytes a row takes on disk beyond its body and its text columns (counted twice for the indexed
#: ids): the integers, record headers, b-tree cells and page slack. Measured with 50,000 rows of
#: typical events (``benchmarks/spool_bench.py``): 45 to 61 bytes, 114 with 80-character ids.
ROW_OVERHEAD = 64
#: SQL for the size of a row as :func:`row_size` counts it (over columns of ``events``).
ROW_SIZE_SQL = (
    "length(body) + 2 * (length(coalesce(user_id, '')) + length(coalesce(device_id, ''))) "
    f"+ length(event_type) + length(destination) + {ROW_OVERHEAD}"
)


def row_size(
    destination: str, user_id: str | None, device_id: str | None, event_type: str, body: bytes
) -> int:
    """The disk space a row is counted for: within ~10% of what SQLite takes for it."""
    ids = len(user_id or "") + len(device_id or "")
    return len(body) + 2 * ids + len(event_type) + len(destination) + ROW_OVERHEAD


_SQLITE_MAGIC = b"SQLite format 3\x00"
# A segment's files: its database, the temporary one it is built in, SQLite's companion files of
# either (-wal, -shm; -journal while the mode switches to WAL) and the lock file.
_NAME = re.compile(r"(segment-[0-9]+-[0-9a-f]{8})(\.(?:db|tmp)(?:-wal|-shm|-journal)?|\.lock)")
# Deleted in this order, the lock file last (see the module docstring).
_SUFFIXES = (
    *(f".{name}{part}" for name in ("db", "tmp") for part in ("", "-wal", "-shm", "-journal")),
    ".lock",
)

_SCHEMA = f"""
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    destination TEXT NOT NULL,
    user_id TEXT,
    device_id TEXT,
    event_type TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX events_by_user ON events (user_id);
CREATE INDEX events_by_device ON events (device_id);
CREATE INDEX events_by_destination ON events (destination, seq);
"""


def _only_ours(directory: Path) -> str:
    return (
        f"move it out of AMPLITUDE_SPOOL_DIR={directory}: "
        "the directory must hold only otel-amplitude's spool files"
    )


def scan(directory: Path) -> dict[str, set[str]]:
    """The segments in ``directory``: stem -> the suffixes of its files present.

    Raises :class:`SpoolError` naming the first file that is not a spool file.
    """
    segments: dict[str, set[str]] = {}
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError as error:
        raise SpoolError(f"cannot read the spool directory {directory}: {error.strerror}") from None
    for entry in entries:
        match = _NAME.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            raise SpoolError(
                f"{directory / entry.name} is not an otel-amplitude spool file: "
                + _only_ours(directory)
            )
        segments.setdefault(match[1], set()).add(match[2])
    return segments


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to ``path`` (works while its owner writes: WAL)."""
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=10.0)


def check_db(path: Path, directory: Path) -> bool:
    """Raise :class:`SpoolError` unless ``path`` is a sound segment of a schema we read.

    Returns False when the file vanished meanwhile (another process adopted it).
    """
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return False
    except OSError as error:
        raise SpoolError(f"cannot read spool segment {path}: {error.strerror}") from None
    if header != _SQLITE_MAGIC:
        raise SpoolError(
            f"{path} is not an SQLite database (a corrupt segment, or a foreign file): "
            + _only_ours(directory)
        )
    conn: sqlite3.Connection | None = None
    try:
        conn = connect_read_only(path)
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if application_id != APPLICATION_ID:
            raise SpoolError(
                f"{path} is an SQLite database of another application "
                f"(application_id {application_id:#x}, not {APPLICATION_ID:#x}): "
                + _only_ours(directory)
            )
        if version > SCHEMA_VERSION:
            raise SpoolError(
                f"{path} was written by a newer otel-amplitude (spool schema {version}; this "
                f"version reads up to {SCHEMA_VERSION}): upgrade otel-amplitude, or move the "
                f"segment out of AMPLITUDE_SPOOL_DIR={directory}"
            )
        verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok" or version < 1:
            raise SpoolError(
                f"{path} is a corrupt spool segment (quick_check: {verdict}, schema {version}): "
                f"move it out of AMPLITUDE_SPOOL_DIR={directory}; its events are lost"
            )
    except sqlite3.DatabaseError as error:
        if not path.exists():
            return False
        raise SpoolError(
            f"{path} is a corrupt spool segment ({error}): "
            f"move it out of AMPLITUDE_SPOOL_DIR={directory}; its events are lost"
        ) from None
    finally:
        if conn is not None:
            conn.close()
    return True


def try_lock(directory: Path, stem: str) -> int | None:
    """Take ``stem``'s owner lock without waiting: its descriptor, or None if someone holds it.

    None too when the lock file was deleted or replaced while we took it: its segment is gone
    or belongs to whoever replaced it.
    """
    path = directory / f"{stem}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    try:
        same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        return None
    return fd


def lock_is_held(directory: Path, stem: str) -> bool:
    """Whether a live process owns ``stem`` (probes with a shared lock, released at once)."""
    try:
        fd = os.open(directory / f"{stem}.lock", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the probe's lock
    return False


def remove_segment_files(directory: Path, stem: str) -> None:
    """Delete every file of ``stem``, its lock file last. The caller holds the lock."""
    for suffix in _SUFFIXES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(directory / f"{stem}{suffix}")


def create_segment(directory: Path) -> tuple[str, int]:
    """Create and lock a new, empty segment for this process: its stem and lock descriptor."""
    while True:
        stem = f"segment-{os.getpid()}-{secrets.token_hex(4)}"
        if (directory / f"{stem}.lock").exists():
            continue
        fd = try_lock(directory, stem)
        if fd is not None:
            break
    try:
        tmp = directory / f"{stem}.tmp"
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.executescript(_SCHEMA)
            conn.execute("PRAGMA journal_mode=WAL")  # persistent: the .db is born in WAL mode
        finally:
            conn.close()
        os.replace(tmp, directory / f"{stem}.db")
    except BaseException:
        remove_segment_files(directory, stem)
        os.close(fd)
        raise
    return stem, fd


def connect_owner(path: Path) -> sqlite3.Connection:
    """The owner's connection: WAL, ``synchronous=NORMAL``, transactions managed by hand.

    With WAL and NORMAL, a committed transaction survives a crash of the process (it is in the
    ``-wal`` file, which the next opener recovers); a power loss or OS crash may lose the last
    commits before a checkpoint, never corrupt the database.
    """
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn

"""What a spool directory holds, read without owning it: ``otel-amplitude spool inspect``.

Every segment is opened read-only, so this works while other processes own theirs (WAL readers
do not block writers). It sees what the owners committed, not what they still hold in memory.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import time
from pathlib import Path

from ._spool_files import ROW_SIZE_SQL, check_db, connect_read_only, lock_is_held, scan
from .exceptions import SpoolError

__all__ = ["AGE_BUCKETS", "SegmentSummary", "SpoolSummary", "inspect_spool"]

#: Age buckets of a summary, youngest first: (label, upper bound in seconds).
AGE_BUCKETS: tuple[tuple[str, float], ...] = (
    ("< 1 min", 60.0),
    ("< 1 h", 3600.0),
    ("< 1 day", 86400.0),
    ("older", float("inf")),
)


@dataclasses.dataclass(frozen=True)
class SegmentSummary:
    """One segment: its stem, whether its owner is alive (holds the lock), what it stores."""

    name: str
    owner_alive: bool
    rows: int
    bytes: int


@dataclasses.dataclass(frozen=True)
class SpoolSummary:
    """A spool directory's committed rows, counted by destination, event type and age.

    ``bytes`` uses the spool's own measure (:func:`~otel_amplitude._spool_files.row_size`), the
    one ``AMPLITUDE_SPOOL_MAX_MB`` bounds. ``by_age`` has one entry per :data:`AGE_BUCKETS` label.
    """

    directory: str
    segments: tuple[SegmentSummary, ...]
    rows: int
    bytes: int
    by_destination: dict[str, int]
    by_event_type: dict[str, int]
    by_age: dict[str, int]


def inspect_spool(directory: str | os.PathLike[str], *, now: float | None = None) -> SpoolSummary:
    """Summarise the spool in ``directory`` (ages relative to ``now``, wall-clock seconds).

    Raises :class:`SpoolError` when the directory is missing or holds a foreign or corrupt file.
    Probing whether an owner is alive takes its lock for an instant: a process adopting orphans
    at that very moment skips that segment until its next round.
    """
    path = Path(directory)
    if not path.is_dir():
        raise SpoolError(f"no spool directory at {path}")
    now = time.time() if now is None else now
    segments: list[SegmentSummary] = []
    by_destination: dict[str, int] = {}
    by_event_type: dict[str, int] = {}
    by_age = dict.fromkeys((label for label, _ in AGE_BUCKETS), 0)
    for stem, suffixes in scan(path).items():
        db = path / f"{stem}.db"
        if ".db" not in suffixes or not check_db(db, path):
            continue
        alive = lock_is_held(path, stem)
        try:
            groups = _groups(db, now)
        except sqlite3.Error as error:
            if not db.exists():  # adopted meanwhile
                continue
            raise SpoolError(f"cannot read spool segment {db}: {error}") from None
        rows = size = 0
        for destination, event_type, bucket, count, body_bytes in groups:
            rows += count
            size += int(body_bytes)
            by_destination[destination] = by_destination.get(destination, 0) + count
            by_event_type[event_type] = by_event_type.get(event_type, 0) + count
            by_age[AGE_BUCKETS[bucket][0]] += count
        segments.append(SegmentSummary(stem, alive, rows, size))
    return SpoolSummary(
        directory=str(path),
        segments=tuple(segments),
        rows=sum(segment.rows for segment in segments),
        bytes=sum(segment.bytes for segment in segments),
        by_destination=dict(sorted(by_destination.items(), key=lambda item: -item[1])),
        by_event_type=dict(sorted(by_event_type.items(), key=lambda item: -item[1])),
        by_age=by_age,
    )


def _groups(db: Path, now: float) -> list[tuple[str, str, int, int, float]]:
    """(destination, event_type, age bucket index, rows, row bytes) of one segment."""
    bounds = [bound for _, bound in AGE_BUCKETS[:-1]]
    bucket = (
        "CASE WHEN ? - created < ? THEN 0 WHEN ? - created < ? THEN 1 "
        "WHEN ? - created < ? THEN 2 ELSE 3 END"
    )
    conn = connect_read_only(db)
    try:
        rows: list[tuple[str, str, int, int, float]] = conn.execute(
            f"SELECT destination, event_type, {bucket}, count(*), total({ROW_SIZE_SQL}) "  # noqa: S608
            "FROM events GROUP BY 1, 2, 3",
            [value for bound in bounds for value in (now, bound)],
        ).fetchall()
    finally:
        conn.close()
    return rows

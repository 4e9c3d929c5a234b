"""The durable spool's costs: ``Spool.add`` on the calling thread, and the writer's throughput.

Run: ``python benchmarks/spool_bench.py`` (``--quick`` for a smoke run). Prints figures only;
the spool lives in a temporary directory on the same disk as ``$TMPDIR``.

* add: ns per event of ``Spool.add`` on batches of 1,000 typical events (5 properties), with
  the writer idle, then committing every 200 ms as it would beside the dispatcher (its commits
  take the GIL between SQLite calls). Median (min, max) over batches.
* commit: events/s written by one group commit (``sync()``) of a batch, and by the writer on
  its own while batches keep coming; deletions (``remove`` + commit) likewise.
* size: bytes SQLite takes per row against what ``row_size`` counts (``ROW_OVERHEAD``).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from otel_amplitude._event import Event
from otel_amplitude._spool import open_spool
from otel_amplitude._validate import make_event

MB = 1 << 20


def typical_events(n: int, start: int = 0) -> list[Event]:
    """Five properties: a word, an int, a float, a path and a code; 300 users."""
    return [
        make_event(
            "Checkout Completed",
            user_id=f"user-{i % 300:05d}",
            event_properties={
                "plan": "pro",
                "items": 3,
                "total": 59.9,
                "path": f"/checkout/confirm/{i}",
                "coupon": f"SPRING-{2024 + i % 7}",
            },
        )
        for i in range(start, start + n)
    ]


def bench_add(directory: Path, batches: int) -> list[str]:
    lines = []
    for label, sync_ms in (
        ("writer idle, committed between batches", 60_000),
        ("writer committing every 200 ms", 200),
    ):
        spool = open_spool(directory / f"add-{sync_ms}", max_bytes=1 << 40, sync_ms=sync_ms)
        samples = []
        try:
            for _ in range(batches):
                events = typical_events(1_000)
                began = time.perf_counter_ns()
                spool.add(events)
                samples.append((time.perf_counter_ns() - began) / 1_000)
                if sync_ms == 60_000:
                    spool.sync()  # the queue stays as short as the writer would keep it
                else:
                    time.sleep(0.01)  # a dispatcher adds between other work
        finally:
            spool.close()
        lines.append(
            f"add, batches of 1,000 typical events, {label}: "
            f"{statistics.median(samples):,.0f} ns/event "
            f"(min {min(samples):,.0f}, max {max(samples):,.0f}; {batches} batches)"
        )
    return lines


def bench_commit(directory: Path, sizes: tuple[int, ...]) -> list[str]:
    lines = []
    for size in sizes:
        spool = open_spool(directory / f"commit-{size}", max_bytes=1 << 40, sync_ms=60_000)
        try:
            events = typical_events(size)
            spool.add(events)
            began = time.perf_counter()
            spool.sync()
            written = time.perf_counter() - began
            spool.remove(events)
            began = time.perf_counter()
            spool.sync()
            deleted = time.perf_counter() - began
        finally:
            spool.close()
        lines.append(
            f"one group commit of {size:,} events: {size / written:,.0f} events/s written "
            f"({written * 1000:,.1f} ms); removing them: {size / deleted:,.0f} events/s"
        )
    return lines


def bench_writer(directory: Path, total: int) -> list[str]:
    """The writer alone (sync_ms=200) while 10,000-event batches arrive as fast as add goes."""
    spool = open_spool(directory / "writer", max_bytes=1 << 40, sync_ms=200)
    try:
        batches = [typical_events(10_000, start) for start in range(0, total, 10_000)]
        began = time.perf_counter()
        for batch in batches:
            spool.add(batch)
        while True:  # until the writer has committed everything on its own
            with spool._lock:
                if not spool._pending:
                    break
            time.sleep(0.005)
        with spool._db_lock:  # its last commit ends
            elapsed = time.perf_counter() - began
        commits = spool.commits
    finally:
        spool.close()
    return [
        f"writer thread on its own, {total:,} events arriving at once: {total / elapsed:,.0f} "
        f"events/s end to end (add + commit), {commits} commits"
    ]


def bench_size(directory: Path, n: int) -> list[str]:
    spool = open_spool(directory / "size", max_bytes=1 << 40, sync_ms=60_000)
    try:
        spool.add(typical_events(n))
        spool.sync()
        conn = spool._conn
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        counted = spool.bytes
    finally:
        spool.close()
    return [
        f"size of {n:,} rows: {pages * page_size / n:,.0f} bytes/row in the database file, "
        f"{counted / n:,.0f} counted by row_size"
    ]


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    with tempfile.TemporaryDirectory(prefix="spool-bench-") as name:
        directory = Path(name)
        lines = [
            *bench_add(directory, 5 if quick else 200),
            *bench_commit(directory, (1_000,) if quick else (1_000, 10_000, 100_000)),
            *bench_writer(directory, 20_000 if quick else 200_000),
            *bench_size(directory, 2_000 if quick else 50_000),
        ]
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])

"""What the cyclic garbage collector costs a saturated ``client.track`` run, and why.

Table 2 of the suite shows the collector's share of our CPU per delivered event (0.7 to 1 µs of
about 6). This script shows what that share is made of, to judge designs that would cut it:

1. **Each full collection during an ordinary delivery** (100,000 events, as in table 2): its
   thread CPU, how many objects the oldest generation held after it, and how many of those were
   buffered events. A full collection walks every tracked object of the process, the
   application's own included, so it costs something even with no event held.
2. **What one held event adds to a full collection, by how it is held**, 100,000 of them alive,
   against the same process holding none: as slotted objects (``Event``, what the pipeline
   holds), as exact tuples of strings and numbers (which the collector stops tracking the first
   time it looks at them), and serialised into one ``bytearray``; in allocation order and
   shuffled (a buffer filled while other objects come and go).

The collector is observed with ``gc.callbacks``; counting the oldest generation after each full
collection runs inside the callback, so part 1's run is slower than an ordinary one and only its
collection figures mean something.

Run: ``python -m benchmarks.collector_bench`` (about half a minute) or ``--quick`` (CI).
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from otel_amplitude._event import Event
from otel_amplitude._validate import new_event

from ._harness import Figure
from .suite import deliver_ours


@dataclass
class Collection:
    """One full collection: its thread CPU and what survived it."""

    ns: int
    survivors: int
    events: int


@dataclass
class CollectorLog:
    """Every collection while installed: full ones one by one, young ones summed."""

    full: list[Collection] = field(default_factory=list)
    young_ns: int = 0
    _started: int = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time_ns()
            return
        ns = time.thread_time_ns() - self._started
        if info["generation"] < 2:
            self.young_ns += ns
            return
        survivors = gc.get_objects(generation=2)
        events = sum(1 for obj in survivors if type(obj) is Event)
        self.full.append(Collection(ns, len(survivors), events))


def collections_during_delivery(n: int, users: int) -> CollectorLog:
    """Part 1: the collections of one ordinary ``client.track`` delivery of ``n`` events."""
    log = CollectorLog()
    gc.collect()
    gc.callbacks.append(log)
    try:
        run = deliver_ours("track", n, users, use_batch=False, timeout=120)
    finally:
        gc.callbacks.remove(log)
    if not run.ok:
        raise RuntimeError(f"the delivery failed: {run.detail}")
    return log


def full_collection_ns() -> int:
    """The median of five full collections of this process as it stands."""
    times = []
    for _ in range(5):
        started = time.perf_counter_ns()
        gc.collect()
        times.append(time.perf_counter_ns() - started)
    return sorted(times)[2]


def _event(i: int) -> Event:
    return new_event(
        "report_exported",
        f"user-{i % 1_000:06d}",
        None,
        None,
        None,
        {"format": "pdf", "pages": i % 50 + 1, "plan": "pro"},
        None,
        None,
        None,
        None,
        True,
    )


def _atoms(i: int) -> tuple[Any, ...]:
    event = _event(i)
    properties = event.event_properties or {}
    flat = tuple(item for pair in properties.items() for item in pair)
    return (event.event_type, event.user_id, event.time, event.insert_id, flat, event.created)


HOLDERS: dict[str, Callable[[int], object]] = {
    "`Event` (slotted object)": _event,
    "exact tuple of strings and numbers": _atoms,
}


def added_per_event(n: int) -> list[tuple[str, float, float]]:
    """Part 2: ns a held event adds to a full collection, in order and shuffled, by holder."""
    rows = []
    for label, make in HOLDERS.items():
        added: dict[str, float] = {}
        for order in ("in order", "shuffled"):
            gc.collect()
            alone = full_collection_ns()
            churn = []
            held = []
            for i in range(n):
                held.append(make(i))
                churn.append(bytearray(100 + i % 300))  # others' objects, come and gone
            if order == "shuffled":
                random.shuffle(held)
            churn.clear()
            added[order] = (full_collection_ns() - alone) / n
            del held
            gc.collect()
        rows.append((label, added["in order"], added["shuffled"]))
    gc.collect()
    alone = full_collection_ns()
    buffer = bytearray()
    for i in range(n):
        buffer += b'{"event_type":"report_exported","user_id":"user-%06d"}' % (i % 1_000)
    serialised = (full_collection_ns() - alone) / n
    rows.append(("serialised into one `bytearray`", serialised, serialised))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.collector_bench")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: prove it runs")
    args = parser.parse_args(argv)
    n, users, repeats = (2_000, 100, 1) if args.quick else (100_000, 1_000, 3)

    if args.quick:
        print("(--quick: sizes far too small for these figures to mean anything)")
        print()
    gc.collect()
    alone = full_collection_ns()
    print(f"## Full collections during a `client.track` delivery ({n:,} events, {users:,} users)")
    print()
    print(f"A full collection of this process holding no event: {alone / 1e6:.1f} ms.")
    print()
    print("| Run | Full collection | Thread CPU, ms | Objects after it | Of them, `Event`s |")
    print("|---|---|---|---|---|")
    full_per_event: list[float] = []
    young_per_event: list[float] = []
    for run in range(1, repeats + 1):
        log = collections_during_delivery(n, users)
        for number, collection in enumerate(log.full, 1):
            print(
                f"| {run} | {number} | {collection.ns / 1e6:.1f} | {collection.survivors:,}"
                f" | {collection.events:,} |"
            )
        full_per_event.append(sum(c.ns for c in log.full) / n)
        young_per_event.append(log.young_ns / n)
    print()
    full, young = Figure.of(full_per_event), Figure.of(young_per_event)
    print(
        f"Per delivered event: full collections {full.median:,.0f} ns ({full.low:,.0f} to"
        f" {full.high:,.0f}), young ones {young.median:,.0f} ns ({young.low:,.0f} to"
        f" {young.high:,.0f})."
    )
    print()
    print(f"## What a held event adds to a full collection ({n:,} held)")
    print()
    print("| Held as | ns per event, in allocation order | ns per event, shuffled |")
    print("|---|---|---|")
    for label, in_order, shuffled in added_per_event(n):
        print(f"| {label} | {in_order:,.0f} | {shuffled:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

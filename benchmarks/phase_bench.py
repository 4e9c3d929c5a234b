"""CPU per delivered event, split by phase: the emit loop alone, then the delivery alone.

Table 2 of the suite times the emit loop and the delivery together, the pipeline's threads
running beside the caller. This script queues every event first, with the pipeline not yet
started, then starts it and times the delivery with nothing else running; per thread too.
If the two phases add up to the ordinary run, the threads running at once cost nothing extra,
and what each thread does is what there is to cut.

The pipeline is held back by marking the client started before the first event (a private
attribute: this is a measurement, not a use of the library), so ``submit`` only queues.

Run: ``python -m benchmarks.phase_bench`` (about a minute) or ``--quick`` (seconds; CI).
"""

from __future__ import annotations

import argparse
import gc
import os
import threading
import time
from collections.abc import Callable

from otel_amplitude import Client

from ._harness import Figure, server_process
from ._workloads import (
    Emit,
    handler_logger,
    logging_emitter,
    settings_for,
    track_emitter,
)
from .suite import baseline_cpu_ns, deliver_ours

Emitter = Callable[[Client, int], Emit]

APIS: dict[str, Emitter] = {
    "track": track_emitter,
    "handler": lambda client, users: logging_emitter(handler_logger("bench.phase", client), users),
}


def thread_cpu_ns() -> dict[str, int]:
    """CPU ns of each of this process's threads by role (dispatcher, sender, main, other)."""
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    totals: dict[str, int] = {}
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/schedstat") as stat:
                ns = int(stat.read().split()[0])
        except OSError:
            continue  # the thread ended
        name = names.get(int(task), "other")
        role = next((r for r in ("dispatcher", "sender") if r in name), None)
        role = role or ("main" if int(task) == os.getpid() else "other")
        totals[role] = totals.get(role, 0) + ns
    return totals


def phased(api: str, n: int, users: int) -> dict[str, float]:
    """ns per event: emit alone, delivery alone (in all and by thread), and the two together."""
    with server_process() as url:
        client = Client(settings_for(url, n))
        running = False
        try:
            emit = APIS[api](client, users)
            client._started = True  # submit only queues: the pipeline is not running
            gc.collect()
            started = time.process_time_ns()
            for i in range(n):
                emit(i)
            emitted = time.process_time_ns()
            before = thread_cpu_ns()
            client._started = False  # now start it for real
            client._start()
            running = True
            if not client.flush(120) or client.stats()["accepted"] != n:
                raise RuntimeError(f"{api}: not every event was delivered: {client.stats()}")
            delivered = time.process_time_ns()
            after = thread_cpu_ns()
        finally:
            if not running:
                client._started = False  # never started: shutdown has nothing to stop
            client.shutdown()
    figures = {
        "emit": (emitted - started) / n,
        "delivery": (delivered - emitted) / n,
        "both": (delivered - started) / n,
    }
    for role in ("dispatcher", "sender"):
        figures[role] = (after.get(role, 0) - before.get(role, 0)) / n
    return figures


def together(api: str, n: int, users: int) -> float:
    """ns per event of the ordinary run: emit and delivery at once, as table 2 measures."""
    run = deliver_ours(api, n, users, use_batch=False, timeout=120)
    if not run.ok:
        raise RuntimeError(f"{api}: {run.detail}")
    return run.cpu_ns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.phase_bench")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: prove it runs")
    args = parser.parse_args(argv)
    n, repeats, users = (2_000, 1, 100) if args.quick else (100_000, 3, 1_000)
    columns = ("emit", "delivery", "dispatcher", "sender", "both", "ordinary", "baseline")
    samples: dict[str, dict[str, list[float]]] = {api: {c: [] for c in columns} for api in APIS}
    for _ in range(repeats):  # the rows take turns
        for api in APIS:
            row = samples[api]
            row["baseline"].append(baseline_cpu_ns(n)[0])
            for column, value in phased(api, n, users).items():
                row[column].append(value)
            row["ordinary"].append(together(api, n, users))
    print(f"## CPU ns per delivered event by phase ({n:,} events, {users:,} users, {repeats} runs)")
    print()
    print(
        "| API | Emit loop alone | Delivery alone | of it, dispatcher | of it, senders"
        " | Sum | Ordinary run | Baseline |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for api, row in samples.items():
        cells = [Figure.of(row[column]) for column in columns]
        shown = " | ".join(f"{f.median:,.0f} ({f.low:,.0f} to {f.high:,.0f})" for f in cells)
        print(f"| {api} | {shown} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

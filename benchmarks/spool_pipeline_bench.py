"""The durable spool in the pipeline (issue #8): what it costs the caller, how fast it drains.

1. Caller-thread ns per ``logger.info`` through ``AmplitudeHandler`` and per ``client.track``,
   spool off vs on, paced (1,000 events/s: median and p99) and saturated, in the same run with
   the two setups taking turns; the local server runs in its own process.
2. Drain: a spool left with N undelivered events (Amplitude was unreachable; the process shut
   down), then a new client on it with Amplitude back: events/s until every event was accepted.
3. Resident memory per buffered event, spool off vs on: N events tracked while Amplitude never
   answers, each setup in a fresh process (tracemalloc sees what Python asked for, not what the
   allocator holds, so this reads the process's resident set).

Run: ``python -m benchmarks.spool_pipeline_bench [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from otel_amplitude import Client

from ._harness import Figure, server_process
from ._workloads import black_hole, handler_logger, settings_for, track_emitter
from .suite import paced_block, percentile, saturated_block

USERS = 1_000


def caller_costs(url: str, calls: int, repeats: int) -> list[str]:
    results: dict[tuple[str, str, str], list[float]] = {}
    for repeat in range(repeats):
        for spool_on in (False, True) if repeat % 2 == 0 else (True, False):
            directory = tempfile.mkdtemp(prefix="spool-bench-")
            settings = settings_for(url, calls * 3)
            if spool_on:
                settings = settings.replace(spool_dir=directory)
            client = Client(settings, name="spool-bench")
            try:
                logger = handler_logger(f"bench.spool.{repeat}.{spool_on}", client)

                def log(i: int, logger: logging.Logger = logger) -> None:
                    logger.info(
                        "report_exported",
                        extra={"user_id": f"user-{i % USERS:06d}", "format": "pdf", "pages": 3},
                    )

                emitters: dict[str, Callable[[int], object]] = {
                    "logger.info via AmplitudeHandler": log,
                    "client.track": track_emitter(client, USERS),
                }
                setup = "on" if spool_on else "off"
                for name, emit in emitters.items():
                    gc.collect()
                    timings = sorted(paced_block(emit, calls, 1_000.0))
                    results.setdefault((name, setup, "median"), []).append(percentile(timings, 0.5))
                    results.setdefault((name, setup, "p99"), []).append(percentile(timings, 0.99))
                    client.flush(10)
                    gc.collect()
                    results.setdefault((name, setup, "saturated"), []).append(
                        saturated_block(emit, calls)
                    )
                    client.flush(30)
            finally:
                client.shutdown(5)
                shutil.rmtree(directory, ignore_errors=True)
    lines = [
        f"Caller-thread ns per call, {calls:,} calls per setup and regime, {repeats} repeats"
        " (median, min, max); ratio = spool on / off.",
        "",
        "| Call | Regime | Spool off | Spool on | On / off |",
        "|---|---|---|---|---|",
    ]
    for name in ("logger.info via AmplitudeHandler", "client.track"):
        for regime in ("median", "p99", "saturated"):
            off = Figure.of(results[(name, "off", regime)])
            on = Figure.of(results[(name, "on", regime)])
            label = {"median": "paced, median", "p99": "paced, p99"}.get(regime, regime)
            lines.append(
                f"| {name} | {label} | {off.show('ns')} | {on.show('ns')} |"
                f" {on.median / off.median:.2f}x |"
            )
    return lines


def drain_rate(url: str, events: int, repeats: int) -> list[str]:
    rates: list[float] = []
    for _ in range(repeats):
        directory = tempfile.mkdtemp(prefix="spool-bench-")
        try:
            # Amplitude unreachable (nothing listens on the discard port): all of it is kept.
            down = Client(
                settings_for("http://127.0.0.1:9", events, spool_dir=directory, timeout_ms=200),
                name="spool-bench-down",
            )
            emit = track_emitter(down, USERS)
            for i in range(events):
                emit(i)
            down.flush(2.0)
            down.shutdown(0.5)
            assert down.stats()["buffered"] == events, down.stats()
            started = time.perf_counter()
            up = Client(
                settings_for(url, events, spool_dir=directory).replace(max_buffered_events=20_000),
                name="spool-bench-up",
            )
            try:
                while up.stats()["accepted"] < events and time.perf_counter() - started < 300:
                    time.sleep(0.005)
                elapsed = time.perf_counter() - started
                if up.stats()["accepted"] != events:
                    raise RuntimeError(f"drained {up.stats()['accepted']} of {events}")
            finally:
                up.shutdown(5)
            rates.append(events / elapsed)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    figure = Figure.of(rates)
    return [
        f"Drain: {events:,} events left in a spool by a process that could not reach Amplitude,"
        " delivered by a new client, which loads it from disk in slices as its buffers (20,000"
        f" events) free up; HTTP V2: {figure.show('events/s')} over {repeats} repeats.",
    ]


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def buffered_rss(events: int, spool_on: bool) -> float:
    """In this process: resident bytes added per event while ``events`` wait to be sent."""
    with black_hole() as url, tempfile.TemporaryDirectory(prefix="spool-bench-") as directory:
        settings = settings_for(url, events)
        if spool_on:
            settings = settings.replace(spool_dir=directory, spool_max_mb=4_000)
        client = Client(settings, name="spool-bench-rss")
        emit = track_emitter(client, USERS)
        emit(0)
        client.flush(0.5)
        before = resident_mb()
        for i in range(events):
            emit(i)
        client.flush(2.0)  # the dispatcher took every event in; the spool's writer had its turn
        added = (resident_mb() - before) * 2**20 / events
        client.shutdown(0.1)
        return added


def rss_per_event(events: int, repeats: int) -> list[str]:
    samples: dict[bool, list[float]] = {False: [], True: []}
    for repeat in range(repeats):
        for spool_on in (False, True) if repeat % 2 == 0 else (True, False):
            child = subprocess.run(
                [sys.executable, "-m", "benchmarks.spool_pipeline_bench", "--rss-child",
                 "on" if spool_on else "off", "--events", str(events)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            samples[spool_on].append(float(child.stdout.split()[-1]))
    off, on = Figure.of(samples[False]), Figure.of(samples[True])
    return [
        f"Resident memory per buffered event, {events:,} events waiting (Amplitude never answers),"
        f" a fresh process each, {repeats} repeats: spool off {off.show('B')}; spool on"
        f" {on.show('B')}.",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spool_pipeline_bench")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: prove it runs")
    parser.add_argument("--rss-child", choices=("on", "off"), help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        print(f"{buffered_rss(args.events, args.rss_child == 'on'):.0f}")
        return 0
    calls, repeats, events = (500, 1, 2_000) if args.quick else (20_000, 3, 100_000)
    with server_process() as url:
        lines = caller_costs(url, calls, repeats)
        lines.append("")
        lines += drain_rate(url, events, repeats)
    lines.append("")
    lines += rss_per_event(events, repeats)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

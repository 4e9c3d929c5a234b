"""The performance suite of issue #5: what this library costs a service, against baselines.

Each measurement is a function returning figures; :func:`run` runs them and builds a
:class:`Report` (Markdown tables, and every target met or missed with its ratio). Rules:

- the local Amplitude-compatible server runs in its own process (``python -m
  otel_amplitude.testing``), a fresh one per measurement, so its work never shares this
  process's GIL and its stored events never pile up; only the isolation ratio uses the
  in-process ``AmplitudeServer``, for its fault flags (both sides of that ratio alike);
- CPU figures are this process's CPU time (``time.process_time_ns``: every thread of the
  client process, none of the server's);
- every figure is a median over repeats with min and max; every ratio divides medians measured
  in the same run, the rows of one comparison taking turns within each repeat.

Run: ``python -m benchmarks`` (full: ~15 min), ``python -m benchmarks --quick`` (tiny sizes,
seconds, asserts nothing about speed), or one section: ``python -m benchmarks.suite --only
caller [--quick]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import logging
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path

from otel_amplitude import Client, Settings
from otel_amplitude._span_exporter import AmplitudeSpanExporter
from otel_amplitude.structlog import AmplitudeProcessor
from otel_amplitude.testing import AmplitudeServer

from . import _official_sdk as sdk
from ._harness import Figure, server_process
from ._workloads import (
    Emit,
    NoOpExporter,
    black_hole,
    handler_logger,
    logging_emitter,
    null_logger,
    settings_for,
    span_emitter,
    span_pipeline,
    structlog_emitter,
    structlog_logger,
    track_emitter,
    user_id,
)

__all__ = ["SECTIONS", "Report", "Sizes", "main", "run"]

KB = 1000  # the targets' "0.75 KB" is 750 bytes (75 MB for the default 100,000 events)
BURST_TARGET = 50_000  # events/s end to end
ISOLATION_REPEATS = 9


@dataclass(frozen=True)
class Sizes:
    """How much of everything: the full run's sizes, or the quick smoke run's."""

    quick: bool
    repeats: int
    paced_calls: int  # per block
    paced_blocks: int  # per row, the rows taking turns block by block
    rate: float  # paced calls per second
    saturated: int  # calls per repeat and row
    delivery: int  # events per delivery run
    burst: int
    memory: int
    scaling: int
    scaling_users: tuple[int, ...]
    isolation: int
    users: int = 1_000
    throttled: int = 10
    timeout: float = 600.0  # the longest any delivery may take before it counts as failed


FULL = Sizes(
    quick=False,
    repeats=5,
    paced_calls=1_000,
    paced_blocks=15,
    rate=1_000.0,
    saturated=100_000,
    delivery=100_000,
    burst=200_000,
    memory=100_000,
    scaling=100_000,
    scaling_users=(10, 1_000, 100_000),
    isolation=100_000,
)
QUICK = Sizes(
    quick=True,
    repeats=1,
    paced_calls=40,
    paced_blocks=2,
    rate=1_000.0,
    saturated=300,
    delivery=500,
    burst=2_000,
    memory=300,
    scaling=300,
    scaling_users=(10, 1_000, 100_000),
    isolation=1_000,
    timeout=60.0,
)


# -- the report ---------------------------------------------------------------------------------


@dataclass
class Table:
    """One Markdown table with a title and a note on how it was measured."""

    title: str
    note: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", self.note, ""] if self.note else [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.header) + " |")
        lines.append("|" + "|".join("---" for _ in self.header) + "|")
        lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
        return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    """One promise checked against a ratio of this run: ``ratio <= limit`` (or ``>=``)."""

    name: str
    measured: str
    ratio: float | None  # None: not measured (skipped)
    limit: float
    at_least: bool = False
    unit: str = "x"

    @property
    def met(self) -> bool | None:
        if self.ratio is None:
            return None
        return self.ratio >= self.limit if self.at_least else self.ratio <= self.limit

    def row(self) -> list[str]:
        sign = ">=" if self.at_least else "<="
        if self.ratio is None:
            return [self.name, f"{sign} {self.limit:g}{self.unit}", self.measured, "-", "skipped"]
        verdict = "met" if self.met else "**MISSED**"
        return [
            self.name,
            f"{sign} {self.limit:g}{self.unit}",
            self.measured,
            f"{self.ratio:,.2f}{self.unit}",
            verdict,
        ]


@dataclass
class Report:
    """Everything one run measured: tables, targets, failures, and where it ran."""

    sizes: Sizes
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    started: str = ""
    seconds: float = 0.0
    load: tuple[str, str] = ("", "")

    def markdown(self) -> str:
        """The whole report: environment, targets, then every table."""
        kind = "quick smoke run (tiny N; figures mean nothing)" if self.sizes.quick else "full run"
        s = self.sizes
        parts = [
            "## Environment",
            "",
            *[f"- {line}" for line in environment()],
            f"- {kind}, {self.started}, {self.seconds / 60:.1f} min; load average at start"
            f" {self.load[0]}, at end {self.load[1]}",
            f"- sizes: {s.repeats} repeats; paced {s.paced_blocks} blocks of {s.paced_calls:,}"
            f" calls ({s.paced_calls * s.paced_blocks:,} per row) at {s.rate:,.0f}/s; saturated"
            f" {s.saturated:,} calls per repeat; deliveries {s.delivery:,} events; burst"
            f" {s.burst:,}; memory {s.memory:,}; scaling {s.scaling:,}; isolation"
            f" {s.isolation:,}; {s.users:,} users unless stated",
            "",
            "## Targets",
            "",
            "| Target | Limit | Measured (median) | Ratio | Verdict |",
            "|---|---|---|---|---|",
            *["| " + " | ".join(t.row()) + " |" for t in self.targets],
            "",
        ]
        if self.failures:
            parts += ["## Failures", "", *[f"- {f}" for f in self.failures], ""]
        parts += ["## Measurements", ""]
        for table in self.tables:
            parts += [table.markdown(), ""]
        return "\n".join(parts)


def environment() -> list[str]:
    """Machine, Python and package versions, and the commit."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    packages = []
    for name in (
        "otel-amplitude",
        "amplitude-analytics",
        "opentelemetry-sdk",
        "structlog",
        "urllib3",
        "orjson",
    ):
        try:
            packages.append(f"{name} {dist_version(name)}")
        except PackageNotFoundError:
            packages.append(f"{name} (not installed)")
    commit = "unknown"
    with suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    return [
        f"machine: {cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        f"Python {platform.python_version()} ({platform.python_implementation()})",
        "packages: " + ", ".join(packages),
        f"commit {commit} (plus any uncommitted changes in the working tree)",
    ]


def cell(figure: Figure, digits: int = 0, scale: float = 1.0) -> str:
    """``median (min-max)``."""
    return (
        f"{figure.median * scale:,.{digits}f} "
        f"({figure.low * scale:,.{digits}f} to {figure.high * scale:,.{digits}f})"
    )


def ratio_cell(figure: Figure) -> str:
    """A figure of ratios: its median, with min and max."""
    return f"{figure.median:.2f}x ({figure.low:.2f}x to {figure.high:.2f}x)"


def ratio(ours: Figure, base: Figure) -> float:
    return ours.median / base.median if base.median else float("inf")


# -- 1. caller-thread cost -----------------------------------------------------------------------


@dataclass
class Subject:
    """One way of emitting the typical event, with how to drain its background work."""

    label: str
    emit: Emit
    settle: Callable[[int], bool]  # (events emitted so far) -> all of them handled
    emitted: int = 0


@dataclass(frozen=True)
class Paced:
    """Per-call ns at a steady rate: the median and the p99 of each repeat, over repeats."""

    median: Figure
    p99: Figure


def paced_block(emit: Emit, calls: int, rate: float) -> list[int]:
    """ns of each call, one call per tick of ``rate`` per second (sleeping between calls)."""
    clock = time.perf_counter_ns
    sleep = time.sleep
    interval = round(1e9 / rate)
    timings = [0] * calls
    tick = clock()
    for i in range(calls):
        tick += interval
        pause = tick - clock()
        if pause > 0:
            sleep(pause / 1e9)
        started = clock()
        emit(i)
        timings[i] = clock() - started
    return timings


def paced_pair(base: Emit, subject: Emit, calls: int, rate: float) -> tuple[list[int], list[int]]:
    """ns of each call of two emitters taking turns call by call, each at ``rate`` per second.

    The calls alternate A B, B A, ... half a tick apart, so whatever the machine does for a
    while lands on both alike: the fairest comparison of their medians. Not of their tails:
    the subject's background work then stalls the baseline's calls too.
    """
    clock = time.perf_counter_ns
    sleep = time.sleep
    interval = round(1e9 / rate / 2)
    timings: tuple[list[int], list[int]] = ([0] * calls, [0] * calls)
    emitters = (base, subject)
    tick = clock()
    for i in range(calls):
        for side in (0, 1) if i % 2 == 0 else (1, 0):
            tick += interval
            pause = tick - clock()
            if pause > 0:
                sleep(pause / 1e9)
            started = clock()
            emitters[side](i)
            timings[side][i] = clock() - started
    return timings


def saturated_block(emit: Emit, calls: int) -> float:
    """ns per call, back to back."""
    started = time.perf_counter_ns()
    for i in range(calls):
        emit(i)
    return (time.perf_counter_ns() - started) / calls


def percentile(ordered: list[int], fraction: float) -> float:
    return float(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))])


@contextmanager
def caller_subjects(sizes: Sizes) -> Iterator[list[Subject]]:
    """Every API the caller-cost rows compare, each with its own server process."""
    users = sizes.users
    capacity = max(sizes.saturated, sizes.paced_calls) + 5_000
    timeout = sizes.timeout
    with ExitStack() as stack:

        def client() -> Client:
            url = stack.enter_context(server_process())
            made = Client(settings_for(url, capacity))
            stack.callback(made.shutdown)
            return made

        def drain(made: Client) -> Callable[[int], bool]:
            def settle(emitted: int) -> bool:
                return made.flush(timeout) and made.stats()["accepted"] == emitted

            return settle

        def idle(_: int) -> bool:
            return True

        subjects = [
            Subject("logging.baseline", logging_emitter(null_logger("bench.null"), users), idle)
        ]
        handled = client()
        subjects.append(
            Subject(
                "logging.handler",
                logging_emitter(handler_logger("bench.handler", handled), users),
                drain(handled),
            )
        )
        subjects.append(
            Subject("structlog.baseline", structlog_emitter(structlog_logger(None), users), idle)
        )
        processed = client()
        subjects.append(
            Subject(
                "structlog.processor",
                structlog_emitter(structlog_logger(AmplitudeProcessor(processed)), users),
                drain(processed),
            )
        )
        noop_provider, noop_tracer = span_pipeline(NoOpExporter(), capacity)
        stack.callback(noop_provider.shutdown)

        def flush_noop(_: int) -> bool:
            return noop_provider.force_flush(int(timeout * 1000))

        subjects.append(Subject("span.noop", span_emitter(noop_tracer, users), flush_noop))
        exported = client()
        span_provider, span_tracer = span_pipeline(AmplitudeSpanExporter(exported), capacity)
        stack.callback(span_provider.shutdown)
        drain_exported = drain(exported)

        def flush_spans(emitted: int) -> bool:
            return span_provider.force_flush(int(timeout * 1000)) and drain_exported(emitted)

        subjects.append(Subject("span.exporter", span_emitter(span_tracer, users), flush_spans))
        tracked = client()
        subjects.append(Subject("client.track", track_emitter(tracked, users), drain(tracked)))
        if sdk.available():
            official = sdk.OfficialSdk(stack.enter_context(server_process()))
            stack.callback(official.shutdown)

            def flush_sdk(emitted: int) -> bool:
                return official.wait_delivered(emitted, timeout)

            subjects.append(Subject("sdk.track", official.emitter(users), flush_sdk))
        warm = 50 if sizes.quick else 2_000
        for subject in subjects:
            saturated_block(subject.emit, warm)
            subject.emitted += warm
            subject.settle(subject.emitted)
        yield subjects


#: (baseline, subject) pairs whose paced medians are also compared call by call.
PAIRS = (
    ("logging.baseline", "logging.handler"),
    ("structlog.baseline", "structlog.processor"),
    ("span.noop", "span.exporter"),
)


def measure_caller(
    sizes: Sizes,
) -> tuple[dict[str, Paced], dict[str, Figure], dict[str, Figure], list[str]]:
    """Section 1: paced (median, p99) and saturated ns per call of every API; the paced
    median ratio of each pair in :data:`PAIRS` with calls interleaved; and failures."""
    paced_samples: dict[str, tuple[list[float], list[float]]] = {}
    saturated_samples: dict[str, list[float]] = {}
    pair_ratios: dict[str, list[float]] = {}
    failures: list[str] = []
    with caller_subjects(sizes) as subjects:
        by_label = {subject.label: subject for subject in subjects}
        for _ in range(max(1, sizes.paced_blocks // 3)):
            for base_label, label in PAIRS:
                base, subject = by_label[base_label], by_label[label]
                base_ns, subject_ns = paced_pair(
                    base.emit, subject.emit, sizes.paced_calls, sizes.rate
                )
                pair_ratios.setdefault(label, []).append(
                    statistics.median(subject_ns) / statistics.median(base_ns)
                )
                for side in (base, subject):
                    side.emitted += sizes.paced_calls
                    if not side.settle(side.emitted):
                        failures.append(f"{side.label}: not every paced event was delivered")
        for block in range(sizes.paced_blocks):
            # Every other block in reverse order, so no row always follows the same neighbour.
            for subject in subjects if block % 2 == 0 else subjects[::-1]:
                timings = sorted(paced_block(subject.emit, sizes.paced_calls, sizes.rate))
                medians, p99s = paced_samples.setdefault(subject.label, ([], []))
                medians.append(statistics.median(timings))
                p99s.append(percentile(timings, 0.99))
                subject.emitted += sizes.paced_calls
                if not subject.settle(subject.emitted):
                    failures.append(f"{subject.label}: not every paced event was delivered")
        for _ in range(sizes.repeats):
            for subject in subjects:
                ns = saturated_block(subject.emit, sizes.saturated)
                saturated_samples.setdefault(subject.label, []).append(ns)
                subject.emitted += sizes.saturated
                if not subject.settle(subject.emitted):
                    failures.append(f"{subject.label}: not every saturated event was delivered")
    paced = {k: Paced(Figure.of(m), Figure.of(p)) for k, (m, p) in paced_samples.items()}
    saturated = {k: Figure.of(v) for k, v in saturated_samples.items()}
    interleaved = {k: Figure.of(v) for k, v in pair_ratios.items()}
    return paced, saturated, interleaved, failures


CALLER_ROWS = (
    # (label, what it is, baseline label)
    ("logging.baseline", "`logger.info` + NullHandler (**baseline**)", None),
    ("logging.handler", "`logger.info` + `AmplitudeHandler`", "logging.baseline"),
    ("structlog.baseline", "structlog chain, no processor (structlog baseline)", None),
    ("structlog.processor", "structlog chain + `AmplitudeProcessor`", "structlog.baseline"),
    ("span.noop", "tagged span, `BatchSpanProcessor` + no-op exporter (span baseline)", None),
    ("span.exporter", "tagged span, `BatchSpanProcessor` + `AmplitudeSpanExporter`", "span.noop"),
    ("client.track", "`client.track(...)`", "logging.baseline"),
    ("sdk.track", "official SDK `client.track(BaseEvent(...))`", "logging.baseline"),
)


def section_caller(sizes: Sizes, report: Report) -> None:
    """Section 1 into the report: two tables and the paced and span targets."""
    paced, saturated, interleaved, failures = measure_caller(sizes)
    report.failures += failures
    paced_table = Table(
        f"1a. Caller-thread ns per event, paced at {sizes.rate:,.0f}/s",
        f"`perf_counter_ns` around each call; {sizes.paced_blocks} blocks of"
        f" {sizes.paced_calls:,} calls per row ({sizes.paced_calls * sizes.paced_blocks:,} per"
        " row), the rows taking turns block by block, every other round in reverse order; per"
        " block its median and p99, shown as the median over blocks (min to max). A block lasts"
        f" {sizes.paced_calls / sizes.rate:g} s: about one batch of background delivery at the"
        " default 1 s flush interval. Ratios divide by the row's baseline. *Interleaved*: the"
        " row and its baseline taking turns call by call (half a tick apart, each at the same"
        f" rate), {max(1, sizes.paced_blocks // 3)} rounds of {sizes.paced_calls:,} calls each;"
        " the median over rounds (min to max) of each round's ratio of medians. Whatever the"
        " machine does for a while lands on both alike, so this is the ratio the median targets"
        " read; it cannot judge the p99 (our background work would then stall the baseline's"
        " calls too), which is read from the blocks. The structlog chain is"
        " `merge_contextvars`, `add_log_level`, `TimeStamper(iso)`, `JSONRenderer` on a"
        " `ReturnLogger`.",
        [
            "Row",
            "Median ns",
            "p99 ns",
            "Baseline",
            "Median ratio",
            "Median ratio, interleaved",
            "p99 ratio",
        ],
    )
    saturated_table = Table(
        "1b. Caller-thread ns per event, saturated (tight loop)",
        f"{sizes.saturated:,} calls back to back per repeat and row while the background"
        " delivers (drained between rows, outside the timing).",
        ["Row", "ns/call", "Baseline", "Ratio", "Added ns"],
    )
    for label, text, base in CALLER_ROWS:
        if label not in paced:
            skipped = [text, sdk.SKIPPED, "", "", "", "", ""]
            paced_table.rows.append(skipped)
            saturated_table.rows.append(skipped[:5])
            continue
        p, s = paced[label], saturated[label]
        if base is None:
            paced_table.rows.append([text, cell(p.median), cell(p.p99), "-", "-", "-", "-"])
            saturated_table.rows.append([text, cell(s), "-", "-", "-"])
            continue
        pb, sb = paced[base], saturated[base]
        paced_table.rows.append(
            [
                text,
                cell(p.median),
                cell(p.p99),
                base,
                f"{ratio(p.median, pb.median):.2f}x",
                ratio_cell(interleaved[label]) if label in interleaved else "-",
                f"{ratio(p.p99, pb.p99):.2f}x",
            ]
        )
        saturated_table.rows.append(
            [text, cell(s), base, f"{ratio(s, sb):.2f}x", f"{s.median - sb.median:,.0f}"]
        )
    report.tables += [paced_table, saturated_table]
    base_paced, handler = paced["logging.baseline"], paced["logging.handler"]
    report.targets += [
        Target(
            "Paced handler median vs `logger.info` + NullHandler (calls interleaved)",
            f"{ratio_cell(interleaved['logging.handler'])}; in blocks"
            f" {handler.median.median:,.0f} vs {base_paced.median.median:,.0f} ns,"
            f" {ratio(handler.median, base_paced.median):.2f}x",
            interleaved["logging.handler"].median,
            1.2,
        ),
        Target(
            "Paced handler p99 vs `logger.info` + NullHandler",
            f"{handler.p99.median:,.0f} vs {base_paced.p99.median:,.0f} ns",
            ratio(handler.p99, base_paced.p99),
            2.0,
        ),
        Target(
            "Tagged span, our exporter vs no-op exporter (paced median, calls interleaved)",
            f"{ratio_cell(interleaved['span.exporter'])}; in blocks"
            f" {paced['span.exporter'].median.median:,.0f} vs"
            f" {paced['span.noop'].median.median:,.0f} ns,"
            f" {ratio(paced['span.exporter'].median, paced['span.noop'].median):.2f}x",
            interleaved["span.exporter"].median,
            1.1,
        ),
        Target(
            "Tagged span, our exporter vs no-op exporter (saturated)",
            f"{saturated['span.exporter'].median:,.0f} vs {saturated['span.noop'].median:,.0f} ns",
            ratio(saturated["span.exporter"], saturated["span.noop"]),
            1.1,
        ),
    ]


# -- 2, 3, 5. delivery: CPU per delivered event, events/s ---------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One delivery run: from just before the first emit until every event was accepted."""

    emit_ns: float  # wall ns per call of the emit loop (the caller's saturated cost)
    cpu_ns: float  # this process's CPU ns per delivered event
    gc_ns: float  # of it, the cyclic garbage collector's (every thread), per delivered event
    rate: float  # events/s, end to end
    ok: bool
    detail: str


class CollectorTime:
    """Thread CPU the cyclic garbage collector spends, on whichever thread it runs (gc.callbacks).

    The collector walks every live tracked object in a full collection, so a pipeline holding
    many events pays for it and a ``logger.info`` that keeps nothing does not.
    """

    def __init__(self) -> None:
        self.ns = 0
        self._started: dict[int, int] = {}

    def __enter__(self) -> CollectorTime:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started[threading.get_ident()] = time.thread_time_ns()
        else:
            started = self._started.pop(threading.get_ident(), None)
            if started is not None:
                self.ns += time.thread_time_ns() - started


@dataclass(frozen=True)
class Timed:
    """One emit loop and the wait for delivery: what the clocks read."""

    emit_ns: int  # wall, the emit loop
    total_ns: int  # wall, from the first emit until the wait returned
    cpu_ns: int  # this process, over the same span
    gc_ns: int  # of it, the cyclic garbage collector's
    done: bool  # what the wait returned

    def delivery(self, n: int, delivered: int, ok: bool, detail: str) -> Delivery:
        per = max(delivered, 1)
        return Delivery(
            self.emit_ns / n, self.cpu_ns / per, self.gc_ns / per,
            n / (self.total_ns / 1e9), ok, detail,
        )  # fmt: skip


def run_timed(emit: Emit, n: int, wait: Callable[[], bool]) -> Timed:
    """Emit ``n`` events, then ``wait()`` for their delivery; CPU and wall time of it all."""
    gc.collect()
    with CollectorTime() as collector:
        cpu = time.process_time_ns()
        started = time.perf_counter_ns()
        for i in range(n):
            emit(i)
        emitted = time.perf_counter_ns()
        done = wait()
        ended = time.perf_counter_ns()
        cpu = time.process_time_ns() - cpu
    return Timed(emitted - started, ended - started, cpu, collector.ns, done)


def deliver_ours(api: str, n: int, users: int, *, use_batch: bool, timeout: float) -> Delivery:
    """Deliver ``n`` typical events through ``api`` ("handler" or "track") of a fresh client."""
    with ExitStack() as stack:
        url = stack.enter_context(server_process())
        client = Client(settings_for(url, n, use_batch=use_batch))
        stack.callback(client.shutdown)
        if api == "handler":
            emit = logging_emitter(handler_logger("bench.delivery", client), users)
        else:
            emit = track_emitter(client, users)
        timed = run_timed(emit, n, lambda: client.flush(timeout))
        stats = client.stats()
    ok = timed.done and stats["accepted"] == n and stats["dropped"] == 0
    detail = (
        f"accepted {stats['accepted']:,} of {n:,}, dropped {stats['dropped']:,}"
        f" {stats['dropped_by_reason']}, flushed {timed.done}"
    )
    return timed.delivery(n, stats["accepted"], ok, detail)


def deliver_sdk(n: int, users: int, *, use_batch: bool, timeout: float) -> Delivery:
    """Deliver ``n`` typical events through the official SDK; delivered = 2xx callbacks."""
    with server_process() as url:
        official = sdk.OfficialSdk(url, use_batch=use_batch)
        try:
            emit = official.emitter(users)
            timed = run_timed(emit, n, lambda: official.wait_delivered(n, timeout))
        finally:
            official.shutdown()
    count = official.delivered
    detail = f"delivered {count:,} of {n:,}, failed {official.failed:,}"
    return timed.delivery(n, count, timed.done and count == n, detail)


def baseline_cpu_ns(n: int) -> tuple[float, float]:
    """Process CPU ns per ``logger.info`` through a NullHandler, and the collector's part."""
    emit = logging_emitter(null_logger("bench.null"), 1_000)
    gc.collect()
    with CollectorTime() as collector:
        cpu = time.process_time_ns()
        for i in range(n):
            emit(i)
        cpu = time.process_time_ns() - cpu
    return cpu / n, collector.ns / n


def built_only_cpu_ns(api: str, n: int, timeout: float) -> float:
    """Process CPU ns per event built by ``api`` for a disabled client: mapped, validated,
    queued and discarded, nothing sent. What delivery adds is the rest of table 2's figure.

    Counted until the dispatcher has taken every event in (``flush``): the handler's events
    are built there, after the emit loop has returned."""
    client = Client(Settings(api_key="bench-api-key", enabled=False))
    try:
        if api == "handler":
            emit = logging_emitter(handler_logger("bench.built", client), 1_000)
        else:
            emit = track_emitter(client, 1_000)
        gc.collect()
        cpu = time.process_time_ns()
        for i in range(n):
            emit(i)
        if not client.flush(timeout):
            raise RuntimeError(f"built only ({api}): the dispatcher did not take every event in")
        return (time.process_time_ns() - cpu) / n
    finally:
        client.shutdown()


MODES = (("HTTP V2", False), ("Batch", True))
DELIVERY_APIS = (
    ("handler", "`logger.info` + `AmplitudeHandler`"),
    ("track", "`client.track`"),
    ("sdk", "official SDK `track`"),
)


def measure_delivery(
    sizes: Sizes,
) -> tuple[Figure, Figure, dict[str, Figure], dict[tuple[str, str], list[Delivery]]]:
    """Sections 2 and 3: every API in both modes, taking turns within each repeat; the
    baseline's CPU per call and the collector's part of it, and ours per event built but not
    sent."""
    runs: dict[tuple[str, str], list[Delivery]] = {}
    base: list[float] = []
    base_gc: list[float] = []
    built: dict[str, list[float]] = {"handler": [], "track": []}
    for _ in range(sizes.repeats):
        cpu, collected = baseline_cpu_ns(sizes.delivery)
        base.append(cpu)
        base_gc.append(collected)
        for api, samples in built.items():
            samples.append(built_only_cpu_ns(api, sizes.delivery, sizes.timeout))
        for mode, use_batch in MODES:
            for api, _text in DELIVERY_APIS:
                if api == "sdk":
                    if not sdk.available():
                        continue
                    run_ = deliver_sdk(
                        sizes.delivery, sizes.users, use_batch=use_batch, timeout=sizes.timeout
                    )
                else:
                    run_ = deliver_ours(
                        api, sizes.delivery, sizes.users, use_batch=use_batch,
                        timeout=sizes.timeout,
                    )  # fmt: skip
                runs.setdefault((api, mode), []).append(run_)
    built_figures = {k: Figure.of(v) for k, v in built.items()}
    return Figure.of(base), Figure.of(base_gc), built_figures, runs


def failures_of(label: str, runs: list[Delivery]) -> list[str]:
    return [f"{label}: {r.detail}" for r in runs if not r.ok]


def section_delivery(sizes: Sizes, report: Report) -> None:
    """Sections 2 and 3 (not the burst) into the report."""
    base, base_gc, built, runs = measure_delivery(sizes)
    cpu_table = Table(
        "2. Process CPU per delivered event",
        f"{sizes.delivery:,} events from {sizes.users:,} users per run, a fresh client and a"
        " fresh server process per run: this process's CPU time (all its threads) from just"
        " before the first emit until every event was accepted (ours: `flush()` True and"
        " `accepted == N`; SDK: N 2xx callbacks), divided by N. The baseline is the CPU per"
        f" `logger.info` through a NullHandler: {cell(base)} ns, of which GC {cell(base_gc)}"
        " ns. *Of it, GC*: thread CPU in the cyclic garbage collector (`gc.callbacks`, on"
        " whichever thread collects), which walks every event held in memory while the emit"
        " loop outruns delivery; the baseline keeps nothing alive.",
        ["Mode", "Row", "CPU ns/event", "vs baseline", "Of it, GC ns", "SDK ÷ ours"],
    )
    rate_table = Table(
        "3a. End-to-end events/s",
        "The same runs: N ÷ wall time from just before the first emit until every event was"
        " accepted; and the emit loop's wall ns per call.",
        ["Mode", "Row", "events/s", "Emit loop ns/call", "ours ÷ SDK (events/s)"],
    )
    for mode, _ in MODES:
        sdk_runs = runs.get(("sdk", mode))
        sdk_cpu = Figure.of([r.cpu_ns for r in sdk_runs]) if sdk_runs else None
        sdk_rate = Figure.of([r.rate for r in sdk_runs]) if sdk_runs else None
        for api, text in DELIVERY_APIS:
            samples = runs.get((api, mode))
            if not samples:
                cpu_table.rows.append([mode, text, sdk.SKIPPED, "", "", ""])
                rate_table.rows.append([mode, text, sdk.SKIPPED, "", ""])
                continue
            report.failures += failures_of(f"{mode} {api}", samples)
            cpu = Figure.of([r.cpu_ns for r in samples])
            rate = Figure.of([r.rate for r in samples])
            emit = Figure.of([r.emit_ns for r in samples])
            versus = f"{ratio(sdk_cpu, cpu):.1f}x" if sdk_cpu and api != "sdk" else "-"
            faster = f"{ratio(rate, sdk_rate):.1f}x" if sdk_rate and api != "sdk" else "-"
            collected = Figure.of([r.gc_ns for r in samples])
            cpu_table.rows.append(
                [mode, text, cell(cpu), f"{ratio(cpu, base):.2f}x", cell(collected), versus]
            )
            rate_table.rows.append([mode, text, cell(rate), cell(emit), faster])
            if api == "handler":
                report.targets.append(
                    Target(
                        f"CPU per delivered event via handler vs `logger.info` ({mode})",
                        f"{cpu.median:,.0f} vs {base.median:,.0f} ns",
                        ratio(cpu, base),
                        1.5,
                    )
                )
            elif api == "track":
                report.targets.append(
                    Target(
                        f"CPU per delivered event via `client.track` vs `logger.info` ({mode})",
                        f"{cpu.median:,.0f} vs {base.median:,.0f} ns",
                        ratio(cpu, base),
                        1.0,
                    )
                )
                report.targets.append(
                    Target(
                        f"Official SDK ÷ `client.track`, CPU per delivered event ({mode})",
                        f"{sdk_cpu.median:,.0f} vs {cpu.median:,.0f} ns"
                        if sdk_cpu
                        else sdk.SKIPPED,
                        ratio(sdk_cpu, cpu) if sdk_cpu else None,
                        10.0,
                        at_least=True,
                    )
                )
    split_table = Table(
        "2b. Where our CPU per delivered event goes",
        "Built only: the same emit loop into a client with `enabled=False` (the event is mapped,"
        " validated, queued and discarded; nothing is sent), process CPU per event until the"
        " dispatcher has taken every event in (`flush()`: the handler builds its events"
        " there, after the emit loop returns). The rest"
        " of table 2's HTTP V2 figure is delivery: dispatcher, senders, HTTP, and the GIL"
        " hand-offs between the threads.",
        ["Row", "Built only, CPU ns", "vs baseline", "Delivered (HTTP V2), CPU ns", "Delivery"],
    )
    for api, text in DELIVERY_APIS[:2]:
        samples = runs.get((api, "HTTP V2"))
        if not samples:
            continue
        delivered = Figure.of([r.cpu_ns for r in samples])
        split_table.rows.append(
            [
                text,
                cell(built[api]),
                f"{ratio(built[api], base):.2f}x",
                cell(delivered),
                f"{delivered.median - built[api].median:,.0f} ns",
            ]
        )
    report.tables += [cpu_table, split_table, rate_table]


def measure_burst(sizes: Sizes) -> dict[str, list[Delivery]]:
    """Section 3b: a burst through ``client.track``, buffers sized for it, in both modes."""
    runs: dict[str, list[Delivery]] = {}
    for _ in range(sizes.repeats):
        for mode, use_batch in MODES:
            runs.setdefault(mode, []).append(
                deliver_ours(
                    "track", sizes.burst, sizes.users, use_batch=use_batch, timeout=sizes.timeout
                )
            )
    return runs


def section_burst(sizes: Sizes, report: Report) -> None:
    runs = measure_burst(sizes)
    table = Table(
        f"3b. A {sizes.burst:,}-event burst through `client.track`",
        f"{sizes.users:,} users; `max_buffered_events` and `partition_capacity` sized for the"
        " burst; no drops allowed (`dropped == 0`, `accepted == N`).",
        ["Mode", "events/s", "Emit loop ns/call", "CPU ns/event", "All delivered, no drops"],
    )
    for mode, samples in runs.items():
        report.failures += failures_of(f"burst {mode}", samples)
        rate = Figure.of([r.rate for r in samples])
        ok = all(r.ok for r in samples)
        table.rows.append(
            [
                mode,
                cell(rate),
                cell(Figure.of([r.emit_ns for r in samples])),
                cell(Figure.of([r.cpu_ns for r in samples])),
                "yes" if ok else "**no**",
            ]
        )
        report.targets.append(
            Target(
                f"{sizes.burst:,}-event burst end to end, no drops ({mode})",
                f"{rate.median:,.0f} events/s" + ("" if ok else ", NOT all delivered"),
                rate.median / BURST_TARGET if ok else 0.0,
                1.0,
                at_least=True,
                unit=f"x of {BURST_TARGET:,} ev/s",
            )
        )
    report.tables.append(table)


# -- 4. memory per buffered event ----------------------------------------------------------------


def memory_ours(api: str, n: int, timeout: float) -> float:
    """Bytes per event held by our client while Amplitude never answers (tracemalloc)."""
    with black_hole() as url:
        client = Client(settings_for(url, n, timeout_ms=600_000))
        try:
            if api == "handler":
                emit = logging_emitter(handler_logger("bench.memory", client), 1_000)
            else:
                emit = track_emitter(client, 1_000)
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                for i in range(n):
                    emit(i)
                deadline = time.monotonic() + timeout
                # Wait until the dispatcher has taken every event out of the callers' deque
                # (private: no public figure separates "in transit" from "buffered").
                while client._dispatcher.inbound and time.monotonic() < deadline:
                    time.sleep(0.01)
                gc.collect()
                held = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
            stats = client.stats()
            if stats["buffered"] + stats["in_flight"] != n:
                raise RuntimeError(f"expected {n} events held, got {stats}")
        except BaseException:
            client.shutdown(0.5)
            raise
    client.shutdown(0.5)  # after the black hole closed: its senders come back at once
    return held / n


def memory_sdk(n: int) -> float:
    """Bytes per event held by the official SDK's storage before a flush (tracemalloc)."""
    with black_hole() as url:
        official = sdk.OfficialSdk(url, batch_size=10**9, interval_ms=3_600_000)
        try:
            emit = official.emitter(1_000)
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                for i in range(n):
                    emit(i)
                gc.collect()
                held = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
            if official.buffered() != n:
                raise RuntimeError(f"expected {n} events held, got {official.buffered()}")
        finally:
            official.discard_buffered()
            official.shutdown()
    return held / n


def section_memory(sizes: Sizes, report: Report) -> None:
    samples: dict[str, list[float]] = {}
    for _ in range(sizes.repeats):
        samples.setdefault("track", []).append(memory_ours("track", sizes.memory, sizes.timeout))
        samples.setdefault("handler", []).append(
            memory_ours("handler", sizes.memory, sizes.timeout)
        )
        if sdk.available():
            samples.setdefault("sdk", []).append(memory_sdk(sizes.memory))
    table = Table(
        "4. Memory per buffered typical event",
        f"`tracemalloc`: bytes allocated and still held after {sizes.memory:,} typical events,"
        " ÷ N. Ours: the server accepts connections and never answers (requests hang, as if"
        " Amplitude stalled), so every event is buffered or in flight; the SDK: flush size and"
        " interval set beyond the run, so its storage holds every event.",
        ["Row", "Bytes/event", "vs target 750 B", "SDK ÷ ours"],
    )
    sdk_fig = Figure.of(samples["sdk"]) if "sdk" in samples else None
    for api, text in DELIVERY_APIS:
        if api not in samples:
            table.rows.append([text, sdk.SKIPPED, "", ""])
            continue
        fig = Figure.of(samples[api])
        versus = f"{ratio(sdk_fig, fig):.1f}x" if sdk_fig and api != "sdk" else "-"
        table.rows.append([text, cell(fig), f"{fig.median / (0.75 * KB):.2f}x", versus])
        if api != "sdk":
            report.targets.append(
                Target(
                    f"Memory per buffered typical event via {text}",
                    f"{fig.median:,.0f} B",
                    fig.median / (0.75 * KB),
                    1.0,
                    unit="x of 750 B",
                )
            )
    report.tables.append(table)


# -- 5. scaling with distinct users ---------------------------------------------------------------


def section_scaling(sizes: Sizes, report: Report) -> None:
    runs: dict[tuple[str, int], list[Delivery]] = {}
    for _ in range(sizes.repeats):
        for users in sizes.scaling_users:
            for api in ("track", "handler"):
                runs.setdefault((api, users), []).append(
                    deliver_ours(api, sizes.scaling, users, use_batch=False, timeout=sizes.timeout)
                )
    low, high = sizes.scaling_users[0], sizes.scaling_users[-1]
    table = Table(
        "5. Scaling with distinct users (HTTP V2)",
        f"{sizes.scaling:,} events per run spread over the users; emit loop ns/call (the"
        " saturated caller cost) and process CPU per delivered event, as in table 2.",
        ["Row", "Users", "Emit ns/call", "CPU ns/event", "events/s", f"CPU vs {low} users"],
    )
    for api, text in (("track", "`client.track`"), ("handler", "`AmplitudeHandler`")):
        base_cpu = Figure.of([r.cpu_ns for r in runs[api, low]])
        for users in sizes.scaling_users:
            samples = runs[api, users]
            report.failures += failures_of(f"scaling {api} {users} users", samples)
            cpu = Figure.of([r.cpu_ns for r in samples])
            table.rows.append(
                [
                    text,
                    f"{users:,}",
                    cell(Figure.of([r.emit_ns for r in samples])),
                    cell(cpu),
                    cell(Figure.of([r.rate for r in samples])),
                    f"{ratio(cpu, base_cpu):.2f}x",
                ]
            )
        for metric, pick in (("emit ns/call", "emit_ns"), ("CPU per delivered event", "cpu_ns")):
            at_low = Figure.of([getattr(r, pick) for r in runs[api, low]])
            at_high = Figure.of([getattr(r, pick) for r in runs[api, high]])
            report.targets.append(
                Target(
                    f"{text} {metric}: {high:,} users vs {low:,}",
                    f"{at_high.median:,.0f} vs {at_low.median:,.0f} ns",
                    ratio(at_high, at_low),
                    1.2,
                )
            )
    report.tables.append(table)


# -- 6. throttle isolation ------------------------------------------------------------------------


def isolation_rate(n: int, users: int, throttled: int, timeout: float) -> tuple[float, str]:
    """Events/s accepted for the users not throttled, while ``throttled`` users are."""
    with AmplitudeServer() as server:
        if throttled:
            server.faults.throttle(users=[user_id(u, users) for u in range(throttled)])
        expected = sum(1 for i in range(n) if i % users >= throttled)
        client = Client(settings_for(server.url, n))
        try:
            emit = track_emitter(client, users)
            gc.collect()
            started = time.perf_counter()
            for i in range(n):
                emit(i)
            # Ask for everything now, as the other delivery runs do with flush(): without it the
            # last partial batch waits for the next flush tick (up to 1 s), whatever the
            # throttling. It cannot complete (the throttled users' events wait 30 s), so poll.
            client.flush(0)
            deadline = started + timeout
            while client.stats()["accepted"] < expected and time.perf_counter() < deadline:
                time.sleep(0.001)
            elapsed = time.perf_counter() - started
            stats = client.stats()
        finally:
            client.shutdown(0.5)  # the throttled users' events are dead-lettered
    if stats["accepted"] != expected:
        return 0.0, f"accepted {stats['accepted']:,} of {expected:,}"
    return expected / elapsed, ""


def section_isolation(sizes: Sizes, report: Report) -> None:
    samples: dict[int, list[float]] = {0: [], sizes.throttled: []}
    # A ratio of two noisy rates near its limit: more repeats than elsewhere, and the two
    # setups alternate which goes first, so neither always runs after the other.
    repeats = sizes.repeats if sizes.quick else max(sizes.repeats, ISOLATION_REPEATS)
    for repeat in range(repeats):
        order = (0, sizes.throttled) if repeat % 2 == 0 else (sizes.throttled, 0)
        for throttled in order:
            rate, problem = isolation_rate(
                sizes.isolation, sizes.users, throttled, min(sizes.timeout, 120.0)
            )
            if problem:
                report.failures.append(f"isolation, {throttled} throttled: {problem}")
            samples[throttled].append(rate)
    none, some = Figure.of(samples[0]), Figure.of(samples[sizes.throttled])
    table = Table(
        "6. Throttle isolation (HTTP V2, in-process server)",
        f"{sizes.isolation:,} events from {sizes.users:,} users through `client.track`, each"
        f" setup {repeats} times, alternating; events/s until every event of the users not"
        " throttled was accepted. The in-process"
        " `AmplitudeServer` is used for its fault flags (`faults.throttle(users=...)`: every"
        " request holding one of their events gets a 429 naming them); both runs share its"
        " process alike, so only the ratio means something. `flush(0)` after the last emit asks"
        " for everything at once, as in table 2.",
        ["Throttled users", "Unthrottled events/s", "vs none throttled"],
    )
    table.rows.append(["0", cell(none), "-"])
    table.rows.append([f"{sizes.throttled}", cell(some), f"{ratio(some, none):.2f}x"])
    report.tables.append(table)
    report.targets.append(
        Target(
            f"Unthrottled delivery rate with {sizes.throttled} users throttled vs none",
            f"{some.median:,.0f} vs {none.median:,.0f} events/s",
            ratio(some, none),
            0.9,
            at_least=True,
        )
    )


# -- running ------------------------------------------------------------------------------------

SECTIONS: dict[str, Callable[[Sizes, Report], None]] = {
    "caller": section_caller,
    "delivery": section_delivery,
    "burst": section_burst,
    "memory": section_memory,
    "scaling": section_scaling,
    "isolation": section_isolation,
}


def _load() -> str:
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def run(quick: bool = False, only: list[str] | None = None, progress: bool = True) -> Report:
    """Run the suite (or the sections named in ``only``) and return its report."""
    sizes = QUICK if quick else FULL
    report = Report(sizes, started=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    load_start = _load()
    # The library's own warnings (429s in the isolation run) would go to stderr: not a figure.
    quiet = logging.getLogger("otel_amplitude")
    quiet_handler = logging.NullHandler()
    quiet.addHandler(quiet_handler)
    began = time.perf_counter()
    try:
        for name, section in SECTIONS.items():
            if only and name not in only:
                continue
            if progress:
                print(f"[suite] {name} ...", file=sys.stderr, flush=True)
            section_began = time.perf_counter()
            section(sizes, report)
            if progress:
                took = time.perf_counter() - section_began
                print(f"[suite] {name} done in {took:.1f} s", file=sys.stderr, flush=True)
    finally:
        quiet.removeHandler(quiet_handler)
    report.seconds = time.perf_counter() - began
    report.load = (load_start, _load())
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.suite [--quick] [--only SECTION ...]``: print the report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: prove it runs")
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), help="these sections")
    args = parser.parse_args(argv)
    report = run(args.quick, args.only)
    print(report.markdown())
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())

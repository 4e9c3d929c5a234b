"""The floor: the least work any library must do, measured against the same baselines.

Issue #5 asks, where a target is out of reach, for "the measurement that proves it and what
the floor is". This script builds the barest pipeline that still delivers each event to the
local Amplitude-compatible server (in its own process) and measures it in the same run, the
same way, as the baseline and as this library:

- *minimal handler*: a ``logging.Handler`` whose ``handle`` only appends the record to a
  deque; one background thread takes 1,000 records at a time, finds the extras with
  ``itertools.islice`` past the standard attributes (the cheapest way there is: it trusts that
  nothing else added an attribute), builds each wire dict, ``orjson.dumps`` the request and
  POSTs it with ``http.client`` on one keep-alive connection;
- *minimal track*: a function appending a ``(event_type, user_id, properties, time)`` tuple,
  then the same background thread;
- *minimal span exporter*: an OpenTelemetry ``SpanExporter`` that, on the
  ``BatchSpanProcessor``'s thread, turns each span into a wire dict and POSTs the batch.

None of them validates, partitions by device, retries, deduplicates, screens for PII or
consent, rate-limits, bisects, or counts anything: each is a lower bound on what any design
costs in CPython, not a design. A target below the floor's ratio cannot be met by any design.

Run: ``python -m benchmarks.floor_bench`` (about 3 minutes) or ``--quick`` (seconds; CI).
"""

from __future__ import annotations

import argparse
import gc
import http.client
import itertools
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any
from urllib.parse import urlsplit

import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_amplitude import Client
from otel_amplitude._span_exporter import AmplitudeSpanExporter

from ._harness import Figure, server_process
from ._workloads import (
    Emit,
    NoOpExporter,
    _logger,
    handler_logger,
    logging_emitter,
    null_logger,
    settings_for,
    span_emitter,
    span_pipeline,
    track_emitter,
)

__all__ = ["main"]

BATCH = 1_000
#: How many attributes ``LogRecord.__init__`` sets; ``makeRecord`` adds the extras after them.
_STANDARD = len(logging.LogRecord("", 0, "", 0, "", (), None).__dict__)

Item = Any
Build = Callable[[Item, int], dict[str, Any]]


class MinimalPipe:
    """A deque, and one thread that POSTs its items 1,000 at a time: the floor of delivery."""

    def __init__(self, url: str, build: Build) -> None:
        parts = urlsplit(url)
        self._connection = http.client.HTTPConnection(parts.hostname or "", parts.port)
        self.queue: deque[Item] = deque()
        self._build = build
        self._closing = False
        self.delivered = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        queue, build, numbers = self.queue, self._build, itertools.count()
        while True:
            if len(queue) < BATCH and not self._closing:
                time.sleep(0.005)
                continue
            n = min(len(queue), BATCH)
            if n == 0:
                return
            events = [build(queue.popleft(), next(numbers)) for _ in range(n)]
            post(self._connection, events)
            self.delivered += n

    def close(self) -> None:
        """Deliver what is queued, then stop."""
        self._closing = True
        self._thread.join()
        self._connection.close()


def post(connection: http.client.HTTPConnection, events: list[dict[str, Any]]) -> None:
    body = orjson.dumps({"api_key": "bench-api-key", "events": events})
    connection.request("POST", "/2/httpapi", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"the server answered {response.status}")


def record_event(record: logging.LogRecord, number: int) -> dict[str, Any]:
    extras = dict(itertools.islice(record.__dict__.items(), _STANDARD, None))
    return {
        "event_type": record.msg,
        "time": int(record.created * 1000),
        "insert_id": f"floor-{number}",
        "user_id": extras.pop("user_id"),
        "event_properties": extras,
    }


def tuple_event(item: tuple[str, str, dict[str, Any], int], number: int) -> dict[str, Any]:
    event_type, user_id, properties, millis = item
    return {
        "event_type": event_type,
        "time": millis,
        "insert_id": f"floor-{number}",
        "user_id": user_id,
        "event_properties": properties,
    }


class MinimalHandler(logging.Handler):
    """Keeps the record: no filter, no lock, no copy."""

    def __init__(self, queue: deque[Item]) -> None:
        super().__init__()
        self._append = queue.append

    def handle(self, record: logging.LogRecord) -> bool:
        self._append(record)
        return True


class MappedHandler(logging.Handler):
    """Builds the wire dict on the caller's thread; the pipe's thread only encodes and POSTs."""

    def __init__(self, queue: deque[Item]) -> None:
        super().__init__()
        self._append = queue.append
        self._numbers = itertools.count()

    def handle(self, record: logging.LogRecord) -> bool:
        self._append(record_event(record, next(self._numbers)))
        return True


def wire_event(event: dict[str, Any], number: int) -> dict[str, Any]:  # noqa: ARG001
    return event


class InlineHandler(logging.Handler):
    """Keeps the record; every 1,000th call builds and POSTs the batch on the caller's thread.

    No background thread at all: no GIL hand-offs, no record read on another core. A library
    must not do I/O on the caller's thread; this only shows that threads are not the floor.
    """

    def __init__(self, url: str) -> None:
        super().__init__()
        parts = urlsplit(url)
        self._connection = http.client.HTTPConnection(parts.hostname or "", parts.port)
        self._records: list[logging.LogRecord] = []
        self._numbers = itertools.count()
        self.delivered = 0

    def handle(self, record: logging.LogRecord) -> bool:
        records = self._records
        records.append(record)
        if len(records) == BATCH:
            self.send()
        return True

    def send(self) -> None:
        numbers = self._numbers
        post(self._connection, [record_event(r, next(numbers)) for r in self._records])
        self.delivered += len(self._records)
        self._records = []


class MinimalClient:
    """Has a ``track`` that appends a tuple: called exactly as the suite calls ``client.track``."""

    def __init__(self, queue: deque[Item]) -> None:
        self._append = queue.append

    def track(self, event_type: str, *, user_id: str, event_properties: dict[str, Any]) -> None:
        self._append((event_type, user_id, event_properties, int(time.time() * 1000)))


class MinimalSpanExporter(SpanExporter):
    """Maps each span to a wire dict and POSTs the batch, on the span processor's thread."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._connection = http.client.HTTPConnection(parts.hostname or "", parts.port)
        self._numbers = itertools.count()
        self.delivered = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        events = []
        for span in spans:
            properties = dict(span.attributes or {})
            events.append(
                {
                    "event_type": properties.pop("amplitude.event_type"),
                    "time": (span.end_time or 0) // 1_000_000,
                    "insert_id": f"floor-{next(self._numbers)}",
                    "user_id": properties.pop("enduser.id"),
                    "event_properties": properties,
                }
            )
        post(self._connection, events)
        self.delivered += len(events)
        return SpanExportResult.SUCCESS


# -- CPU per delivered event --------------------------------------------------------------------


def cpu_per_event(emit: Emit, n: int, finish: Callable[[], int]) -> float:
    """Process CPU ns per event from the first emit until ``finish()`` returns the delivered."""
    gc.collect()
    started = time.process_time_ns()
    for i in range(n):
        emit(i)
    delivered = finish()
    spent = time.process_time_ns() - started
    if delivered != n:
        raise RuntimeError(f"delivered {delivered:,} of {n:,}")
    return spent / n


def baseline(n: int) -> float:
    return cpu_per_event(logging_emitter(null_logger("floor.null"), 1_000), n, lambda: n)


def through_pipe(build: Build, emitter: Callable[[deque[Item]], Emit], n: int) -> float:
    """CPU per event of ``emitter``'s emits into a :class:`MinimalPipe` building with ``build``."""
    with server_process() as url:
        pipe = MinimalPipe(url, build)

        def finish() -> int:
            pipe.close()
            return pipe.delivered

        return cpu_per_event(emitter(pipe.queue), n, finish)


def floor_handler(n: int, users: int) -> float:
    return through_pipe(
        record_event,
        lambda queue: logging_emitter(_logger("floor.handler", MinimalHandler(queue)), users),
        n,
    )


def floor_mapped(n: int, users: int) -> float:
    return through_pipe(
        wire_event,
        lambda queue: logging_emitter(_logger("floor.mapped", MappedHandler(queue)), users),
        n,
    )


def floor_track(n: int, users: int) -> float:
    return through_pipe(
        tuple_event,
        lambda queue: track_emitter(MinimalClient(queue), users),
        n,
    )


def floor_inline(n: int, users: int) -> float:
    with server_process() as url:
        handler = InlineHandler(url)
        emit = logging_emitter(_logger("floor.inline", handler), users)

        def finish() -> int:
            handler.send()
            return handler.delivered

        return cpu_per_event(emit, n, finish)


def ours(api: str, n: int, users: int) -> float:
    with ExitStack() as stack:
        url = stack.enter_context(server_process())
        client = Client(settings_for(url, n))
        stack.callback(client.shutdown)
        if api == "handler":
            emit = logging_emitter(handler_logger("floor.ours", client), users)
        else:
            emit = track_emitter(client, users)

        def finish() -> int:
            client.flush(600.0)
            return int(client.stats()["accepted"])

        return cpu_per_event(emit, n, finish)


# -- saturated span, caller ns ------------------------------------------------------------------


def span_ns(kind: str, n: int, users: int) -> float:
    """Caller wall ns per tagged span in a tight loop, then every span exported and delivered."""
    with ExitStack() as stack:
        url = stack.enter_context(server_process())
        exporter: SpanExporter
        client: Client | None = None
        if kind == "noop":
            exporter = NoOpExporter()
        elif kind == "floor":
            exporter = MinimalSpanExporter(url)
        else:
            client = Client(settings_for(url, n))
            stack.callback(client.shutdown)
            exporter = AmplitudeSpanExporter(client)
        provider, tracer = span_pipeline(exporter, n)
        stack.callback(provider.shutdown)
        emit = span_emitter(tracer, users)
        gc.collect()
        started = time.perf_counter_ns()
        for i in range(n):
            emit(i)
        ns = (time.perf_counter_ns() - started) / n
        provider.force_flush(600_000)
        if isinstance(exporter, MinimalSpanExporter) and exporter.delivered != n:
            raise RuntimeError(f"floor exporter delivered {exporter.delivered:,} of {n:,}")
        if client is not None and not (client.flush(600.0) and client.stats()["accepted"] == n):
            raise RuntimeError("our exporter did not deliver every span")
        return ns


# -- the report ---------------------------------------------------------------------------------

CPU_ROWS = (
    ("baseline", "`logger.info` + NullHandler (**baseline**)"),
    ("floor.handler", "minimal handler (floor)"),
    ("floor.mapped", "minimal handler, mapped on the caller's thread (floor)"),
    ("floor.inline", "minimal handler, all on the caller's thread (floor)"),
    ("ours.handler", "`logger.info` + `AmplitudeHandler`"),
    ("floor.track", "minimal track (floor)"),
    ("ours.track", "`client.track`"),
)
SPAN_ROWS = (
    ("noop", "tagged span, no-op exporter (**baseline**)"),
    ("floor", "tagged span, minimal exporter (floor)"),
    ("ours", "tagged span, `AmplitudeSpanExporter`"),
)
LIMITS = {
    "floor.handler": 1.5,
    "floor.mapped": 1.5,
    "floor.inline": 1.5,
    "ours.handler": 1.5,
    "floor.track": 1.0,
    "ours.track": 1.0,
}


def measure(n: int, users: int, repeats: int) -> tuple[dict[str, Figure], dict[str, Figure]]:
    """Every row ``repeats`` times, the rows taking turns within each repeat."""
    cpu: dict[str, list[float]] = {}
    spans: dict[str, list[float]] = {}
    runs: dict[str, Callable[[], float]] = {
        "baseline": lambda: baseline(n),
        "floor.handler": lambda: floor_handler(n, users),
        "floor.mapped": lambda: floor_mapped(n, users),
        "floor.inline": lambda: floor_inline(n, users),
        "ours.handler": lambda: ours("handler", n, users),
        "floor.track": lambda: floor_track(n, users),
        "ours.track": lambda: ours("track", n, users),
    }
    for _ in range(repeats):
        for label, run in runs.items():
            cpu.setdefault(label, []).append(run())
        for label, _text in SPAN_ROWS:
            spans.setdefault(label, []).append(span_ns(label, n, users))
    return (
        {k: Figure.of(v) for k, v in cpu.items()},
        {k: Figure.of(v) for k, v in spans.items()},
    )


def cell(figure: Figure) -> str:
    return f"{figure.median:,.0f} ({figure.low:,.0f} to {figure.high:,.0f})"


def report(cpu: dict[str, Figure], spans: dict[str, Figure], n: int, repeats: int) -> str:
    base, noop = cpu["baseline"].median, spans["noop"].median
    lines = [
        "### The floor, measured",
        "",
        f"`python -m benchmarks.floor_bench`: {n:,} events from 1,000 users per run, {repeats}"
        " repeats, the rows taking turns; a fresh server process per run. CPU: this process's"
        " CPU time from the first emit until every event was accepted, ÷ N (as table 2).",
        "",
        "| Row | CPU ns/event | vs `logger.info` | Target |",
        "|---|---|---|---|",
    ]
    for label, text in CPU_ROWS:
        figure = cpu[label]
        limit = LIMITS.get(label)
        lines.append(
            f"| {text} | {cell(figure)} | {figure.median / base:.2f}x |"
            f" {'-' if limit is None else f'<= {limit}x'} |"
        )
    lines += [
        "",
        "Saturated tagged spans: caller wall ns per span in a tight loop under"
        " `BatchSpanProcessor` (as table 1b), then every span delivered.",
        "",
        "| Row | ns/span | vs no-op exporter | Target |",
        "|---|---|---|---|",
    ]
    for label, text in SPAN_ROWS:
        figure = spans[label]
        target = "-" if label == "noop" else "<= 1.1x"
        lines.append(f"| {text} | {cell(figure)} | {figure.median / noop:.2f}x | {target} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor_bench")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: prove it runs")
    args = parser.parse_args(argv)
    n, repeats = (2_000, 1) if args.quick else (100_000, 5)
    cpu, spans = measure(n, 1_000, repeats)
    print(report(cpu, spans, n, repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``otel-amplitude demo``: an instrumented workload against the local Amplitude-compatible server.

Spans, stdlib log records and structlog events for a few hundred users flow through one client
while the server throttles one user and fails some requests. The demo then proves what the
library promises: every event delivered exactly once, each device's events in order, the
counters conserved. Time runs faster than the wall clock (an injected clock), so a 30-second
throttle pause takes a second or two.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from ._client import Client
from ._handler import AmplitudeHandler
from ._settings import Settings
from ._span_exporter import AmplitudeSpanExporter
from .testing import AmplitudeServer, Fault

__all__ = ["FastClock", "run_demo"]

SPEED = 20.0


class FastClock:
    """A monotonic clock that runs ``speed`` times faster than the real one."""

    def __init__(self, speed: float) -> None:
        self._speed = speed
        self._origin = time.monotonic()

    def monotonic(self) -> float:
        return self._origin + (time.monotonic() - self._origin) * self._speed

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        return event.wait(None if timeout is None else timeout / self._speed)


@dataclass
class _Check:
    name: str
    ok: bool
    detail: str


def _structlog_emitter(client: Client) -> Callable[[str, str, int], None] | None:
    """A structlog logger wired to the client, or None when structlog is not installed."""
    try:
        import structlog

        from .structlog import AmplitudeProcessor
    except ImportError:
        return None
    log = structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=[structlog.contextvars.merge_contextvars, AmplitudeProcessor(client)],
    )

    def emit(user: str, event: str, seq: int) -> None:
        log.info(event, user_id=user, source="structlog", seq=seq)

    return emit


_last_drawn = [0.0]


def _progress(
    out: TextIO, client: Client, total: int, started: float, *, last: bool = False
) -> None:
    """The progress bar, with the client's live stats and health (what a readiness probe sees)."""
    now = time.monotonic()
    if not last and now - _last_drawn[0] < 0.25:
        return
    _last_drawn[0] = now
    stats = client.stats()
    done = stats["accepted"]
    width = 24
    filled = width * done // max(total, 1)
    bar = "#" * filled + "." * (width - filled)
    elapsed = now - started
    status = client.health(window=1.0).status
    out.write(
        f"\r  [{bar}] {done:>6,}/{total:,} delivered  buffered {stats['buffered']:>5,}  "
        f"in flight {stats['in_flight']:>4,}  paused ids {stats['paused_partitions']}  "
        f"health {status:<8} {elapsed:5.1f} s"
    )
    out.flush()


def run_demo(users: int = 300, *, quiet: bool = False, out: TextIO | None = None) -> int:
    """Run the demo; return 0 only when every promise held."""
    out = out or sys.stdout
    throttled_user = f"user-{users * 2 // 3:04d}"
    progress_out = sys.stderr if not quiet else None
    server = AmplitudeServer().start()
    tracer_provider: TracerProvider | None = None
    handler: AmplitudeHandler | None = None
    demo_logger = logging.getLogger("demo.app")  # not under otel_amplitude: the guard skips those
    # The library's own warnings (429s, 5xx) would scribble over the progress bar: the summary
    # reports them instead.
    quiet_library = logging.NullHandler()
    library_logger = logging.getLogger("otel_amplitude")
    library_logger.addHandler(quiet_library)
    library_propagates = library_logger.propagate
    library_logger.propagate = False
    try:
        server.faults.throttle(users=[throttled_user])
        # Two scripted failures first (one stores the events, then resets: the resend must be
        # deduplicated), then about 5 % of requests fail at random.
        server.faults.script(Fault(503), Fault(reset=True, ingest=True))
        server.faults.random(rate=0.05, seed=2026, kinds=("500", "502", "503", "reset"))
        client = Client(
            Settings(
                api_key="demo-api-key-0001",
                server_url=server.url,
                flush_interval_ms=200,
                flush_max_events=50,
                max_retries=50,
            ),
            clock=FastClock(SPEED),
        )
        print(f"otel-amplitude demo: local Amplitude-compatible server at {server.url}", file=out)
        print(
            f"  {users} users; {throttled_user} is throttled, about 5 % of requests fail "
            f"(5xx or reset); time runs {SPEED:.0f}x faster",
            file=out,
        )

        handler = AmplitudeHandler(client)
        demo_logger.handlers[:] = [handler]
        demo_logger.setLevel(logging.INFO)
        demo_logger.propagate = False
        tracer_provider = TracerProvider(
            resource=Resource.create({"service.name": "demo", "service.version": "1.4.2"})
        )
        tracer_provider.add_span_processor(
            BatchSpanProcessor(AmplitudeSpanExporter(client), schedule_delay_millis=100)
        )
        tracer = tracer_provider.get_tracer("otel_amplitude.demo")
        structlog_emit = _structlog_emitter(client)

        started = time.monotonic()
        expected = 0
        for seq in range(3):
            for n in range(users):
                user = f"user-{n:04d}"
                demo_logger.info(
                    "report_exported",
                    extra={"user_id": user, "source": "logging", "seq": seq, "format": "pdf"},
                )
                with tracer.start_as_current_span("POST /checkout") as span:
                    span.set_attribute("amplitude.event_type", "checkout_completed")
                    span.set_attribute("enduser.id", user)
                    span.set_attribute("source", "span")
                    span.set_attribute("seq", seq)
                    span.set_attribute("cart.items", 1 + (n + seq) % 4)
                expected += 2
                if structlog_emit is not None:
                    structlog_emit(user, "dashboard_viewed", seq)
                    expected += 1
            if progress_out is not None:
                _progress(progress_out, client, expected, started)

        tracer_provider.force_flush()
        unthrottled = False
        deadline = time.monotonic() + 120
        while client.stats()["accepted"] < expected and time.monotonic() < deadline:
            client.flush(timeout=0.1)
            throttles = sum(1 for r in server.requests if r.status == 429)
            if not unthrottled and throttles >= 2:
                server.faults.unthrottle()  # the user calms down after two pauses
                unthrottled = True
            if progress_out is not None:
                _progress(progress_out, client, expected, started)
        client.flush(timeout=5)
        if progress_out is not None:
            _progress(progress_out, client, expected, started, last=True)
            progress_out.write("\n")
        stored = server.events
        requests = server.requests
        duplicates = server.duplicates
        tracer_provider.shutdown()
        tracer_provider = None
        client.shutdown(timeout=5)
        stats = client.stats()
        seconds = time.monotonic() - started
        return _report(
            out,
            stats,
            stored,
            requests,
            duplicates,
            expected,
            seconds,
            throttled_user,
        )
    finally:
        if tracer_provider is not None:
            tracer_provider.shutdown()
        if handler is not None:
            demo_logger.removeHandler(handler)
        library_logger.removeHandler(quiet_library)
        library_logger.propagate = library_propagates
        server.stop()


def _report(
    out: TextIO,
    stats: Any,
    stored: list[dict[str, Any]],
    requests: list[Any],
    duplicates: int,
    expected: int,
    seconds: float,
    throttled_user: str,
) -> int:
    by_type = Counter(e["event_type"] for e in stored)
    ids = [e["insert_id"] for e in stored]
    last: dict[tuple[str, str], int] = {}
    in_order = True
    for event in stored:
        props = event.get("event_properties", {})
        key = (event.get("device_id") or event["user_id"], str(props.get("source")))
        seq = int(props.get("seq", 0))
        if seq < last.get(key, -1):
            in_order = False
        last[key] = seq
    conserved = stats["submitted"] == (
        stats["accepted"]
        + stats["rejected"]
        + stats["dropped"]
        + stats["dead_lettered"]
        + stats["buffered"]
        + stats["in_flight"]
    )
    failed = sum(1 for r in requests if r.fault is not None and r.status != 429)
    throttled = sum(1 for r in requests if r.status == 429)
    checks = [
        _Check(
            "delivered exactly once",
            len(ids) == len(set(ids)) == expected == stats["accepted"],
            f"{len(set(ids)):,} of {expected:,} events stored once; "
            f"{duplicates:,} resent duplicates absorbed by insert_id",
        ),
        _Check("per-device order", in_order, "each user's events arrived in the order emitted"),
        _Check(
            "counters conserved",
            conserved,
            f"submitted {stats['submitted']:,} = accepted {stats['accepted']:,} + rejected "
            f"{stats['rejected']} + dropped {stats['dropped']} + dead-lettered "
            f"{stats['dead_lettered']} + buffered {stats['buffered']} + in flight "
            f"{stats['in_flight']}",
        ),
    ]
    print("", file=out)
    print(f"  {'event type':<24} {'events':>8}", file=out)
    print(f"  {'-' * 24} {'-' * 8}", file=out)
    for event_type, count in sorted(by_type.items()):
        print(f"  {event_type:<24} {count:>8,}", file=out)
    print("", file=out)
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        print(f"  [{mark}] {check.name:<24} {check.detail}", file=out)
    print(
        f"  [info] {'retries':<24} {stats['retried']:,} events resent after "
        f"{failed} failed requests (of {len(requests)})",
        file=out,
    )
    print(
        f"  [info] {'throttle pauses':<24} {throttled} x 429 for {throttled_user}; "
        f"{stats['throttled']} events paused 30 s (demo time) while the others flowed",
        file=out,
    )
    print(f"  done in {seconds:.1f} s", file=out)
    return 0 if all(check.ok for check in checks) else 1

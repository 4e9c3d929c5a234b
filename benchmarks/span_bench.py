"""What ``AmplitudeSpanExporter`` costs the application: ns per tagged span started and ended.

The same tagged span (``amplitude.event_type``, ``enduser.id`` and four other attributes) is
ended under a ``BatchSpanProcessor`` feeding a no-op exporter (the baseline: what the OTel SDK
costs anyway), and under a ``BatchSpanProcessor`` feeding ``AmplitudeSpanExporter``, whose client
delivers to a local Amplitude-compatible server in another process. The caller's thread only
queues the span either way; the exporter maps spans to events on the processor's thread, and
the client's threads deliver them. What the caller can feel of that is the competition for the
GIL, so the caller's time is measured while all of that runs. Two loads:

- paced: 1000 spans per second, a busy service, taking turns between the two pipelines; each
  span is timed alone (median and p99);
- saturated: spans back to back in rounds that alternate between the two pipelines; ns per span
  over a round (median of the rounds), with the exporter draining in the background.

The target is a ratio of at most 1.1x the baseline. Also shown: the exporter's own cost per span
on the processor's thread (``export`` of a 512-span batch; the no-op exporter's is ~0).

Run: ``.venv/bin/python -m benchmarks.span_bench [--quick]``. Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Tracer

from benchmarks._harness import Figure, server_process
from otel_amplitude import Client, Settings
from otel_amplitude._span_exporter import AmplitudeSpanExporter

USERS = [f"user-{n:04d}" for n in range(100)]
RESOURCE = Resource.create({"service.name": "bench", "service.version": "1.0.0"})


class NoOpExporter(SpanExporter):
    """Accepts every batch and does nothing: the baseline pipeline's exporter."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:  # noqa: ARG002
        return SpanExportResult.SUCCESS


def pipeline(exporter: SpanExporter, queue: int) -> tuple[TracerProvider, Tracer]:
    """A provider whose batch processor can hold ``queue`` spans (so none is dropped)."""
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=queue))
    return provider, provider.get_tracer("bench")


def end_span(tracer: Tracer, n: int) -> None:
    """The measured unit: one tagged span, started and ended."""
    tracer.start_span(
        "POST /checkout",
        attributes={
            "amplitude.event_type": "Order Placed",
            "enduser.id": USERS[n % len(USERS)],
            "plan": "pro",
            "cart.items": 3,
            "http.route": "/checkout",
            "user_agent.original": "Mozilla/5.0",
        },
    ).end()


def saturated_ns(tracer: Tracer, spans: int) -> float:
    """ns per span, back to back."""
    started = time.perf_counter_ns()
    for n in range(spans):
        end_span(tracer, n)
    return (time.perf_counter_ns() - started) / spans


def paced_ns(tracers: Sequence[Tracer], spans: int, rate: float) -> list[list[int]]:
    """ns of each span, ``rate`` spans per second, taking turns between ``tracers``."""
    timings: list[list[int]] = [[] for _ in tracers]
    interval = 1.0 / rate
    next_call = time.perf_counter()
    clock = time.perf_counter_ns
    for n in range(spans):
        for tracer, own in zip(tracers, timings, strict=True):
            next_call += interval
            pause = next_call - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            started = clock()
            end_span(tracer, n)
            own.append(clock() - started)
    return timings


def export_ns_per_span(exporter: SpanExporter, batch: Sequence[ReadableSpan], rounds: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(rounds):
        exporter.export(batch)
    return (time.perf_counter_ns() - started) / (rounds * len(batch))


def main(quick: bool = False, argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: prove it runs")
    parser.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args(argv if argv is not None else [])
    quick = quick or args.quick
    rounds, per_round = (3, 2_000) if quick else (9, 20_000)
    paced_spans = 300 if quick else 3_000

    print("## AmplitudeSpanExporter: caller's ns per tagged span ended (BatchSpanProcessor)")
    print(f"Python {sys.version.split()[0]}; {rounds} rounds of {per_round:,} spans")
    with server_process() as url:
        client = Client(Settings(api_key="bench-api-key", server_url=url))
        exporter = AmplitudeSpanExporter(client)
        queue = per_round * 2
        base_provider, base = pipeline(NoOpExporter(), queue)
        ours_provider, ours = pipeline(exporter, queue)
        try:
            for tracer in (base, ours):  # warm up: imports, caches, the client's threads
                saturated_ns(tracer, 2_000)
            base_provider.force_flush()
            ours_provider.force_flush()
            client.flush(30)

            samples: dict[str, list[float]] = {"baseline": [], "amplitude": []}
            for _ in range(rounds):
                for label, provider, tracer in (
                    ("baseline", base_provider, base),
                    ("amplitude", ours_provider, ours),
                ):
                    samples[label].append(saturated_ns(tracer, per_round))
                    provider.force_flush()  # drain between rounds, outside the timing
                client.flush(30)
            saturated = {label: Figure.of(values) for label, values in samples.items()}

            paced: dict[str, tuple[float, float]] = {}
            turns = paced_ns((base, ours), paced_spans, args.rate)
            for label, timings in zip(("baseline", "amplitude"), turns, strict=True):
                timings.sort()
                paced[label] = (timings[len(timings) // 2], timings[int(len(timings) * 0.99)])
            ours_provider.force_flush()
            client.flush(30)
        finally:
            base_provider.shutdown()
            ours_provider.shutdown()

        batch = _batch(512)
        mapping = export_ns_per_span(AmplitudeSpanExporter(_disabled_client()), batch, 20)

        client.shutdown(10)
        stats = client.stats()

    base_fig, ours_fig = saturated["baseline"], saturated["amplitude"]
    print(f"- saturated, baseline (no-op exporter): {base_fig.show('ns/span')}")
    print(f"- saturated, AmplitudeSpanExporter:     {ours_fig.show('ns/span')}")
    print(f"- saturated ratio: {ours_fig.median / base_fig.median:.2f}x (target <= 1.1x)")
    (base_median, base_p99), (ours_median, ours_p99) = paced["baseline"], paced["amplitude"]
    print(
        f"- paced {args.rate:g}/s: baseline median {base_median:,.0f} ns, p99 {base_p99:,.0f} ns;"
        f" AmplitudeSpanExporter median {ours_median:,.0f} ns, p99 {ours_p99:,.0f} ns;"
        f" ratio {ours_median / base_median:.2f}x (p99 {ours_p99 / base_p99:.2f}x)"
    )
    print(f"- exporter's own work on the processor's thread: {mapping:,.0f} ns/span")
    print(
        f"- client: submitted {stats['submitted']:,}, accepted {stats['accepted']:,}, "
        f"dropped {stats['dropped']:,} {stats['dropped_by_reason']}"
    )


def _disabled_client() -> Client:
    """A client that accepts and discards: isolates the exporter's mapping cost."""
    return Client(Settings(api_key="bench-api-key", enabled=False))


def _batch(size: int) -> list[ReadableSpan]:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for n in range(size):
        end_span(tracer, n)
    provider.shutdown()
    return list(memory.get_finished_spans())


if __name__ == "__main__":
    main(argv=sys.argv[1:])

"""Delivery throughput and the caller's cost of ``submit`` and ``track``.

- caller-thread ns per ``Client.submit`` (pre-built events) and per ``Client.track`` (validation
  included), against ``logger.info`` on a logger with only a NullHandler, in the same run;
- end-to-end events/s until the local server (its own process) has accepted every event, in
  HTTP V2 and Batch modes.
"""

from __future__ import annotations

import argparse
import logging
import time

from otel_amplitude import Client, Settings
from otel_amplitude._validate import make_event

from ._harness import Figure, per_call_ns, server_process

USERS = 1_000


def baseline_ns(n: int, repeats: int) -> Figure:
    logger = logging.getLogger("benchmarks.baseline")
    logger.handlers[:] = [logging.NullHandler()]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    extra = {"user_id": "user-00001", "format": "pdf", "pages": 3, "plan": "pro"}
    return per_call_ns(lambda _: logger.info("report_exported", extra=extra), n, repeats)


def caller_cost(url: str, n: int, repeats: int) -> dict[str, Figure]:
    settings = Settings(
        api_key="bench-api-key",
        server_url=url,
        max_buffered_events=n + 10_000,
        partition_capacity=n,
    )
    figures = {}
    with Client(settings) as client:
        events = [
            make_event("report_exported", user_id=f"user-{i % USERS:05d}",
                       event_properties={"format": "pdf", "pages": 3, "plan": "pro"})
            for i in range(n)
        ]  # fmt: skip
        figures["submit"] = per_call_ns(lambda i: client.submit(events[i]), n, 1)
        client.flush(timeout=60)
        props = {"format": "pdf", "pages": 3, "plan": "pro"}
        figures["track"] = per_call_ns(
            lambda i: client.track(
                "report_exported", user_id=f"user-{i % USERS:05d}", event_properties=props
            ),
            n,
            repeats,
        )
        client.flush(timeout=120)
    return figures


def end_to_end(url: str, n: int, *, use_batch: bool, repeats: int) -> Figure:
    """Events/s from the first ``track`` until the server accepted all ``n`` events."""
    samples = []
    props = {"format": "pdf", "pages": 3, "plan": "pro"}
    for _ in range(repeats):
        settings = Settings(
            api_key="bench-api-key",
            server_url=url,
            use_batch=use_batch,
            max_buffered_events=n + 10_000,
            partition_capacity=n,
        )
        client = Client(settings)
        started = time.perf_counter()
        for i in range(n):
            client.track("report_exported", user_id=f"user-{i % USERS:05d}", event_properties=props)
        ok = client.flush(timeout=300)
        elapsed = time.perf_counter() - started
        stats = client.stats()
        client.shutdown()
        if not ok or stats["accepted"] != n:
            raise RuntimeError(f"not every event was accepted: {stats}")
        samples.append(n / elapsed)
    return Figure.of(samples)


def main(quick: bool = False) -> None:
    n = 5_000 if quick else 200_000
    repeats = 1 if quick else 3
    with server_process() as url:
        base = baseline_ns(min(n, 100_000), repeats)
        cost = caller_cost(url, min(n, 100_000), repeats)
        print("## Caller-thread cost (saturated loop)")
        print(f"- baseline logger.info, NullHandler: {base.show('ns/call')}")
        for name, figure in cost.items():
            print(
                f"- Client.{name}: {figure.show('ns/call')}"
                f"  = {figure.median / base.median:.2f}x baseline"
            )
        print(
            f"## End-to-end delivery, {n:,} events from {USERS:,} users, server in its own process"
        )
        for use_batch in (False, True):
            rate = end_to_end(url, n, use_batch=use_batch, repeats=repeats)
            mode = "Batch API" if use_batch else "HTTP V2"
            print(f"- {mode}: {rate.show('events/s')}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    main(parser.parse_args().quick)

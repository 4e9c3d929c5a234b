"""What ``AmplitudeHandler`` costs the caller: ns per ``logger.info`` against a NullHandler.

Each call is timed alone (``perf_counter_ns`` around one ``logger.info`` with an ``extra``) on two
loggers, one with only a NullHandler, one with only an AmplitudeHandler whose client delivers to
a local Amplitude-compatible server in another process (so the server does not compete for this
process's GIL, as Amplitude would not). The loggers take turns call by call, so both see the
same machine: it is shared, and absolute times move by 2x. Two loads:

- paced: 1000 calls per second in all, the load of a busy service; the library's target is a
  median of at most 1.2x the NullHandler's;
- saturated: calls back to back, while the client's threads deliver in the background.

Run: ``.venv/bin/python -m benchmarks.handler_bench [--quick] [--rate N]``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time

from otel_amplitude import Client, Settings
from otel_amplitude._handler import AmplitudeHandler

from ._harness import server_process

USERS = [f"user-{n:04d}" for n in range(100)]


def logger_with(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def timed_calls(loggers: list[logging.Logger], calls: int, rate: float | None) -> list[list[int]]:
    """ns of each ``logger.info``, the loggers taking turns, ``rate`` calls/s (None: no pause)."""
    timings: list[list[int]] = [[] for _ in loggers]
    interval = 1.0 / rate if rate else 0.0
    next_call = time.perf_counter()
    clock = time.perf_counter_ns
    for n in range(calls):
        user = USERS[n % len(USERS)]
        for logger, own in zip(loggers, timings, strict=True):
            if rate:
                next_call += interval
                pause = next_call - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            started = clock()
            logger.info("report_exported", extra={"user_id": user, "format": "pdf", "pages": n})
            own.append(clock() - started)
    return timings


def median_p99(timings: list[int]) -> tuple[float, float]:
    ordered = sorted(timings)
    return statistics.median(ordered), float(ordered[int(len(ordered) * 0.99)])


def main(quick: bool = False, argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: prove it runs")
    parser.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args(argv if argv is not None else [])
    quick = quick or args.quick
    paced_calls, saturated_calls = (200, 2_000) if quick else (5_000, 100_000)

    with server_process() as url:
        client = Client(Settings(api_key="bench-api-key", server_url=url))
        loggers = [
            logger_with("bench.null", logging.NullHandler()),
            logger_with("bench.amplitude", AmplitudeHandler(client)),
        ]
        timed_calls(loggers, 1_000, None)  # warm up: first-use work, the client's threads
        client.flush(10)

        print(f"## AmplitudeHandler: ns per logger.info (Python {sys.version.split()[0]})")
        print(f"{'load':<20}{'handler':<18}{'median':>10}{'p99':>10}")
        for load, calls, rate in (
            (f"paced {args.rate:g}/s", paced_calls, args.rate),
            ("saturated", saturated_calls, None),
        ):
            null, ours = (median_p99(t) for t in timed_calls(loggers, calls, rate))
            print(f"{load:<20}{'NullHandler':<18}{null[0]:>10,.0f}{null[1]:>10,.0f}")
            print(f"{load:<20}{'AmplitudeHandler':<18}{ours[0]:>10,.0f}{ours[1]:>10,.0f}")
            print(f"{load:<20}{'ratio':<18}{ours[0] / null[0]:>9.2f}x{ours[1] / null[1]:>9.2f}x")
            client.flush(30)
        client.shutdown()
        stats = client.stats()
        print(
            f"client: submitted {stats['submitted']:,}, accepted {stats['accepted']:,}, "
            f"dropped {stats['dropped']:,} {stats['dropped_by_reason']}"
        )


if __name__ == "__main__":
    main(argv=sys.argv[1:])

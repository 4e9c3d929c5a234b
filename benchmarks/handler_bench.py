"""What ``AmplitudeHandler`` costs the caller: ns per ``logger.info`` against a NullHandler.

Each call is timed alone (``perf_counter_ns`` around one ``logger.info`` with an ``extra``), with
only a NullHandler on the logger, then with only an AmplitudeHandler whose client delivers to a
local Amplitude-compatible server run in another process (so its work does not compete for this
process's GIL, as Amplitude's would not). Two loads:

- paced: 1000 calls per second, the load of a busy service; the library's target is a median of
  at most 1.2x the NullHandler's;
- saturated: calls back to back, while the client's threads deliver in the background.

Run: ``.venv/bin/python benchmarks/handler_bench.py [--paced-calls N] [--saturated-calls N]``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from otel_amplitude import Client, Settings
from otel_amplitude._handler import AmplitudeHandler

USERS = [f"user-{n:04d}" for n in range(100)]


@contextmanager
def local_server() -> Iterator[str]:
    """A local Amplitude-compatible server in a child process; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_amplitude.testing"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        process.terminate()
        process.wait(10)


def run(logger: logging.Logger, calls: int, rate: float | None) -> list[int]:
    """ns per ``logger.info`` call, paced at ``rate`` calls per second (None: back to back)."""
    timings = []
    interval = 1.0 / rate if rate else 0.0
    next_call = time.perf_counter()
    clock = time.perf_counter_ns
    for n in range(calls):
        if rate:
            next_call += interval
            pause = next_call - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        user = USERS[n % len(USERS)]
        start = clock()
        logger.info("report_exported", extra={"user_id": user, "format": "pdf", "pages": n})
        timings.append(clock() - start)
    return timings


def summary(timings: list[int]) -> tuple[float, float]:
    """(median, p99) in ns."""
    ordered = sorted(timings)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--paced-calls", type=int, default=5000)
    parser.add_argument("--saturated-calls", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args()

    logger = logging.getLogger("bench")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    null = logging.NullHandler()

    with local_server() as url:
        client = Client(Settings(api_key="bench-api-key", server_url=url))
        amplitude = AmplitudeHandler(client)
        # Warm both paths (imports, first-use resolution, the client's threads).
        for handler in (null, amplitude):
            logger.handlers = [handler]
            run(logger, 2000, None)
        client.flush(10)

        print(f"ns per logger.info (Python {sys.version.split()[0]})")
        print(f"{'load':<22}{'handler':<18}{'median':>10}{'p99':>10}")
        for load, calls, rate in (
            (f"paced {args.rate:g}/s", args.paced_calls, args.rate),
            ("saturated", args.saturated_calls, None),
        ):
            results = {}
            for label, handler in (("NullHandler", null), ("AmplitudeHandler", amplitude)):
                logger.handlers = [handler]
                results[label] = summary(run(logger, calls, rate))
                median, p99 = results[label]
                print(f"{load:<22}{label:<18}{median:>10.0f}{p99:>10.0f}")
            client.flush(30)
            base, ours = results["NullHandler"], results["AmplitudeHandler"]
            print(f"{load:<22}{'ratio':<18}{ours[0] / base[0]:>10.2f}x{ours[1] / base[1]:>9.2f}x")
        logger.handlers = []
        client.shutdown()
        stats = client.stats()
        print(
            f"client: submitted {stats['submitted']}, accepted {stats['accepted']}, "
            f"dropped {stats['dropped']} {stats['dropped_by_reason']}"
        )


if __name__ == "__main__":
    main()

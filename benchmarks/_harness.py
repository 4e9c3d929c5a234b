"""Shared benchmark plumbing: a server in its own process, repeated timing, ratio reporting.

Every figure is a median over repeats with min and max, and comparisons are ratios against a
baseline measured in the same run: this machine is shared, and absolute times move by 2x.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@contextmanager
def server_process(api_keys: tuple[str, ...] = ()) -> Iterator[str]:
    """Run ``python -m otel_amplitude.testing`` in its own process; yield its URL.

    ``api_keys``: the only keys it accepts (any non-empty key when empty).
    """
    keys = [arg for key in api_keys for arg in ("--api-key", key)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_amplitude.testing", "--port", "0", *keys],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        if not url.startswith("http://"):
            raise RuntimeError(f"server did not start: {line!r}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@dataclass(frozen=True)
class Figure:
    """A median with its spread, in the unit of the measurement."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, samples: list[float]) -> Figure:
        return cls(statistics.median(samples), min(samples), max(samples))

    def show(self, unit: str, scale: float = 1.0, digits: int = 0) -> str:
        return (
            f"{self.median * scale:,.{digits}f} {unit} "
            f"(min {self.low * scale:,.{digits}f}, max {self.high * scale:,.{digits}f})"
        )


def per_call_ns(fn: Callable[[int], object], n: int, repeats: int) -> Figure:
    """Nanoseconds per call of ``fn(i)`` over ``n`` calls, ``repeats`` times."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        for i in range(n):
            fn(i)
        samples.append((time.perf_counter_ns() - started) / n)
    return Figure.of(samples)

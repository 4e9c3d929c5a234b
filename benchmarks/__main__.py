"""Run the benchmark suite: ``python -m benchmarks`` (full) or ``python -m benchmarks --quick``.

``--quick`` proves every benchmark runs (seconds; CI uses it) and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import platform
import sys

from . import delivery_bench, soak


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes: prove the suite runs")
    args = parser.parse_args()
    print(f"# otel-amplitude benchmarks ({'quick' if args.quick else 'full'})")
    print(f"Python {platform.python_version()} on {platform.machine()}, {platform.system()}")
    delivery_bench.main(quick=args.quick)
    result = soak.run_soak(events=5_000 if args.quick else 50_000, users=50 if args.quick else 500)
    print("## Soak: 20 % of requests failing, 3 users throttled")
    print(
        f"- {result.events:,} events from {result.users} devices: exactly once "
        f"{result.exactly_once}, per-device order {result.in_order}, counters conserved "
        f"{result.conserved}; {result.requests} requests ({result.failed_requests} failed, "
        f"{result.throttled_requests} throttled), {result.retried:,} events resent, "
        f"{result.duplicates_absorbed:,} duplicates absorbed by insert_id; {result.seconds:.1f} s"
    )
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())

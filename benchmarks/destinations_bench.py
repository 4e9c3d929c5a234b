"""Isolation and fairness between destinations (issue #7): do B and C keep flowing while A is
broken or flooded?

Three tenants, A, B and C, each its own Amplitude project (API key) on one local server in its
own process. B and C each send the same events in every setup; what is measured is how fast all
of B's and C's events are accepted (events/s, from their first emit to the last acceptance):

- ``alone``: only B and C send;
- ``A broken``: A's key is refused (400 Invalid API key) and A sends as much as B and C
  together; its lane is held, its events kept within its share of the buffers;
- ``A flooded``: A's backlog of 100 times B's events is in transit before B and C emit.

Ratios against ``alone`` in the same run, setups alternating; median of repeats with min and
max. Run: ``python -m benchmarks.destinations_bench [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import time
from dataclasses import dataclass

from otel_amplitude import Client, Destination, Settings

from ._harness import Figure, server_process

KEY_A_REFUSED = "tenant-a-key-refused-01"
KEY_A = "tenant-a-key-accepted-1"
KEY_B = "tenant-b-key-accepted-1"
KEY_C = "tenant-c-key-accepted-1"
SETUPS = ("alone", "A broken", "A flooded")


@dataclass(frozen=True)
class Run:
    rate: float  # B's and C's events per second
    seconds: float  # until every event of B and C was accepted
    a_accepted: int  # A's events accepted by then
    a_seconds: float  # until A's backlog was accepted too (flooded; 0 otherwise)
    problem: str


def one_run(url: str, setup: str, per_tenant: int, users: int, timeout: float) -> Run:
    destinations = {
        "acme": Destination("acme", KEY_A_REFUSED if setup == "A broken" else KEY_A),
        "globex": Destination("globex", KEY_B),
        "initech": Destination("initech", KEY_C),
    }
    settings = Settings(
        server_url=url,
        max_buffered_events=per_tenant * 110 + 10_000,
        # Broken: A keeps what it may (twice B's volume here). Flooded: A's whole backlog fits,
        # so that it is a real backlog and not overflow.
        destination_max_buffered_events=per_tenant * (2 if setup == "A broken" else 101),
        partition_capacity=1_000_000,
        shutdown_timeout_ms=500,
    )
    client = Client(settings, destinations=destinations, name="destinations-bench")
    try:
        track = client.track
        if setup == "A broken":
            for i in range(per_tenant * 2):
                track("report_exported", user_id=f"a-user-{i % users:06d}", tenant="acme")
        elif setup == "A flooded":
            for i in range(per_tenant * 100):
                track("report_exported", user_id=f"a-user-{i % users:06d}", tenant="acme")
        gc.collect()
        started = time.perf_counter()
        for i in range(per_tenant):
            user = f"user-{i % users:06d}"
            track("report_exported", user_id=user, tenant="globex")
            track("report_exported", user_id=user, tenant="initech")
        client.flush(0)
        deadline = started + timeout

        def done() -> int:
            per = client.stats()["destinations"]
            return sum(per[name]["accepted"] for name in ("globex", "initech") if name in per)

        while done() < 2 * per_tenant and time.perf_counter() < deadline:
            time.sleep(0.001)
        elapsed = time.perf_counter() - started
        accepted = done()
        acme = client.stats()["destinations"].get("acme")
        a_accepted = acme["accepted"] if acme is not None else 0
        a_seconds = 0.0
        if setup == "A flooded":
            while (
                client.stats()["destinations"]["acme"]["accepted"] < per_tenant * 100
                and time.perf_counter() < deadline
            ):
                time.sleep(0.005)
            a_seconds = time.perf_counter() - started
    finally:
        client.shutdown(0.5)
    if accepted != 2 * per_tenant:
        problem = f"{setup}: B and C accepted {accepted:,} of {2 * per_tenant:,}"
        return Run(0.0, elapsed, a_accepted, a_seconds, problem)
    return Run(2 * per_tenant / elapsed, elapsed, a_accepted, a_seconds, "")


def measure(per_tenant: int, users: int, repeats: int, timeout: float) -> tuple[str, bool]:
    samples: dict[str, list[float]] = {setup: [] for setup in SETUPS}
    seconds: dict[str, list[float]] = {setup: [] for setup in SETUPS}
    a_share: dict[str, list[float]] = {setup: [] for setup in SETUPS}
    a_done: list[float] = []
    problems: list[str] = []
    with server_process((KEY_A, KEY_B, KEY_C)) as url:
        for repeat in range(repeats):
            order = SETUPS if repeat % 2 == 0 else tuple(reversed(SETUPS))
            for setup in order:
                run = one_run(url, setup, per_tenant, users, timeout)
                samples[setup].append(run.rate)
                seconds[setup].append(run.seconds)
                a_total = per_tenant * (100 if setup == "A flooded" else 2)
                a_share[setup].append(run.a_accepted / a_total)
                if run.a_seconds:
                    a_done.append(run.a_seconds)
                if run.problem:
                    problems.append(run.problem)
    alone = Figure.of(samples["alone"])
    lines = [
        f"B and C: {per_tenant:,} events each from {users:,} users; A: {per_tenant * 2:,} events"
        f" when broken, {per_tenant * 100:,} when flooded; {repeats} repeats, alternating.",
        "",
        "| Setup | B and C events/s | vs alone | B and C all accepted after | A's events"
        " accepted by then |",
        "|---|---|---|---|---|",
    ]
    for setup in SETUPS:
        figure = Figure.of(samples[setup])
        versus = "-" if setup == "alone" else f"{figure.median / alone.median:.2f}x"
        took = Figure.of(seconds[setup]).show("ms", scale=1000.0)
        share = "-" if setup == "alone" else f"{Figure.of(a_share[setup]).median:.0%}"
        lines.append(
            f"| {setup} | {figure.show('', digits=0).strip()} | {versus} | {took} | {share} |"
        )
    if a_done:
        lines.append("")
        lines.append(
            f"Flooded: A's whole backlog was accepted after {Figure.of(a_done).show('ms', 1000.0)}"
            " from B's first emit: served first come, first served, B and C would have waited"
            " that long."
        )
    lines.extend(f"- problem: {p}" for p in problems)
    return "\n".join(lines), not problems


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.destinations_bench")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: prove it runs")
    args = parser.parse_args()
    if args.quick:
        text, ok = measure(per_tenant=500, users=50, repeats=1, timeout=30.0)
    else:
        text, ok = measure(per_tenant=5_000, users=1_000, repeats=5, timeout=120.0)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

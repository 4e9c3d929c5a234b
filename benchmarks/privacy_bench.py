"""Privacy costs: the consent gate, the PII scrubber, and how fast an opt-out crosses a fleet.

``python -m benchmarks.privacy_bench`` (``--quick``: tiny sizes, proves it runs). Asserts
nothing. Figures are medians over repeats with min and max; each comparison is a ratio against
a baseline measured in the same run:

- the gate as ``Client.submit`` runs it, for an event of a user who did not opt out, with
  nothing recorded (one attribute check), 1 and 1,000,000 opted-out users;
- ``Client.submit`` end to end with nothing recorded and with 1,000,000 opted-out users;
- the scrubber on a typical 5-property event, ``redact`` and ``hash`` against ``off``;
- an opt-out made by one client until another sees it: through Redis (a ``redis-server`` is
  started when installed) and through a shared SQLite file.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from otel_amplitude import Client, Settings
from otel_amplitude._consent import Gate
from otel_amplitude._consent_store import Snapshot, State
from otel_amplitude._event import Event
from otel_amplitude._pii import Scrubber
from otel_amplitude._validate import make_event

from ._harness import Figure, per_call_ns

SALT = "a-benchmark-salt-of-32-characters"


def gate_check(gate: Gate, event: Event) -> Callable[[int], object]:
    """The two lines ``Client.submit`` runs."""

    def check(_: int) -> object:
        return gate.active and gate.refuse(event)

    return check


def opted_out(count: int) -> dict[str, State]:
    return {f"user-{n:07d}": "opted_out" for n in range(count)}


def bench_gate(n: int, repeats: int) -> list[str]:
    event = make_event("Viewed", user_id="user-active", event_properties={"plan": "pro"})
    rows: list[tuple[str, Figure]] = []
    for label, count in (
        ("nothing recorded", 0),
        ("1 opted out", 1),
        ("1,000,000 opted out", 10**6),
    ):
        gate = Gate(opt_in=False)
        gate.users = opted_out(count)
        gate.refresh()
        rows.append((label, per_call_ns(gate_check(gate, event), n, repeats)))
    base = rows[0][1].median
    lines = ["gate check (an event of a user who did not opt out):"]
    for label, figure in rows:
        lines.append(f"  {label:<22} {figure.show('ns', digits=0)}  x{figure.median / base:.1f}")
    blocked = Gate(opt_in=False)
    blocked.users = opted_out(10**6)
    blocked.refresh()
    refused = make_event("Viewed", user_id="user-0000042")
    figure = per_call_ns(gate_check(blocked, refused), n, repeats)
    lines.append(f"  {'an opted-out user':<22} {figure.show('ns', digits=0)}")
    return lines


def bench_submit(n: int, repeats: int) -> list[str]:
    lines = ["Client.submit end to end (delivery off; the dispatcher drains in the background):"]
    figures = []
    for label, count in (("nothing recorded", 0), ("1,000,000 opted out", 10**6)):
        client = Client(Settings(enabled=False))
        try:
            if count:
                users = opted_out(count)
                client.consent.update(lambda users=users: Snapshot(users, {}, 1))  # type: ignore[misc]
            event = make_event("Viewed", user_id="user-active")
            client.submit(event)  # start the threads outside the timing
            figure = per_call_ns(submitting(client, event), n, repeats)
        finally:
            client.shutdown(5)
        figures.append(figure)
        ratio = figure.median / figures[0].median
        lines.append(f"  {label:<22} {figure.show('ns', digits=0)}  x{ratio:.2f}")
    return lines


def submitting(client: Client, event: Event) -> Callable[[int], object]:
    def submit(_: int) -> object:
        client.submit(event)
        return None

    return submit


def typical_event(n: int = 0) -> Event:
    """Five properties: a word, an int, a float, a path and a code (``n`` varies the last two)."""
    return make_event(
        "Checkout Completed",
        user_id="user-123",
        event_properties={
            "plan": "pro",
            "items": 3,
            "total": 59.9,
            "path": f"/checkout/confirm/{n}" if n else "/checkout/confirm",
            "coupon": f"SPRING-{2024 + n}",
        },
    )


def bench_scrubber(n: int, repeats: int) -> list[str]:
    lines = ["scrubber on a typical 5-property event (dispatcher thread):"]
    rows = []
    for label, scrubber in (
        ("off (IP only)", Scrubber("off")),
        ("redact", Scrubber("redact", keys=Settings().pii_keys)),
        ("hash", Scrubber("hash", keys=Settings().pii_keys, salt=SALT)),
    ):
        event = typical_event()
        rows.append((label, per_call_ns(lambda _, s=scrubber, e=event: s.scrub(e), n, repeats)))  # type: ignore[misc]
    unique = [typical_event(n) for n in range(n)]  # values never seen before: no cache hit
    redact = Scrubber("redact", keys=Settings().pii_keys)
    rows.append(("redact, unique values", per_call_ns(lambda i: redact.scrub(unique[i]), n, 1)))
    base = rows[0][1].median
    for label, figure in rows:
        lines.append(f"  {label:<22} {figure.show('ns', digits=0)}  x{figure.median / base:.1f}")
    with_email = Scrubber("hash", salt=SALT)

    def hash_an_email(_: int) -> None:
        event = make_event("Viewed", user_id="user-1", event_properties={"who": "a@b.example"})
        with_email.scrub(event)

    make_only = per_call_ns(
        lambda _: make_event("Viewed", user_id="user-1", event_properties={"who": "a@b.example"}),
        n // 10,
        repeats,
    )
    hashed = per_call_ns(hash_an_email, n // 10, repeats)
    lines.append(
        f"  {'hash one email value':<22} {hashed.median - make_only.median:,.0f} ns"
        " (event creation subtracted)"
    )
    return lines


def latencies(make: Callable[[], Client], rounds: int) -> list[float]:
    here, there = make(), make()
    there.track("Warmed Up", user_id="user-warm-up")  # a running client listens to the store
    samples = []
    try:
        for n in range(rounds):
            user = f"user-bench-{n}"
            started = time.perf_counter()
            here.consent.opt_out(user)
            while there.consent.status(user) != "opted_out":
                time.sleep(0.0002)
            samples.append(time.perf_counter() - started)
    finally:
        here.shutdown(5)
        there.shutdown(5)
    return samples


def show_latencies(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"  {label:<22} median {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f}"
        f" ms, max {ordered[-1] * 1000:.2f} ms over {len(ordered)} opt-outs"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bench_propagation(rounds: int) -> list[str]:
    lines = ["an opt-out made by one client until another client sees it:"]
    binary = shutil.which("redis-server")
    if binary is None:
        lines.append("  redis                  skipped: redis-server is not installed")
    else:
        port = free_port()
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        try:
            url = f"redis://127.0.0.1:{port}/0"
            _wait_for_redis(port)
            samples = latencies(
                lambda: Client(Settings(enabled=False, consent_redis_url=url)), rounds
            )
            lines.append(show_latencies("redis (pub/sub)", samples))
        finally:
            proc.kill()
            proc.wait(10)
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "consent.db")
        samples = latencies(
            lambda: Client(Settings(enabled=False, consent_db=db)), max(5, rounds // 10)
        )
        lines.append(show_latencies("sqlite (0.25 s poll)", samples))
    return lines


def _wait_for_redis(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("redis-server did not start")


def run(quick: bool = False) -> str:
    n, repeats = (2_000, 3) if quick else (200_000, 7)
    sections: list[Any] = [
        bench_gate(n, repeats),
        bench_submit(n, repeats),
        bench_scrubber(n // 4, repeats),
        bench_propagation(20 if quick else 200),
    ]
    return "\n".join(line for section in sections for line in section)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.privacy_bench")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: prove it runs")
    print(run(parser.parse_args().quick))


if __name__ == "__main__":
    main()

"""The delivery soak: many users, a fifth of requests failing, a few users throttled.

Every event must arrive exactly once after deduplication, in order per device, with the client's
counters conserved. Used by the benchmark runner (full size) and by the test suite (smaller).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from otel_amplitude import Client, Settings, Stats
from otel_amplitude.testing import AmplitudeServer, ManualClock


@dataclass(frozen=True)
class SoakResult:
    events: int
    users: int
    fault_rate: float
    throttled_users: int
    stored: int
    exactly_once: bool
    in_order: bool
    conserved: bool
    duplicates_absorbed: int
    requests: int
    failed_requests: int
    throttled_requests: int
    retried: int
    throttled_events: int
    seconds: float
    stats: Stats

    @property
    def ok(self) -> bool:
        return self.exactly_once and self.in_order and self.conserved


def run_soak(
    *,
    events: int = 50_000,
    users: int = 500,
    fault_rate: float = 0.2,
    throttled: int = 3,
    seed: int = 7,
    throttle_for: float = 65.0,
    batch: int = 100,
) -> SoakResult:
    """Deliver ``events`` from ``users`` devices through faults; throttled ids recover later."""
    per_user = events // users
    clock = ManualClock()
    started = time.perf_counter()
    with AmplitudeServer() as server:
        server.faults.random(rate=fault_rate, seed=seed)
        throttled_ids = [f"user-{u:04d}" for u in range(throttled)]
        server.faults.throttle(users=throttled_ids)
        client = Client(
            Settings(
                api_key="soak-api-key",
                server_url=server.url,
                max_retries=1000,
                max_buffered_events=events + 1,
                partition_capacity=per_user + 1,
                flush_max_events=batch,
                senders=4,
            ),
            clock=clock,
        )
        ids = set()
        for seq in range(per_user):
            for u in range(users):
                ids.add(
                    client.track(
                        "soak",
                        user_id=f"user-{u:04d}",
                        device_id=f"device-{u:04d}",
                        event_properties={"seq": seq},
                    )
                )
        throttle_started = clock.monotonic()
        deadline = time.monotonic() + 300
        while client.stats()["accepted"] < events:
            if time.monotonic() > deadline:
                raise RuntimeError(f"soak did not finish: {client.stats()}")
            if (
                throttled_ids
                and clock.monotonic() - throttle_started >= throttle_for
                and sum(1 for r in server.requests if r.status == 429) >= 2
            ):
                # Let the throttled users through once they were refused (and paused) twice.
                server.faults.unthrottle()
                throttled_ids = []
            client.flush(timeout=0.05)
            clock.advance(5.0)
        client.shutdown(timeout=5)
        stats = client.stats()
        stored = server.events
        requests = server.requests
        duplicates = server.duplicates

    stored_ids = [e["insert_id"] for e in stored]
    in_order = True
    last: dict[str, int] = {}
    for event in stored:
        seq = event["event_properties"]["seq"]
        if seq < last.get(event["device_id"], -1):
            in_order = False
        last[event["device_id"]] = seq
    conserved = stats["submitted"] == (
        stats["accepted"]
        + stats["rejected"]
        + stats["dropped"]
        + stats["dead_lettered"]
        + stats["buffered"]
        + stats["in_flight"]
    )
    return SoakResult(
        events=events,
        users=users,
        fault_rate=fault_rate,
        throttled_users=throttled,
        stored=len(stored),
        exactly_once=len(stored_ids) == len(set(stored_ids)) == events and set(stored_ids) == ids,
        in_order=in_order,
        conserved=conserved and stats["submitted"] == stats["accepted"] == events,
        duplicates_absorbed=duplicates,
        requests=len(requests),
        failed_requests=sum(1 for r in requests if r.fault is not None and r.status != 429),
        throttled_requests=sum(1 for r in requests if r.status == 429),
        retried=stats["retried"],
        throttled_events=stats["throttled"],
        seconds=time.perf_counter() - started,
        stats=stats,
    )


if __name__ == "__main__":
    result = run_soak()
    print(result)

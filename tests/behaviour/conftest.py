"""Fixtures for end-to-end delivery tests: a real local server, clients on an injected clock.

Every client made here is shut down after its test, and the conservation invariant is checked
on its final counters: each submitted event ended in exactly one state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otel_amplitude import Client, Settings
from otel_amplitude.testing import AmplitudeServer, ManualClock

API_KEY = "test-api-key-0001"


def assert_conserved(stats: Any) -> None:
    total = (
        stats["accepted"]
        + stats["rejected"]
        + stats["dropped"]
        + stats["dead_lettered"]
        + stats["buffered"]
        + stats["in_flight"]
    )
    assert stats["submitted"] == total, stats
    assert stats["rejected"] == sum(stats["rejected_by_reason"].values())
    assert stats["dropped"] == sum(stats["dropped_by_reason"].values())


@pytest.fixture
def server() -> Iterator[AmplitudeServer]:
    with AmplitudeServer() as running:
        yield running


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


MakeClient = Callable[..., Client]


@pytest.fixture
def make_client(server: AmplitudeServer, clock: ManualClock) -> Iterator[MakeClient]:
    """Build clients against the local server; defaults suit tests (small batches, 4 senders)."""
    clients: list[Client] = []

    def make(**overrides: Any) -> Client:
        options: dict[str, Any] = {
            "api_key": API_KEY,
            "server_url": server.url,
            "flush_interval_ms": 1000,
            "flush_max_events": 100,
            "timeout_ms": 2000,
        }
        on_dead_letter = overrides.pop("on_dead_letter", None)
        use_clock = overrides.pop("clock", clock)
        destinations = overrides.pop("destinations", None)
        options.update(overrides)
        client = Client(
            Settings(**options),
            clock=use_clock,
            on_dead_letter=on_dead_letter,
            destinations=destinations,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.shutdown(timeout=2.0)
        assert_conserved(client.stats())


def drive(
    client: Client,
    clock: ManualClock,
    until: Callable[[], bool],
    *,
    step: float = 5.0,
    real_timeout: float = 20.0,
) -> None:
    """Flush and move the clock on until ``until()`` holds: retries and pauses pass in fake time."""
    deadline = time.monotonic() + real_timeout
    while not until():
        assert time.monotonic() < deadline, "delivery did not finish in time"
        client.flush(timeout=0.05)
        clock.advance(step)


def by_device(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        grouped.setdefault(event.get("device_id") or event["user_id"], []).append(event)
    return grouped


def assert_in_order(events: list[dict[str, Any]]) -> None:
    """Each device's (or user's) events arrived in the order of their ``seq`` property."""
    for key, evs in by_device(events).items():
        seqs = [e["event_properties"]["seq"] for e in evs]
        assert seqs == sorted(seqs), f"order broken for {key}: {seqs[:20]}"

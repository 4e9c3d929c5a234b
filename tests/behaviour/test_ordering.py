"""Per-device order and exactly-once delivery under random faults, explored by hypothesis."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_amplitude import Client, Settings
from otel_amplitude.testing import AmplitudeServer, ManualClock

from .conftest import API_KEY, assert_conserved, assert_in_order, drive


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    rate=st.sampled_from([0.1, 0.3, 0.5]),
    devices=st.integers(min_value=1, max_value=8),
    per_device=st.integers(min_value=1, max_value=40),
    batch=st.sampled_from([1, 7, 50]),
    senders=st.integers(min_value=1, max_value=4),
)
def test_each_device_keeps_its_order_and_every_event_arrives_once(
    seed: int, rate: float, devices: int, per_device: int, batch: int, senders: int
) -> None:
    clock = ManualClock()
    with AmplitudeServer() as server:
        server.faults.random(rate=rate, seed=seed)
        client = Client(
            Settings(
                api_key=API_KEY,
                server_url=server.url,
                flush_max_events=batch,
                senders=senders,
                max_retries=1000,
                timeout_ms=2000,
            ),
            clock=clock,
        )
        ids = []
        for seq in range(per_device):
            for d in range(devices):
                ids.append(
                    client.track(
                        "step",
                        device_id=f"device-{d:03d}",
                        user_id=f"user-{d % 3:03d}",
                        event_properties={"seq": seq},
                    )
                )
        total = devices * per_device
        drive(client, clock, lambda: client.stats()["accepted"] == total, step=30.0)
        client.shutdown(timeout=1)

        assert sorted(e["insert_id"] for e in server.events) == sorted(ids)
        assert_in_order(server.events)
        assert_conserved(client.stats())

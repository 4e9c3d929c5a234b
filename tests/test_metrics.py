"""The metrics observer: what each instrument reports, per client, through a real SDK reader."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

from otel_amplitude._metrics import INSTRUMENTS, METER_NAME, MetricsObserver
from otel_amplitude._stats import Stats

from .test_health import snapshot


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[reader])
    yield provider
    provider.shutdown()


def collect(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """Metric name -> [(attributes, value or histogram point)] of one collection."""
    points: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    data = reader.get_metrics_data()
    if data is None:  # nothing to report
        return points
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            assert scope_metrics.scope.name == METER_NAME
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    value = point.value if isinstance(point, NumberDataPoint) else point
                    points.setdefault(metric.name, []).append((dict(point.attributes or {}), value))
    return points


def test_every_instrument_is_named_in_semantic_convention_style():
    for instrument in INSTRUMENTS:
        assert instrument.name.startswith("otel_amplitude.")
        assert instrument.name == instrument.name.lower()
        assert instrument.unit in ("s", "{event}", "{partition}", "{destination}")
        assert instrument.kind in ("counter", "updowncounter", "histogram")
        assert instrument.description.endswith(".")
        assert "client" in instrument.attributes
        assert "endpoint" in instrument.attributes
    assert len({i.name for i in INSTRUMENTS}) == len(INSTRUMENTS)


def test_observable_instruments_report_the_stats_with_reasons(
    provider: MeterProvider, reader: InMemoryMetricReader
):
    stats = snapshot(
        submitted=20,
        accepted=10,
        rejected=3,
        rejected_by_reason={"invalid_field:time": 1, "forbidden": 2},
        dropped=4,
        dropped_by_reason={"overflow": 4},
        dead_lettered=1,
        dead_lettered_by_reason={"retries_exhausted": 1},
        buffered=2,
        retried=7,
        throttled=5,
        paused_partitions=1,
        destination_paused=True,
    )
    observer = MetricsObserver(
        lambda: stats, name="checkout", endpoint="batch", meter_provider=provider
    )

    points = collect(reader)

    base = {"client": "checkout", "endpoint": "batch"}
    assert points["otel_amplitude.event.submitted"] == [(base, 20)]
    assert points["otel_amplitude.event.accepted"] == [(base, 10)]
    assert sorted(points["otel_amplitude.event.rejected"], key=str) == sorted(
        [({**base, "reason": "invalid_field:time"}, 1), ({**base, "reason": "forbidden"}, 2)],
        key=str,
    )
    assert points["otel_amplitude.event.dropped"] == [({**base, "reason": "overflow"}, 4)]
    assert points["otel_amplitude.event.dead_lettered"] == [
        ({**base, "reason": "retries_exhausted"}, 1)
    ]
    assert points["otel_amplitude.event.retried"] == [(base, 7)]
    assert points["otel_amplitude.event.throttled"] == [(base, 5)]
    assert points["otel_amplitude.event.buffered"] == [(base, 2)]
    assert points["otel_amplitude.event.in_flight"] == [(base, 0)]
    assert points["otel_amplitude.partition.paused"] == [(base, 1)]
    assert points["otel_amplitude.destination.paused"] == [(base, 1)]
    observer.close()


def test_histograms_record_request_durations_by_outcome_and_the_oldest_event_latency(
    provider: MeterProvider, reader: InMemoryMetricReader
):
    observer = MetricsObserver(
        snapshot, name="default", endpoint="httpapi", meter_provider=provider
    )

    observer.request_done("200", 0.02, 10)
    observer.request_done("200", 0.04, 10)
    observer.request_done("timeout", 10.0, 10)
    observer.delivered(2.0)

    points = collect(reader)
    durations = {p[0]["outcome"]: p[1] for p in points["otel_amplitude.request.duration"]}
    assert durations["200"].count == 2
    assert durations["200"].sum == pytest.approx(0.06)
    assert durations["timeout"].count == 1
    [(attributes, delivery)] = points["otel_amplitude.delivery.duration"]
    assert attributes == {"client": "default", "endpoint": "httpapi"}
    assert (delivery.count, delivery.max) == (1, 2.0)
    assert 1.0 in delivery.explicit_bounds
    assert 30.0 in delivery.explicit_bounds
    observer.close()


def test_clients_share_instruments_and_are_told_apart_by_name(
    provider: MeterProvider, reader: InMemoryMetricReader
):
    observers = [
        MetricsObserver(
            lambda: snapshot(submitted=1), name="a", endpoint="httpapi", meter_provider=provider
        ),
        MetricsObserver(
            lambda: snapshot(submitted=2), name="b", endpoint="httpapi", meter_provider=provider
        ),
        MetricsObserver(
            lambda: snapshot(submitted=4), name="b", endpoint="httpapi", meter_provider=provider
        ),
    ]

    submitted = {
        attributes["client"]: value
        for attributes, value in collect(reader)["otel_amplitude.event.submitted"]
    }

    assert submitted == {"a": 1, "b": 6}  # clients of one name add up
    for observer in observers:
        observer.close()


def test_a_closed_observer_is_no_longer_reported(
    provider: MeterProvider, reader: InMemoryMetricReader
):
    observer = MetricsObserver(snapshot, name="gone", endpoint="httpapi", meter_provider=provider)
    observer.close()

    assert "otel_amplitude.event.submitted" not in collect(reader)


def test_a_failing_stats_read_hides_no_other_client(
    provider: MeterProvider, reader: InMemoryMetricReader
):
    def broken() -> Stats:
        raise RuntimeError("boom")

    bad = MetricsObserver(broken, name="bad", endpoint="httpapi", meter_provider=provider)
    good = MetricsObserver(
        lambda: snapshot(submitted=3), name="good", endpoint="httpapi", meter_provider=provider
    )

    assert collect(reader)["otel_amplitude.event.submitted"] == [
        ({"client": "good", "endpoint": "httpapi"}, 3)
    ]
    bad.close()
    good.close()


def test_a_meter_provider_set_after_the_client_was_made_receives_its_metrics():
    # The global provider can be set once per process: this runs in a fresh interpreter.
    program = textwrap.dedent(
        """
        import json
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from otel_amplitude import Client, Settings
        from otel_amplitude.testing import AmplitudeServer

        with AmplitudeServer() as server:
            client = Client(Settings(api_key="test-api-key-0001", server_url=server.url))
            client.track("before", user_id="user-00001")
            assert client.flush(5)
            reader = InMemoryMetricReader()
            provider = MeterProvider(metric_readers=[reader])
            metrics.set_meter_provider(provider)
            client.track("after", user_id="user-00002")
            assert client.flush(5)
            found = {}
            for rm in reader.get_metrics_data().resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        for point in metric.data.data_points:
                            value = getattr(point, "value", None)
                            found[metric.name] = value if value is not None else point.count
            client.shutdown()
            provider.shutdown()
        print(json.dumps(found))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["otel_amplitude.event.submitted"] == 2
    assert found["otel_amplitude.event.accepted"] == 2
    # Histograms record from the moment the provider is set: the second request only.
    assert found["otel_amplitude.request.duration"] == 1
    assert found["otel_amplitude.delivery.duration"] == 1


def test_destination_paused_has_one_data_point_per_destination(
    provider: MeterProvider, reader: InMemoryMetricReader
):
    def destination(paused: bool) -> dict[str, object]:
        return {"destination_paused": paused, "buffered": 0, "accepted": 0}

    stats = snapshot(
        destination_paused=True,
        destinations={"default": destination(False), "acme": destination(True)},
    )
    observer = MetricsObserver(
        lambda: stats, name="checkout", endpoint="httpapi", meter_provider=provider
    )

    points = collect(reader)

    base = {"client": "checkout", "endpoint": "httpapi"}
    assert sorted(points["otel_amplitude.destination.paused"], key=str) == sorted(
        [({**base, "destination": "default"}, 0), ({**base, "destination": "acme"}, 1)], key=str
    )
    observer.close()

"""The library's own metrics, through the OpenTelemetry metrics API.

Counts and levels are observable instruments read from ``Client.stats()`` when a metric reader
collects, so the event path pays nothing for them. The two histograms are fed by the dispatcher
(the :class:`~otel_amplitude._dispatcher.Observer` hooks): one measurement per HTTP exchange and
one per accepted request, never one per event (an SDK histogram ``record`` costs ~6 µs, which per
event would cost a busy service a third of a core).

Without a ``MeterProvider`` all of this is the API's no-op. The instruments are made on the
global meter provider's *proxy* meter when no provider is set yet, and the API moves them to the
provider the application sets later, so a client made before the SDK is configured still reports.

Several clients share one set of instruments per meter provider (the SDK keeps only the first
callback of an observable instrument created twice); each callback reports every live client,
told apart by the ``client`` attribute. Attributes are low-cardinality by construction: the
client's name, the endpoint kind, a reason, an outcome or a configured destination's name;
never an id, a key or a payload.
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation

from ._stats import Stats
from ._version import __version__

__all__ = ["INSTRUMENTS", "METER_NAME", "Instrument", "MetricsObserver"]

#: The instrumentation scope of every instrument.
METER_NAME = "otel_amplitude"

#: Request durations: from a loopback millisecond to a timed-out 10 s request.
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
#: Event age at delivery: the flush interval (1 s), retries (backoff up to 30 s), throttle pauses
#: (30 s and more) and long outages.
_DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

#: How long a snapshot read by one instrument's callback is reused by the next ones: the callbacks
#: of one collection run back to back, and should report one consistent snapshot.
_SNAPSHOT_REUSE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Instrument:
    """One of the library's metrics, described once: the docs and the tests read this table.

    ``kind`` is the instrument type; ``key`` the ``Stats`` field an observable one reports, and
    ``by_reason`` the ``Stats`` field that splits it by the ``reason`` attribute.
    """

    name: str
    kind: Literal["counter", "updowncounter", "histogram"]  # the first two are observable
    unit: str
    description: str
    key: str | None = None
    by_reason: str | None = None
    attributes: tuple[str, ...] = ("client", "endpoint")
    #: One data point per destination (``Stats["destinations"]``), when the stats have them.
    per_destination: bool = False


INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument(
        "otel_amplitude.event.submitted",
        "counter",
        "{event}",
        "Events handed to the client, including those it then dropped.",
        key="submitted",
    ),
    Instrument(
        "otel_amplitude.event.accepted",
        "counter",
        "{event}",
        "Events Amplitude accepted.",
        key="accepted",
    ),
    Instrument(
        "otel_amplitude.event.rejected",
        "counter",
        "{event}",
        "Events Amplitude refused for good (a 400 naming them, 403, too large), by reason.",
        key="rejected",
        by_reason="rejected_by_reason",
        attributes=("client", "endpoint", "reason"),
    ),
    Instrument(
        "otel_amplitude.event.dropped",
        "counter",
        "{event}",
        "Events not sent: no user or device, invalid, full buffer, over the daily quota, "
        "delivery disabled, after shutdown..., by reason.",
        key="dropped",
        by_reason="dropped_by_reason",
        attributes=("client", "endpoint", "reason"),
    ),
    Instrument(
        "otel_amplitude.event.dead_lettered",
        "counter",
        "{event}",
        "Events given up: retry budget exhausted, or still undelivered at the shutdown "
        "deadline, by reason.",
        key="dead_lettered",
        by_reason="dead_lettered_by_reason",
        attributes=("client", "endpoint", "reason"),
    ),
    Instrument(
        "otel_amplitude.event.retried",
        "counter",
        "{event}",
        "Times events were sent again: after a failure, a throttle pause or another event's "
        "rejection.",
        key="retried",
    ),
    Instrument(
        "otel_amplitude.event.throttled",
        "counter",
        "{event}",
        "Times events met a 429 naming their user or device.",
        key="throttled",
    ),
    Instrument(
        "otel_amplitude.event.buffered",
        "updowncounter",
        "{event}",
        "Events waiting in the client's buffers (not yet sent, or waiting for a retry).",
        key="buffered",
    ),
    Instrument(
        "otel_amplitude.event.in_flight",
        "updowncounter",
        "{event}",
        "Events in requests awaiting Amplitude's answer.",
        key="in_flight",
    ),
    Instrument(
        "otel_amplitude.partition.paused",
        "updowncounter",
        "{partition}",
        "User and device ids paused after a 429 named them.",
        key="paused_partitions",
    ),
    Instrument(
        "otel_amplitude.destination.paused",
        "updowncounter",
        "{destination}",
        "1 while a destination's delivery is paused because Amplitude refused its API key or"
        " URL, one data point per destination (``destination`` attribute: ``default``, or the"
        " tenant's name).",
        key="destination_paused",
        per_destination=True,
        attributes=("client", "endpoint", "destination"),
    ),
    Instrument(
        "otel_amplitude.request.duration",
        "histogram",
        "s",
        "Duration of one HTTP exchange with Amplitude, by outcome: the status code, or the "
        "failure (timeout, connection_reset, connection_refused, connection_error).",
        attributes=("client", "endpoint", "outcome"),
    ),
    Instrument(
        "otel_amplitude.delivery.duration",
        "histogram",
        "s",
        "End-to-end latency: from the creation of the oldest event of an accepted request to "
        "its acceptance. One measurement per accepted request.",
    ),
)

_BY_NAME = {instrument.name: instrument for instrument in INSTRUMENTS}


class _Shared:
    """The instruments of one meter provider, and the observers (clients) they report."""

    def __init__(self, meter: Meter) -> None:
        self._observers: weakref.WeakSet[MetricsObserver] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._snapshot: list[tuple[Mapping[str, str], Stats]] = []
        self._snapshot_at = -math.inf
        request = _BY_NAME["otel_amplitude.request.duration"]
        self.request_duration = meter.create_histogram(
            request.name,
            unit=request.unit,
            description=request.description,
            explicit_bucket_boundaries_advisory=_REQUEST_BUCKETS,
        )
        delivery = _BY_NAME["otel_amplitude.delivery.duration"]
        self.delivery_duration = meter.create_histogram(
            delivery.name,
            unit=delivery.unit,
            description=delivery.description,
            explicit_bucket_boundaries_advisory=_DELIVERY_BUCKETS,
        )
        first = True
        for instrument in INSTRUMENTS:
            if instrument.kind == "histogram":
                continue
            create = (
                meter.create_observable_counter
                if instrument.kind == "counter"
                else meter.create_observable_up_down_counter
            )
            create(
                instrument.name,
                callbacks=[self._callback(instrument, refresh=first)],
                unit=instrument.unit,
                description=instrument.description,
            )
            first = False

    def add(self, observer: MetricsObserver) -> None:
        with self._lock:
            self._observers.add(observer)

    def discard(self, observer: MetricsObserver) -> None:
        with self._lock:
            self._observers.discard(observer)

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._snapshot = []
        self._snapshot_at = -math.inf

    def _readings(self, refresh: bool) -> list[tuple[Mapping[str, str], Stats]]:
        """Every live client's attributes and stats, shared by the callbacks of one collection."""
        now = time.monotonic()
        with self._lock:
            if refresh or now - self._snapshot_at > _SNAPSHOT_REUSE_SECONDS:
                readings = []
                for observer in list(self._observers):
                    try:
                        readings.append((observer.attributes, observer.read()))
                    except Exception:  # noqa: BLE001, S112 - one broken client hides no other
                        continue
                self._snapshot = readings
                self._snapshot_at = now
            return self._snapshot

    def _callback(
        self, instrument: Instrument, *, refresh: bool
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        key = instrument.key
        by_reason = instrument.by_reason
        per_destination = instrument.per_destination
        assert key is not None

        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            # Clients of the same name add up: one data point per attribute set.
            totals: dict[tuple[tuple[str, str], ...], int] = {}
            for attributes, stats in self._readings(refresh):
                if by_reason is not None:
                    reasons: Mapping[str, int] = stats[by_reason]  # type: ignore[literal-required]
                    for reason, count in reasons.items():
                        point = (*attributes.items(), ("reason", reason))
                        totals[point] = totals.get(point, 0) + count
                elif per_destination and stats.get("destinations"):
                    for name, destination in stats["destinations"].items():
                        point = (*attributes.items(), ("destination", name))
                        value = int(destination[key])  # type: ignore[literal-required]
                        totals[point] = totals.get(point, 0) + value
                else:
                    point = tuple(attributes.items())
                    value = int(stats[key])  # type: ignore[literal-required]
                    totals[point] = totals.get(point, 0) + value
            return [Observation(value, dict(point)) for point, value in totals.items()]

        return observe


_global: _Shared | None = None
_by_provider: weakref.WeakKeyDictionary[MeterProvider, _Shared] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def _shared(meter_provider: MeterProvider | None) -> _Shared:
    """The instruments for ``meter_provider`` (None: the global one), made on first use."""
    global _global  # noqa: PLW0603 - one set of instruments per provider, by design
    with _registry_lock:
        if meter_provider is None:
            if _global is None:
                _global = _Shared(metrics.get_meter(METER_NAME, __version__))
            return _global
        shared = _by_provider.get(meter_provider)
        if shared is None:
            shared = _by_provider[meter_provider] = _Shared(
                meter_provider.get_meter(METER_NAME, __version__)
            )
        return shared


class MetricsObserver:
    """One client's metrics: the dispatcher's hooks record the histograms; callbacks read stats.

    ``read`` returns the client's stats (``Client.stats``). ``name`` and ``endpoint`` are the
    ``client`` and ``endpoint`` attributes of every data point.
    """

    def __init__(
        self,
        read: Callable[[], Stats],
        *,
        name: str,
        endpoint: str,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.read = read
        self.attributes: Mapping[str, str] = {"client": name, "endpoint": endpoint}
        self._outcomes: dict[str, Mapping[str, str]] = {}
        self._shared = _shared(meter_provider)
        self._shared.add(self)

    def request_done(self, outcome: str, seconds: float, events: int) -> None:  # noqa: ARG002
        """One HTTP exchange ended (dispatcher thread)."""
        attributes = self._outcomes.get(outcome)
        if attributes is None:
            attributes = self._outcomes[outcome] = {**self.attributes, "outcome": outcome}
        self._shared.request_duration.record(seconds, attributes)

    def delivered(self, oldest: float) -> None:
        """Events of one request were accepted: record the oldest one's latency."""
        self._shared.delivery_duration.record(oldest, self.attributes)

    def close(self) -> None:
        """Stop reporting this client."""
        self._shared.discard(self)


def _after_fork_in_child() -> None:
    global _registry_lock  # noqa: PLW0603 - a lock held at fork time is useless in the child
    _registry_lock = threading.Lock()
    if _global is not None:
        _global.after_fork()
    for shared in list(_by_provider.values()):
        shared.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

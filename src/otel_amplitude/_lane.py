"""A lane: one destination's share of the dispatcher.

Everything that must not leak from one Amplitude project to another lives here: its partitions
and ready queue, its throttled ids, its hold after a refused key, its rate limit, its share of
the buffers and its figures. The dispatcher owns the lanes and touches them under its lock.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from ._destinations import Destination
from ._sender import BATCH_MAX_BYTES, HTTPAPI_MAX_BYTES
from ._stats import Counters

if TYPE_CHECKING:
    from ._partition import Partition

__all__ = ["Lane", "TokenBucket"]


class TokenBucket:
    """At most ``rate`` a second on average, bursts of up to one second's worth."""

    __slots__ = ("_stamp", "_tokens", "rate")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self._tokens = max(1.0, rate)
        self._stamp = now

    def available(self, now: float) -> float:
        self._tokens = min(max(1.0, self.rate), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        return self._tokens

    def take(self, amount: float) -> None:
        self._tokens -= amount

    def ready_at(self, now: float, amount: float = 1.0) -> float:
        """When ``amount`` tokens will be there (``now`` if they are)."""
        missing = amount - self.available(now)
        return now if missing <= 0 else now + missing / self.rate


class Lane:
    """One destination's buffers, schedule, pauses and counters (see the module doc)."""

    __slots__ = (
        "active",
        "arrivals",
        "buffered",
        "cap",
        "counters",
        "cursor",
        "destination",
        "event_bucket",
        "hold_reason",
        "hold_until",
        "identify_url",
        "in_flight",
        "key",
        "max_bytes",
        "name",
        "partitions",
        "paused_devices",
        "paused_users",
        "ready",
        "removed",
        "request_bucket",
        "requests_out",
        "spill_epochs",
        "spilled",
        "url",
    )

    def __init__(
        self,
        name: str,
        destination: Destination,
        *,
        key: str,
        use_batch: bool,
        server_url: str | None,
        cap: int,
        now: float,
        arrivals: int,
    ) -> None:
        self.name = name
        self.key = key  # the events' ``destination``: "" for the default one, else the tenant
        # With the spool: events of this destination on disk only (not in memory), all with a
        # spool seq above ``cursor``; ``spill_epochs`` maps their seqs to flush epochs, as
        # (first seq, epoch) pairs in order.
        self.spilled = 0
        self.cursor = 0
        self.spill_epochs: deque[tuple[int, int]] = deque()
        self.partitions: dict[str, Partition] = {}
        self.ready: deque[Partition] = deque()
        self.active = False  # in the dispatcher's round-robin of lanes with ready partitions
        self.removed = False
        self.buffered = 0
        self.in_flight = 0
        self.requests_out = 0
        self.hold_until = 0.0
        self.hold_reason: str | None = None
        self.paused_users: dict[str, float] = {}
        self.paused_devices: dict[str, float] = {}
        self.arrivals: deque[Partition] = deque(maxlen=arrivals)
        self.counters = Counters()  # its share of the dispatcher's figures
        self.max_bytes = BATCH_MAX_BYTES if use_batch else HTTPAPI_MAX_BYTES
        self.destination = destination
        self.url = self.identify_url = ""
        self.cap = cap
        self.event_bucket: TokenBucket | None = None
        self.request_bucket: TokenBucket | None = None
        self.configure(destination, use_batch=use_batch, server_url=server_url, cap=cap, now=now)

    def configure(
        self,
        destination: Destination,
        *,
        use_batch: bool,
        server_url: str | None,
        cap: int,
        now: float,
    ) -> bool:
        """Take (new) settings; True when the key or the hosts changed (a hold is then lifted)."""
        base = destination.ingestion_base(server_url)
        url = base + ("/batch" if use_batch else "/2/httpapi")
        changed = url != self.url or destination.api_key != self.destination.api_key
        self.destination = destination
        self.url = url
        self.identify_url = base + "/identify"
        self.cap = destination.max_buffered_events or cap
        rate = destination.max_events_per_second
        self.event_bucket = None if rate is None else TokenBucket(rate, now)
        rate = destination.max_requests_per_second
        self.request_bucket = None if rate is None else TokenBucket(rate, now)
        if changed and self.hold_until:
            self.hold_until = 0.0
            self.hold_reason = None
        return changed

    def room(self, now: float, batch: int) -> tuple[int, float]:
        """How many events a request may carry now, and when to look again if none."""
        room = batch
        later = now
        if self.request_bucket is not None:
            later = self.request_bucket.ready_at(now)
            if later > now:
                return 0, later
        if self.event_bucket is not None:
            room = min(room, int(self.event_bucket.available(now)))
            if room < 1:
                # Wait for a request's worth (a batch, or a second's), not for one event: a
                # paced destination sends fewer, fuller requests.
                bucket = self.event_bucket
                return 0, bucket.ready_at(now, min(float(batch), max(1.0, bucket.rate)))
        return room, now

    def sent(self, events: int) -> None:
        """Charge a request of ``events`` to the rate limits."""
        if self.request_bucket is not None:
            self.request_bucket.take(1)
        if self.event_bucket is not None:
            self.event_bucket.take(events)

    def __repr__(self) -> str:
        return (
            f"Lane({self.name!r}, buffered={self.buffered}, in_flight={self.in_flight}, "
            f"held={self.hold_until > 0})"
        )

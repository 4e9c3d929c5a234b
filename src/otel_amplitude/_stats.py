"""The pipeline's counters, and the snapshot ``Client.stats()`` returns."""

from __future__ import annotations

from typing import TypedDict

__all__ = ["Counted", "Counters", "DestinationStats", "Outcomes", "Stats"]


class Counted(TypedDict):
    """What a :class:`Counters` holds, copied, with the levels held now."""

    accepted: int
    rejected: int
    dropped: int
    dead_lettered: int
    buffered: int
    in_flight: int
    retried: int
    throttled: int
    rejected_by_reason: dict[str, int]
    dropped_by_reason: dict[str, int]
    dead_lettered_by_reason: dict[str, int]
    requests: int
    responses_by_status: dict[str, int]


class Outcomes(Counted):
    """What happened to events, and what is held now: the figures of the whole client and of
    each of its destinations alike (what ``health()`` judges)."""

    paused_partitions: int
    destination_paused: bool


class DestinationStats(Outcomes):
    """One destination's share of :class:`Stats` (``stats()["destinations"][name]``).

    Counts events from the moment they reached the destination's buffers: drops before that
    (invalid, no identity, unknown tenant, consent at the caller) are only in the totals.
    ``destination_paused`` is True while Amplitude refuses its key or URL (``paused_reason``
    says which answer); ``zone`` and ``environment`` are its configuration.
    """

    paused_reason: str | None
    zone: str
    environment: str | None


class Stats(Outcomes):
    """A consistent snapshot of the pipeline.

    At every instant: ``submitted == accepted + rejected + dropped + dead_lettered + buffered +
    in_flight``. ``retried`` counts events sent again (after a failure, a throttle pause or
    another event's rejection); ``throttled`` counts events that met a 429 for their id.
    ``destinations`` breaks the figures down by destination (``default`` is the project of
    ``AMPLITUDE_API_KEY``); ``destination_paused`` is True while any of them is paused.
    With the spool: ``spooled`` rows are on disk (every buffered event has one),
    ``backlog_on_disk`` of the buffered events are on disk only, and ``replayed`` events were
    found there, left by an earlier or a dead process (they count as submitted).
    """

    submitted: int
    paused_destinations: int
    destinations: dict[str, DestinationStats]
    destinations_reload_errors: int
    spooled: int
    backlog_on_disk: int
    replayed: int
    latency_ms_mean: float
    latency_ms_max: float
    identify_limit_warnings: int


class Counters:
    """Mutable counters, written only by the dispatcher thread under its lock."""

    __slots__ = (
        "accepted",
        "dead_lettered",
        "dead_lettered_by_reason",
        "drained",
        "dropped",
        "dropped_by_reason",
        "latency_count",
        "latency_max",
        "latency_sum",
        "rejected",
        "rejected_by_reason",
        "requests",
        "responses_by_status",
        "retried",
        "throttled",
    )

    def __init__(self) -> None:
        self.drained = 0
        self.accepted = 0
        self.rejected = 0
        self.dropped = 0
        self.dead_lettered = 0
        self.retried = 0
        self.throttled = 0
        self.requests = 0
        self.rejected_by_reason: dict[str, int] = {}
        self.dropped_by_reason: dict[str, int] = {}
        self.dead_lettered_by_reason: dict[str, int] = {}
        self.responses_by_status: dict[str, int] = {}
        self.latency_count = 0
        self.latency_sum = 0.0
        self.latency_max = 0.0

    def reject(self, reason: str, count: int = 1) -> None:
        self.rejected += count
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + count

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped += count
        self.dropped_by_reason[reason] = self.dropped_by_reason.get(reason, 0) + count

    def dead_letter(self, reason: str, count: int = 1) -> None:
        self.dead_lettered += count
        self.dead_lettered_by_reason[reason] = self.dead_lettered_by_reason.get(reason, 0) + count

    def response(self, status: int | None, failure: str | None) -> None:
        key = str(status) if status is not None else (failure or "no_response")
        self.responses_by_status[key] = self.responses_by_status.get(key, 0) + 1

    def counted(self, buffered: int, in_flight: int) -> Counted:
        """A copy of these counts, with the levels held now (``buffered``, ``in_flight``)."""
        return Counted(
            accepted=self.accepted,
            rejected=self.rejected,
            dropped=self.dropped,
            dead_lettered=self.dead_lettered,
            buffered=buffered,
            in_flight=in_flight,
            retried=self.retried,
            throttled=self.throttled,
            rejected_by_reason=dict(self.rejected_by_reason),
            dropped_by_reason=dict(self.dropped_by_reason),
            dead_lettered_by_reason=dict(self.dead_lettered_by_reason),
            requests=self.requests,
            responses_by_status=dict(self.responses_by_status),
        )

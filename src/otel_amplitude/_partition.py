"""A partition: the events of one device (or user), at one destination, that must reach
Amplitude in order."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from ._event import Event

if TYPE_CHECKING:
    from ._lane import Lane

__all__ = ["IDLE", "IN_FLIGHT", "READY", "WAITING", "Partition"]

IDLE, READY, WAITING, IN_FLIGHT = 0, 1, 2, 3


class Partition:
    """A FIFO of one partition's events, with its place in the dispatcher's schedule.

    States: IDLE (not scheduled), READY (in the ready queue), WAITING (in the timer heap until
    ``not_before``), IN_FLIGHT (a request carries some of its events; at most one at a time,
    which is what keeps the order across retries).
    """

    __slots__ = ("events", "failures", "key", "lane", "not_before", "state")

    def __init__(self, key: str, lane: Lane) -> None:
        self.key = key
        self.lane = lane
        self.events: deque[Event] = deque()
        self.state = IDLE
        self.not_before = 0.0
        self.failures = 0

    def __repr__(self) -> str:
        return f"Partition(events={len(self.events)}, state={self.state})"

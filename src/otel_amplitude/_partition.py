"""A partition: the events of one device (or user), at one destination, that must reach
Amplitude in order."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._event import Event

if TYPE_CHECKING:
    from ._lane import Lane

__all__ = ["IDLE", "IN_FLIGHT", "READY", "WAITING", "Partition"]

IDLE, READY, WAITING, IN_FLIGHT = 0, 1, 2, 3


class Partition(list[Event]):
    """One partition's events, oldest first (it is the list), with its place in the schedule.

    States: IDLE (not scheduled), READY (in the ready queue), WAITING (in the timer heap until
    ``not_before``), IN_FLIGHT (a request carries some of its events; at most one at a time,
    which is what keeps the order across retries).

    One object, and a list rather than a deque: with many users nearly every event makes a
    partition, and while many events are buffered each object the garbage collector tracks
    costs, as does a deque's 528-byte block (a partition with one event: 128 bytes as a list,
    800 as a deque). Requests take whole partitions or a slice from the front; removing one
    event from the front (``drop_oldest`` at a full partition) moves the rest, about 0.5 us at
    the default capacity of 5,000. Being a list, an empty partition is false: test a partition
    variable with ``is None``, never by its truth. It compares and hashes by identity, as any
    other object.
    """

    __slots__ = ("failures", "key", "lane", "not_before", "state")

    def __init__(self, key: str, lane: Lane) -> None:
        # list's __new__ made the empty list; list.__init__ would only add items.
        self.key = key
        self.lane = lane
        self.state = IDLE
        self.not_before = 0.0
        self.failures = 0

    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Partition(events={len(self)}, state={self.state})"

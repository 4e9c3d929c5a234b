"""The dispatcher: owns every buffered event and decides what is sent when.

Data flows one way. Callers append to ``inbound`` (a deque: O(1), no lock, no I/O). The
dispatcher thread drains it in short slices into per-partition FIFOs, forms requests from ready
partitions, hands them to the sender threads, and applies their outcomes: accepted, rejected,
dropped, or back to the front of the partition for another try. All of that state is touched
only under ``lock``, held for one slice at a time, so ``stats()`` is a consistent snapshot.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._backoff import Backoff
from ._clock import Clock
from ._consent_store import SCOPE
from ._destinations import DEFAULT, Destination, Router
from ._event import Event, to_wire
from ._identify import IDENTIFY
from ._lane import Lane
from ._log import RateLimitedLog, mark_library_thread, warn_invalid
from ._log import logger as _library_log
from ._partition import IDLE, IN_FLIGHT, READY, WAITING, Partition
from ._response import Action, Verdict
from ._sender import Delivery, Transport, deliver
from ._settings import Settings
from ._spool import Spool
from ._stats import Counters, DestinationStats, Stats
from .exceptions import InvalidEventError, OtelAmplitudeError

__all__ = ["Barrier", "DeadLetterCallback", "Deferred", "Dispatcher"]

#: A function given the wire form of events that could not be delivered, and why.
DeadLetterCallback = Callable[[list[dict[str, Any]], str], None]

#: Looks at an event as it enters the buffers (and again before a resend): returns a drop
#: reason, or None to keep it. May rewrite the event's properties (PII scrubbing) in place.
Screen = Callable[[Event], "str | None"]


class Deferred(Protocol):
    """An event an integration captured on the caller's thread, to be built on the dispatcher's.

    Building (mapping, validation, JSON-safe copies) is most of an event's cost; deferring it
    keeps the caller's share to a capture of what the context holds. ``None``: nobody to
    attribute the event to; ``InvalidEventError``: it cannot be sent.
    """

    source: str

    def __call__(self) -> Event | None: ...


class Observer(Protocol):
    """Receives what the dispatcher measures, for metrics (``_metrics.MetricsObserver``).

    Called on the dispatcher thread with its lock held: keep it to a few microseconds a call.
    """

    def request_done(self, outcome: str, seconds: float, events: int) -> None:
        """One HTTP exchange ended: ``outcome`` is the status code or failure kind."""

    def delivered(self, oldest: float) -> None:
        """Events of one request were accepted, the oldest ``oldest`` seconds after it was
        created."""


#: Most items moved from ``inbound`` in one slice: bounds how long the lock and the GIL are held.
_SLICE = 2_048
#: Property updates of one user in an hour that trigger a warning (Amplitude's limit: 1,800).
IDENTIFY_WARN_PER_HOUR = 1_500
#: How long delivery stays paused after Amplitude refused the API key, before one probe request.
HOLD_SECONDS = 60.0
#: Most events loaded from the spool into one destination's buffers per turn of the loop.
_REFILL = 2_048
#: How often the spool directory is searched for segments of dead processes to adopt.
ADOPT_SECONDS = 5.0
#: Most emptied partitions kept for reuse: with many users, most partitions hold one event
#: and would otherwise be made and torn down for each.
_SPARE = 2_048


@dataclass(slots=True, eq=False)
class Barrier:
    """A flush: done once every event submitted before it reached a terminal state."""

    done: threading.Event = field(default_factory=threading.Event)
    target: int = 0  # the dispatcher's drained count that covers every event before it
    epoch: int = -1  # set when sealed: every earlier event has an epoch <= this one
    mark: int = 0  # set when sealed: every earlier spooled event has a spool seq <= this one


@dataclass(slots=True, eq=False)
class _Request:
    number: int
    lane: Lane
    events: list[Event]
    partitions: list[Partition]


class Dispatcher:
    """One client's pipeline state and the threads that move it (started lazily)."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        *,
        on_dead_letter: DeadLetterCallback | None = None,
        rng: random.Random | None = None,
        screen: Screen | None = None,
        observer: Observer | None = None,
        router: Router | None = None,
        spool: Spool | None = None,
    ) -> None:
        self.settings = settings
        self.router = router if router is not None and router.active else None
        self.screen = screen
        self.observer = observer
        #: Called on the dispatcher thread with each accepted identify update.
        self.on_identified: Callable[[Event], None] | None = None
        self.identify_limit_warnings = 0
        self._identify_seen = False
        self._identify_hour = -1
        self._identify_counts: dict[str, int] = {}
        self.clock = clock
        self.inbound: deque[Event | str | Deferred] = deque()
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.counters = Counters()
        self.closed = False

        self._on_dead_letter = on_dead_letter
        self._rng = rng or random.Random()
        self._backoff = Backoff()
        self._batch = settings.flush_max_events
        self._interval = settings.flush_interval_ms / 1000.0
        self._capacity = settings.partition_capacity
        self._max_buffered = settings.max_buffered_events
        self._drop_oldest = settings.overflow == "drop_oldest"
        self._log = RateLimitedLog(clock.monotonic)

        # One lane per destination; "" is the default one (AMPLITUDE_API_KEY), when it exists.
        self._lanes: dict[str, Lane] = {}
        self._active: deque[Lane] = deque()  # lanes with ready partitions, in turn
        self._lane_cap = (
            settings.destination_max_buffered_events or max(1, self._max_buffered // 4)
            if self.router is not None
            else self._max_buffered
        )
        self._lane_timer = 0.0  # when a lane skipped for its hold or rate limit may go again
        if settings.api_key:
            self._add_lane(
                "",
                Destination(
                    DEFAULT,
                    settings.api_key,
                    settings.secret_key,
                    zone=settings.server_zone,
                ),
                clock.monotonic(),
            )
        self._ready_events = 0
        # Emptied partitions to reuse, each referenced from nowhere else (not with drop_oldest,
        # whose arrivals queue may still name them).
        self._spare: list[Partition] = []
        self._waiting: list[tuple[float, int, Partition]] = []
        self._sequence = itertools.count()
        self._buffered = 0
        self._in_flight = 0
        self._epoch = 0
        self._outstanding: dict[int, int] = {}
        self._barriers: deque[Barrier] = deque()  # appended by flush(), popped here
        self._unsealed: deque[Barrier] = deque()
        self._sealed: list[Barrier] = []
        self._due = False
        self._next_tick = clock.monotonic() + self._interval
        self._requests_out = 0
        self._unanswered: dict[int, _Request] = {}
        self._request_numbers = itertools.count(1)
        self._results: deque[tuple[_Request, Delivery]] = deque()
        self._outbox: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._dead: list[tuple[list[Event], str]] = []
        self._stopping = False
        self._stop_deadline: float | None = None
        self._threads: list[threading.Thread] = []
        self._transport: Transport | None = None
        self._log_tenants: set[str] = set()
        # The durable spool: every buffered event has a row; a destination whose buffers are
        # full keeps its newer events on disk only (its backlog), loaded back in order.
        self.spool = spool
        self._disk_only = 0  # events in some destination's backlog on disk
        self._replayed = 0  # events found in the spool, left by an earlier process
        self._spill_lanes: dict[str, Lane] = {}
        self._unspool: list[Event] = []  # finished events whose rows are to go
        self._next_adopt = clock.monotonic() + ADOPT_SECONDS
        if spool is not None:
            self._take_backlog(spool.counts(), 0)

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher thread and, when delivery is enabled, the sender threads."""
        if self.settings.enabled:
            self._transport = Transport(
                timeout_s=self.settings.timeout_ms / 1000.0, maxsize=self.settings.senders
            )
            for n in range(self.settings.senders):
                sender = threading.Thread(
                    target=self._send_loop, name=f"otel_amplitude.sender-{n}", daemon=True
                )
                self._threads.append(sender)
        dispatcher = threading.Thread(
            target=self._run, name="otel_amplitude.dispatcher", daemon=True
        )
        self._threads.append(dispatcher)
        for thread in self._threads:
            thread.start()

    def request_flush(self) -> Barrier:
        """Ask for everything submitted so far to be sent now; wait on the returned barrier."""
        barrier = Barrier()
        self._barriers.append(barrier)
        self.wake.set()
        return barrier

    def stop(self, deadline: float) -> None:
        """Stop at ``deadline`` (``time.monotonic()`` seconds): what is left is dead-lettered."""
        with self.lock:
            self._stopping = True
            self._stop_deadline = deadline
        self.wake.set()
        dispatcher, senders = self._threads[-1:], self._threads[:-1]
        for thread in dispatcher:
            thread.join(max(0.0, deadline - time.monotonic()) + 0.5)
        for _ in senders:
            self._outbox.put(None)
        for thread in senders:
            thread.join(max(0.0, deadline - time.monotonic()) + 0.1)
        if self._transport is not None:
            self._transport.close()
        with self.lock:
            self.closed = True
            self._drain_closed()
        self._close_spool()

    def _close_spool(self) -> None:
        spool = self.spool
        if spool is None:
            return
        with self.lock:
            unspool, self._unspool = self._unspool, []
        spool.remove(unspool)
        spool.close()  # commits what is queued: the rows left are the next process's

    def purge(
        self,
        matches: Callable[[Event], bool],
        reason: str,
        *,
        users: Collection[str] = (),
        devices: Collection[str] = (),
    ) -> int:
        """Remove every buffered event that ``matches`` (counted as dropped with ``reason``).

        Covers events in transit from callers, buffered, and waiting for a retry. Events on the
        wire cannot be recalled; ``screen`` drops them should they come back for a resend.
        With the spool, the backlogs on disk lose the rows of ``users`` and ``devices`` (ids,
        or ``tenant + SCOPE + id`` for one tenant's). Returns how many were removed.
        """
        removed = 0
        with self.lock:
            now = self.clock.monotonic()
            while self.inbound:  # admit everything in transit first, so it can be purged too
                self._drain(now)
            for lane in self._lanes.values():
                gone = self._purge_lane(lane, matches)
                if gone:
                    lane.counters.drop(reason, gone)
                    removed += gone
            if self._spill_lanes and (users or devices):
                removed += self._purge_backlogs(reason, users, devices)
            if removed:
                self.counters.drop(reason, removed)
            self._check_barriers()
        return removed

    def _purge_backlogs(self, reason: str, users: Collection[str], devices: Collection[str]) -> int:
        """Delete the backlog rows (on disk only) of these users and devices; count them."""
        assert self.spool is not None
        removed = 0
        for kind, subjects in (("user", users), ("device", devices)):
            for subject in subjects:
                tenant, scoped, plain = subject.rpartition(SCOPE)
                lanes = (
                    [lane for lane in (self._spill_lanes.get(tenant),) if lane is not None]
                    if scoped
                    else list(self._spill_lanes.values())
                )
                for lane in lanes:
                    ids = {"user_id": plain} if kind == "user" else {"device_id": plain}
                    gone = self.spool.purge(**ids, destination=lane.key, above_seq=lane.cursor)
                    if not gone:
                        continue
                    gone = min(gone, lane.spilled)
                    lane.spilled -= gone
                    self._disk_only -= gone
                    lane.counters.drop(reason, gone)
                    removed += gone
                    if not lane.spilled:
                        del self._spill_lanes[lane.key]
                        lane.spill_epochs.clear()
        return removed

    def _purge_lane(self, lane: Lane, matches: Callable[[Event], bool]) -> int:
        removed = 0
        for partition in list(lane.partitions.values()):
            kept = [e for e in partition if not matches(e)]
            gone = len(partition) - len(kept)
            if not gone:
                continue
            for event in partition:
                if matches(event):
                    self._finish(event)
            partition.clear()
            partition.extend(kept)
            self._buffered -= gone
            lane.buffered -= gone
            if partition.state == READY:
                self._ready_events -= gone
            removed += gone
            if not kept and partition.state in (READY, WAITING):
                partition.state = IDLE  # its queue entries are skipped when met
                del lane.partitions[partition.key]
        return removed

    # -- destinations --------------------------------------------------------------------------

    def _add_lane(self, name: str, destination: Destination, now: float) -> Lane:
        lane = Lane(
            destination.name,
            destination,
            key=name,
            use_batch=self.settings.use_batch,
            server_url=self.settings.server_url,
            cap=self._lane_cap,
            now=now,
            arrivals=self._max_buffered,
        )
        self._lanes[name] = lane
        return lane

    def _lane_for(self, event: Event) -> Lane | None:
        """The lane of a tenant seen for the first time; None when it has no destination."""
        tenant = event.destination
        if not tenant:
            if self.router is not None:
                self.counters.drop("no_tenant")
                self._log.log(
                    logging.WARNING,
                    "no-tenant",
                    "an event without a tenant was dropped (no_tenant): AMPLITUDE_API_KEY is not"
                    " set, so there is no default destination; give every event a tenant",
                )
            return None
        destination = None if self.router is None else self.router.lookup(tenant)
        if destination is not None:
            return self._add_lane(tenant, destination, self.clock.monotonic())
        fallback = self._lanes.get("")
        if fallback is not None and self.settings.unknown_tenant == "default":
            event.destination = ""
            return fallback
        self.counters.drop("unknown_tenant")
        self._log.log(
            logging.WARNING,
            f"unknown-tenant:{tenant}" if len(self._log_tenants) < 100 else "unknown-tenant",
            "events of tenant %r are dropped (unknown_tenant): it has no destination. Add it to"
            " AMPLITUDE_DESTINATIONS_FILE (or the resolver), or set AMPLITUDE_UNKNOWN_TENANT="
            "default to send such events to the default project",
            tenant,
        )
        self._log_tenants.add(tenant)
        return None

    def apply_destinations(self, table: Mapping[str, Destination]) -> None:
        """Take a new destinations table: lanes whose key changed resume, removed ones empty.

        A removed destination's buffered events are dropped (``destination_removed``); its
        requests on the wire finish, and what they hand back is dropped too.
        """
        with self.lock:
            now = self.clock.monotonic()
            for name, lane in list(self._lanes.items()):
                if not name:
                    continue
                destination = table.get(name)
                if destination is None:
                    self._remove_lane(name, lane)
                elif destination != lane.destination:
                    changed = lane.configure(
                        destination,
                        use_batch=self.settings.use_batch,
                        server_url=self.settings.server_url,
                        cap=self._lane_cap,
                        now=now,
                    )
                    if changed:
                        self._log.log(
                            logging.INFO,
                            f"destination-changed:{name}",
                            "destination %r has a new key or host: delivery resumes with what"
                            " it kept (%d events)",
                            name,
                            lane.buffered,
                        )
                        self._due = True
            self.wake.set()

    def _remove_lane(self, name: str, lane: Lane) -> None:
        del self._lanes[name]
        lane.removed = True
        gone = self._purge_lane(lane, lambda _event: True)
        if lane.spilled:
            assert self.spool is not None
            self.spool.purge(destination=lane.key, above_seq=lane.cursor)
            gone += lane.spilled
            self._disk_only -= lane.spilled
            lane.spilled = 0
            self._spill_lanes.pop(lane.key, None)
        for partition in lane.partitions.values():
            partition.state = IDLE
        lane.partitions.clear()
        lane.ready.clear()
        if gone:
            lane.counters.drop("destination_removed", gone)
            self.counters.drop("destination_removed", gone)
        self._log.log(
            logging.WARNING,
            f"destination-removed:{name}",
            "destination %r was removed from the destinations: %d buffered events dropped"
            " (destination_removed)",
            name,
            gone,
        )
        self._check_barriers()

    def mark_closed(self) -> None:
        """Close a dispatcher that never started: nothing to stop, nothing will be sent."""
        with self.lock:
            self.closed = True
            self._drain_closed()
        self._close_spool()

    # -- the dispatcher thread ----------------------------------------------------------------

    def _run(self) -> None:
        mark_library_thread()
        router = self.router
        spool = self.spool
        while True:
            self.wake.clear()
            if router is not None:
                table = router.poll()  # file I/O, at most once a second, outside the lock
                if table is not None:
                    self.apply_destinations(table)
            if spool is not None and self.clock.monotonic() >= self._next_adopt:
                self._adopt()
            with self.lock:
                now = self.clock.monotonic()
                self._apply_results(now)
                more = self._drain(now)
                if self._spill_lanes:
                    more = self._refill() or more
                if self._unspool:
                    assert spool is not None
                    spool.remove(self._unspool)
                    self._unspool = []
                self._wake_waiting(now)
                if not self._stopping:
                    self._dispatch(now)
                self._check_barriers()
                finished = self._stopping and self._finish_stopping()
                timeout = self._next_timeout(now)
                dead, self._dead = self._dead, []
            self._report_dead(dead)
            if finished:
                return
            if more:
                time.sleep(0)  # a slice is done: let application threads run
                continue
            self.clock.wait(self.wake, timeout)

    def _finish_stopping(self) -> bool:
        """While stopping: wait for requests out until the deadline, then dead-letter the rest."""
        assert self._stop_deadline is not None
        if self._requests_out and time.monotonic() < self._stop_deadline:
            return False
        if self.spool is not None:
            self._keep_spooled()
            self._check_barriers()
            return True
        for lane in self._lanes.values():
            for partition in lane.partitions.values():
                if partition:
                    self._dead_letter(list(partition), "shutdown", lane)
                    self._buffered -= len(partition)
                    lane.buffered -= len(partition)
                    partition.clear()
            lane.partitions.clear()
            lane.ready.clear()
            lane.active = False
        self._active.clear()
        self._ready_events = 0
        self._waiting.clear()
        if self._requests_out:
            # Requests still on the wire at the deadline: their outcome will not be known.
            self._abandon_in_flight()
        self._check_barriers()
        return True

    def _abandon_in_flight(self) -> None:
        """Dead-letter the events of requests still unanswered at the shutdown deadline.

        Amplitude may have taken them; nobody will know. They go to ``on_dead_letter`` like any
        other dead letter, so an application that persists those can resend them (insert_id
        deduplication makes that safe).
        """
        self._results.clear()
        for request in self._unanswered.values():
            self._in_flight -= len(request.events)
            request.lane.in_flight -= len(request.events)
            self._dead_letter(request.events, "shutdown", request.lane)
        self._unanswered.clear()
        self._requests_out = 0

    def _next_timeout(self, now: float) -> float | None:
        if self._stopping:
            return 0.01
        deadlines: list[float] = []
        if self._buffered:
            deadlines.append(self._next_tick)
        if self._waiting:
            deadlines.append(self._waiting[0][0])
        if self._lane_timer > now:
            deadlines.append(self._lane_timer)
        if self.router is not None:
            deadlines.append(now + 1.0)  # the destinations file is looked at once a second
        if self.spool is not None:
            deadlines.append(self._next_adopt)
        if not deadlines:
            return self._interval
        return max(0.0005, min(deadlines) - now)

    # -- inbound ------------------------------------------------------------------------------

    def _drain(self, now: float) -> bool:
        """Move one slice of ``inbound`` into partitions; True when more is waiting."""
        inbound = self.inbound
        counters = self.counters
        while self._barriers:
            barrier = self._barriers.popleft()
            barrier.target = counters.drained + len(inbound)
            self._unsealed.append(barrier)
        self._seal_barriers()
        left = min(len(inbound), _SLICE)
        while left:
            # A run ends where the next flush barrier is sealed: its events share one epoch.
            run = left
            if self._unsealed:
                run = min(run, self._unsealed[0].target - counters.drained)
            self._admit_run(run, now)
            left -= run
            self._seal_barriers()
        return bool(inbound)

    def _admit_run(self, count: int, now: float) -> None:
        """Admit the next ``count`` items of ``inbound``, all of the current flush epoch.

        The common case (no spool, no ``drop_oldest``, room, not an identify update) is
        ``_enter`` and ``_place`` inlined, its counts kept here and added once at the end (or
        where an exception stops the run); any other event goes through ``_enter``, after the
        counts so far are added (it reads them).
        """
        inbound = self.inbound
        counters = self.counters
        screen = self.screen
        lanes = self._lanes
        spare = self._spare
        capacity = self._capacity
        epoch = self._epoch
        inline = self.spool is None and not self._drop_oldest
        free = self._max_buffered - self._buffered - self._in_flight  # room in all the buffers
        placed = 0  # events placed inline, not yet in _buffered and _outstanding
        ready = 0  # of them, events that joined a ready partition, not yet in _ready_events
        done = -1
        try:
            for done in range(count):  # noqa: B007 - counted in ``finally``
                event = inbound.popleft()
                if type(event) is not Event:
                    if isinstance(event, str):
                        counters.drop(event)  # an integration's or the caller's counted drop
                        continue
                    built = self._build(event)  # type: ignore[arg-type]
                    if built is None:
                        continue
                    event = built
                if screen is not None and (reason := screen(event)) is not None:
                    counters.drop(reason)
                    continue
                lane = lanes.get(event.destination)
                if (
                    inline
                    and free > 0
                    and lane is not None
                    and lane.buffered + lane.in_flight < lane.cap
                    and event.event_type != IDENTIFY
                ):
                    key = event.device_id if event.device_id is not None else event.user_id
                    assert key is not None
                    partition = lane.partitions.get(key)
                    if partition is None:
                        if spare:
                            partition = spare.pop()
                            partition.key = key
                            partition.lane = lane
                        else:
                            partition = Partition(key, lane)
                        lane.partitions[key] = partition
                    elif len(partition) >= capacity:
                        partition = None
                    if partition is not None:
                        event.epoch = epoch
                        partition.append(event)
                        placed += 1
                        free -= 1
                        lane.buffered += 1
                        state = partition.state
                        if state == READY:
                            ready += 1
                        elif state == IDLE:
                            if partition.not_before <= now and not lane.removed:
                                # ``_schedule``'s ready case: a new partition goes here every time.
                                partition.state = READY
                                lane.ready.append(partition)
                                if not lane.active:
                                    lane.active = True
                                    self._active.append(lane)
                                ready += len(partition)
                            else:
                                self._schedule(partition, now)
                        continue
                if placed:
                    self._buffered += placed
                    self._outstanding[epoch] = self._outstanding.get(epoch, 0) + placed
                    placed = 0
                self._ready_events += ready
                ready = 0
                self._enter(event, lane, now)
                free = self._max_buffered - self._buffered - self._in_flight
        finally:  # also when interrupted (purge runs on an application thread)
            counters.drained += done + 1
            if placed:
                self._buffered += placed
                self._outstanding[epoch] = self._outstanding.get(epoch, 0) + placed
            self._ready_events += ready

    def _seal_barriers(self) -> None:
        while self._unsealed and self.counters.drained >= self._unsealed[0].target:
            barrier = self._unsealed.popleft()
            barrier.epoch = self._epoch
            barrier.mark = self.spool.last_seq if self.spool is not None else 0
            self._epoch += 1
            self._sealed.append(barrier)

    def _build(self, deferred: Deferred) -> Event | None:
        """Build an event an integration deferred to this thread; count what cannot be built."""
        try:
            event = deferred()
        except InvalidEventError as error:
            self.counters.drop("invalid")
            warn_invalid(self._log, deferred.source, error.field, error.reason)
            return None
        except Exception as error:  # noqa: BLE001 - counted and reported by type, never raised
            self.counters.drop("error")
            kind = type(error).__name__
            self._log.log(
                logging.WARNING,
                f"error:{deferred.source}:{kind}",
                "%s dropped an event after an unexpected %s",
                deferred.source,
                kind,
            )
            return None
        if event is None:
            self.counters.drop("no_identity")
        return event

    def _enter(self, event: Event, lane: Lane | None, now: float) -> None:
        """Place a screened event in its partition, or spill, or drop it (counted).

        ``lane`` is its destination's lane when it has one yet.
        """
        if event.event_type == IDENTIFY:
            self._identify_seen = True
            self._count_identify(event, now)
        if lane is None:
            lane = self._lane_for(event)
            if lane is None:
                return
        key = event.device_id if event.device_id is not None else event.user_id
        assert key is not None
        partition = lane.partitions.get(key)
        full = (
            (partition is not None and len(partition) >= self._capacity)
            or self._buffered + self._in_flight >= self._max_buffered
            or lane.buffered + lane.in_flight >= lane.cap
        )
        spool = self.spool
        if spool is not None:
            # With a backlog on disk, or full buffers, the event joins the backlog: on disk
            # only, loaded in order when there is room (nothing is dropped but at a full spool).
            if lane.spilled or full:
                self._spill(lane, event)
                return
            if not spool.add((event,)):
                self._spool_full(lane)
                return
            lane.cursor = event.spool_id
        if partition is None:
            if self._spare:
                partition = self._spare.pop()
                partition.key = key
                partition.lane = lane
            else:
                partition = Partition(key, lane)
            lane.partitions[key] = partition
        if full and not self._make_room(partition):
            self._note_overflow(partition)
            self.counters.drop("overflow")
            lane.counters.drop("overflow")
            if partition.state == IDLE and not partition:
                del lane.partitions[key]
            return
        self._place(partition, event, self._epoch, now)

    def _place(self, partition: Partition, event: Event, epoch: int, now: float) -> None:
        """Append an admitted event to its partition and schedule it."""
        lane = partition.lane
        event.epoch = epoch
        self._outstanding[epoch] = self._outstanding.get(epoch, 0) + 1
        partition.append(event)
        self._buffered += 1
        lane.buffered += 1
        if self._drop_oldest:
            lane.arrivals.append(partition)
        if partition.state == READY:
            self._ready_events += 1
        elif partition.state == IDLE:
            self._schedule(partition, now)  # the common case is inline in _admit_run

    # -- the spool ------------------------------------------------------------------------------

    def _spill(self, lane: Lane, event: Event) -> None:
        """Put ``event`` in its destination's backlog on disk (not in memory)."""
        assert self.spool is not None
        if not self.spool.add((event,)):
            self._spool_full(lane)
            return
        if not lane.spilled:
            self._spill_lanes[lane.key] = lane
        lane.spilled += 1
        self._disk_only += 1
        epochs = lane.spill_epochs
        if not epochs or epochs[-1][1] != self._epoch:
            epochs.append((event.spool_id, self._epoch))

    def _spool_full(self, lane: Lane) -> None:
        self.counters.drop("overflow")
        lane.counters.drop("overflow")
        self._log.log(
            logging.WARNING,
            "spool-full",
            "events dropped: the spool is full (AMPLITUDE_SPOOL_MAX_MB=%d); see"
            " stats()['dropped_by_reason']",
            self.settings.spool_max_mb,
        )

    def _refill(self) -> bool:
        """Load backlogs from disk, oldest first, as far as the buffers have room.

        True when a full slice was loaded and more may follow at once.
        """
        assert self.spool is not None
        more = False
        now = self.clock.monotonic()
        for lane in list(self._spill_lanes.values()):
            room = min(
                lane.cap - lane.buffered - lane.in_flight,
                self._max_buffered - self._buffered - self._in_flight,
                _REFILL,
                lane.spilled,
            )
            if room <= 0:
                continue
            events = self.spool.load(lane.cursor, room, destination=lane.key)
            epochs = lane.spill_epochs
            for event in events:
                seq = event.spool_id
                while len(epochs) > 1 and epochs[1][0] <= seq:
                    epochs.popleft()
                lane.cursor = seq
                lane.spilled -= 1
                self._disk_only -= 1
                self._readmit(lane, event, epochs[0][1] if epochs else self._epoch, now)
            if len(events) < room:
                self._lost_rows(lane)
            if lane.spilled <= 0:
                del self._spill_lanes[lane.key]
                epochs.clear()
            elif len(events) == _REFILL:
                more = True
        return more

    def _readmit(self, lane: Lane, event: Event, epoch: int, now: float) -> None:
        """A backlog event back in memory: screened again (consent may have changed)."""
        if self.screen is not None:
            reason = self.screen(event)
            if reason is not None:
                self.counters.drop(reason)
                lane.counters.drop(reason)
                self._unspool.append(event)
                return
        if event.event_type == IDENTIFY:
            self._identify_seen = True
        key = event.device_id if event.device_id is not None else event.user_id
        assert key is not None
        partition = lane.partitions.get(key)
        if partition is None:
            partition = lane.partitions[key] = Partition(key, lane)
        self._place(partition, event, epoch, now)

    def _lost_rows(self, lane: Lane) -> None:
        """The disk had fewer of a backlog's rows than counted: count the rest as lost."""
        if lane.spilled <= 0:
            return
        missing = lane.spilled
        lane.spilled = 0
        self._disk_only -= missing
        self.counters.drop("spool_lost", missing)
        lane.counters.drop("spool_lost", missing)
        self._log.log(
            logging.ERROR,
            "spool-lost",
            "%d events of destination %r were not found in the spool (was its file changed or"
            " removed?); counted as dropped (spool_lost)",
            missing,
            lane.name,
        )

    def _take_backlog(self, counts: Mapping[str, int], above: int) -> None:
        """Spooled rows newer than seq ``above`` that are not in memory (left by an earlier
        process, or adopted from a dead one) become their destinations' backlogs."""
        assert self.spool is not None
        for key, count in counts.items():
            lane = self._lanes.get(key)
            if lane is None and key:
                destination = None if self.router is None else self.router.lookup(key)
                if destination is not None:
                    lane = self._add_lane(key, destination, self.clock.monotonic())
            self.counters.drained += count
            self._replayed += count
            if lane is None:
                gone = self.spool.purge(destination=key, above_seq=above)
                reason = "unknown_tenant" if key else "no_tenant"
                self.counters.drop(reason, count)
                self._log.log(
                    logging.WARNING,
                    f"spool-{reason}",
                    "%d spooled events of destination %r were dropped (%s): it is not"
                    " configured in this process",
                    gone,
                    key or DEFAULT,
                    reason,
                )
                continue
            if not lane.spilled:
                lane.cursor = max(lane.cursor, above)
                self._spill_lanes[key] = lane
            lane.spilled += count
            self._disk_only += count
            if not lane.spill_epochs or lane.spill_epochs[-1][1] != self._epoch:
                lane.spill_epochs.append((above + 1, self._epoch))
        self._due = True
        self.wake.set()

    def _adopt(self) -> None:
        """Take the spool segments of dead processes (dispatcher thread, outside the lock)."""
        assert self.spool is not None
        self._next_adopt = self.clock.monotonic() + ADOPT_SECONDS
        above = self.spool.last_seq
        try:
            taken = self.spool.adopt_orphans()
            counts = self.spool.counts(above) if taken else {}
        except OtelAmplitudeError as error:
            self._log.log(logging.ERROR, "spool-adopt", "spool: %s", error)
            return
        if counts:
            with self.lock:
                self._take_backlog(counts, above)

    def _keep_spooled(self) -> None:
        """At shutdown: what is left stays in the spool, for the next process to deliver."""
        kept = self._buffered + self._in_flight + self._disk_only
        self._results.clear()
        self._unanswered.clear()
        self._requests_out = 0
        self._buffered += self._in_flight
        self._in_flight = 0
        for lane in self._lanes.values():
            lane.buffered += lane.in_flight
            lane.in_flight = 0
            lane.partitions.clear()
            lane.ready.clear()
            lane.active = False
        self._active.clear()
        self._ready_events = 0
        self._waiting.clear()
        if kept:
            self._log.log(
                logging.INFO,
                "spool-kept",
                "%d undelivered events stay in the spool; the next start delivers them",
                kept,
            )

    def _count_identify(self, event: Event, now: float) -> None:
        """Warn before a user reaches Amplitude's 1,800 property updates an hour.

        Past that limit Amplitude still ingests events but may drop property updates without a
        word, so the warning (and ``identify_limit_warnings``) comes at 1,500.
        """
        hour = int(now // 3600)
        if hour != self._identify_hour:
            self._identify_hour = hour
            self._identify_counts.clear()
        key = event.user_id or event.device_id or ""
        count = self._identify_counts.get(key, 0) + 1
        self._identify_counts[key] = count
        if count == IDENTIFY_WARN_PER_HOUR:
            self.identify_limit_warnings += 1
            self._log.log(
                logging.WARNING,
                "identify-hourly",
                "a user reached %d property updates this hour; Amplitude may drop updates past "
                "1,800 an hour for one user: coalesce or reduce identify calls",
                IDENTIFY_WARN_PER_HOUR,
            )

    def _note_overflow(self, partition: Partition) -> None:
        lane = partition.lane
        if len(partition) >= self._capacity:
            which = f"one user's or device's buffer (AMPLITUDE_PARTITION_CAPACITY={self._capacity})"
        elif self._buffered + self._in_flight >= self._max_buffered:
            which = f"the buffers (AMPLITUDE_MAX_BUFFERED_EVENTS={self._max_buffered})"
        else:
            which = f"destination {lane.name!r}'s share of the buffers ({lane.cap} events)"
        self._log.log(
            logging.WARNING,
            "overflow",
            "events dropped: %s is full (AMPLITUDE_OVERFLOW=%s); see stats()['dropped_by_reason']",
            which,
            self.settings.overflow,
        )

    def _make_room(self, partition: Partition) -> bool:
        """Apply the overflow policy for an event arriving at ``partition``; True if it fits now."""
        if not self._drop_oldest:
            return False
        lane = partition.lane
        if len(partition) >= self._capacity:
            victim: Partition | None = partition
        else:
            # The oldest event of the arriving event's own destination: one customer's flood
            # never evicts another's events.
            victim = None
            while lane.arrivals:
                candidate = lane.arrivals.popleft()
                if candidate and lane.partitions.get(candidate.key) is candidate:
                    victim = candidate
                    break
            if victim is None and partition:
                victim = partition
        if victim is None or not victim:
            return False
        oldest = victim.pop(0)
        self._note_overflow(victim)
        self._buffered -= 1
        lane.buffered -= 1
        if victim.state == READY:
            self._ready_events -= 1
        self.counters.drop("overflow")
        lane.counters.drop("overflow")
        self._finish(oldest)
        return True

    # -- scheduling ---------------------------------------------------------------------------

    def _schedule(self, partition: Partition, now: float) -> None:
        """Put an idle partition where it belongs: gone, ready, or waiting for its time."""
        lane = partition.lane
        if not partition:
            partition.state = IDLE
            if lane.partitions.get(partition.key) is partition:
                del lane.partitions[partition.key]
        elif lane.removed:
            partition.state = IDLE
        elif partition.not_before > now:
            partition.state = WAITING
            heapq.heappush(self._waiting, (partition.not_before, next(self._sequence), partition))
        else:
            partition.state = READY
            lane.ready.append(partition)
            if not lane.active:
                lane.active = True
                self._active.append(lane)
            self._ready_events += len(partition)

    def _wake_waiting(self, now: float) -> None:
        waiting = self._waiting
        while waiting and waiting[0][0] <= now:
            _, _, partition = heapq.heappop(waiting)
            if partition.state == WAITING:
                partition.state = IDLE
                self._schedule(partition, now)
                self._due = True  # events that waited for their time go out at once

    @staticmethod
    def _paused_until(lane: Lane, event: Event, now: float) -> float:
        """When the pause on this event's user or device at its destination ends (0: none)."""
        until = 0.0
        if event.user_id is not None and lane.paused_users:
            u = lane.paused_users.get(event.user_id, 0.0)
            if u > now:
                until = u
            elif u:
                del lane.paused_users[event.user_id]
        if event.device_id is not None and lane.paused_devices:
            d = lane.paused_devices.get(event.device_id, 0.0)
            if d > now:
                until = max(until, d)
            elif d:
                del lane.paused_devices[event.device_id]
        return until

    def _dispatch(self, now: float) -> None:
        """Form requests while a sender is free and sending is due, the lanes taking turns.

        Lanes with ready partitions go round-robin, one request each, so a destination with a
        large backlog cannot starve the others; while others wait, a lane also keeps to its
        share of the senders, so one whose answers are slow cannot hold them all. A held or
        rate-limited lane keeps its place and is passed over until its time.
        """
        if now >= self._next_tick:
            self._next_tick = now + self._interval
            if self._buffered:
                self._due = True
        if self._lane_timer and now >= self._lane_timer:
            self._lane_timer = 0.0
            self._due = True  # a held or rate-limited lane may go again
        if not self.settings.enabled:
            return
        due = self._due or self._sealed or self._unsealed or self._ready_events >= self._batch
        if not due:
            return
        senders = self.settings.senders
        active = self._active
        contenders = sum(1 for lane in active if lane.hold_until <= now) if len(active) > 1 else 1
        share = max(1, -(-senders // max(1, contenders)))
        passed: list[Lane] = []
        timer = 0.0
        while self._requests_out < senders and active:
            lane = active.popleft()
            if not lane.ready or lane.removed:
                lane.active = False
                continue
            if lane.hold_until > now:
                passed.append(lane)
                timer = min(timer, lane.hold_until) if timer else lane.hold_until
                continue
            if contenders > 1 and lane.requests_out >= share:
                passed.append(lane)  # its turn comes back when one of its requests returns
                continue
            room, later = lane.room(now, self._batch)
            if not room:
                passed.append(lane)
                timer = min(timer, later) if timer else later
                continue
            if not self._form(lane, room, now):
                if lane.ready:
                    passed.append(lane)
                else:
                    lane.active = False
                continue
            if lane.ready:
                active.append(lane)
            else:
                lane.active = False
        if not active:
            self._due = False
        if passed:
            active.extendleft(reversed(passed))
        self._lane_timer = timer

    def _form(self, lane: Lane, room: int, now: float) -> bool:
        """One request of up to ``room`` events from ``lane``'s ready partitions, queued."""
        events: list[Event] = []
        partitions: list[Partition] = []
        identifies: bool | None = None  # a request carries events or updates, never both
        deferred: list[Partition] = []
        ready = lane.ready
        if not (lane.paused_users or lane.paused_devices or self._identify_seen):
            # Nothing to stop at (no paused id, never an identify update): whole partitions,
            # or the front of the last one (``_take``'s fast path, inlined).
            taken_events = 0
            while ready and taken_events < room:
                partition = ready.popleft()
                count = len(partition)
                self._ready_events -= count
                if not count:
                    partition.state = IDLE
                    self._schedule(partition, now)
                    continue
                if count <= room - taken_events:
                    events.extend(partition)
                    partition.clear()
                else:
                    count = room - taken_events
                    events.extend(partition[:count])
                    del partition[:count]
                taken_events += count
                partitions.append(partition)
                partition.state = IN_FLIGHT
        while ready and len(events) < room:
            partition = ready.popleft()
            if (
                identifies is not None
                and partition
                and (partition[0].event_type == IDENTIFY) != identifies
            ):
                deferred.append(partition)  # stays READY, for the next request
                continue
            self._ready_events -= len(partition)
            partition.state = IDLE
            taken = self._take(partition, room - len(events), now)
            if taken:
                if identifies is None:
                    identifies = taken[0].event_type == IDENTIFY
                events.extend(taken)
                partitions.append(partition)
                partition.state = IN_FLIGHT
            elif partition.state == IDLE:
                self._schedule(partition, now)
        if deferred:
            ready.extendleft(reversed(deferred))
        if not events:
            return False
        count = len(events)
        self._buffered -= count
        self._in_flight += count
        self._requests_out += 1
        self.counters.requests += 1
        lane.buffered -= count
        lane.in_flight += count
        lane.requests_out += 1
        lane.counters.requests += 1
        lane.sent(count)
        request = _Request(next(self._request_numbers), lane, events, partitions)
        self._unanswered[request.number] = request
        self._outbox.put(request)
        return True

    def _take(self, partition: Partition, room: int, now: float) -> list[Event]:
        """Up to ``room`` events from the front of ``partition``, stopping at a paused id."""
        lane = partition.lane
        if not (lane.paused_devices or self._identify_seen):
            taken = partition[:room]
            paused = lane.paused_users
            # While users are throttled, one set of the front's users tested against them (in C)
            # spares the per-event loop below when none of them is paused: the usual case.
            if not paused or paused.keys().isdisjoint({event.user_id for event in taken}):
                del partition[:room]
                return taken
        count = 0
        end = min(room, len(partition))
        identifies = bool(partition) and partition[0].event_type == IDENTIFY
        while count < end:
            event = partition[count]
            if (event.event_type == IDENTIFY) != identifies:
                break  # events and identify updates go in separate requests, in order
            until = self._paused_until(lane, event, now)
            if until:
                if not count:
                    partition.not_before = until
                    partition.state = WAITING
                    heapq.heappush(self._waiting, (until, next(self._sequence), partition))
                break
            count += 1
        taken = partition[:count]
        del partition[:count]
        return taken

    # -- outcomes -----------------------------------------------------------------------------

    def _send_loop(self) -> None:
        mark_library_thread()
        assert self._transport is not None
        transport = self._transport
        min_id_length = self.settings.min_id_length
        while True:
            request = self._outbox.get()
            if request is None:
                return
            lane = request.lane
            try:
                delivery = deliver(
                    transport,
                    lane.url,
                    lane.destination.api_key,
                    request.events,
                    min_id_length=min_id_length,
                    max_bytes=lane.max_bytes,
                    identify_url=lane.identify_url,
                )
            except Exception as exc:  # noqa: BLE001 - a bug here must not kill the sender
                self._log.log(
                    logging.ERROR,
                    "sender-error",
                    "unexpected %s while sending a request of %d events; they will be retried",
                    type(exc).__name__,
                    len(request.events),
                )
                delivery = Delivery([(Action.RETRY, None)] * len(request.events))
            self._results.append((request, delivery))
            self.wake.set()

    def _apply_results(self, now: float) -> None:
        while self._results:
            request, delivery = self._results.popleft()
            self._apply(request, delivery, now)

    def _apply(self, request: _Request, delivery: Delivery, now: float) -> None:
        counters = self.counters
        lane = request.lane
        self._requests_out -= 1
        lane.requests_out -= 1
        lane.in_flight -= len(request.events)
        self._unanswered.pop(request.number, None)
        observer = self.observer
        for verdict, response in zip(delivery.verdicts, delivery.responses, strict=False):
            counters.response(response.status, response.failure)
            lane.counters.response(response.status, response.failure)
            self._note(request, verdict, response.seconds)
            if observer is not None:
                outcome = str(response.status) if response.status is not None else response.failure
                observer.request_done(
                    outcome or "no_response", response.seconds, len(request.events)
                )
        events = request.events
        actions = delivery.actions
        first = actions[0] if actions else None
        if (
            first is not None
            and first[0] is Action.ACCEPT
            and len(actions) == len(events)
            and actions.count(first) == len(events)
        ):
            self._accept_all(request, now)  # the common case, in bulk
        else:
            self._apply_each(request, delivery, now)
        for verdict in delivery.verdicts:
            if verdict.throttled_users or verdict.throttled_devices:
                until = now + verdict.pause
                users, devices = lane.paused_users, lane.paused_devices
                for user in verdict.throttled_users:
                    users[user] = max(users.get(user, 0.0), until)
                for device in verdict.throttled_devices:
                    devices[device] = max(devices.get(device, 0.0), until)
            if verdict.action is Action.HOLD and not lane.removed:
                lane.hold_until = now + HOLD_SECONDS
                lane.hold_reason = verdict.kind

    def _accept_all(self, request: _Request, now: float) -> None:
        """``_apply_each`` for a request whose events were all accepted, in bulk: the same
        counts, latencies, barriers, spool removals and schedule, without the per-event loop."""
        events = request.events
        lane = request.lane
        count = len(events)
        counters = self.counters
        self._in_flight -= count
        counters.accepted += count
        lane.counters.accepted += count
        wall = time.monotonic()  # Event.created is real monotonic time, whatever the clock
        created = [event.created for event in events]
        oldest = wall - min(created)  # the largest latency: wall - c falls as c grows
        counters.latency_count += count
        counters.latency_sum += count * wall - sum(created)
        counters.latency_max = max(counters.latency_max, oldest)
        if self.observer is not None:
            self.observer.delivered(oldest)
        if self.on_identified is not None and self._identify_seen:
            for event in events:
                if event.event_type == IDENTIFY:
                    self.on_identified(event)
        self._finish_all(events)
        partitions = lane.partitions
        spare = None if self._drop_oldest else self._spare
        for partition in request.partitions:
            partition.failures = 0
            partition.state = IDLE
            if partition:
                self._schedule(partition, now)
            elif partitions.get(partition.key) is partition:
                del partitions[partition.key]
                # It was in flight: in no ready queue or timer heap, so it can be reused.
                if spare is not None and len(spare) < _SPARE:
                    partition.not_before = 0.0
                    spare.append(partition)

    def _apply_each(self, request: _Request, delivery: Delivery, now: float) -> None:
        """Apply each event's own outcome (some were not accepted), then reschedule."""
        counters = self.counters
        lane = request.lane
        observer = self.observer
        oldest: float | None = None
        requeue: dict[str, list[Event]] = {}
        failed: set[str] = set()
        progressed: set[str] = set()
        max_retries = self.settings.max_retries
        wall = time.monotonic()  # Event.created is real monotonic time, whatever the clock
        for event, (action, reason) in zip(request.events, delivery.actions, strict=True):
            self._in_flight -= 1
            key = event.device_id if event.device_id is not None else event.user_id
            assert key is not None
            if action is Action.ACCEPT:
                counters.accepted += 1
                lane.counters.accepted += 1
                latency = wall - event.created
                counters.latency_count += 1
                counters.latency_sum += latency
                counters.latency_max = max(counters.latency_max, latency)
                if oldest is None or latency > oldest:
                    oldest = latency
                if self.on_identified is not None and event.event_type == IDENTIFY:
                    self.on_identified(event)
                progressed.add(key)
                self._finish(event)
            elif action is Action.REJECT:
                why = reason or "invalid"
                counters.reject(why)
                lane.counters.reject(why)
                progressed.add(key)
                self._finish(event)
            elif action is Action.DROP:
                counters.drop(reason or "dropped")
                lane.counters.drop(reason or "dropped")
                self._finish(event)
            elif lane.removed:
                # Its destination was removed while the request was on the wire.
                counters.drop("destination_removed")
                lane.counters.drop("destination_removed")
                self._finish(event)
            elif action is Action.RETRY:
                event.attempts += 1
                failed.add(key)
                if self.screen is not None and (dropped := self.screen(event)) is not None:
                    counters.drop(dropped)
                    lane.counters.drop(dropped)
                    self._finish(event)
                elif event.attempts > max_retries and self.spool is None:
                    # With the spool an event is never given up: it waits out the outage.
                    self._dead_letter([event], "retries_exhausted", lane)
                else:
                    counters.retried += 1
                    lane.counters.retried += 1
                    requeue.setdefault(key, []).append(event)
            elif self.screen is not None and (dropped := self.screen(event)) is not None:
                # Opted out or deleted while its request was on the wire: never sent again.
                counters.drop(dropped)
                lane.counters.drop(dropped)
                self._finish(event)
            else:  # RESEND, THROTTLE, HOLD, SPLIT: not the event's fault, costs no attempt
                if action is Action.THROTTLE:
                    counters.throttled += 1
                    lane.counters.throttled += 1
                if action is not Action.HOLD:
                    counters.retried += 1
                    lane.counters.retried += 1
                requeue.setdefault(key, []).append(event)

        if observer is not None and oldest is not None:
            observer.delivered(oldest)
        for partition in request.partitions:
            key = partition.key
            events = requeue.get(key)
            if events:
                partition[:0] = events
                self._buffered += len(events)
                lane.buffered += len(events)
            if key in failed:
                partition.failures += 1
                partition.not_before = now + self._backoff.delay(partition.failures, self._rng)
            elif key in progressed:
                partition.failures = 0
            partition.state = IDLE
            self._schedule(partition, now)
            if partition.state == READY and events:
                self._due = True

    def _note(self, request: _Request, verdict: Verdict, seconds: float) -> None:
        """The library's log line for one response: status, counts, never payload or key.

        ``[request N]`` ties together the lines of one request (its split halves included);
        ``attempt`` is the try of its most-retried event. Success is DEBUG, the rest is WARNING
        (ERROR for a refused key), each kind rate-limited.
        """
        if verdict.kind == "accepted":
            if _library_log.isEnabledFor(logging.DEBUG):
                _library_log.debug(
                    "Amplitude answered %s in %.0f ms (attempt %d): events_ingested=%s; the "
                    "request had %d events [request %d]",
                    verdict.status,
                    seconds * 1000.0,
                    1 + max(e.attempts for e in request.events),
                    verdict.ingested,
                    len(request.events),
                    request.number,
                )
            return
        attempt = 1 + max(e.attempts for e in request.events)
        if verdict.kind in ("invalid_api_key", "unauthorized", "not_found"):
            name = request.lane.name
            check = (
                "AMPLITUDE_API_KEY, AMPLITUDE_SERVER_ZONE (an EU project's key is refused by the"
                " US endpoint) and AMPLITUDE_SERVER_URL"
                if name == DEFAULT
                else f"tenant {name!r}'s api_key, zone and server_url in the destinations"
            )
            self._log.log(
                logging.ERROR,
                f"hold-{verdict.kind}:{name}",
                "Amplitude refused delivery to destination %r (%s, HTTP %s) in %.0f ms; its"
                " delivery is paused for %d s and its events are kept (other destinations go"
                " on). Check %s; the request had %d events [request %d]",
                name,
                verdict.kind,
                verdict.status,
                seconds * 1000.0,
                int(HOLD_SECONDS),
                check,
                len(request.events),
                request.number,
            )
            return
        self._log.log(
            logging.WARNING,
            f"response-{verdict.kind}",
            "Amplitude answered %s (%s) in %.0f ms (attempt %d): events_ingested=%s, %d "
            "throttled users, %d throttled devices; the request had %d events [request %d]",
            verdict.status if verdict.status is not None else "nothing",
            verdict.error or verdict.kind,
            seconds * 1000.0,
            attempt,
            verdict.ingested if verdict.ingested is not None else "n/a",
            len(verdict.throttled_users),
            len(verdict.throttled_devices),
            len(request.events),
            request.number,
        )

    def _finish(self, event: Event) -> None:
        """Record that ``event`` reached a terminal state, for flush barriers and the spool."""
        if event.spool_id:
            self._unspool.append(event)
        epoch = event.epoch
        remaining = self._outstanding.get(epoch, 0) - 1
        if remaining > 0:
            self._outstanding[epoch] = remaining
        else:
            self._outstanding.pop(epoch, None)

    def _finish_all(self, events: list[Event]) -> None:
        """``_finish`` for each of ``events``, counting their flush epochs in one pass."""
        if self.spool is not None:
            self._unspool.extend([event for event in events if event.spool_id])
        outstanding = self._outstanding
        epoch = events[0].epoch
        if len(outstanding) == 1 and epoch in outstanding:
            # One epoch outstanding: every event in memory is of it (the common case).
            counts = {epoch: len(events)}
        else:
            counts = {}
            for event in events:
                counts[event.epoch] = counts.get(event.epoch, 0) + 1
        for epoch, count in counts.items():
            remaining = outstanding.get(epoch, 0) - count
            if remaining > 0:
                outstanding[epoch] = remaining
            else:
                outstanding.pop(epoch, None)

    def _dead_letter(self, events: list[Event], reason: str, lane: Lane) -> None:
        self.counters.dead_letter(reason, len(events))
        lane.counters.dead_letter(reason, len(events))
        for event in events:
            self._finish(event)
        self._dead.append((events, reason))

    def _report_dead(self, dead: Sequence[tuple[list[Event], str]]) -> None:
        """Log dead letters and hand them to the callback, outside the lock: one line and one
        callback per reason."""
        by_reason: dict[str, list[Event]] = {}
        for events, reason in dead:
            by_reason.setdefault(reason, []).extend(events)
        for reason, events in by_reason.items():
            self._log.log(
                logging.WARNING,
                f"dead-{reason}",
                "%d events dead-lettered (%s)",
                len(events),
                reason,
            )
            if self._on_dead_letter is not None:
                try:
                    self._on_dead_letter([to_wire(e) for e in events], reason)
                except Exception as exc:  # noqa: BLE001 - a user callback must not stop delivery
                    self._log.log(
                        logging.ERROR,
                        "dead-letter-callback",
                        "on_dead_letter raised %s; ignored",
                        type(exc).__name__,
                    )

    def _check_barriers(self) -> None:
        if not self._sealed:
            return
        oldest = min(self._outstanding) if self._outstanding else None
        # Events in a backlog on disk hold every barrier sealed after they were spooled.
        on_disk = min((lane.cursor for lane in self._spill_lanes.values()), default=None)
        still: list[Barrier] = []
        for barrier in self._sealed:
            if (oldest is None or oldest > barrier.epoch) and (
                on_disk is None or on_disk >= barrier.mark
            ):
                barrier.done.set()
            else:
                still.append(barrier)
        self._sealed = still

    # -- after close, and the snapshot -------------------------------------------------------

    def _drain_closed(self) -> None:
        """After shutdown nothing is sent: whatever reaches ``inbound`` is counted as dropped."""
        while self.inbound:
            item = self.inbound.popleft()
            self.counters.drained += 1
            self.counters.drop(item if isinstance(item, str) else "shutdown")
        for barrier in (*self._barriers, *self._unsealed, *self._sealed):
            barrier.done.set()

    def snapshot(self) -> Stats:
        """A consistent view of the counters (the conservation equation holds exactly)."""
        with self.lock:
            if self.closed:
                self._drain_closed()
            waiting = len(self.inbound)
            c = self.counters
            now = self.clock.monotonic()
            destinations = {lane.name: _lane_stats(lane, now) for lane in self._lanes.values()}
            paused = sum(d["paused_partitions"] for d in destinations.values())
            held = sum(1 for d in destinations.values() if d["destination_paused"])
            return Stats(
                **c.counted(self._buffered + waiting + self._disk_only, self._in_flight),
                submitted=c.drained + waiting,
                paused_partitions=paused,
                destination_paused=held > 0,
                paused_destinations=held,
                destinations=destinations,
                destinations_reload_errors=0 if self.router is None else self.router.reload_errors,
                spooled=0 if self.spool is None else self.spool.rows,
                backlog_on_disk=self._disk_only,
                replayed=self._replayed,
                latency_ms_mean=(c.latency_sum / c.latency_count * 1000.0)
                if c.latency_count
                else 0.0,
                latency_ms_max=c.latency_max * 1000.0,
                identify_limit_warnings=self.identify_limit_warnings,
            )


def _lane_stats(lane: Lane, now: float) -> DestinationStats:
    paused = sum(1 for t in lane.paused_users.values() if t > now) + sum(
        1 for t in lane.paused_devices.values() if t > now
    )
    held = lane.hold_until > now
    return DestinationStats(
        **lane.counters.counted(lane.buffered + lane.spilled, lane.in_flight),
        paused_partitions=paused,
        destination_paused=held,
        paused_reason=lane.hold_reason if held else None,
        zone=lane.destination.zone,
        environment=lane.destination.environment,
    )

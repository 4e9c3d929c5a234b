"""The fault plan: what the test server does wrong on purpose, and the limits it enforces.

A :class:`Fault` is one misbehaviour for one request (a 5xx, a reset connection, a slow reply);
:class:`FaultPlan` is ``server.faults``: scripted and random faults, throttled and over-quota
ids, the EPS limit, the size limits and a delay for every reply. Tests change it at any time
from their own thread; the server reads it under the plan's lock.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import KW_ONLY, dataclass
from http import HTTPStatus
from typing import Final

from otel_amplitude.testing._protocol import (
    MAX_BATCH_BYTES,
    MAX_EVENTS,
    MAX_REQUEST_BYTES,
    error_body,
)

__all__ = ["RANDOM_FAULT_KINDS", "Fault", "FaultPlan", "ThrottleState"]

#: The kinds ``FaultPlan.random`` picks from by default, named as in ``RecordedRequest.fault``.
RANDOM_FAULT_KINDS: Final = (
    "500",
    "502",
    "503",
    "504",
    "reset",
    "accept_then_500",
    "reset_after_ingest",
)


@dataclass(frozen=True)
class Fault:
    """One misbehaviour, applied to one request.

    ``status`` answers that status (``{"code": status, "error": <reason>}`` unless ``body`` is
    given) without looking at the request; with ``ingest=True`` the request is first processed
    and stored as usual (accepted-but-5xx). ``reset=True`` closes the connection abruptly
    with no response (after storing, with ``ingest=True``). ``delay`` sleeps that many real
    seconds before answering. ``Fault()`` answers normally, a placeholder in a script.

    A 2xx status without ``body`` answers a normal-looking success: ``Fault(200, delay=1,
    ingest=True)`` is an accepted request whose reply comes too late; ``Fault(200)`` claims
    success for events it drops.
    """

    status: int | None = None
    _: KW_ONLY
    body: bytes | None = None
    content_type: str = "application/json"
    ingest: bool = False
    reset: bool = False
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"Fault status must be an HTTP status (100-599), got {self.status}")
        if self.status is not None and self.reset:
            raise ValueError("a Fault either answers a status or resets the connection, not both")
        if self.body is not None and self.status is None:
            raise ValueError("Fault(body=...) needs a status to answer it with")
        if self.delay < 0:
            raise ValueError(f"Fault delay must be >= 0 seconds, got {self.delay}")

    @property
    def replaces_reply(self) -> bool:
        """True when the client gets this fault's status or reset instead of the normal answer."""
        return self.reset or self.status is not None

    @property
    def name(self) -> str:
        """A label: ``"503"``, ``"reset"``, ``"accept_then_500"``, ``"reset_after_ingest"``..."""
        if self.reset:
            return "reset_after_ingest" if self.ingest else "reset"
        if self.status is not None:
            return f"accept_then_{self.status}" if self.ingest else str(self.status)
        return "delay" if self.delay else "none"

    def response_body(self) -> bytes:
        """The body this fault answers with (empty when it resets or does not replace the reply)."""
        if self.body is not None:
            return self.body
        if self.status is None:
            return b""
        try:
            reason = HTTPStatus(self.status).phrase
        except ValueError:
            reason = "Error"
        return error_body(self.status, reason)

    @classmethod
    def of_kind(cls, kind: str) -> Fault:
        """The fault a random-fault kind stands for (one of :data:`RANDOM_FAULT_KINDS`)."""
        if kind == "reset":
            return cls(reset=True)
        if kind == "reset_after_ingest":
            return cls(reset=True, ingest=True)
        prefix = "accept_then_"
        ingest = kind.startswith(prefix)
        code = kind[len(prefix) :] if ingest else kind
        if not code.isdigit():
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {RANDOM_FAULT_KINDS}")
        return cls(int(code), ingest=ingest)


@dataclass(frozen=True)
class ThrottleState:
    """A consistent copy of the throttling settings, taken once per request."""

    users: frozenset[str]
    devices: frozenset[str]
    quota_users: frozenset[str]
    quota_devices: frozenset[str]
    eps_threshold: int | None
    ingest_unthrottled_on_429: bool


class FaultPlan:
    """``server.faults``: the faults to inject and the limits to enforce.

    Plain attributes (set them directly):

    - ``ingest_unthrottled_on_429``: on a 429, store the request's non-throttled events (True)
      or nothing (False, the default). Amplitude documents neither; clients must cope with both.
    - ``eps_threshold``: a per-user / per-device limit of events per second over a 30 s sliding
      window of the server's clock; every event of a valid request counts, resends included.
      429 bodies report it as ``eps_threshold``; unset, they report Amplitude's defaults (30 for
      HTTP V2, 1000 for Batch) and ``throttle()``'d ids show one over it.
    - ``max_request_bytes`` (HTTP V2, Identify, Group Identify, privacy), ``max_batch_bytes``
      (Batch), ``max_events``: over them the answer is 413, sizes measured decompressed.
    - ``delay_seconds``: every reply waits this many real seconds.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: set[str] = set()
        self._devices: set[str] = set()
        self._quota_users: set[str] = set()
        self._quota_devices: set[str] = set()
        self._script: deque[Fault] = deque()
        self._privacy_script: deque[Fault] = deque()
        self._random: random.Random | None = None
        self._random_rate = 0.0
        self._random_kinds: tuple[Fault, ...] = ()
        self.ingest_unthrottled_on_429 = False
        self.eps_threshold: int | None = None
        self.max_request_bytes = MAX_REQUEST_BYTES
        self.max_batch_bytes = MAX_BATCH_BYTES
        self.max_events = MAX_EVENTS
        self.delay_seconds = 0.0

    def throttle(self, users: Iterable[str] = (), devices: Iterable[str] = ()) -> None:
        """Answer 429 for events of these user/device ids until :meth:`unthrottle`."""
        with self._lock:
            self._users.update(_ids(users, "users"))
            self._devices.update(_ids(devices, "devices"))

    def unthrottle(
        self, users: Iterable[str] | None = None, devices: Iterable[str] | None = None
    ) -> None:
        """Stop throttling the given ids; with no argument at all, every throttled id."""
        with self._lock:
            if users is None and devices is None:
                self._users.clear()
                self._devices.clear()
                return
            self._users.difference_update(_ids(users or (), "users"))
            self._devices.difference_update(_ids(devices or (), "devices"))

    def daily_quota(self, users: Iterable[str] = (), devices: Iterable[str] = ()) -> None:
        """Answer 429 with ``exceeded_daily_quota_users/devices`` for events of these ids."""
        with self._lock:
            self._quota_users.update(_ids(users, "users"))
            self._quota_devices.update(_ids(devices, "devices"))

    def clear_daily_quota(self) -> None:
        """Lift every daily quota set by :meth:`daily_quota`."""
        with self._lock:
            self._quota_users.clear()
            self._quota_devices.clear()

    def script(self, *faults: Fault) -> None:
        """Queue one-shot faults for the next HTTP V2 / Batch requests, one per request."""
        with self._lock:
            self._script.extend(_faults(faults))

    def script_privacy(self, *faults: Fault) -> None:
        """Queue one-shot faults for the next User Privacy API requests, one per request."""
        with self._lock:
            self._privacy_script.extend(_faults(faults))

    @property
    def pending(self) -> int:
        """How many scripted faults (ingestion and privacy) have not been applied yet."""
        with self._lock:
            return len(self._script) + len(self._privacy_script)

    def random(self, rate: float, seed: int, kinds: Sequence[str] = RANDOM_FAULT_KINDS) -> None:
        """Give each ingestion request a fault with probability ``rate``; ``rate=0`` turns it off.

        Draws come from ``random.Random(seed)``, one per request (and one more to pick the kind
        on a hit), so the same requests in the same order meet the same faults. Scripted faults
        go first and take no draw.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"random fault rate must be between 0 and 1, got {rate}")
        if isinstance(kinds, str):
            raise TypeError("kinds must be a sequence of fault kinds, not one string")
        chosen = tuple(Fault.of_kind(kind) for kind in kinds)
        if rate and not chosen:
            raise ValueError("random faults need at least one kind")
        with self._lock:
            self._random = random.Random(seed) if rate else None
            self._random_rate = rate
            self._random_kinds = chosen

    def clear(self) -> None:
        """Back to no fault at all and the documented limits."""
        with self._lock:
            self._users.clear()
            self._devices.clear()
            self._quota_users.clear()
            self._quota_devices.clear()
            self._script.clear()
            self._privacy_script.clear()
            self._random = None
            self._random_rate = 0.0
            self._random_kinds = ()
        self.ingest_unthrottled_on_429 = False
        self.eps_threshold = None
        self.max_request_bytes = MAX_REQUEST_BYTES
        self.max_batch_bytes = MAX_BATCH_BYTES
        self.max_events = MAX_EVENTS
        self.delay_seconds = 0.0

    def take_ingestion_fault(self) -> Fault | None:
        """The fault for the next ingestion request: the next scripted one, else a random draw."""
        with self._lock:
            if self._script:
                return self._script.popleft()
            if self._random is None or self._random.random() >= self._random_rate:
                return None
            return self._random.choice(self._random_kinds)

    def take_privacy_fault(self) -> Fault | None:
        """The next scripted fault for a User Privacy API request, if any."""
        with self._lock:
            return self._privacy_script.popleft() if self._privacy_script else None

    def throttle_state(self) -> ThrottleState:
        """A snapshot of the throttling settings, consistent for one request."""
        with self._lock:
            return ThrottleState(
                users=frozenset(self._users),
                devices=frozenset(self._devices),
                quota_users=frozenset(self._quota_users),
                quota_devices=frozenset(self._quota_devices),
                eps_threshold=self.eps_threshold,
                ingest_unthrottled_on_429=self.ingest_unthrottled_on_429,
            )

    def __repr__(self) -> str:
        state = self.throttle_state()
        return (
            f"FaultPlan(throttled={len(state.users) + len(state.devices)}, "
            f"over_quota={len(state.quota_users) + len(state.quota_devices)}, "
            f"eps_threshold={state.eps_threshold}, pending={self.pending}, "
            f"random_rate={self._random_rate}, delay_seconds={self.delay_seconds})"
        )


def _ids(ids: Iterable[str], what: str) -> set[str]:
    if isinstance(ids, str):
        raise TypeError(f"{what} must be an iterable of ids, not one string: use [{ids!r}]")
    return set(ids)


def _faults(faults: Iterable[Fault]) -> list[Fault]:
    checked = list(faults)
    for fault in checked:
        if not isinstance(fault, Fault):
            raise TypeError(f"expected Fault objects, got {type(fault).__name__}")
    return checked

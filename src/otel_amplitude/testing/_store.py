"""What the test server remembers: requests, stored events, dedup keys, identifications, deletions.

One re-entrant lock (with a condition for waiters) guards it all. The server holds it for the
whole processing of a request, so records appear in processing order and a request's effects
(events stored, request recorded) are seen together.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from otel_amplitude.testing._protocol import EPS_WINDOW_SECONDS, partition_key
from otel_amplitude.testing._rates import RequestSpacing, SlidingWindowCounter

__all__ = ["PRIVACY_REQUEST_INTERVAL", "RecordedRequest", "Store"]

#: The User Privacy API admits one request per second per project.
PRIVACY_REQUEST_INTERVAL = 1.0

_FIRST_AMPLITUDE_ID = 100_000_000_001


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it, and what it answered.

    ``body`` is decompressed; ``json`` is the parsed body (None if it was not JSON); ``form``
    the fields of a form-encoded body (or of the query string of a GET Identify), else None.
    ``status`` is 0 when the connection was reset instead of answered. ``events_count`` counts
    the events (or identifications) the request carried; ``fault`` names the injected fault or
    limit that shaped the answer (``"503"``, ``"reset"``, ``"accept_then_500"``, ``"throttle"``,
    ``"eps"``, ``"daily_quota"``...), None for a normal answer. The repr leaves out headers and
    bodies, which may hold keys.
    """

    path: str
    method: str
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    json: Any = field(repr=False)
    form: dict[str, str] | None = field(repr=False)
    status: int
    response_body: bytes = field(repr=False)
    events_count: int
    fault: str | None
    query: str = field(default="", repr=False)


class Store:
    """Everything recorded, plus the rate state that :meth:`clear` must forget with it."""

    events: list[dict[str, Any]]
    event_api_keys: list[str]
    duplicates: int
    requests: list[RecordedRequest]
    identifications: list[dict[str, Any]]
    group_identifications: list[dict[str, Any]]
    deletions: list[dict[str, Any]]

    def __init__(self) -> None:
        self.lock = threading.Condition(threading.RLock())
        self.eps_window = SlidingWindowCounter(EPS_WINDOW_SECONDS)
        self.privacy_spacing = RequestSpacing(PRIVACY_REQUEST_INTERVAL)
        self._seen: set[tuple[str, str, str | None]] = set()
        self._amplitude_ids: dict[tuple[str, str], int] = {}
        self._users_by_amplitude_id: dict[tuple[str, int], str] = {}
        self.clear()

    def clear(self) -> None:
        """Forget everything: records, dedup keys, amplitude ids and rate windows."""
        with self.lock:
            self.events = []
            self.event_api_keys = []
            self.duplicates = 0
            self.requests = []
            self.identifications = []
            self.group_identifications = []
            self.deletions = []
            self.eps_window.clear()
            self.privacy_spacing.clear()
            self._seen.clear()
            self._amplitude_ids.clear()
            self._users_by_amplitude_id.clear()
            self.lock.notify_all()

    def add_events(self, api_key: str, events: Iterable[dict[str, Any]]) -> None:
        """Store events not seen before under (api_key, insert_id, device_id else user_id)."""
        with self.lock:
            for event in events:
                insert_id = event.get("insert_id")
                if isinstance(insert_id, str):
                    key = (api_key, insert_id, partition_key(event))
                    if key in self._seen:
                        self.duplicates += 1
                        continue
                    self._seen.add(key)
                self.events.append(event)
                self.event_api_keys.append(api_key)
                user_id = event.get("user_id")
                if isinstance(user_id, str) and (api_key, user_id) not in self._amplitude_ids:
                    amplitude_id = _FIRST_AMPLITUDE_ID + len(self._amplitude_ids)
                    self._amplitude_ids[api_key, user_id] = amplitude_id
                    self._users_by_amplitude_id[api_key, amplitude_id] = user_id
            self.lock.notify_all()

    def record(self, request: RecordedRequest) -> None:
        """Append a request to the log and wake the waiters."""
        with self.lock:
            self.requests.append(request)
            self.lock.notify_all()

    def amplitude_id(self, api_key: str, user_id: str) -> int | None:
        """The Amplitude ID given to ``user_id`` when its first event was stored, or None."""
        with self.lock:
            return self._amplitude_ids.get((api_key, user_id))

    def user_of(self, api_key: str, amplitude_id: int) -> str | None:
        """The user id an Amplitude ID stands for, or None if the server never gave it out."""
        with self.lock:
            return self._users_by_amplitude_id.get((api_key, amplitude_id))

"""Sending one request: encode, POST over the shared pool, classify, bisect when too large.

Knows nothing of spans, log records or partitions: it turns a list of events into one
:class:`Delivery` (an action per event) and leaves every decision about state to the dispatcher.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson
import urllib3
from urllib3.connection import port_by_scheme
from urllib3.connectionpool import HTTPConnectionPool, connection_from_url
from urllib3.exceptions import (
    HTTPError,
    NewConnectionError,
    ProtocolError,
)
from urllib3.exceptions import (
    TimeoutError as Urllib3TimeoutError,
)
from urllib3.util import Retry, parse_url

from ._event import Event, to_wire
from ._identify import IDENTIFY, MAX_IDENTIFICATIONS, coalesce, encode_identify
from ._response import Action, Verdict, classify, classify_failure, classify_identify
from ._version import __version__

__all__ = ["Delivery", "Response", "Transport", "deliver", "encode_request"]

#: Body limits on the decompressed JSON (amplitude-api.md §2.2, the stricter reading).
HTTPAPI_MAX_BYTES = 1_000_000
BATCH_MAX_BYTES = 20_000_000

_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "*/*",
    "User-Agent": f"otel-amplitude/{__version__}",
}
_FORM_HEADERS = {**_HEADERS, "Content-Type": "application/x-www-form-urlencoded"}
#: urllib3 never retries nor follows a redirect: a failure is classified, then the dispatcher
#: decides (built once; a Retry is immutable, so every thread can share it).
_NO_RETRIES = Retry(total=False, redirect=False)
#: Hosts kept connected at once (as ``PoolManager(num_pools=8)`` did).
MAX_POOLS = 8


@dataclass(frozen=True, slots=True)
class Response:
    """One HTTP exchange as seen by the sender: status (None: no answer), body, timing."""

    status: int | None
    body: bytes
    retry_after: str | None
    failure: str | None
    seconds: float


class Transport:
    """POSTs bodies with keep-alive, one urllib3 connection pool per host; urllib3's retries off.

    Each URL is parsed once and mapped to its host's ``HTTPConnectionPool`` (at most
    :data:`MAX_POOLS` hosts, the least recently added closed first), and a POST goes straight
    to the pool's ``urlopen`` with headers and retry policy built once: ``PoolManager.request``
    parsed the URL, merged headers and looked the pool up on every call, which cost about as
    much CPU as the exchange itself.
    """

    def __init__(self, *, timeout_s: float, maxsize: int) -> None:
        self._timeout = urllib3.Timeout(connect=min(timeout_s, 10.0), read=timeout_s)
        self._maxsize = maxsize
        self._routes: dict[str, tuple[HTTPConnectionPool, str]] = {}  # url: pool, request path
        self._pools: dict[tuple[str, str, int], HTTPConnectionPool] = {}
        self._lock = threading.Lock()  # taken on a URL's first request only

    def post(self, url: str, body: bytes, *, form: bool = False) -> Response:
        """POST ``body`` (JSON, or a form); a failure to get an answer is reported, not raised."""
        started = time.perf_counter()
        try:
            pool, path = self._routes.get(url) or self._route(url)
            reply = pool.urlopen(
                "POST",
                path,
                body=body,
                headers=_FORM_HEADERS if form else _HEADERS,
                retries=_NO_RETRIES,
                redirect=False,
                assert_same_host=False,
                preload_content=True,
            )
        except NewConnectionError:  # before the timeout: urllib3 2 makes it a ConnectTimeoutError
            return Response(None, b"", None, "connection_refused", time.perf_counter() - started)
        except Urllib3TimeoutError:
            return Response(None, b"", None, "timeout", time.perf_counter() - started)
        except ProtocolError:
            return Response(None, b"", None, "connection_reset", time.perf_counter() - started)
        except HTTPError:
            return Response(None, b"", None, "connection_error", time.perf_counter() - started)
        return Response(
            reply.status,
            reply.data,
            reply.headers.get("Retry-After"),
            None,
            time.perf_counter() - started,
        )

    def _route(self, url: str) -> tuple[HTTPConnectionPool, str]:
        """The pool and request path of ``url``, made on its first request."""
        parsed = parse_url(url)
        scheme = (parsed.scheme or "http").lower()
        host = (parsed.host or "").lower()
        key = (scheme, host, parsed.port or port_by_scheme.get(scheme, 80))
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = connection_from_url(
                    url,
                    maxsize=self._maxsize,
                    block=False,
                    retries=_NO_RETRIES,
                    timeout=self._timeout,
                    headers=_HEADERS,
                )
                self._pools[key] = pool
                while len(self._pools) > MAX_POOLS:
                    self._forget(next(iter(self._pools)))
            route = self._routes[url] = (pool, parsed.request_uri)
        return route

    def _forget(self, key: tuple[str, str, int]) -> None:
        """Close the pool of ``key`` and drop every route to it (``self._lock`` held)."""
        pool = self._pools.pop(key)
        for url in [url for url, (other, _) in self._routes.items() if other is pool]:
            del self._routes[url]
        pool.close()

    def close(self) -> None:
        with self._lock:
            for key in list(self._pools):
                self._forget(key)


def encode_request(api_key: str, events: Sequence[Event], min_id_length: int | None) -> bytes:
    """The JSON body of an HTTP V2 or Batch request.

    orjson asks :func:`to_wire` for each event as it writes it (its ``default`` hook), so each
    wire dict is freed once written: no list of a thousand dicts, each tracked by the cyclic
    garbage collector, whose allocation would set off collections on the sender thread.
    """
    payload: dict[str, object] = {
        "api_key": api_key,
        "events": events if type(events) is list else list(events),
    }
    if min_id_length is not None:
        payload["options"] = {"min_id_length": min_id_length}
    return orjson.dumps(payload, default=to_wire)


@dataclass(slots=True)
class Delivery:
    """The outcome of delivering one batch: an action per event, and what the answers said."""

    actions: list[tuple[Action, str | None]]
    verdicts: list[Verdict] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)

    def extend(self, other: Delivery) -> None:
        self.actions.extend(other.actions)
        self.verdicts.extend(other.verdicts)
        self.responses.extend(other.responses)


_SENT_AGAIN = frozenset({Action.RETRY, Action.RESEND, Action.THROTTLE, Action.HOLD})


def deliver(
    transport: Transport,
    url: str,
    api_key: str,
    events: Sequence[Event],
    *,
    min_id_length: int | None,
    max_bytes: int,
    identify_url: str = "",
) -> Delivery:
    """Send ``events`` in one request, or in deterministic halves when it is too large.

    A split is not a retry: halves go out one after the other (left first, so each device's order
    holds), and when the left half leaves anything to send again the right half is not sent but
    handed back unchanged, to follow it in order. A request of ``$identify`` updates goes to the
    Identify API (``identify_url``) instead.
    """
    if events and events[0].event_type == IDENTIFY:
        return _deliver_identify(transport, identify_url, api_key, events)
    body = encode_request(api_key, events, min_id_length)
    if len(body) > max_bytes:
        if len(events) == 1:
            return Delivery([(Action.REJECT, "too_large")])
        return _bisect(transport, url, api_key, events, min_id_length, max_bytes)

    response = transport.post(url, body)
    if response.status is None:
        verdict = classify_failure(response.failure or "connection_error")
    else:
        verdict = classify(events, response.status, response.body, retry_after=response.retry_after)
    if verdict.action is Action.SPLIT:
        delivery = _bisect(transport, url, api_key, events, min_id_length, max_bytes)
        delivery.verdicts.insert(0, verdict)
        delivery.responses.insert(0, response)
        return delivery
    return Delivery(_actions(verdict, len(events)), [verdict], [response])


def _actions(verdict: Verdict, count: int) -> list[tuple[Action, str | None]]:
    """The action for each of ``count`` events: one shared tuple when none is an exception."""
    if not verdict.exceptions:
        return [(verdict.action, verdict.reason)] * count
    return [verdict.action_for(i) for i in range(count)]


def _bisect(
    transport: Transport,
    url: str,
    api_key: str,
    events: Sequence[Event],
    min_id_length: int | None,
    max_bytes: int,
) -> Delivery:
    def send(half: Sequence[Event]) -> Delivery:
        return deliver(
            transport, url, api_key, half, min_id_length=min_id_length, max_bytes=max_bytes
        )

    return _in_halves(events, send)


def _in_halves(events: Sequence[Event], send: Callable[[Sequence[Event]], Delivery]) -> Delivery:
    middle = len(events) // 2
    result = send(events[:middle])
    if any(action in _SENT_AGAIN for action, _ in result.actions):
        result.actions.extend([(Action.RESEND, None)] * (len(events) - middle))
        return result
    result.extend(send(events[middle:]))
    return result


def _deliver_identify(
    transport: Transport, url: str, api_key: str, events: Sequence[Event]
) -> Delivery:
    """Send updates to the Identify API, consecutive updates of one user merged into one."""
    items, groups = coalesce(events)
    body = encode_identify(api_key, items)
    if len(items) > MAX_IDENTIFICATIONS or len(body) > HTTPAPI_MAX_BYTES:
        if len(events) == 1:
            return Delivery([(Action.REJECT, "too_large")])
        return _in_halves(events, lambda half: _deliver_identify(transport, url, api_key, half))
    response = transport.post(url, body, form=True)
    representatives = [events[group[0]] for group in groups]
    if response.status is None:
        verdict = classify_failure(response.failure or "connection_error")
    else:
        verdict = classify_identify(
            representatives, response.status, response.body, retry_after=response.retry_after
        )
    if verdict.action is Action.SPLIT:
        if len(events) == 1:
            return Delivery([(Action.REJECT, "too_large")], [verdict], [response])
        delivery = _in_halves(events, lambda half: _deliver_identify(transport, url, api_key, half))
        delivery.verdicts.insert(0, verdict)
        delivery.responses.insert(0, response)
        return delivery
    actions: list[tuple[Action, str | None]] = [(Action.ACCEPT, None)] * len(events)
    for position, group in enumerate(groups):
        outcome = verdict.action_for(position)
        for index in group:
            actions[index] = outcome
    return Delivery(actions, [verdict], [response])

"""Amplitude's endpoints: one request in, one reply out, with faults applied and effects stored.

This is the server's behaviour without its plumbing (no sockets, no threads): ``_server`` hands
each request to :meth:`AmplitudeApp.handle` and writes back the :class:`Reply`.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from otel_amplitude._clock import Clock
from otel_amplitude.testing._faults import Fault, FaultPlan
from otel_amplitude.testing._protocol import (
    BATCH_EPS_THRESHOLD,
    EPS_WINDOW_SECONDS,
    HTTP_V2_EPS_THRESHOLD,
    IDENTIFY_SUCCESS,
    JSON_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    RequestError,
    decode_body,
    deletion_body,
    eps_of,
    error_body,
    find_throttled,
    invalid_events_body,
    parse_basic_auth,
    parse_deletion,
    parse_form,
    parse_identify,
    parse_ingestion,
    parse_json,
    payload_too_large,
    success_body,
    throttled_body,
    validate_events,
)
from otel_amplitude.testing._store import RecordedRequest, Store

__all__ = ["AmplitudeApp", "Endpoint", "IncomingRequest", "Reply"]


class Endpoint(enum.Enum):
    """The paths the server answers."""

    HTTP_V2 = "/2/httpapi"
    BATCH = "/batch"
    IDENTIFY = "/identify"
    GROUP_IDENTIFY = "/groupidentify"
    DELETIONS = "/api/2/deletions/users"


_METHODS: dict[Endpoint, tuple[str, ...]] = {
    Endpoint.HTTP_V2: ("POST",),
    Endpoint.BATCH: ("POST",),
    Endpoint.IDENTIFY: ("GET", "POST"),
    Endpoint.GROUP_IDENTIFY: ("GET", "POST"),
    Endpoint.DELETIONS: ("POST",),
}
_ENDPOINTS = {endpoint.value: endpoint for endpoint in Endpoint}
_INGESTION = (Endpoint.HTTP_V2, Endpoint.BATCH)
_IDENTIFY = (Endpoint.IDENTIFY, Endpoint.GROUP_IDENTIFY)


@dataclass(frozen=True)
class IncomingRequest:
    """A request as read off the wire: ``headers`` with lower-case names, ``body`` still encoded."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Reply:
    """What to send back; ``reset`` means close the connection abruptly instead."""

    status: int
    body: bytes = b""
    content_type: str = JSON_CONTENT_TYPE
    headers: tuple[tuple[str, str], ...] = ()
    reset: bool = False
    delay: float = 0.0


@dataclass(frozen=True)
class _Decoded:
    """The body in every form a handler may need, decoded once per request."""

    body: bytes
    error: RequestError | None
    json: Any
    json_error: RequestError | None
    form: dict[str, str] | None


@dataclass(frozen=True)
class _Outcome:
    reply: Reply
    label: str | None = None


def _json(status: int, body: bytes) -> Reply:
    return Reply(status, body, JSON_CONTENT_TYPE)


class AmplitudeApp:
    """Answers requests the way Amplitude does, recording them in ``store``.

    ``api_keys`` None accepts any non-empty key; ``secret_keys`` None accepts any non-empty
    secret on the privacy API. ``clock`` times the EPS window and the privacy rate limit.
    """

    def __init__(
        self,
        *,
        store: Store,
        faults: FaultPlan,
        clock: Clock,
        api_keys: frozenset[str] | None,
        secret_keys: Mapping[str, str] | None,
    ) -> None:
        self._store = store
        self._faults = faults
        self._clock = clock
        self._api_keys = api_keys
        self._secret_keys = secret_keys

    def handle(self, request: IncomingRequest) -> Reply:
        """Process one request under the store's lock and record it; the reply carries its delay."""
        endpoint = _ENDPOINTS.get(request.path)
        with self._store.lock:
            decoded = self._decode(request, endpoint)
            outcome, fault = self._answer(endpoint, request, decoded)
            reply = outcome.reply
            self._store.record(
                RecordedRequest(
                    path=request.path,
                    method=request.method,
                    headers=dict(request.headers),
                    body=decoded.body,
                    json=decoded.json,
                    form=decoded.form,
                    status=0 if reply.reset else reply.status,
                    response_body=reply.body,
                    events_count=_items_count(endpoint, decoded),
                    fault=outcome.label,
                    query=request.query,
                )
            )
        delay = self._faults.delay_seconds + (fault.delay if fault is not None else 0.0)
        return dataclasses.replace(reply, delay=delay) if delay else reply

    def _answer(
        self, endpoint: Endpoint | None, request: IncomingRequest, decoded: _Decoded
    ) -> tuple[_Outcome, Fault | None]:
        """The outcome, and the fault that shaped it.

        A fault that replaces the reply answers without processing the request, unless it
        ingests first; a delay-only fault lets the request be processed as usual.
        """
        if endpoint is None:
            return _Outcome(_json(404, error_body(404, "Invalid request path"))), None
        if request.method not in _METHODS[endpoint]:
            allowed = (("Allow", ", ".join(_METHODS[endpoint])),)
            return _Outcome(
                Reply(405, error_body(405, "Method not allowed"), headers=allowed)
            ), None
        fault = self._take_fault(endpoint)
        if fault is None:
            return self._process(endpoint, request, decoded), None
        if fault.replaces_reply and not fault.ingest:
            return _Outcome(_fault_reply(fault, endpoint, decoded), fault.name), fault
        outcome = self._process(endpoint, request, decoded)
        if fault.replaces_reply:
            return _Outcome(
                _fault_reply(fault, endpoint, decoded, outcome.reply), fault.name
            ), fault
        label = _join(fault.name if fault.delay else None, outcome.label)
        return _Outcome(outcome.reply, label), fault

    def _take_fault(self, endpoint: Endpoint) -> Fault | None:
        if endpoint in _INGESTION:
            return self._faults.take_ingestion_fault()
        if endpoint is Endpoint.DELETIONS:
            return self._faults.take_privacy_fault()
        return None

    def _body_limit(self, endpoint: Endpoint | None) -> int:
        if endpoint is Endpoint.BATCH:
            return self._faults.max_batch_bytes
        return self._faults.max_request_bytes

    def _decode(self, request: IncomingRequest, endpoint: Endpoint | None) -> _Decoded:
        limit = self._body_limit(endpoint)
        error: RequestError | None = None
        try:
            body = decode_body(
                request.body, request.headers.get("content-encoding"), max_size=limit
            )
        except RequestError as rejected:
            body, error = request.body, rejected
        form: dict[str, str] | None = None
        if error is None:
            form = parse_form(body, request.headers.get("content-type"))
        if form is None and request.method == "GET" and endpoint in _IDENTIFY:
            form = parse_form(request.query.encode(), "application/x-www-form-urlencoded")
        payload: Any = None
        json_error: RequestError | None = None
        if form is None and error is None and len(body) <= limit:
            try:
                payload = parse_json(body)
            except RequestError as rejected:
                json_error = rejected
        return _Decoded(body, error, payload, json_error, form)

    def _process(self, endpoint: Endpoint, request: IncomingRequest, decoded: _Decoded) -> _Outcome:
        try:
            if endpoint in _INGESTION:
                return self._ingest(endpoint, decoded)
            if endpoint in _IDENTIFY:
                return self._identify(endpoint, decoded)
            return self._delete(request, decoded)
        except RequestError as rejected:
            return _Outcome(Reply(rejected.status, rejected.body, rejected.content_type))

    def _ingest(self, endpoint: Endpoint, decoded: _Decoded) -> _Outcome:
        if len(decoded.body) > self._body_limit(endpoint):
            raise payload_too_large()
        _raise_decoding_error(decoded)
        batch = parse_ingestion(
            decoded.json, api_keys=self._api_keys, max_events=self._faults.max_events
        )
        check = validate_events(batch.events, batch.min_id_length)
        if not check.ok:
            return _Outcome(_json(400, invalid_events_body(check)))
        state = self._faults.throttle_state()
        default = BATCH_EPS_THRESHOLD if endpoint is Endpoint.BATCH else HTTP_V2_EPS_THRESHOLD
        threshold = default if state.eps_threshold is None else state.eps_threshold
        over_users = dict.fromkeys(state.users, threshold + 1)
        over_devices = dict.fromkeys(state.devices, threshold + 1)
        eps_users: dict[str, int] = {}
        eps_devices: dict[str, int] = {}
        if state.eps_threshold is not None:
            eps_users, eps_devices = self._count_eps(check.events, state.eps_threshold)
            for over, measured in ((over_users, eps_users), (over_devices, eps_devices)):
                for key, eps in measured.items():
                    over[key] = max(eps, over.get(key, 0))
        throttling = find_throttled(
            check.events,
            over_users=over_users,
            over_devices=over_devices,
            quota_users=state.quota_users,
            quota_devices=state.quota_devices,
        )
        if throttling.events:
            if state.ingest_unthrottled_on_429:
                throttled = set(throttling.events)
                self._store.add_events(
                    batch.api_key,
                    (event for i, event in enumerate(check.events) if i not in throttled),
                )
            label = _join(
                "throttle"
                if state.users & throttling.users.keys()
                or state.devices & throttling.devices.keys()
                else None,
                "eps"
                if eps_users.keys() & throttling.users.keys()
                or eps_devices.keys() & throttling.devices.keys()
                else None,
                "daily_quota" if throttling.quota_users or throttling.quota_devices else None,
            )
            return _Outcome(_json(429, throttled_body(throttling, eps_threshold=threshold)), label)
        self._store.add_events(batch.api_key, check.events)
        body = success_body(
            events_ingested=len(check.events),
            payload_size_bytes=len(decoded.body),
            server_upload_time=int(time.time() * 1000),
        )
        return _Outcome(_json(200, body))

    def _count_eps(
        self, events: list[dict[str, Any]], eps_threshold: int
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Count every event in the window; return users and devices over the limit (id → EPS)."""
        now = self._clock.monotonic()
        window = self._store.eps_window
        totals: dict[tuple[str, str], int] = {}
        for event in events:
            for name in ("user_id", "device_id"):
                value = event.get(name)
                if isinstance(value, str):
                    totals[name, value] = window.add((name, value), now)
        limit = eps_threshold * EPS_WINDOW_SECONDS
        over: dict[str, dict[str, int]] = {"user_id": {}, "device_id": {}}
        for (name, value), total in totals.items():
            if total > limit:
                over[name][value] = eps_of(total)
        return over["user_id"], over["device_id"]

    def _identify(self, endpoint: Endpoint, decoded: _Decoded) -> _Outcome:
        if len(decoded.body) > self._faults.max_request_bytes:
            raise payload_too_large()
        if decoded.error is not None:
            raise decoded.error
        group = endpoint is Endpoint.GROUP_IDENTIFY
        parsed = parse_identify(decoded.form, api_keys=self._api_keys, group=group)
        target = self._store.group_identifications if group else self._store.identifications
        if not group:
            state = self._faults.throttle_state()
            threshold = (
                HTTP_V2_EPS_THRESHOLD if state.eps_threshold is None else state.eps_threshold
            )
            throttling = find_throttled(
                parsed.identifications,
                over_users=dict.fromkeys(state.users, threshold + 1),
                over_devices=dict.fromkeys(state.devices, threshold + 1),
            )
            if throttling.events:
                if state.ingest_unthrottled_on_429:
                    throttled = set(throttling.events)
                    target.extend(
                        item for i, item in enumerate(parsed.identifications) if i not in throttled
                    )
                body = throttled_body(throttling, eps_threshold=threshold)
                return _Outcome(_json(429, body), "throttle")
        target.extend(parsed.identifications)
        return _Outcome(Reply(200, IDENTIFY_SUCCESS, TEXT_CONTENT_TYPE))

    def _delete(self, request: IncomingRequest, decoded: _Decoded) -> _Outcome:
        credentials = parse_basic_auth(request.headers.get("authorization"))
        if credentials is None or not self._authorized(*credentials):
            body = error_body(401, "Invalid credentials: use HTTP Basic with API_KEY:SECRET_KEY")
            challenge = (("WWW-Authenticate", 'Basic realm="Amplitude"'),)
            return _Outcome(Reply(401, body, headers=challenge))
        api_key = credentials[0]
        if not self._store.privacy_spacing.admit(api_key, self._clock.monotonic()):
            body = error_body(429, "Too many requests: at most 1 deletion request per second")
            return _Outcome(_json(429, body))
        if len(decoded.body) > self._faults.max_request_bytes:
            raise payload_too_large()
        _raise_decoding_error(decoded)
        deletion = parse_deletion(decoded.json)
        scheduled: list[tuple[int, str | None]] = []
        invalid: list[int | str] = []
        for amplitude_id in deletion.amplitude_ids:
            user_id = self._store.user_of(api_key, amplitude_id)
            if user_id is None:
                invalid.append(amplitude_id)
            else:
                scheduled.append((amplitude_id, user_id))
        for user_id in deletion.user_ids:
            known = self._store.amplitude_id(api_key, user_id)
            if known is None:
                invalid.append(user_id)
            else:
                scheduled.append((known, user_id))
        if invalid and not deletion.ignore_invalid_ids:
            body = error_body(
                400,
                "Some ids are unknown in this project; set ignore_invalid_ids to skip them",
                invalid_ids=invalid,
            )
            return _Outcome(_json(400, body))
        self._store.deletions.append(decoded.json)
        body = deletion_body(
            scheduled=scheduled,
            requester=deletion.requester,
            today=datetime.datetime.now(datetime.timezone.utc).date(),
            invalid_ids=invalid if deletion.ignore_invalid_ids else None,
        )
        return _Outcome(_json(200, body))

    def _authorized(self, api_key: str, secret_key: str) -> bool:
        if self._api_keys is not None and api_key not in self._api_keys:
            return False
        if self._secret_keys is None:
            return True
        expected = self._secret_keys.get(api_key)
        return expected is not None and hmac.compare_digest(
            expected.encode("utf-8"), secret_key.encode("utf-8")
        )


def _fault_reply(
    fault: Fault, endpoint: Endpoint, decoded: _Decoded, processed: Reply | None = None
) -> Reply:
    """The reply a fault gives instead of ``processed`` (None when the request was not processed).

    A 2xx fault without a body keeps the normal success body when the request was processed
    successfully, and otherwise claims success for every event, as a server losing them would.
    """
    if fault.reset:
        return Reply(0, reset=True)
    assert fault.status is not None  # replaces_reply: a status when not a reset
    if fault.body is None and 200 <= fault.status < 300:
        if processed is not None and 200 <= processed.status < 300:
            return Reply(fault.status, processed.body, processed.content_type)
        if endpoint in _INGESTION:
            body = success_body(
                events_ingested=_items_count(endpoint, decoded),
                payload_size_bytes=len(decoded.body),
                server_upload_time=int(time.time() * 1000),
            )
            return Reply(fault.status, body)
    return Reply(fault.status, fault.response_body(), fault.content_type)


def _raise_decoding_error(decoded: _Decoded) -> None:
    if decoded.error is not None:
        raise decoded.error
    if decoded.json_error is not None:
        raise decoded.json_error


def _join(*labels: str | None) -> str | None:
    present = [label for label in labels if label]
    return "+".join(present) if present else None


def _items_count(endpoint: Endpoint | None, decoded: _Decoded) -> int:
    """How many events (or identifications) a request carried, as far as it can be read."""
    if endpoint in _INGESTION and isinstance(decoded.json, dict):
        events = decoded.json.get("events")
        return len(events) if isinstance(events, list) else 0
    if endpoint in _IDENTIFY and decoded.form is not None:
        try:
            parsed = orjson.loads(decoded.form.get("identification", ""))
        except orjson.JSONDecodeError:
            return 0
        return len(parsed) if isinstance(parsed, list) else int(isinstance(parsed, dict))
    return 0

"""What Amplitude's answer means for each event of a request: a pure function, no I/O.

``classify`` maps (events sent, HTTP status, body, Retry-After) to a :class:`Verdict` that says,
for every event, whether it was accepted, rejected for good, dropped, or must be sent again, and
how. The rules are amplitude-api.md §3 and §8; the dispatcher only carries them out.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ._backoff import throttle_pause
from ._event import Event

__all__ = ["Action", "Verdict", "classify", "classify_failure", "classify_identify"]


class Action(enum.IntEnum):
    """What happens to one event after a response."""

    ACCEPT = 0  #: Amplitude has it.
    REJECT = 1  #: Amplitude refused it for good (invalid); counted as rejected with a reason.
    DROP = 2  #: not sendable now or later (over the daily quota); counted as dropped.
    RETRY = 3  #: a failure that may be transient: resend after backoff, costs one attempt.
    RESEND = 4  #: not at fault (another event was): resend at once, costs nothing.
    THROTTLE = 5  #: its user or device is throttled: resend when the pause ends, costs nothing.
    HOLD = 6  #: the destination cannot take anything (bad key): keep it, costs nothing.
    SPLIT = 7  #: the request was too large: send again in two halves, costs nothing.


#: Amplitude's error texts that are safe to log (none of them carries a key or a payload).
_KNOWN_ERRORS = (
    "Invalid request path",
    "Missing request body",
    "Invalid JSON request body",
    "Request missing required field",
    "Invalid event JSON",
    "Invalid API key",
    "Invalid field values on some events",
    "Events silenced for device_id",
    "Invalid id length for user_id or device_id",
    "Too many requests for some devices and users",
    "Payload too large",
    "Forbidden",
)

#: 400 body keys that list offending events, with the reason prefix recorded for them.
_INDEX_MAPS = (
    ("events_with_missing_fields", "missing_field"),
    ("events_with_invalid_fields", "invalid_field"),
    ("events_with_invalid_id_lengths", "invalid_id_length"),
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The meaning of one response: a default action plus per-event exceptions to it."""

    kind: str
    status: int | None
    action: Action
    reason: str | None = None
    exceptions: Mapping[int, tuple[Action, str | None]] = field(default_factory=dict)
    throttled_users: frozenset[str] = frozenset()
    throttled_devices: frozenset[str] = frozenset()
    pause: float = 0.0
    ingested: int | None = None
    error: str | None = None

    def action_for(self, index: int) -> tuple[Action, str | None]:
        """The action and reason for the event at ``index`` of the request."""
        return self.exceptions.get(index, (self.action, self.reason))


def classify_failure(kind: str) -> Verdict:
    """No response at all (timeout, refused, reset): the request may or may not have landed.

    Retrying is safe because every event keeps its insert_id, so Amplitude deduplicates it.
    """
    return Verdict(kind=kind, status=None, action=Action.RETRY)


def classify(
    events: Sequence[Event], status: int, body: bytes, *, retry_after: str | None = None
) -> Verdict:
    """Classify an HTTP response to a request that carried ``events`` (in request order)."""
    payload = _parse(body)
    code = payload.get("code") if payload is not None else None
    if 200 <= status < 300 and isinstance(code, int) and not isinstance(code, bool) and code != 200:
        status = code  # some proxies answer HTTP 200 with Amplitude's real code in the body
    error = _safe_error(payload)

    if 200 <= status < 300:
        return _accepted(events, status, payload)
    if status == 400:
        return _invalid(events, payload, error)
    if status in (401, 404):
        # Wrong credentials or a wrong server URL: nothing can land until configuration changes.
        kind = "unauthorized" if status == 401 else "not_found"
        return Verdict(kind=kind, status=status, action=Action.HOLD, error=error)
    if status == 403:
        return Verdict(kind="forbidden", status=status, action=Action.REJECT, reason="forbidden")
    if status == 408:
        return Verdict(kind="timeout", status=status, action=Action.RETRY)
    if status in (413, 414):
        if len(events) > 1:
            return Verdict(kind="too_large", status=status, action=Action.SPLIT)
        return Verdict(kind="too_large", status=status, action=Action.REJECT, reason="too_large")
    if status == 429:
        return _throttled(events, payload, retry_after, error)
    if status >= 500:
        return Verdict(kind="server_error", status=status, action=Action.RETRY, error=error)
    return Verdict(
        kind="unexpected_status",
        status=status,
        action=Action.REJECT,
        reason=f"http_{status}",
        error=error,
    )


def classify_identify(
    identifications: Sequence[Event], status: int, body: bytes, *, retry_after: str | None = None
) -> Verdict:
    """Classify an Identify API response: plain-text tokens, or HTTP V2-shaped JSON for a 429.

    ``identifications`` stand for the request's identifications, one event each, in order.
    """
    token = body.strip()
    if 200 <= status < 300:
        return Verdict(kind="accepted", status=status, action=Action.ACCEPT)
    if status == 400 and token == b"invalid_api_key":
        return Verdict(
            kind="invalid_api_key", status=400, action=Action.HOLD, error="Invalid API key"
        )
    if status == 400 and token == b"missing_event":
        return Verdict(
            kind="invalid_request", status=400, action=Action.REJECT, reason="missing_event"
        )
    return classify(identifications, status, body, retry_after=retry_after)


def _parse(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one (HTML error pages, empty bodies)."""
    if not body:
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _safe_error(payload: dict[str, Any] | None) -> str | None:
    """Amplitude's error text when it is a known one, else None: unknown text may hold data."""
    if payload is None:
        return None
    error = payload.get("error")
    if not isinstance(error, str):
        return None
    for known in _KNOWN_ERRORS:
        if error.startswith(known):
            return known  # "Invalid API key: <key>" is reduced to "Invalid API key"
    return None


def _accepted(events: Sequence[Event], status: int, payload: dict[str, Any] | None) -> Verdict:
    ingested = payload.get("events_ingested") if payload is not None else None
    if isinstance(ingested, int) and not isinstance(ingested, bool) and ingested < len(events):
        # Amplitude says it took fewer events than were sent, without saying which: send them all
        # again. insert_id deduplication makes the resend of the ones it did take harmless.
        return Verdict(
            kind="partially_ingested", status=status, action=Action.RETRY, ingested=ingested
        )
    count = ingested if isinstance(ingested, int) and not isinstance(ingested, bool) else None
    return Verdict(kind="accepted", status=status, action=Action.ACCEPT, ingested=count)


def _indexes(value: object, size: int) -> list[int]:
    """The valid event indexes in a body list (anything else in it is ignored)."""
    if not isinstance(value, list):
        return []
    return [i for i in value if isinstance(i, int) and not isinstance(i, bool) and 0 <= i < size]


def _invalid(events: Sequence[Event], payload: dict[str, Any] | None, error: str | None) -> Verdict:
    if error == "Invalid API key":
        return Verdict(kind="invalid_api_key", status=400, action=Action.HOLD, error=error)
    if payload is None:
        return Verdict(
            kind="invalid_request", status=400, action=Action.REJECT, reason="invalid_request"
        )
    missing = payload.get("missing_field")
    if isinstance(missing, str) and missing:
        return Verdict(
            kind="invalid_request",
            status=400,
            action=Action.REJECT,
            reason=f"missing_request_field:{_token(missing)}",
            error=error,
        )

    size = len(events)
    exceptions: dict[int, tuple[Action, str | None]] = {}
    for key, prefix in _INDEX_MAPS:
        mapping = payload.get(key)
        if isinstance(mapping, dict):
            for field_name, indexes in mapping.items():
                for i in _indexes(indexes, size):
                    exceptions.setdefault(i, (Action.REJECT, f"{prefix}:{_token(field_name)}"))
    for i in _indexes(payload.get("silenced_events"), size):
        exceptions.setdefault(i, (Action.REJECT, "silenced"))
    silenced_devices = payload.get("silenced_devices")
    if isinstance(silenced_devices, list):
        silenced = {d for d in silenced_devices if isinstance(d, str)}
        for i, event in enumerate(events):
            if event.device_id in silenced:
                exceptions.setdefault(i, (Action.REJECT, "silenced"))

    if not exceptions:
        # A 400 that names no event cannot be fixed by resending: do not retry it.
        return Verdict(
            kind="invalid_request",
            status=400,
            action=Action.REJECT,
            reason="invalid_request",
            error=error,
        )
    # Amplitude stored nothing; the events it did not name are fine and go again at once.
    return Verdict(
        kind="invalid_events", status=400, action=Action.RESEND, exceptions=exceptions, error=error
    )


def _ids(value: object) -> frozenset[str]:
    if isinstance(value, dict):
        return frozenset(k for k in value if isinstance(k, str))
    if isinstance(value, list):
        return frozenset(k for k in value if isinstance(k, str))
    return frozenset()


def _throttled(
    events: Sequence[Event],
    payload: dict[str, Any] | None,
    retry_after: str | None,
    error: str | None,
) -> Verdict:
    pause = throttle_pause(retry_after)
    if payload is None:
        # A 429 that names nobody (a proxy's rate limit, say): every id in the request waits.
        return Verdict(
            kind="throttled",
            status=429,
            action=Action.THROTTLE,
            throttled_users=frozenset(e.user_id for e in events if e.user_id is not None),
            throttled_devices=frozenset(e.device_id for e in events if e.device_id is not None),
            pause=pause,
        )
    users = _ids(payload.get("throttled_users"))
    devices = _ids(payload.get("throttled_devices"))
    quota_users = _ids(payload.get("exceeded_daily_quota_users"))
    quota_devices = _ids(payload.get("exceeded_daily_quota_devices"))
    throttled_indexes = set(_indexes(payload.get("throttled_events"), len(events)))

    exceptions: dict[int, tuple[Action, str | None]] = {}
    extra_users: set[str] = set()
    extra_devices: set[str] = set()
    for i, event in enumerate(events):
        if event.user_id in quota_users or event.device_id in quota_devices:
            exceptions[i] = (Action.DROP, "daily_quota")
        elif event.user_id in users or event.device_id in devices:
            exceptions[i] = (Action.THROTTLE, None)
        elif i in throttled_indexes:
            # Named by index only: pause the id that keeps its order (device, else user).
            exceptions[i] = (Action.THROTTLE, None)
            if event.device_id is not None:
                extra_devices.add(event.device_id)
            elif event.user_id is not None:
                extra_users.add(event.user_id)
    return Verdict(
        kind="throttled",
        status=429,
        action=Action.RESEND,
        exceptions=exceptions,
        throttled_users=users | extra_users,
        throttled_devices=devices | extra_devices,
        pause=pause,
        error=error,
    )


def _token(name: object) -> str:
    """A field name fit for a low-cardinality counter label."""
    text = str(name)
    return text if len(text) <= 64 and text.replace("_", "").replace("$", "").isalnum() else "other"

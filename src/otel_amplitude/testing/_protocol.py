"""Amplitude's wire protocol as pure functions: read a request body, judge it, write the answer.

Nothing here touches a socket, a lock or a clock, so every rule is unit-tested on its own. Where
Amplitude's documentation is ambiguous, the stricter reading of ``amplitude-api.md`` §7 is built:
all offending indexes are listed, a 400 stores nothing, sizes are measured decompressed.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import email.parser
import email.policy
import math
import urllib.parse
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

__all__ = [
    "BATCH_EPS_THRESHOLD",
    "DAILY_EVENT_QUOTA",
    "DEFAULT_MIN_ID_LENGTH",
    "DELETION_SCHEDULE_DAYS",
    "EPS_WINDOW_SECONDS",
    "FIELD_CHECKS",
    "GROUP_IDENTIFY_EVENT",
    "HTTP_V2_EPS_THRESHOLD",
    "IDENTIFY_INVALID_API_KEY",
    "IDENTIFY_MISSING_EVENT",
    "IDENTIFY_SUCCESS",
    "INVALID_ID_VALUES",
    "JSON_CONTENT_TYPE",
    "MAX_BATCH_BYTES",
    "MAX_DELETION_IDS",
    "MAX_EVENTS",
    "MAX_REQUEST_BYTES",
    "MAX_STRING_LENGTH",
    "TEXT_CONTENT_TYPE",
    "DeletionRequest",
    "EventCheck",
    "IdentifyRequest",
    "IngestionBatch",
    "RequestError",
    "Throttling",
    "decode_body",
    "deletion_body",
    "eps_of",
    "error_body",
    "find_throttled",
    "invalid_events_body",
    "parse_basic_auth",
    "parse_deletion",
    "parse_form",
    "parse_identify",
    "parse_ingestion",
    "parse_json",
    "partition_key",
    "payload_too_large",
    "success_body",
    "throttled_body",
    "truncate_strings",
    "validate_events",
]

MAX_STRING_LENGTH: Final = 1024
DEFAULT_MIN_ID_LENGTH: Final = 5
MAX_REQUEST_BYTES: Final = 1_000_000
MAX_BATCH_BYTES: Final = 20_000_000
MAX_EVENTS: Final = 2000
MAX_DELETION_IDS: Final = 100
HTTP_V2_EPS_THRESHOLD: Final = 30
BATCH_EPS_THRESHOLD: Final = 1000
EPS_WINDOW_SECONDS: Final = 30.0
DAILY_EVENT_QUOTA: Final = 500_000
DELETION_SCHEDULE_DAYS: Final = 30
GROUP_IDENTIFY_EVENT: Final = "$groupidentify"

JSON_CONTENT_TYPE: Final = "application/json"
TEXT_CONTENT_TYPE: Final = "text/plain"

#: Id values Amplitude rejects, compared case-insensitively. ``'""'`` is a quoted empty string.
INVALID_ID_VALUES: Final = frozenset(
    {
        "anonymous",
        "nil",
        "none",
        "null",
        "n/a",
        "na",
        "undefined",
        "unknown",
        '""',
        "00000000-0000-0000-0000-000000000000",
        "{}",
        "lmy47d",
        "0",
        "-1",
    }
)

_ID_FIELDS: Final = ("user_id", "device_id")


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_string(value: object) -> bool:
    return isinstance(value, str)


def _is_object(value: object) -> bool:
    return isinstance(value, dict)


#: Type rules of the optional event fields this server checks; ``null`` counts as absent.
FIELD_CHECKS: Final[Mapping[str, Callable[[object], bool]]] = {
    "time": _is_integer,
    "event_id": _is_integer,
    "session_id": _is_integer,
    "insert_id": _is_string,
    "event_properties": _is_object,
    "user_properties": _is_object,
    "groups": _is_object,
    "group_properties": _is_object,
}


class RequestError(Exception):
    """The request is answered with ``status`` and the complete response ``body``."""

    def __init__(self, status: int, body: bytes, content_type: str = JSON_CONTENT_TYPE) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.content_type = content_type


def error_body(status: int, error: str, **fields: Any) -> bytes:
    """Amplitude's JSON error shape: ``{"code": status, "error": error, ...fields}``."""
    return orjson.dumps({"code": status, "error": error, **fields})


def _reject(status: int, error: str, **fields: Any) -> RequestError:
    return RequestError(status, error_body(status, error, **fields))


def _invalid_json() -> RequestError:
    return _reject(400, "Invalid JSON request body")


def payload_too_large() -> RequestError:
    """413, the answer to a request over a byte or event-count limit."""
    return _reject(413, "Payload too large")


# --- bodies -----------------------------------------------------------------------------------


def decode_body(raw: bytes, content_encoding: str | None, *, max_size: int) -> bytes:
    """Undo ``Content-Encoding`` (gzip or deflate), stopping after ``max_size + 1`` bytes.

    Stopping early is enough to tell that a body is over the limit, and keeps a small gzip
    bomb from becoming a large allocation.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return raw
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        raise _reject(415, f"Unsupported Content-Encoding: {encoding}")
    decompressor = zlib.decompressobj(wbits)
    try:
        body = decompressor.decompress(raw, max_size + 1)
    except zlib.error:
        raise _invalid_json() from None
    if len(body) <= max_size and not decompressor.eof:
        raise _invalid_json()
    return body


def parse_json(body: bytes) -> Any:
    """Parse a JSON request body: 400 ``Missing request body`` or ``Invalid JSON request body``."""
    if not body.strip():
        raise _reject(400, "Missing request body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _invalid_json() from None


def parse_form(body: bytes, content_type: str | None) -> dict[str, str] | None:
    """Fields of an urlencoded or multipart form (first value of each name); None if not a form."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime == "application/x-www-form-urlencoded":
        return _first_values(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), True))
    if mime == "multipart/form-data" and content_type is not None:
        head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        fields: list[tuple[str, str]] = []
        if message.is_multipart():
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True)
                if isinstance(name, str) and isinstance(payload, bytes):
                    fields.append((name, payload.decode("utf-8", "replace")))
        return _first_values(fields)
    return None


def _first_values(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def truncate_strings(value: Any, limit: int = MAX_STRING_LENGTH) -> Any:
    """A deep copy of a JSON value with every string longer than ``limit`` cut to ``limit``."""
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, dict):
        return {key: truncate_strings(item, limit) for key, item in value.items()}
    if isinstance(value, list):
        return [truncate_strings(item, limit) for item in value]
    return value


def partition_key(item: Mapping[str, Any]) -> str | None:
    """The id Amplitude orders and deduplicates by: ``device_id``, else ``user_id``."""
    for name in ("device_id", "user_id"):
        value = item.get(name)
        if isinstance(value, str) and value:
            return value
    return None


# --- HTTP V2 and Batch --------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestionBatch:
    """The request-level part of an HTTP V2 / Batch body, already checked."""

    api_key: str
    events: list[dict[str, Any]]
    min_id_length: int


def parse_ingestion(
    payload: Any, *, api_keys: Collection[str] | None, max_events: int
) -> IngestionBatch:
    """Check the request-level fields: 400 (``missing_field``, bad key, bad JSON), 413 by count."""
    if not isinstance(payload, dict):
        raise _invalid_json()
    api_key = payload.get("api_key")
    if not isinstance(api_key, str) or not api_key:
        raise _reject(400, "Request missing required field", missing_field="api_key")
    events = payload.get("events")
    if events is None:
        raise _reject(400, "Request missing required field", missing_field="events")
    if not isinstance(events, list):
        raise _reject(400, "Invalid event JSON")
    if api_keys is not None and api_key not in api_keys:
        raise _reject(400, f"Invalid API key: {api_key}")
    if len(events) > max_events:
        raise payload_too_large()
    if not all(isinstance(event, dict) for event in events):
        raise _reject(400, "Invalid event JSON")
    options = payload.get("options")
    min_id_length = DEFAULT_MIN_ID_LENGTH
    if options is not None:
        if not isinstance(options, dict):
            raise _invalid_json()
        requested = options.get("min_id_length", DEFAULT_MIN_ID_LENGTH)
        if not _is_integer(requested) or requested < 0:
            raise _invalid_json()
        min_id_length = requested
    return IngestionBatch(api_key=api_key, events=events, min_id_length=min_id_length)


@dataclass(frozen=True)
class EventCheck:
    """Per-event verdicts: field name → indexes of the offending events, for each kind of fault.

    ``events`` are the events as Amplitude would store them: ids shorter than the minimum
    removed, strings truncated to 1,024 characters. They are meaningful only when ``ok``.
    """

    events: list[dict[str, Any]]
    missing: dict[str, list[int]] = field(default_factory=dict)
    invalid: dict[str, list[int]] = field(default_factory=dict)
    invalid_id_lengths: dict[str, list[int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no event is invalid, so that the request can be stored."""
        return not (self.missing or self.invalid or self.invalid_id_lengths)


def validate_events(events: Sequence[Mapping[str, Any]], min_id_length: int) -> EventCheck:
    """Judge every event of a request, listing all offending indexes (the stricter reading)."""
    missing: dict[str, list[int]] = {}
    invalid: dict[str, list[int]] = {}
    id_lengths: dict[str, list[int]] = {}
    stored: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        event_type = event.get("event_type")
        if not isinstance(event_type, str) or not event_type:
            missing.setdefault("event_type", []).append(index)
        for name, check in FIELD_CHECKS.items():
            value = event.get(name)
            if value is not None and not check(value):
                invalid.setdefault(name, []).append(index)
        kept: list[str] = []
        too_short: list[str] = []
        bad_id = False
        for name in _ID_FIELDS:
            value = event.get(name)
            if value is None:
                continue
            if not isinstance(value, str) or value.lower() in INVALID_ID_VALUES:
                invalid.setdefault(name, []).append(index)
                bad_id = True
            elif not value or len(value) < min_id_length:
                too_short.append(name)
            else:
                kept.append(name)
        if not kept and not bad_id and event_type != GROUP_IDENTIFY_EVENT:
            if too_short:
                for name in too_short:
                    id_lengths.setdefault(name, []).append(index)
            else:
                missing.setdefault("device_id", []).append(index)
        normalised = {key: value for key, value in event.items() if key not in too_short}
        stored.append(truncate_strings(normalised))
    return EventCheck(stored, missing, invalid, id_lengths)


def invalid_events_body(check: EventCheck) -> bytes:
    """The 400 body naming every invalid event; ``error`` names the most basic kind of fault."""
    if check.missing:
        error = "Request missing required field"
    elif check.invalid:
        error = "Invalid field values on some events"
    else:
        error = "Invalid id length for user_id or device_id"
    fields: dict[str, Any] = {}
    if check.missing:
        fields["events_with_missing_fields"] = check.missing
    if check.invalid:
        fields["events_with_invalid_fields"] = check.invalid
    if check.invalid_id_lengths:
        fields["events_with_invalid_id_lengths"] = check.invalid_id_lengths
    return error_body(400, error, **fields)


def success_body(
    *, events_ingested: int, payload_size_bytes: int, server_upload_time: int
) -> bytes:
    """The 200 body of HTTP V2 and Batch."""
    return orjson.dumps(
        {
            "code": 200,
            "events_ingested": events_ingested,
            "payload_size_bytes": payload_size_bytes,
            "server_upload_time": server_upload_time,
        }
    )


# --- throttling ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Throttling:
    """Which items of a request are throttled, and the ids that caused it (id → EPS or count)."""

    events: tuple[int, ...] = ()
    users: dict[str, int] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)
    quota_users: dict[str, int] = field(default_factory=dict)
    quota_devices: dict[str, int] = field(default_factory=dict)


def eps_of(count: int, window: float = EPS_WINDOW_SECONDS) -> int:
    """Events per second over the window, rounded up so that any excess shows as over the limit."""
    return math.ceil(count / window)


def find_throttled(
    items: Sequence[Mapping[str, Any]],
    *,
    over_users: Mapping[str, int],
    over_devices: Mapping[str, int],
    quota_users: Collection[str] = (),
    quota_devices: Collection[str] = (),
) -> Throttling:
    """Mark every item whose user or device is over its rate (``over_*``: id → EPS) or quota."""
    indexes: list[int] = []
    users: dict[str, int] = {}
    devices: dict[str, int] = {}
    exceeded_users: dict[str, int] = {}
    exceeded_devices: dict[str, int] = {}
    for index, item in enumerate(items):
        user_id = item.get("user_id")
        device_id = item.get("device_id")
        hit = False
        if isinstance(user_id, str):
            if user_id in over_users:
                users[user_id] = over_users[user_id]
                hit = True
            if user_id in quota_users:
                exceeded_users[user_id] = DAILY_EVENT_QUOTA
                hit = True
        if isinstance(device_id, str):
            if device_id in over_devices:
                devices[device_id] = over_devices[device_id]
                hit = True
            if device_id in quota_devices:
                exceeded_devices[device_id] = DAILY_EVENT_QUOTA
                hit = True
        if hit:
            indexes.append(index)
    return Throttling(tuple(indexes), users, devices, exceeded_users, exceeded_devices)


def throttled_body(throttling: Throttling, *, eps_threshold: int) -> bytes:
    """The 429 body of HTTP V2 / Batch; the daily-quota maps appear only when some id is over."""
    fields: dict[str, Any] = {
        "eps_threshold": eps_threshold,
        "throttled_devices": throttling.devices,
        "throttled_users": throttling.users,
        "throttled_events": list(throttling.events),
    }
    if throttling.quota_users or throttling.quota_devices:
        fields["exceeded_daily_quota_users"] = throttling.quota_users
        fields["exceeded_daily_quota_devices"] = throttling.quota_devices
    return error_body(429, "Too many requests for some devices and users", **fields)


# --- Identify and Group Identify ------------------------------------------------------------------

IDENTIFY_SUCCESS: Final = b"success"
IDENTIFY_MISSING_EVENT: Final = b"missing_event"
IDENTIFY_INVALID_API_KEY: Final = b"invalid_api_key"


@dataclass(frozen=True)
class IdentifyRequest:
    """A checked ``/identify`` or ``/groupidentify`` request."""

    api_key: str
    identifications: list[dict[str, Any]]


def _identify_reject(body: bytes) -> RequestError:
    return RequestError(400, body, TEXT_CONTENT_TYPE)


def parse_identify(
    form: Mapping[str, str] | None, *, api_keys: Collection[str] | None, group: bool = False
) -> IdentifyRequest:
    """Check the ``api_key`` and ``identification`` form fields (a JSON object or list of them).

    An identification needs ``user_id`` or ``device_id`` (Identify) or ``group_type`` and
    ``group_value`` (Group Identify); otherwise the answer is 400 ``missing_event``.
    """
    form = form or {}
    api_key = form.get("api_key", "")
    if not api_key or (api_keys is not None and api_key not in api_keys):
        raise _identify_reject(IDENTIFY_INVALID_API_KEY)
    try:
        parsed = orjson.loads(form.get("identification", ""))
    except orjson.JSONDecodeError:
        raise _identify_reject(IDENTIFY_MISSING_EVENT) from None
    identifications = parsed if isinstance(parsed, list) else [parsed]
    if not identifications or not all(
        isinstance(item, dict) and _identifies(item, group=group) for item in identifications
    ):
        raise _identify_reject(IDENTIFY_MISSING_EVENT)
    return IdentifyRequest(api_key, [truncate_strings(item) for item in identifications])


def _identifies(item: Mapping[str, Any], *, group: bool) -> bool:
    names = ("group_type", "group_value") if group else _ID_FIELDS
    present = [isinstance(item.get(name), str) and bool(item.get(name)) for name in names]
    return all(present) if group else any(present)


# --- User Privacy API ---------------------------------------------------------------------------


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """``(api_key, secret_key)`` from an ``Authorization: Basic`` header, or None."""
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    api_key, colon, secret_key = decoded.partition(":")
    if not colon or not api_key or not secret_key:
        return None
    return api_key, secret_key


@dataclass(frozen=True)
class DeletionRequest:
    """A checked deletion request (``ignore_invalid_ids`` already forced by ``delete_from_org``)."""

    amplitude_ids: tuple[int, ...]
    user_ids: tuple[str, ...]
    requester: str | None
    ignore_invalid_ids: bool
    delete_from_org: bool


def _flag(payload: Mapping[str, Any], *names: str) -> bool:
    """A boolean sent as JSON ``true``/``false`` or as the string ``"true"``/``"false"``."""
    result = False
    for name in names:
        value = payload.get(name)
        if value is None:
            continue
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            value = value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise _reject(400, f"{name} must be true or false")
        result = result or value
    return result


def _amplitude_id(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise _reject(400, "amplitude_ids must be integers")


def parse_deletion(payload: Any) -> DeletionRequest:
    """Check a deletion body: 1 to 100 ids in total, both spellings of ``ignore_invalid_id(s)``."""
    if not isinstance(payload, dict):
        raise _invalid_json()
    raw_amplitude_ids = payload.get("amplitude_ids") or []
    raw_user_ids = payload.get("user_ids") or []
    if not isinstance(raw_amplitude_ids, list) or not isinstance(raw_user_ids, list):
        raise _reject(400, "amplitude_ids and user_ids must be lists")
    amplitude_ids = tuple(_amplitude_id(value) for value in raw_amplitude_ids)
    if not all(isinstance(value, str) and value for value in raw_user_ids):
        raise _reject(400, "user_ids must be non-empty strings")
    user_ids = tuple(str(value) for value in raw_user_ids)
    total = len(amplitude_ids) + len(user_ids)
    if total == 0:
        raise _reject(400, "Request missing required field: amplitude_ids or user_ids")
    if total > MAX_DELETION_IDS:
        raise _reject(
            400, f"Too many ids: at most {MAX_DELETION_IDS} amplitude_ids and user_ids, got {total}"
        )
    requester = payload.get("requester")
    if requester is not None and not isinstance(requester, str):
        raise _reject(400, "requester must be a string")
    delete_from_org = _flag(payload, "delete_from_org")
    ignore = _flag(payload, "ignore_invalid_id", "ignore_invalid_ids") or delete_from_org
    return DeletionRequest(amplitude_ids, user_ids, requester, ignore, delete_from_org)


def deletion_body(
    *,
    scheduled: Sequence[tuple[int, str | None]],
    requester: str | None,
    today: datetime.date,
    invalid_ids: Sequence[int | str] | None = None,
) -> bytes:
    """The 200 body: the job's ``day``, ``status`` and one entry per (amplitude_id, user_id)."""
    requested_on = today.isoformat()
    entries: list[dict[str, Any]] = []
    for amplitude_id, user_id in scheduled:
        entry: dict[str, Any] = {"amplitude_id": amplitude_id, "requested_on_day": requested_on}
        if requester is not None:
            entry["requester"] = requester
        if user_id is not None:
            entry["user_id"] = user_id
        entries.append(entry)
    body: dict[str, Any] = {
        "day": (today + datetime.timedelta(days=DELETION_SCHEDULE_DAYS)).isoformat(),
        "status": "staging",
        "amplitude_ids": entries,
    }
    if invalid_ids is not None:
        body["invalid_ids"] = list(invalid_ids)
    return orjson.dumps(body)

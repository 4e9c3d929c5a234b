"""Which OpenTelemetry log records are Amplitude events, and which event each one is. No I/O.

A log record reaches an exporter from the OTel logs API (``logger.emit(...)``) or bridged from
stdlib ``logging`` by OpenTelemetry's ``LoggingHandler``, whose record body is the formatted
message and whose attributes are the ``extra`` values plus ``code.*`` (and ``exception.*``).

**Event type.** The attribute ``amplitude.event_type``; else the record's ``event_name`` (an
OpenTelemetry event); else the body, when it is a string. A record with none of these (a mapping
or bytes body and no event name) is not an event: it is counted as dropped (``not_an_event``)
rather than given a type made of its ``str()``, which would put a payload in the event type.
For an OpenTelemetry event whose body is a mapping, the body's entries are values too (its
attributes win). A bridged stdlib record's body is formatted, unlike the ``AmplitudeHandler``'s
type (the message template): keep ``%s`` arguments out of messages meant as events.

**Values.** The attributes, mapped by the rules every source shares
(:class:`~otel_amplitude._mapping.EventMapper`): keys naming Amplitude fields (``device_id``,
``app_version``, ...) go to the top level, ``event_properties``/``user_properties`` mappings are
merged, everything else is an event property. On top of that, as for spans,
``amplitude.<field>`` names a top-level field (other ``amplitude.*`` keys stay properties),
``user_agent.original`` is ``user_agent``, ``client.address`` is ``ip`` (sent only with
``AMPLITUDE_SEND_IP``), the other address attributes are dropped, ``session.id`` follows the span
rule (:mod:`otel_amplitude._span_mapping`: numeric → ``session_id``, else kept as a property),
and the resource's ``service.version`` is the ``app_version``. Logging plumbing is left out:
``code.*``, ``exception.*`` and the ``otel*`` record fields of the logging instrumentation.
``AMPLITUDE_LOG_INCLUDE_LOGGER`` adds ``logger`` (the instrumentation scope, for bridged records
the logger name) and ``level``.

**Identity**, first found: ``user_id``/``device_id`` values; ``amplitude.user_id``,
``enduser.id`` or ``user.id``; the identity bound with ``bind()``; the user (``enduser.id`` or
``user.id``) of the span in the record's context. The last two are only known while the record
is exported on the thread that emitted it, behind a ``SimpleLogRecordProcessor``: a
``BatchLogRecordProcessor`` exports on its own thread and (in recent SDKs) drops the record's
context before queueing it. Behind a batch processor, name the user in the attributes. None:
counted as dropped (``no_identity``).

**Time and insert id.** ``time`` is the record's timestamp, else its observed timestamp, in ms.
A record emitted inside a span gets a stable ``insert_id``, a hash of its trace id, span id,
timestamp (ns) and event type, so the same record exported twice is stored once; other records
get a fresh one (with nothing to tell two identical records apart, a hash could merge them).

Records of the library's own loggers (``otel_amplitude``) and of ``urllib3`` are never events:
they are skipped, not counted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from opentelemetry import trace
from opentelemetry.context import Context

from ._context import Identity
from ._event import Event
from ._fields import TOP_LEVEL_FIELDS
from ._mapping import EventMapper
from ._settings import Settings
from ._span_mapping import EVENT_TYPE_ATTRIBUTE, Skipped, session_id_of
from .exceptions import InvalidEventError

__all__ = ["LogRecordMapper", "is_guarded_logger", "log_insert_id"]

_GUARDED: Final = ("otel_amplitude", "urllib3")
_PREFIX = "amplitude."
_TENANT_ATTRIBUTE: Final = "amplitude.tenant"
_PLUMBING_PREFIXES: Final = ("code.", "exception.")
_PLUMBING: Final = frozenset({"otelSpanID", "otelTraceID", "otelTraceSampled", "otelServiceName"})
_USER_KEYS: Final = ("amplitude.user_id", "enduser.id", "user.id")
_ADDRESS_KEYS: Final = frozenset(
    {"client.address", "http.client_ip", "net.peer.ip", "net.sock.peer.addr",
     "network.peer.address"}
)  # fmt: skip
_USER_AGENT_KEYS: Final = ("user_agent.original", "http.user_agent")
_SESSION_KEY = "session.id"
_NS_PER_MS = 1_000_000
#: OTel severity texts that the stdlib spells differently, so ``level`` matches the handler's.
_LEVEL_NAMES: Final = {"WARN": "WARNING", "FATAL": "CRITICAL"}

_NOT_AN_EVENT: Final = Skipped("not_an_event")
_NO_IDENTITY: Final = Skipped("no_identity")


class _Scope(Protocol):
    @property
    def name(self) -> str: ...


class ExportedLogRecord(Protocol):
    """What exporters receive: ``ReadableLogRecord`` (recent SDKs) or ``LogData`` (older ones)."""

    @property
    def log_record(self) -> Any: ...

    @property
    def instrumentation_scope(self) -> _Scope | None: ...


@dataclass(frozen=True, slots=True)
class _Record:
    """The parts of a log record the mapping reads, whichever SDK version made it."""

    body: object
    attributes: Mapping[str, Any]
    event_name: object
    timestamp: int | None
    trace_id: int
    span_id: int
    severity_text: str | None
    context: object
    resource: object


def is_guarded_logger(name: str) -> bool:
    """Whether ``name`` is the library's own logger or urllib3's (or below them)."""
    return any(name == prefix or name.startswith(prefix + ".") for prefix in _GUARDED)


def log_insert_id(trace_id: int, span_id: int, timestamp: int, event_type: str) -> str:
    """The stable insert id of a log record emitted inside a span: 32 hex characters."""
    key = b"%032x%016x%d:" % (trace_id, span_id, timestamp) + event_type.encode("utf-8", "replace")
    return hashlib.blake2b(key, digest_size=16).hexdigest()


class LogRecordMapper:
    """Turns exported log records into events with one client's settings."""

    __slots__ = ("_include_logger", "_mapper", "_tenant_attribute")

    def __init__(self, settings: Settings, *, routing: bool = False) -> None:
        self._mapper = EventMapper(settings, routing=routing)
        self._include_logger = settings.log_include_logger
        self._tenant_attribute = settings.tenant_attribute if routing else None

    def map(self, item: ExportedLogRecord) -> Event | Skipped | None:
        """The event of one exported record; a :class:`Skipped` when it cannot be one; None
        for a record of the library's own or urllib3's loggers."""
        scope = item.instrumentation_scope
        scope_name = scope.name if scope is not None else ""
        if scope_name and is_guarded_logger(scope_name):
            return None
        record = _read(item)
        attributes = record.attributes
        event_type = attributes.get(EVENT_TYPE_ATTRIBUTE) or record.event_name or None
        body = record.body
        values: dict[str, Any] = {}
        if event_type is None:
            if not isinstance(body, str):
                return _NOT_AN_EVENT
            event_type = body
        elif not isinstance(event_type, str):
            return Skipped(
                "invalid",
                InvalidEventError(
                    EVENT_TYPE_ATTRIBUTE, f"must be a string, got {type(event_type).__name__}"
                ),
            )
        elif isinstance(body, Mapping):
            values.update(body)
        _add_attributes(values, attributes)
        if self._tenant_attribute is not None and "tenant" not in values:
            tenant = _resource_attribute(record.resource, self._tenant_attribute)
            if tenant is not None:
                values["tenant"] = tenant
        if "app_version" not in values:
            version = _service_version(record.resource)
            if version is not None:
                values["app_version"] = version
        properties = None
        if self._include_logger:
            level = record.severity_text
            if level is not None:
                level = _LEVEL_NAMES.get(level, level)
            properties = {"logger": scope_name, "level": level}
        timestamp = record.timestamp
        insert_id = None
        if timestamp is not None and record.trace_id and record.span_id:
            insert_id = log_insert_id(record.trace_id, record.span_id, timestamp, event_type)
        try:
            event = self._mapper.build(
                event_type,
                values,
                time=None if timestamp is None else timestamp // _NS_PER_MS,
                insert_id=insert_id,
                properties=properties,
                fallback=lambda: _span_user(record.context),
            )
        except InvalidEventError as error:
            return Skipped("invalid", error)
        return _NO_IDENTITY if event is None else event


def _resource_attribute(resource: Any, name: str) -> object:
    attributes = getattr(resource, "attributes", None)
    return None if attributes is None else attributes.get(name)


def _read(item: ExportedLogRecord) -> _Record:
    log_record = item.log_record
    timestamp = log_record.timestamp
    if timestamp is None:
        timestamp = getattr(log_record, "observed_timestamp", None)
    resource = getattr(item, "resource", None)
    if resource is None:  # LogData of older SDKs: the resource is on the record
        resource = getattr(log_record, "resource", None)
    return _Record(
        body=log_record.body,
        attributes=_plain(log_record.attributes),
        event_name=getattr(log_record, "event_name", None),
        timestamp=timestamp,
        trace_id=log_record.trace_id or 0,
        span_id=log_record.span_id or 0,
        severity_text=log_record.severity_text,
        context=getattr(log_record, "context", None),
        resource=resource,
    )


def _plain(attributes: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The record's attributes; the dict inside the SDK's ``BoundedAttributes`` when it has one,
    whose lookups of missing keys cost no exception (see ``_span_mapping._attributes_of``)."""
    inner = getattr(attributes, "_dict", None)
    if isinstance(inner, dict):
        return inner
    return attributes or {}


def _add_attributes(values: dict[str, Any], attributes: Mapping[str, Any]) -> None:
    """Copy the event data of ``attributes`` into ``values``, translating semconv names."""
    session: object = None
    for key, value in attributes.items():
        if key in _PLUMBING or key.startswith(_PLUMBING_PREFIXES) or key in _ADDRESS_KEYS:
            continue
        if key in _USER_KEYS or key in _USER_AGENT_KEYS or key == EVENT_TYPE_ATTRIBUTE:
            continue
        if key == _SESSION_KEY:
            session = value
        elif key.startswith(_PREFIX) and (
            key[len(_PREFIX) :] in TOP_LEVEL_FIELDS or key == _TENANT_ATTRIBUTE
        ):
            values.setdefault(key[len(_PREFIX) :], value)
        else:
            values[key] = value
    if "user_id" not in values and "device_id" not in values:
        for key in _USER_KEYS:
            user = attributes.get(key)
            if user is not None:
                values["user_id"] = user
                break
    if "user_agent" not in values:
        for key in _USER_AGENT_KEYS:
            agent = attributes.get(key)
            if agent is not None:
                values["user_agent"] = agent
                break
    if "ip" not in values:
        ip = attributes.get("client.address", attributes.get("http.client_ip"))
        if ip is not None:
            values["ip"] = ip  # EventMapper drops it unless AMPLITUDE_SEND_IP is on
    if session is not None:
        converted = session_id_of(session)
        if converted is None:
            values[_SESSION_KEY] = session
        else:
            values.setdefault("session_id", converted)


def _service_version(resource: object) -> object:
    attributes = getattr(resource, "attributes", None)
    return attributes.get("service.version") if attributes else None


def _span_user(context: object) -> Identity | None:
    """The user of the span a record was emitted in, read from the record's OTel context."""
    if not isinstance(context, Context):
        return None
    span = trace.get_current_span(context)
    attributes = getattr(span, "attributes", None)
    if not attributes:
        return None
    for key in _USER_KEYS:
        value = attributes.get(key)
        if value is not None:
            return Identity(user_id=value if isinstance(value, str) else str(value))
    return None

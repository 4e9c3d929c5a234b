"""Which OpenTelemetry spans are Amplitude events, and which event each one is. Pure: no I/O.

**Which spans.** A span is an event when it has the attribute ``amplitude.event_type`` (its value
is the event type), or when its name matches one of the ``AMPLITUDE_SPAN_EVENTS`` patterns (the
span name is then the event type). Every other span costs one attribute lookup (and one dict
lookup when patterns are set). A span event (``span.add_event(name, attributes)``) with an
``amplitude.event_type`` attribute is an event too, whether or not its span is one.

**Identity.** ``user_id`` is the first of ``amplitude.user_id``, ``enduser.id``, ``user.id``;
``device_id`` is ``amplitude.device_id``. A span is exported on the span processor's thread after
it ended, so the identity bound with ``bind()`` is not available here: name the user on the span.
An event with neither id is not sent (counted as dropped, ``no_identity``).

**Session.** Amplitude's ``session_id`` is the session's start time in ms since the epoch, so
``session.id`` becomes ``session_id`` only when it is a number: an int attribute, or a string of
decimal digits (``"1700000000000"``, or ``"-1"``, Amplitude's "no session"), taken as ms. Any
other value, such as a UUID, is not a time: the event gets no ``session_id`` and keeps the value
as the event property ``session.id``, so it can still be grouped by. (Hashing it to a number
would give Amplitude a session start time decades off, splitting and misdating sessions.)
``amplitude.session_id`` (an int) takes precedence.

**Other fields.**

- ``time``: the span's start (an event's own timestamp for a span event), ns → ms.
- ``insert_id``: 32 hex characters of BLAKE2b over the trace id, the span id and, for a span
  event, its index: a span exported twice is stored once by Amplitude.
- ``app_version``: the resource's ``service.version``.
- ``user_agent``: ``user_agent.original`` (or the older ``http.user_agent``).
- ``ip``: ``client.address`` (or the older ``http.client_ip``), only when ``AMPLITUDE_SEND_IP``
  is on. Address attributes (those two, ``net.peer.ip``, ``net.sock.peer.addr``,
  ``network.peer.address``) never become event properties: an IP address is personal data.
- ``amplitude.<field>``, for any other top-level Amplitude field (``amplitude.platform``,
  ``amplitude.revenue``, ...), sets that field; ``amplitude.user_properties.<name>`` sets a user
  property. Any other ``amplitude.*`` attribute makes the event invalid: it is a typo.
- ``event_properties``: every other attribute (sequences become lists), plus ``duration_ms``
  (float, end minus start), ``status`` (``"ok"``, ``"error"`` or ``"unset"``) and, when set,
  ``status_description``. The span's own attributes win over these three.

A span event belongs to the same user and request as its span: its ids, session, user agent, IP
and app version come from the span unless its own attributes name them; its properties and other
``amplitude.*`` fields are its own, without the span's duration and status.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event as SpanEvent
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from ._destinations import check_tenant
from ._event import Event
from ._fields import EXTRA_FIELDS
from ._settings import Settings
from ._validate import kept_as_is, new_event
from .exceptions import InvalidEventError

__all__ = ["EVENT_TYPE_ATTRIBUTE", "Skipped", "SpanMapper", "session_id_of", "span_insert_id"]

#: The attribute that makes a span, or a span event, an Amplitude event; its value is the type.
EVENT_TYPE_ATTRIBUTE: Final = "amplitude.event_type"

_PREFIX = "amplitude."
_USER_PROPERTY_PREFIX = "amplitude.user_properties."
_USER_KEYS = ("amplitude.user_id", "enduser.id", "user.id")
_DEVICE_KEY = "amplitude.device_id"
_SESSION_KEY = "session.id"
_IP_KEYS = ("amplitude.ip", "client.address", "http.client_ip")
_USER_AGENT_KEYS = ("amplitude.user_agent", "user_agent.original", "http.user_agent")
#: Attributes read above (or personal data) that never become event properties.
_CONSUMED: Final = frozenset(
    {*_USER_KEYS, *_IP_KEYS, *_USER_AGENT_KEYS, "net.peer.ip", "net.sock.peer.addr",
     "network.peer.address"}
)  # fmt: skip
#: ``amplitude.<name>`` attributes handled by this module rather than passed on as fields.
_OWN_NAMES: Final = frozenset(
    {"event_type", "user_id", "device_id", "session_id", "ip", "user_agent", "time", "insert_id",
     "tenant"}
)  # fmt: skip
_TENANT_KEY = "amplitude.tenant"
#: Names of the top-level fields an ``amplitude.<name>`` attribute may set.
_FIELD_NAMES: Final = frozenset(name for spec in EXTRA_FIELDS for name in (spec.name, spec.wire))
#: Attributes of a span that name the server it talked to (the library's own requests).
_HOST_KEYS = ("server.address", "net.peer.name")
_URL_KEYS = ("url.full", "http.url")

#: How many distinct span names the pattern cache remembers; names past it are matched each time.
_NAME_CACHE_SIZE = 4096
_NS_PER_MS = 1_000_000
_STATUS_NAMES: Final = {
    StatusCode.UNSET: "unset",
    StatusCode.OK: "ok",
    StatusCode.ERROR: "error",
}
_EMPTY: Mapping[str, Any] = {}
_NOTHING: tuple[Event | Skipped, ...] = ()
_UNSEEN: Final = "<unseen>"  # the name cache's miss marker, compared by identity


@dataclass(frozen=True, slots=True)
class Skipped:
    """A span (or span event) meant as an event that cannot be sent: ``reason`` is the counter.

    ``reason`` is ``"no_identity"`` or ``"invalid"``; ``error`` says which field and why.
    """

    reason: str
    error: InvalidEventError | None = None


_NO_IDENTITY: Final = Skipped("no_identity")


_BLAKE2B_16 = hashlib.blake2b(digest_size=16)


def span_insert_id(trace_id: int, span_id: int, index: int | None = None) -> str:
    """The insert id of a span (``index`` None) or of its ``index``-th span event: 32 hex chars.

    A hash rather than the ids themselves, so that it is fixed-length and the span event's id
    cannot collide with another span's.
    """
    key = trace_id.to_bytes(16, "big") + span_id.to_bytes(8, "big")
    if index is not None:
        key += index.to_bytes(4, "big")
    digest = _BLAKE2B_16.copy()  # a third cheaper than blake2b(key, digest_size=16), same value
    digest.update(key)
    return digest.hexdigest()


class SpanMapper:
    """Turns finished spans into events with one client's settings.

    ``own_hosts`` are the hosts the library itself sends to: a span matched only by a name
    pattern is skipped when it describes a request to one of them (the library's own HTTP call,
    traced by an HTTP client instrumentation), so a broad pattern such as ``*`` cannot loop.
    """

    __slots__ = (
        "_min_id_length",
        "_names",
        "_own_hosts",
        "_pattern",
        "_prefix",
        "_resource_tenant",
        "_resource_version",
        "_routing",
        "_send_ip",
        "_tenant_attribute",
    )

    def __init__(
        self, settings: Settings, *, own_hosts: Collection[str] = (), routing: bool = False
    ) -> None:
        #: With destinations configured, ``amplitude.tenant`` (else the resource attribute named
        #: by AMPLITUDE_TENANT_ATTRIBUTE) picks an event's destination; without, it is ignored.
        self._routing = routing
        self._tenant_attribute = settings.tenant_attribute if routing else None
        self._resource_tenant: tuple[Resource | None, object] = (None, None)
        self._prefix = settings.event_prefix
        self._min_id_length = settings.min_id_length
        self._send_ip = settings.send_ip
        self._pattern = (
            re.compile("|".join(fnmatch.translate(glob) for glob in settings.span_events))
            if settings.span_events
            else None
        )
        self._names: dict[str, str | None] = {}
        self._own_hosts = frozenset(own_hosts)
        # (resource, its service.version): one attribute, so that it is replaced atomically.
        self._resource_version: tuple[Resource | None, object] = (None, None)

    def map(self, span: ReadableSpan) -> Sequence[Event | Skipped]:
        """The events ``span`` and its span events make; empty for a span that is no event."""
        attributes = _attributes_of(span)
        event_type = attributes.get(EVENT_TYPE_ATTRIBUTE)
        if event_type is None and self._pattern is not None:
            event_type = self._matched(span.name)
            if event_type is not None and self._own_hosts and self._is_own_request(attributes):
                event_type = None
        # ``span.events`` copies the list into a new tuple on every call: most spans have no
        # events and most spans are not events, so look at the list itself when it is there.
        span_events = getattr(span, "_events", None)
        if span_events is None:
            span_events = span.events
        if event_type is None and not span_events:
            return _NOTHING
        outcomes: list[Event | Skipped] = []
        if event_type is not None:
            outcomes.append(self._span_event(span, event_type, attributes))
        for index, span_event in enumerate(span_events):
            own = _attributes_of(span_event)
            if EVENT_TYPE_ATTRIBUTE in own:
                outcomes.append(
                    self._span_event_event(span, attributes, index, span_event.timestamp, own)
                )
        return outcomes

    # -- which spans ------------------------------------------------------------------------

    def _matched(self, name: str) -> str | None:
        """``name`` if it matches a pattern, else None; remembered for the next span."""
        cached = self._names.get(name, _UNSEEN)
        if cached is not _UNSEEN:
            return cached
        assert self._pattern is not None
        matched = name if self._pattern.match(name) else None
        if len(self._names) < _NAME_CACHE_SIZE:
            self._names[name] = matched
        return matched

    def _is_own_request(self, attributes: Mapping[str, Any]) -> bool:
        for key in _HOST_KEYS:
            if attributes.get(key) in self._own_hosts:
                return True
        for key in _URL_KEYS:
            url = attributes.get(key)
            if isinstance(url, str):
                try:
                    host = urlsplit(url).hostname
                except ValueError:
                    continue
                if host in self._own_hosts:
                    return True
        return False

    # -- the events ---------------------------------------------------------------------------

    def _span_event(
        self, span: ReadableSpan, event_type: object, attributes: Mapping[str, Any]
    ) -> Event | Skipped:
        user_id, device_id = _ids(attributes)
        if user_id is None and device_id is None:
            return _NO_IDENTITY
        start = span.start_time
        end = span.end_time
        status = span.status
        properties: dict[str, Any] = {"status": _STATUS_NAMES.get(status.status_code, "unset")}
        if start is not None and end is not None:
            properties["duration_ms"] = (end - start) / _NS_PER_MS
        if status.description:
            properties["status_description"] = status.description
        context = span.context
        insert_id = (
            span_insert_id(context.trace_id, context.span_id) if context is not None else None
        )
        return self._build(
            span,
            event_type,
            user_id,
            device_id,
            None if start is None else start // _NS_PER_MS,
            insert_id,
            attributes,
            properties,
            inherited=_EMPTY,
        )

    def _span_event_event(
        self,
        span: ReadableSpan,
        span_attributes: Mapping[str, Any],
        index: int,
        timestamp: int | None,
        own: Mapping[str, Any],
    ) -> Event | Skipped:
        user_id, device_id = _ids(own)
        if user_id is None and device_id is None:
            user_id, device_id = _ids(span_attributes)
            if user_id is None and device_id is None:
                return _NO_IDENTITY
        context = span.context
        insert_id = (
            span_insert_id(context.trace_id, context.span_id, index)
            if context is not None
            else None
        )
        return self._build(
            span,
            own[EVENT_TYPE_ATTRIBUTE],
            user_id,
            device_id,
            None if timestamp is None else timestamp // _NS_PER_MS,
            insert_id,
            own,
            {},
            inherited=span_attributes,
        )

    def _build(
        self,
        span: ReadableSpan,
        event_type: object,
        user_id: object,
        device_id: object,
        time: int | None,
        insert_id: str | None,
        attributes: Mapping[str, Any],
        properties: dict[str, Any],
        *,
        inherited: Mapping[str, Any],
    ) -> Event | Skipped:
        """The event from ``attributes``; ``inherited`` (a span event's span) fills the gaps."""
        fields: dict[str, Any] = {}
        user_properties: dict[str, Any] | None = None
        session: object = None  # amplitude.session_id
        session_attribute: object = None  # session.id
        try:
            for key, value in attributes.items():
                if key in _CONSUMED:
                    continue
                if key.startswith(_PREFIX):
                    if key.startswith(_USER_PROPERTY_PREFIX):
                        if user_properties is None:
                            user_properties = {}
                        user_properties[key[len(_USER_PROPERTY_PREFIX) :]] = value
                        continue
                    name = key[len(_PREFIX) :]
                    if name in _OWN_NAMES:
                        if name == "time":
                            time = value
                        elif name == "insert_id":
                            insert_id = value
                        elif name == "session_id":
                            session = value
                        continue
                    if name not in _FIELD_NAMES:
                        raise _unknown_field(key)
                    fields[name] = value
                elif key == _SESSION_KEY:
                    session_attribute = value
                else:
                    properties[key] = value
            if session is None and session_attribute is None and inherited:
                session = inherited.get(_PREFIX + "session_id")
                session_attribute = inherited.get(_SESSION_KEY)
            if session_attribute is not None:
                converted = session_id_of(session_attribute)
                if converted is None:
                    properties[_SESSION_KEY] = session_attribute  # not a time: module docstring
                elif session is None:
                    session = converted
            if session is not None:
                fields["session_id"] = session
            user_agent = _first(attributes, _USER_AGENT_KEYS)
            if user_agent is None and inherited:
                user_agent = _first(inherited, _USER_AGENT_KEYS)
            if user_agent is not None:
                fields["user_agent"] = user_agent
            if self._send_ip:
                ip = _first(attributes, _IP_KEYS)
                if ip is None and inherited:
                    ip = _first(inherited, _IP_KEYS)
                if ip is not None:
                    fields["ip"] = ip
            if "app_version" not in fields:
                version = self._app_version(span.resource)
                if version is not None:
                    fields["app_version"] = version
            if self._prefix and isinstance(event_type, str):
                event_type = self._prefix + event_type
            event = new_event(  # make_event, its arguments by position (a cheaper call)
                event_type,
                user_id,
                device_id,
                time,
                insert_id,
                properties,
                user_properties,
                fields or None,
                self._min_id_length,
                None,  # created: now
                kept_as_is(properties),  # made above for this event alone
            )
            if self._routing:
                tenant = self._tenant(span, attributes, inherited)
                if tenant is not None:
                    event.destination = tenant
            return event
        except InvalidEventError as error:
            return Skipped("invalid", error)

    def _tenant(
        self, span: ReadableSpan, attributes: Mapping[str, Any], inherited: Mapping[str, Any]
    ) -> str | None:
        """``amplitude.tenant`` of the span (event), else of the resource's tenant attribute."""
        tenant = attributes.get(_TENANT_KEY)
        if tenant is None and inherited:
            tenant = inherited.get(_TENANT_KEY)
        if tenant is None and self._tenant_attribute is not None and span.resource is not None:
            known, tenant = self._resource_tenant
            if span.resource is not known:
                tenant = span.resource.attributes.get(self._tenant_attribute)
                self._resource_tenant = (span.resource, tenant)
        if tenant is None:
            return None
        try:
            return check_tenant(tenant)
        except ValueError as error:
            raise InvalidEventError(_TENANT_KEY, str(error)) from None

    def _app_version(self, resource: Resource | None) -> object:
        """The resource's ``service.version``, remembered: a process has one resource or few."""
        if resource is None:
            return None
        known, version = self._resource_version
        if resource is not known:
            version = resource.attributes.get("service.version")
            self._resource_version = (resource, version)
        return version


def _attributes_of(holder: ReadableSpan | SpanEvent) -> Mapping[str, Any]:
    """The attributes of a span or span event, as a plain dict when possible. Read-only.

    The public ``attributes`` is a read-only view of the SDK's ``BoundedAttributes``, a
    ``Mapping`` whose ``get`` raises and catches ``KeyError`` for a missing key: that costs about
    ten times a dict lookup, and a missing key is the common case here (most spans are not
    events). A finished span's attributes no longer change, so the dict inside is read directly
    when the SDK has one, and the public view is the fallback.
    """
    inner = getattr(getattr(holder, "_attributes", None), "_dict", None)
    if isinstance(inner, dict):
        return inner
    return holder.attributes or _EMPTY


def _ids(attributes: Mapping[str, Any]) -> tuple[object, object]:
    """(user_id, device_id) named by ``attributes``, each None when absent."""
    return _first(attributes, _USER_KEYS), attributes.get(_DEVICE_KEY)


def _first(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> object:
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            return value
    return None


def session_id_of(value: object) -> int | None:
    """``session.id`` as ms since the epoch when it is a number, else None (module docstring)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii():
        digits = value[1:] if value.startswith("-") else value
        if digits.isdigit() and len(digits) <= 19:
            return int(value)
    return None


def _unknown_field(key: str) -> InvalidEventError:
    return InvalidEventError(
        key,
        "is not an Amplitude event field: an 'amplitude.' attribute must name one, such as "
        "amplitude.app_version or amplitude.user_properties.<name>; drop the prefix to send it "
        "as an event property",
    )

"""The rules every source shares to turn (event type, flat attributes) into an Amplitude event.

A logging ``extra``, a structlog event dict, an OTel log record's attributes: each is a flat
mapping. Keys that are Amplitude top-level fields, with a value of that field's type, go to the
top level (``time`` is converted from any accepted form), ``event_properties`` and
``user_properties`` mappings are merged, everything else is an event property. Ids missing from
the mapping come from the bound context, then from the current OTel span's ``enduser.id``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace

from ._context import Identity, current_identity
from ._destinations import check_tenant
from ._event import Event
from ._fields import FIELD_BY_NAME, TOP_LEVEL_FIELDS, FieldKind
from ._settings import Settings
from ._validate import kept_as_is, new_event
from .exceptions import InvalidEventError

__all__ = ["CURRENT", "EventMapper", "identity_of_span", "span_fallback", "span_identity"]

#: Names that are never copied from a mapping to the top level (the source sets them itself).
_OWN_FIELDS = frozenset({"event_type", "event_properties", "user_properties", "user_id",
                         "device_id"})  # fmt: skip
_TOP_LEVEL = TOP_LEVEL_FIELDS - _OWN_FIELDS
#: Every key the mapping routes by name; any other key is an event property.
_ROUTED = TOP_LEVEL_FIELDS | _OWN_FIELDS
#: Types that are never a Mapping: ``_fits`` skips the (slow) ABC check for them.
_SCALARS = frozenset({str, int, float, bool, type(None)})
_IDS = frozenset({"user_id", "device_id"})
#: Span attributes that name the user (OTel semantic conventions, old and new).
_USER_ATTRIBUTES = ("amplitude.user_id", "enduser.id", "user.id")


def _is_string(value: object) -> bool:
    return isinstance(value, str)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_boolean(value: object) -> bool:
    return isinstance(value, bool)


def _is_object(value: object) -> bool:
    return type(value) is dict or (type(value) not in _SCALARS and isinstance(value, Mapping))


_FITS_KIND: dict[FieldKind, Callable[[object], bool]] = {
    FieldKind.STRING: _is_string,
    FieldKind.INTEGER: _is_integer,
    FieldKind.FLOAT: _is_number,
    FieldKind.BOOLEAN: _is_boolean,
}
#: Whether a value has the JSON type of the top-level field its key names, per key: looked up
#: once here, not per value (reading an ``Enum`` member costs more than the test itself).
_FITS: dict[str, Callable[[object], bool]] = {
    name: _FITS_KIND.get(FIELD_BY_NAME[name].kind, _is_object) for name in _TOP_LEVEL
}


class _Bound(enum.Enum):
    CURRENT = 0  #: read the identity bound in the current context


#: ``EventMapper.build(bound=CURRENT)``: take the identity bound where ``build`` runs.
CURRENT = _Bound.CURRENT


def span_identity() -> Identity | None:
    """The user of the current recording OTel span (``enduser.id`` or ``user.id``), if any."""
    return identity_of_span(trace.get_current_span())


def identity_of_span(span: object) -> Identity | None:
    """The user a span names (``amplitude.user_id``, ``enduser.id`` or ``user.id``), if any."""
    attributes = getattr(span, "attributes", None)
    if not attributes:
        return None
    for name in _USER_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, str) and value:
            return Identity(user_id=value)
    return None


class EventMapper:
    """Builds events from flat mappings with one client's settings (prefix, id rules, IP policy)."""

    __slots__ = ("_min_id_length", "_prefix", "_routing", "_send_ip")

    def __init__(self, settings: Settings, *, routing: bool = False) -> None:
        self._prefix = settings.event_prefix
        self._min_id_length = settings.min_id_length
        self._send_ip = settings.send_ip
        #: With destinations configured, a ``tenant`` key (or a bound tenant) routes the event
        #: and is not a property; without, ``tenant`` is an ordinary property.
        self._routing = routing

    def build(
        self,
        event_type: str,
        values: Mapping[str, Any],
        *,
        time: object = None,
        insert_id: str | None = None,
        properties: dict[str, Any] | None = None,
        fallback: Callable[[], Identity | None] = span_identity,
        bound: Identity | _Bound | None = CURRENT,
    ) -> Event | None:
        """The event, or None when nobody can be named as its user or device.

        ``properties`` are event properties the source adds (they lose to the mapping's own).
        Raises :class:`InvalidEventError` for an event that cannot be sent. ``bound`` is the
        identity bound where the event was emitted, when ``build`` runs elsewhere.
        """
        event_properties: dict[str, Any] = dict(properties) if properties else {}
        user_properties: dict[str, Any] | None = None
        fields: dict[str, Any] | None = None
        user_id = values.get("user_id")
        device_id = values.get("device_id")
        for key, value in values.items():
            if key in _ROUTED:
                # A key naming an Amplitude field goes to the top level only when its value has
                # that field's type: extra={"plan": "pro"} stays a property, as its author meant.
                if key in _TOP_LEVEL and (key == "time" or _FITS[key](value)):
                    if fields is None:
                        fields = {}
                    fields[key] = value
                    continue
                if key in _OWN_FIELDS:
                    if key in _IDS:
                        continue
                    if isinstance(value, Mapping):
                        if key == "event_properties":
                            event_properties.update(value)
                            continue
                        if key == "user_properties":
                            user_properties = {**(user_properties or {}), **value}
                            continue
            event_properties[key] = value

        tenant = event_properties.pop("tenant", None) if self._routing else None

        if fields is not None:
            event_time = fields.pop("time", None)
            time = event_time if event_time is not None else time
            insert_id = fields.pop("insert_id", None) or insert_id
            if not self._send_ip:
                fields.pop("ip", None)

        if self._routing and tenant is None:
            if bound is CURRENT:
                bound = current_identity()
            if bound is not None:
                tenant = bound.tenant
        if user_id is None or device_id is None or (fields is None or "session_id" not in fields):
            if bound is CURRENT:
                bound = current_identity()
            if (
                user_id is None
                and device_id is None
                and (bound is None or (bound.user_id is None and bound.device_id is None))
            ):
                # Nobody bound (a session alone does not name anyone): the current span's user.
                named = fallback()
                if named is not None:
                    session = bound.session_id if bound is not None else None
                    bound = Identity(named.user_id, named.device_id, session)
            if bound is not None:
                if user_id is None and device_id is None:
                    user_id, device_id = bound.user_id, bound.device_id
                if bound.session_id is not None and (fields is None or "session_id" not in fields):
                    fields = {**(fields or {}), "session_id": bound.session_id}
        if user_id is None and device_id is None:
            return None

        event = new_event(  # make_event, its arguments by position (a cheaper call)
            self._prefix + event_type if self._prefix else event_type,
            user_id,
            device_id,
            time,
            insert_id,
            event_properties or None,
            user_properties,
            fields,
            self._min_id_length,
            None,  # created: now
            # Made here for this event: kept as it is when nothing in it needs converting.
            kept_as_is(event_properties),
        )
        if tenant is not None:
            try:
                event.destination = check_tenant(tenant)
            except ValueError as error:
                raise InvalidEventError("tenant", str(error)) from None
        return event


def _nobody() -> Identity | None:
    return None


def span_fallback(span: object | None) -> Callable[[], Identity | None]:
    """``EventMapper.build``'s ``fallback`` for an event built away from where it was emitted.

    The integrations capture the current span on the caller's thread only when neither the
    values nor the bound identity name anybody (None otherwise); its ``enduser.id`` is read
    when the event is built.
    """
    if span is None:
        return _nobody
    return lambda: identity_of_span(span)

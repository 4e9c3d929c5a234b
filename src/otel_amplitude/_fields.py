"""Amplitude's top-level event fields, described once, as data.

Validation (:mod:`otel_amplitude._validate`) and the integrations derive everything from this
table: which names are top-level fields rather than event properties, how a Python-style name
(``product_id``) maps to its wire name (``productId``), and what kind of value each one takes.
Source: ``amplitude-api.md`` §2.1 (HTTP V2 event keys, plus the keys the official Python SDK sends).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "EVENT_FIELDS",
    "EXTRA_FIELDS",
    "FIELD_BY_NAME",
    "TOP_LEVEL_FIELDS",
    "FieldKind",
    "FieldSpec",
]


class FieldKind(enum.Enum):
    """The JSON type Amplitude expects for a field."""

    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"  # any finite JSON number
    BOOLEAN = "boolean"
    OBJECT = "object"  # a JSON object, made JSON-safe like properties are


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One top-level event field.

    ``name`` is the Python spelling (a keyword argument, a logging ``extra`` key), ``wire`` the
    key in the JSON Amplitude receives. ``on_event`` is true for the fields :class:`Event` carries
    as attributes (passed to ``make_event`` as arguments); the others travel in ``Event.fields``.
    ``max_keys`` bounds an object field's keys where Amplitude documents a limit.
    """

    name: str
    wire: str
    kind: FieldKind
    on_event: bool = False
    max_keys: int | None = None


_S, _I, _F, _B, _O = (
    FieldKind.STRING,
    FieldKind.INTEGER,
    FieldKind.FLOAT,
    FieldKind.BOOLEAN,
    FieldKind.OBJECT,
)


def _field(
    name: str, kind: FieldKind, wire: str | None = None, *, max_keys: int | None = None
) -> FieldSpec:
    return FieldSpec(name, wire or name, kind, max_keys=max_keys)


#: The fields :class:`otel_amplitude._event.Event` carries itself (``make_event`` arguments).
EVENT_FIELDS: tuple[FieldSpec, ...] = tuple(
    FieldSpec(name, name, kind, on_event=True)
    for name, kind in (
        ("event_type", _S),
        ("user_id", _S),
        ("device_id", _S),
        ("time", _I),  # ms since the epoch
        ("insert_id", _S),
        ("event_properties", _O),
        ("user_properties", _O),
    )
)

#: Every other top-level field, carried in ``Event.fields`` under its wire name.
EXTRA_FIELDS: tuple[FieldSpec, ...] = (
    # Accounts add-on: at most 5 group types per event (more are not tracked).
    _field("groups", _O, max_keys=5),
    _field("group_properties", _O),  # used only with event_type "$groupidentify"
    _field("skip_user_properties_sync", _B, "$skip_user_properties_sync"),
    # Device and context, descriptive strings.
    _field("user_agent", _S),
    _field("app_version", _S),
    _field("platform", _S),
    _field("os_name", _S),
    _field("os_version", _S),
    _field("device_brand", _S),
    _field("device_manufacturer", _S),
    _field("device_model", _S),
    _field("carrier", _S),
    _field("country", _S),
    _field("region", _S),
    _field("city", _S),
    _field("dma", _S),
    _field("language", _S),
    _field("location_lat", _F),
    _field("location_lng", _F),
    _field("ip", _S),  # "$remote" = the request's source address; privacy decides if it is sent
    # Revenue.
    _field("price", _F),  # negative = refund
    _field("quantity", _I),
    _field("revenue", _F),
    _field("product_id", _S, "productId"),
    _field("revenue_type", _S, "revenueType"),
    _field("currency", _S),  # ISO 4217, upper case
    # Advertising and vendor ids.
    _field("idfa", _S),
    _field("idfv", _S),
    _field("adid", _S),
    _field("android_id", _S),
    _field("android_app_set_id", _S),
    # Sequencing and sessions.
    _field("event_id", _I),
    _field("session_id", _I),  # session start, ms since the epoch; -1 = no session
    # Provenance.
    _field("plan", _O),  # branch, source, version, versionId
    _field("partner_id", _S),
    _field("library", _S),
    _field("version_name", _S),
    _field("ingestion_metadata", _O),  # source_name, source_version
)

#: Any accepted name, Python or wire spelling, to its field.
FIELD_BY_NAME: Mapping[str, FieldSpec] = MappingProxyType(
    {name: spec for spec in EVENT_FIELDS + EXTRA_FIELDS for name in (spec.name, spec.wire)}
)

#: Every accepted top-level name, Python and wire spelling: a logging ``extra`` key in this set
#: is a top-level field, any other key is an event property.
TOP_LEVEL_FIELDS: frozenset[str] = frozenset(FIELD_BY_NAME)

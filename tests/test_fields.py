"""The table of Amplitude's top-level event fields (amplitude-api.md §2.1)."""

from __future__ import annotations

import pytest

from otel_amplitude._event import Event
from otel_amplitude._fields import (
    EVENT_FIELDS,
    EXTRA_FIELDS,
    FIELD_BY_NAME,
    TOP_LEVEL_FIELDS,
    FieldKind,
)

# §2.1, wire spelling, the fields carried in Event.fields.
DOCUMENTED_EXTRA_FIELDS = {
    "groups": FieldKind.OBJECT,
    "group_properties": FieldKind.OBJECT,
    "$skip_user_properties_sync": FieldKind.BOOLEAN,
    "user_agent": FieldKind.STRING,
    "app_version": FieldKind.STRING,
    "platform": FieldKind.STRING,
    "os_name": FieldKind.STRING,
    "os_version": FieldKind.STRING,
    "device_brand": FieldKind.STRING,
    "device_manufacturer": FieldKind.STRING,
    "device_model": FieldKind.STRING,
    "carrier": FieldKind.STRING,
    "country": FieldKind.STRING,
    "region": FieldKind.STRING,
    "city": FieldKind.STRING,
    "dma": FieldKind.STRING,
    "language": FieldKind.STRING,
    "price": FieldKind.FLOAT,
    "quantity": FieldKind.INTEGER,
    "revenue": FieldKind.FLOAT,
    "productId": FieldKind.STRING,
    "revenueType": FieldKind.STRING,
    "currency": FieldKind.STRING,
    "location_lat": FieldKind.FLOAT,
    "location_lng": FieldKind.FLOAT,
    "ip": FieldKind.STRING,
    "idfa": FieldKind.STRING,
    "idfv": FieldKind.STRING,
    "adid": FieldKind.STRING,
    "android_id": FieldKind.STRING,
    "android_app_set_id": FieldKind.STRING,
    "event_id": FieldKind.INTEGER,
    "session_id": FieldKind.INTEGER,
    "plan": FieldKind.OBJECT,
    "partner_id": FieldKind.STRING,
    "library": FieldKind.STRING,
    "version_name": FieldKind.STRING,
    "ingestion_metadata": FieldKind.OBJECT,
}
EVENT_OWN_FIELDS = {
    "event_type",
    "user_id",
    "device_id",
    "time",
    "insert_id",
    "event_properties",
    "user_properties",
}


def test_every_documented_extra_field_is_in_the_table_with_its_kind() -> None:
    assert {spec.wire: spec.kind for spec in EXTRA_FIELDS} == DOCUMENTED_EXTRA_FIELDS


def test_the_fields_event_carries_itself_are_not_extra_fields() -> None:
    assert {spec.name for spec in EVENT_FIELDS} == EVENT_OWN_FIELDS
    assert all(spec.on_event for spec in EVENT_FIELDS)
    assert not any(spec.on_event for spec in EXTRA_FIELDS)
    assert EVENT_OWN_FIELDS.isdisjoint(spec.wire for spec in EXTRA_FIELDS)
    assert EVENT_OWN_FIELDS.isdisjoint(spec.name for spec in EXTRA_FIELDS)
    assert set(Event.__slots__) >= EVENT_OWN_FIELDS


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("product_id", "productId"),
        ("revenue_type", "revenueType"),
        ("skip_user_properties_sync", "$skip_user_properties_sync"),
        ("session_id", "session_id"),
    ],
)
def test_python_and_wire_spellings_lead_to_the_same_field(name: str, wire: str) -> None:
    assert FIELD_BY_NAME[name] is FIELD_BY_NAME[wire]
    assert FIELD_BY_NAME[name].name == name
    assert FIELD_BY_NAME[name].wire == wire


def test_top_level_fields_hold_every_spelling_of_every_field() -> None:
    expected = EVENT_OWN_FIELDS | set(DOCUMENTED_EXTRA_FIELDS)
    expected |= {"product_id", "revenue_type", "skip_user_properties_sync"}
    assert expected == TOP_LEVEL_FIELDS
    assert set(FIELD_BY_NAME) == TOP_LEVEL_FIELDS


def test_names_are_unique_across_the_table() -> None:
    specs = EVENT_FIELDS + EXTRA_FIELDS
    names = [spec.name for spec in specs]
    wires = [spec.wire for spec in specs]
    assert len(set(names)) == len(names)
    assert len(set(wires)) == len(wires)


def test_python_names_are_identifiers_so_they_work_as_keyword_arguments() -> None:
    assert all(spec.name.isidentifier() for spec in EVENT_FIELDS + EXTRA_FIELDS)


def test_groups_are_limited_to_five_group_types() -> None:
    assert FIELD_BY_NAME["groups"].max_keys == 5


def test_common_logging_extra_keys_are_not_top_level_fields() -> None:
    assert "request_id" not in TOP_LEVEL_FIELDS
    assert "latency" not in TOP_LEVEL_FIELDS


def test_the_table_cannot_be_changed_at_runtime() -> None:
    with pytest.raises(TypeError):
        FIELD_BY_NAME["x"] = FIELD_BY_NAME["ip"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        FIELD_BY_NAME["ip"].wire = "x"  # type: ignore[misc]

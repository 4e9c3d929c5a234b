"""Identify updates as pure values: operations, merging, coalescing, encoding."""

from __future__ import annotations

from urllib.parse import parse_qs

import orjson

from otel_amplitude._event import Event
from otel_amplitude._identify import (
    IDENTIFY,
    coalesce,
    encode_identify,
    merge_operations,
    operations,
)


def update(user: str, ops: dict[str, dict[str, object]], device: str | None = None) -> Event:
    return Event(IDENTIFY, user, device, 1, f"i-{user}", user_properties=ops)


def test_operations_map_keyword_arguments_to_amplitude_operations():
    assert operations(set={"plan": "pro"}, set_once={"first": "x"}, unset=["trial"]) == {
        "$set": {"plan": "pro"},
        "$setOnce": {"first": "x"},
        "$unset": {"trial": "-"},
    }


def test_a_later_set_wins_and_set_once_keeps_the_first_value():
    merged = merge_operations(
        {"$set": {"plan": "free"}, "$setOnce": {"signup": "a"}},
        {"$set": {"plan": "pro"}, "$setOnce": {"signup": "b"}},
    )
    assert merged == {"$set": {"plan": "pro"}, "$setOnce": {"signup": "a"}}


def test_adds_sum_and_appends_concatenate():
    merged = merge_operations(
        {"$add": {"logins": 1}, "$append": {"tags": ["a"]}},
        {"$add": {"logins": 2}, "$append": {"tags": "b"}},
    )
    assert merged == {"$add": {"logins": 3}, "$append": {"tags": ["a", "b"]}}


def test_unset_after_set_removes_the_set_so_no_property_has_two_operations():
    merged = merge_operations({"$set": {"plan": "pro", "seats": 3}}, {"$unset": {"plan": "-"}})
    assert merged == {"$set": {"seats": 3}, "$unset": {"plan": "-"}}
    again = merge_operations(merged, {"$set": {"plan": "team"}})
    assert again == {"$set": {"seats": 3, "plan": "team"}}


def test_consecutive_updates_of_one_user_coalesce_and_others_stay_apart():
    events = [
        update("user-a", {"$set": {"plan": "free"}}),
        update("user-a", {"$set": {"plan": "pro"}, "$add": {"logins": 1}}),
        update("user-b", {"$set": {"plan": "team"}}),
        update("user-a", {"$add": {"logins": 1}}),
    ]
    items, groups = coalesce(events)
    assert groups == [[0, 1], [2], [3]]
    assert items[0] == {
        "user_id": "user-a",
        "user_properties": {"$set": {"plan": "pro"}, "$add": {"logins": 1}},
    }
    assert events[0].user_properties == {"$set": {"plan": "free"}}  # inputs left untouched


def test_the_body_is_a_form_with_the_key_and_a_json_list():
    body = encode_identify(
        "key-123", [{"user_id": "user-a", "user_properties": {"$set": {"x": 1}}}]
    )
    form = parse_qs(body.decode())
    assert form["api_key"] == ["key-123"]
    assert orjson.loads(form["identification"][0]) == [
        {"user_id": "user-a", "user_properties": {"$set": {"x": 1}}}
    ]

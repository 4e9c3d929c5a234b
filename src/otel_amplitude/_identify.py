"""User-property updates for Amplitude's Identify API, as pure functions.

An update is carried through the pipeline as an :class:`Event` of type ``$identify`` whose
``user_properties`` hold the operations (``$set``, ``$setOnce``, ``$add``, ``$append``,
``$prepend``, ``$unset``), so it sits in its user's partition and keeps its order with that
user's events. When a request is sent, consecutive updates of one user are merged into one
identification (:func:`coalesce`): fewer updates count against Amplitude's 1,800 per user and
hour, and each original update shares the outcome of the identification it was merged into.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import orjson

from ._event import Event

__all__ = [
    "IDENTIFY",
    "OPERATIONS",
    "coalesce",
    "encode_identify",
    "identification",
    "merge_operations",
    "operations",
]

#: The event type that marks an update for the Identify API.
IDENTIFY = "$identify"
#: Keyword argument of ``Client.identify`` → Amplitude's operation name.
OPERATIONS: Mapping[str, str] = {
    "set": "$set",
    "set_once": "$setOnce",
    "add": "$add",
    "append": "$append",
    "prepend": "$prepend",
    "unset": "$unset",
}
#: At most this many identifications in one request (amplitude-api.md §2.2, Group Identify;
#: the stricter reading applied to Identify too).
MAX_IDENTIFICATIONS = 1024


def operations(
    *,
    set: Mapping[str, Any] | None = None,
    set_once: Mapping[str, Any] | None = None,
    add: Mapping[str, Any] | None = None,
    append: Mapping[str, Any] | None = None,
    prepend: Mapping[str, Any] | None = None,
    unset: Sequence[str] | Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """The ``user_properties`` object of an update, from keyword arguments."""
    given: dict[str, Any] = {
        "set": set,
        "set_once": set_once,
        "add": add,
        "append": append,
        "prepend": prepend,
    }
    ops: dict[str, dict[str, Any]] = {}
    for name, value in given.items():
        if value:
            ops[OPERATIONS[name]] = dict(value)
    if unset:
        names = unset.keys() if isinstance(unset, Mapping) else unset
        ops["$unset"] = {str(name): "-" for name in names}
    return ops


def merge_operations(
    earlier: Mapping[str, Mapping[str, Any]], later: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """One update with the effect of ``earlier`` followed by ``later``.

    A property touched by ``later`` with ``$set`` or ``$unset`` forgets what ``earlier`` did to
    it; ``$setOnce`` keeps the earliest value; ``$add`` sums numbers; ``$append``/``$prepend``
    concatenate lists. Amplitude refuses one property in two operations of one update, so where
    that would happen the later operation wins.
    """
    merged: dict[str, dict[str, Any]] = {op: dict(props) for op, props in earlier.items()}
    for op, props in later.items():
        for name, value in props.items():
            current = next((o for o, p in merged.items() if name in p), None)
            if op == "$setOnce" and current in ("$setOnce", "$set"):
                continue  # the earlier value stays
            if op == "$add" and current == "$add":
                previous = merged["$add"][name]
                if _number(previous) and _number(value):
                    merged["$add"][name] = previous + value
                    continue
            combined = value
            if op in ("$append", "$prepend") and current == op:
                previous = _as_list(merged[op][name])
                added = _as_list(value)
                combined = previous + added if op == "$append" else added + previous
            if current is not None and current != op:
                del merged[current][name]
            merged.setdefault(op, {})[name] = combined
    return {op: props for op, props in merged.items() if props}


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_list(value: object) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def identification(event: Event) -> dict[str, Any]:
    """The Identify API's object for one update: ids, operations, and device/context fields."""
    item: dict[str, Any] = {}
    if event.user_id is not None:
        item["user_id"] = event.user_id
    if event.device_id is not None:
        item["device_id"] = event.device_id
    if event.user_properties:
        item["user_properties"] = event.user_properties
    if event.fields:
        item.update(event.fields)
    return item


def coalesce(events: Sequence[Event]) -> tuple[list[dict[str, Any]], list[list[int]]]:
    """Merge consecutive updates of the same user and device into one identification.

    Returns the identifications and, for each, the indexes of the events merged into it.
    """
    items: list[dict[str, Any]] = []
    groups: list[list[int]] = []
    previous: tuple[str | None, str | None] | None = None
    for index, event in enumerate(events):
        ids = (event.user_id, event.device_id)
        if ids == previous and items and not event.fields:
            merged = merge_operations(
                items[-1].get("user_properties", {}), event.user_properties or {}
            )
            items[-1]["user_properties"] = merged
            groups[-1].append(index)
            continue
        item = identification(event)
        item["user_properties"] = {op: dict(p) for op, p in (event.user_properties or {}).items()}
        items.append(item)
        groups.append([index])
        previous = ids
    return items, groups


def encode_identify(api_key: str, items: Sequence[Mapping[str, Any]]) -> bytes:
    """The form-encoded body of an Identify request."""
    return urlencode(
        {"api_key": api_key, "identification": orjson.dumps(list(items)).decode()}
    ).encode()

"""Validation and normalisation: arbitrary caller input in, an :class:`Event` in wire form out.

Runs on the caller's thread, so the common case is a short straight line: no regex, no I/O, no
lock, nothing that releases the GIL, and no walk over the field table unless extra fields are given.
What can be fixed is fixed (strings capped at 1024 characters, ints as ids, times converted);
what cannot raises :class:`InvalidEventError` naming the field, the problem and the fix — never a
property value, which may be personal data.

The conversion rule for property values (:func:`json_safe`), applied recursively:

- ``None``, ``bool``, ``int`` and ``str`` are kept; strings are capped at 1024 characters and lone
  surrogates (not valid UTF-8) become U+FFFD; integers outside the signed 64-bit range become
  their decimal string (no JSON reader, Amplitude's included, holds them exactly).
- ``float``: kept if finite; NaN and ±infinity are invalid (JSON has no such numbers).
- mappings become dicts (keys: ``str()`` of non-string keys, capped like values; if two keys
  become equal, the last wins); lists, tuples and other sequences become lists; sets become
  lists, sorted for determinism. Nesting deeper than 40 levels is invalid (Amplitude's limit).
- ``datetime``, ``date`` and ``time`` become ISO 8601 strings; ``UUID`` its string; an ``Enum``
  member its value (converted in turn); ``Decimal`` an int when integral, else a float (NaN and
  infinities invalid); other numbers (``Fraction``, numpy scalars) an int or a float.
- ``bytes``, ``bytearray`` and ``memoryview`` are invalid: decode them first.
- anything else becomes ``str(value)``, capped at 1024 characters.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import enum
import math
import numbers
import time as _time
import uuid
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from decimal import Decimal
from typing import Any, TypeAlias

from otel_amplitude._event import Event
from otel_amplitude._fields import EXTRA_FIELDS, FIELD_BY_NAME, FieldKind, FieldSpec
from otel_amplitude._insert_id import new_insert_id
from otel_amplitude.exceptions import InvalidEventError

__all__ = [
    "DEFAULT_MIN_ID_LENGTH",
    "INVALID_IDS",
    "MAX_DEPTH",
    "MAX_PROPERTY_KEYS",
    "MAX_STRING_LENGTH",
    "USER_PROPERTY_OPERATIONS",
    "JSONValue",
    "json_safe",
    "kept_as_is",
    "make_event",
    "new_event",
]

JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"

#: Amplitude's limit on every string: ids, event type, property names and values.
MAX_STRING_LENGTH = 1024
#: A properties object with more keys is dropped whole by Amplitude.
MAX_PROPERTY_KEYS = 1024
#: Amplitude's limit on the nesting of properties.
MAX_DEPTH = 40
#: The minimum length of a user_id / device_id unless the request's ``options.min_id_length`` says.
DEFAULT_MIN_ID_LENGTH = 5
#: Id values Amplitude rejects with a 400, compared case-insensitively.
INVALID_IDS: frozenset[str] = frozenset(
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
#: The keys of ``user_properties`` that are operations, each taking a mapping of properties.
USER_PROPERTY_OPERATIONS: frozenset[str] = frozenset(
    {
        "$set",
        "$setOnce",
        "$add",
        "$append",
        "$prepend",
        "$unset",
        "$preInsert",
        "$postInsert",
        "$remove",
    }
)

#: The lengths of the ids in INVALID_IDS: an id of another length is not one of them, whatever
#: its case, so most ids are never lower-cased.
_INVALID_ID_LENGTHS = frozenset(len(invalid) for invalid in INVALID_IDS)
_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_ONE_MS = _dt.timedelta(milliseconds=1)
_MS_PER_DAY = 86_400_000
_isfinite = math.isfinite
_time_ns = _time.time_ns
_new_object = object.__new__
_monotonic = _time.monotonic

_NOT_FINITE = "is NaN or infinite, which JSON cannot carry; send a finite number or leave it out"
_TIME_TYPES = (
    "must be ms since the epoch (int), seconds since the epoch (float, like time.time()), "
    "a datetime, a date or an ISO 8601 string"
)


def make_event(
    event_type: object,
    *,
    user_id: object = None,
    device_id: object = None,
    time: object = None,
    insert_id: object = None,
    event_properties: Mapping[str, object] | None = None,
    user_properties: Mapping[str, object] | None = None,
    fields: Mapping[str, object] | None = None,
    min_id_length: int | None = None,
    created: float | None = None,
    owned: bool = False,
) -> Event:
    """Validate and normalise one event; raise :class:`InvalidEventError` if it cannot be sent.

    ``time``: None (now), int ms since the epoch, float seconds since the epoch (rounded to the
    nearest ms), a datetime (naive = UTC), a date (midnight UTC) or an ISO 8601 string.
    Ids may be ints (sent as their decimal string). Properties are copied, converted by
    :func:`json_safe`; an empty properties mapping is not sent. ``fields`` takes the other
    top-level fields by Python or wire name (see :mod:`otel_amplitude._fields`); a None value
    there means "not set". ``created`` defaults to ``time.monotonic()``.

    ``owned``: ``event_properties`` is a dict of at most 1,024 entries that :func:`json_safe`
    would keep as it is, made for this event alone; the event takes it instead of a copy (the
    mappers' fast path).
    """
    return new_event(
        event_type,
        user_id,
        device_id,
        time,
        insert_id,
        event_properties,
        user_properties,
        fields,
        min_id_length,
        created,
        owned,
    )


def new_event(
    event_type: object,
    user_id: object,
    device_id: object,
    time: object,
    insert_id: object,
    event_properties: Mapping[str, object] | None,
    user_properties: Mapping[str, object] | None,
    fields: Mapping[str, object] | None,
    min_id_length: int | None,
    created: float | None,
    owned: bool,
    /,
) -> Event:
    """:func:`make_event`, its arguments by position: the entry of ``Client.track``.

    A call by position of a function without keyword-only parameters is the one CPython
    specialises; keywords cost about 50 ns more a call, on the caller's thread. The checks
    run in the order of the arguments, so the first bad one is the one reported. The common
    case of each check is inline, and only an unusual value (a long or non-ASCII string, an
    int id, a time that is not int ms, properties that need converting) takes the slow path,
    which converts or raises as before.
    """
    if type(event_type) is not str:
        event_type = _str_of_str("event_type", event_type)
    if not event_type or event_type.isspace():
        raise InvalidEventError("event_type", "is empty; name the event, e.g. 'Signed Up'")
    if len(event_type) > MAX_STRING_LENGTH or not event_type.isascii():
        event_type = _clean_str(event_type)

    if user_id is None and device_id is None:
        raise InvalidEventError("user_id", "an event needs a user_id or a device_id")
    min_length = DEFAULT_MIN_ID_LENGTH if min_id_length is None else max(min_id_length, 1)
    # An id passes as it is when it is an ASCII str of an allowed length and of no length an
    # invalid id has; anything else goes through _id, which converts it or says what is wrong.
    if user_id is not None and not (
        type(user_id) is str
        and min_length <= (length := len(user_id)) <= MAX_STRING_LENGTH
        and length not in _INVALID_ID_LENGTHS
        and user_id.isascii()
    ):
        user_id = _id("user_id", user_id, min_length)
    if device_id is not None and not (
        type(device_id) is str
        and min_length <= (length := len(device_id)) <= MAX_STRING_LENGTH
        and length not in _INVALID_ID_LENGTHS
        and device_id.isascii()
    ):
        device_id = _id("device_id", device_id, min_length)

    if time is None:
        ms = _time_ns() // 1_000_000
    elif type(time) is int and 0 <= time <= _I64_MAX:
        ms = time
    else:
        ms = _time_ms(time)

    if insert_id is None:
        insert_id = new_insert_id()
    elif (
        type(insert_id) is not str
        or not 0 < len(insert_id) <= MAX_STRING_LENGTH
        or not insert_id.isascii()
    ):
        insert_id = _insert_id(insert_id)

    if event_properties is not None:
        if owned:
            event_properties = event_properties or None
        elif type(event_properties) is dict and kept_as_is(event_properties):
            event_properties = dict(event_properties) or None  # one C-level copy
        else:
            event_properties = _properties("event_properties", event_properties)

    # Event's slots filled here rather than by calling the class, which costs ~90 ns more
    # (CPython 3.11 does not specialise a call of a class with an __init__).
    event = _new_object(Event)
    event.event_type = event_type
    event.user_id = user_id
    event.device_id = device_id
    event.time = ms
    event.insert_id = insert_id
    event.event_properties = event_properties  # type: ignore[assignment]
    event.user_properties = None if user_properties is None else _user_properties(user_properties)
    event.fields = None if not fields else _extra_fields(fields)
    event.created = _monotonic() if created is None else created
    event.destination = ""
    event.attempts = 0
    event.epoch = 0
    event.spool_id = 0
    return event


def json_safe(value: object, *, field: str = "value") -> JSONValue:
    """``value`` converted by the rule in this module's docstring; ``field`` names it in errors.

    The result shares nothing mutable with ``value``: the caller may change theirs afterwards.
    """
    return _convert(value, field, None, 0)


def kept_as_is(properties: dict[str, Any]) -> bool:
    """Whether :func:`make_event` would keep ``properties`` as they are, only copied.

    True when there are at most 1,024 of them, every key is an ASCII string of at most 1,024
    characters and every value one too, or an int64, a finite float, a bool or None. A mapper
    that made ``properties`` for one event then passes ``owned=True`` and saves the copy.
    """
    if len(properties) > MAX_PROPERTY_KEYS:
        return False
    for key, value in properties.items():
        if type(key) is not str or len(key) > MAX_STRING_LENGTH or not key.isascii():
            return False
        kind = type(value)
        if kind is str:
            if len(value) > MAX_STRING_LENGTH or not value.isascii():
                return False
        elif kind is int:
            if not _I64_MIN <= value <= _I64_MAX:
                return False
        elif kind is float:
            if not _isfinite(value):
                return False
        elif value is not None and kind is not bool:
            return False
    return True


# -- strings and ids -----------------------------------------------------------------------------


def _clean_str(text: str) -> str:
    """``text`` capped at 1024 characters, with lone surrogates (invalid in UTF-8) replaced."""
    if len(text) > MAX_STRING_LENGTH:
        text = text[:MAX_STRING_LENGTH]
    if not text.isascii() and not _is_utf8(text):
        # A UTF-16 round trip joins surrogate pairs and turns each lone one into U+FFFD.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _str_of_str(field: str, value: object) -> str:
    """A plain ``str`` from a ``str`` subclass; anything else is invalid."""
    if isinstance(value, str):
        return str.__str__(value)
    raise InvalidEventError(field, f"must be a string, got {type(value).__name__}")


def _id(field: str, value: object, min_length: int) -> str:
    if type(value) is not str:
        if isinstance(value, str):
            value = str.__str__(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            value = str(int.__int__(value))
        else:
            raise InvalidEventError(
                field, f"must be a string (or an int), got {type(value).__name__}"
            )
    length = len(value)
    if length in _INVALID_ID_LENGTHS and value.lower() in INVALID_IDS:
        raise InvalidEventError(
            field, f"is {value!r}, which Amplitude rejects as an invalid id; omit it instead"
        )
    if length == 0:
        raise InvalidEventError(field, "is empty; omit it instead")
    if length < min_length:
        raise InvalidEventError(
            field,
            f"is {length} characters long, shorter than the minimum of {min_length} "
            "(Amplitude drops shorter ids); use a longer id, or set min_id_length if your "
            "project accepts shorter ones",
        )
    if length > MAX_STRING_LENGTH:
        raise InvalidEventError(
            field,
            f"is longer than {MAX_STRING_LENGTH} characters, Amplitude's limit; truncating it "
            "would change whose event it is, so send a shorter id (e.g. a hash of this one)",
        )
    if not value.isascii() and not _is_utf8(value):
        raise InvalidEventError(
            field, "contains a lone surrogate, which is not valid UTF-8; pass a decoded string"
        )
    return value


def _insert_id(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidEventError("insert_id", f"must be a string, got {type(value).__name__}")
    value = str.__str__(value)
    if not value:
        raise InvalidEventError("insert_id", "is empty; omit it to have one generated")
    if len(value) > MAX_STRING_LENGTH:
        raise InvalidEventError(
            "insert_id",
            f"is longer than {MAX_STRING_LENGTH} characters, Amplitude's limit; truncating it "
            "could merge distinct events, so send a shorter one (e.g. a hash of this one)",
        )
    if not value.isascii() and not _is_utf8(value):
        raise InvalidEventError(
            "insert_id",
            "contains a lone surrogate, which is not valid UTF-8; pass a decoded string",
        )
    return value


# -- time ----------------------------------------------------------------------------------------


def _time_ms(value: object) -> int:
    """``value`` (anything but None) as integer ms since the epoch."""
    if isinstance(value, bool):
        raise InvalidEventError("time", f"{_TIME_TYPES}; got bool")
    if isinstance(value, int):
        ms = int.__int__(value)
    elif isinstance(value, float):
        if not _isfinite(value):
            raise InvalidEventError("time", "is NaN or infinite; pass a real time, or None for now")
        ms = round(value * 1000)
    elif isinstance(value, _dt.datetime):
        ms = _datetime_ms(value)
    elif isinstance(value, _dt.date):
        ms = (value.toordinal() - _EPOCH_ORDINAL) * _MS_PER_DAY
    elif isinstance(value, str):
        ms = _datetime_ms(_parse_iso(value))
    else:
        raise InvalidEventError("time", f"{_TIME_TYPES}; got {type(value).__name__}")
    if ms < 0:
        raise InvalidEventError(
            "time", "is before 1970-01-01, which Amplitude cannot store; pass a later time"
        )
    if ms > _I64_MAX:
        raise InvalidEventError(
            "time", "is beyond the 64-bit range of ms since the epoch; pass ms, not µs or ns"
        )
    return ms


def _datetime_ms(value: _dt.datetime) -> int:
    """Exact ms since the epoch, rounded down; a naive datetime is taken as UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return (value - _EPOCH) // _ONE_MS


def _parse_iso(text: str) -> _dt.datetime:
    text = text.strip()
    if text[-1:] in ("Z", "z"):  # datetime.fromisoformat accepts "Z" only from Python 3.11
        text = text[:-1] + "+00:00"
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidEventError(
            "time",
            "is a string but not an ISO 8601 date or time (e.g. '2024-05-01T12:00:00Z'); "
            "pass ms since the epoch, a datetime or an ISO 8601 string",
        ) from None


# -- properties ----------------------------------------------------------------------------------


def _properties(field: str, value: object) -> dict[str, JSONValue] | None:
    if type(value) is not dict and not isinstance(value, Mapping):
        raise InvalidEventError(
            field, f"must be a mapping of property names to values, got {type(value).__name__}"
        )
    if len(value) > MAX_PROPERTY_KEYS:
        raise InvalidEventError(
            field,
            f"has {len(value)} properties; Amplitude drops a properties object with more than "
            f"{MAX_PROPERTY_KEYS}, so send fewer",
        )
    return _convert_mapping(value, field, 1) or None


def _user_properties(value: object) -> dict[str, JSONValue] | None:
    converted = _properties("user_properties", value)
    if converted is not None and not USER_PROPERTY_OPERATIONS.isdisjoint(converted):
        for operation in USER_PROPERTY_OPERATIONS.intersection(converted):
            if type(converted[operation]) is not dict:
                raise InvalidEventError(
                    f"user_properties.{operation}",
                    "is a user property operation and takes a mapping of property names to "
                    "values, e.g. {'$set': {'plan': 'pro'}}",
                )
    return converted


def _path(parent: str, key: str | int | None) -> str:
    if key is None:
        return parent
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key if len(key) <= 64 else key[:64] + '…'}"


def _convert_mapping(value: Mapping[Any, Any], path: str, depth: int) -> dict[str, JSONValue]:
    """A mapping at nesting level ``depth`` (a properties object is level 1) as a new dict."""
    if depth > MAX_DEPTH:
        raise InvalidEventError(path, f"nests deeper than {MAX_DEPTH} levels; flatten it")
    out: dict[str, JSONValue] = {}
    for raw_key, item in value.items():
        key = raw_key
        if type(key) is not str or len(key) > MAX_STRING_LENGTH or not key.isascii():
            key = _key(key, path)
        # The common values inline; everything else through _convert.
        kind = type(item)
        if kind is str:
            out[key] = (
                item if len(item) <= MAX_STRING_LENGTH and item.isascii() else _clean_str(item)
            )
        elif kind is int:
            out[key] = item if _I64_MIN <= item <= _I64_MAX else str(item)
        elif item is None or kind is bool:
            out[key] = item
        else:
            out[key] = _convert(item, path, key, depth)
    return out


def _key(key: object, path: str) -> str:
    if isinstance(key, str):
        return _clean_str(str.__str__(key))
    try:
        text = str(key)
    except Exception as exc:  # noqa: BLE001 - any failure of foreign code is a bad key
        raise InvalidEventError(
            path,
            f"has a {type(key).__name__} key whose str() raised {type(exc).__name__}; "
            "use string keys",
        ) from None
    return _clean_str(text)


def _convert_sequence(value: Sequence[Any], path: str, depth: int) -> list[JSONValue]:
    if depth > MAX_DEPTH:
        raise InvalidEventError(path, f"nests deeper than {MAX_DEPTH} levels; flatten it")
    return [_convert(item, path, index, depth) for index, item in enumerate(value)]


def _convert(value: Any, parent: str, key: str | int | None, depth: int) -> JSONValue:
    """``value``, held at nesting level ``depth`` under ``parent``/``key``, made JSON-safe."""
    kind = type(value)
    if kind is str:
        return value if len(value) <= MAX_STRING_LENGTH and value.isascii() else _clean_str(value)
    if kind is int:
        return value if _I64_MIN <= value <= _I64_MAX else str(value)
    if value is None or kind is bool:
        return value  # type: ignore[no-any-return]
    if kind is float:
        if _isfinite(value):
            return value  # type: ignore[no-any-return]
        raise InvalidEventError(_path(parent, key), _NOT_FINITE)
    if kind is dict:
        return _convert_mapping(value, _path(parent, key), depth + 1)
    if kind is list or kind is tuple:
        return _convert_sequence(value, _path(parent, key), depth + 1)
    try:
        return _convert_other(value, parent, key, depth)
    except InvalidEventError:
        raise
    except Exception as exc:  # noqa: BLE001 - foreign code failing must not escape as such
        raise InvalidEventError(
            _path(parent, key),
            f"is a {type(value).__name__} that could not be converted ({type(exc).__name__}); "
            "convert it to str, int, float, bool, a list or a dict first",
        ) from None


def _convert_other(value: object, parent: str, key: str | int | None, depth: int) -> JSONValue:
    """The slow path of :func:`_convert`: subclasses, containers of other types, other types."""
    if isinstance(value, enum.Enum):
        return _convert(value.value, parent, key, depth + 1)
    if isinstance(value, str):
        return _clean_str(str.__str__(value))
    if isinstance(value, int):  # an int subclass (bool cannot be subclassed)
        return _convert(int.__int__(value), parent, key, depth)
    if isinstance(value, float):
        return _convert(float.__float__(value), parent, key, depth)
    if isinstance(value, Mapping):
        return _convert_mapping(value, _path(parent, key), depth + 1)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidEventError(
            _path(parent, key), "is bytes; decode it first (e.g. value.decode('utf-8'))"
        )
    if isinstance(value, Sequence):
        return _convert_sequence(value, _path(parent, key), depth + 1)
    if isinstance(value, AbstractSet):
        items = _convert_sequence(list(value), _path(parent, key), depth + 1)
        try:
            items.sort()
        except TypeError:  # mixed types: any total order will do, as long as it is the same
            items.sort(key=_sort_key)
        return items
    if isinstance(value, (_dt.date, _dt.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidEventError(_path(parent, key), _NOT_FINITE)
        if value == value.to_integral_value():
            # Past 19 digits it cannot be an int64: its string, without building a huge int.
            return _convert(int(value), parent, key, depth) if value.adjusted() < 19 else str(value)
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, numbers.Integral):
        return _convert(int(value), parent, key, depth)
    if isinstance(value, numbers.Real):
        return _convert(float(value), parent, key, depth)
    return _clean_str(str(value))


def _sort_key(value: JSONValue) -> tuple[str, str]:
    return (type(value).__name__, repr(value))


# -- other top-level fields ----------------------------------------------------------------------

_EXTRA_BY_NAME: dict[str, FieldSpec] = {
    name: spec for spec in EXTRA_FIELDS for name in (spec.name, spec.wire)
}
_NAMES_BY_LOWER: dict[str, str] = {name.lower(): name for name in FIELD_BY_NAME}


_STRING = FieldKind.STRING


def _extra_fields(fields: Mapping[str, object]) -> dict[str, JSONValue] | None:
    if not isinstance(fields, Mapping):
        raise InvalidEventError(
            "fields", f"must be a mapping of field names to values, got {type(fields).__name__}"
        )
    out: dict[str, JSONValue] = {}
    for name, value in fields.items():
        spec = _EXTRA_BY_NAME.get(name)
        if spec is None:
            raise _not_an_extra_field(name)
        if value is None:
            continue
        if spec.wire in out:
            raise InvalidEventError(
                name, f"is given twice, as {spec.name!r} and as {spec.wire!r}; pass one"
            )
        if type(value) is str and spec.kind is _STRING:  # the common case, inline
            out[spec.wire] = (
                value if len(value) <= MAX_STRING_LENGTH and value.isascii() else _clean_str(value)
            )
            continue
        converted = _CHECK_BY_KIND[spec.kind](spec, name, value)
        if converted is not None:
            out[spec.wire] = converted
    return out or None


def _not_an_extra_field(name: object) -> InvalidEventError:
    text = name if isinstance(name, str) else str(name)
    spec = FIELD_BY_NAME.get(text)
    if spec is not None:
        return InvalidEventError(
            text, f"is an argument of make_event, not an extra field; pass {spec.name}=..."
        )
    reason = "is not an Amplitude event field; put it in event_properties"
    close = difflib.get_close_matches(text.lower(), _NAMES_BY_LOWER, n=1, cutoff=0.8)
    if close:
        reason += f" (or did you mean {_NAMES_BY_LOWER[close[0]]!r}?)"
    return InvalidEventError(text, reason)


def _check_string(_spec: FieldSpec, name: str, value: object) -> JSONValue:
    if isinstance(value, str):
        return _clean_str(value if type(value) is str else str.__str__(value))
    raise InvalidEventError(name, f"must be a string, got {type(value).__name__}")


def _check_integer(_spec: FieldSpec, name: str, value: object) -> JSONValue:
    number: int | None = None
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        number = int.__int__(value)
    elif isinstance(value, float):
        if _isfinite(value) and value.is_integer():
            number = int(value)
    elif isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value() and value.adjusted() < 19:
            number = int(value)
    elif isinstance(value, numbers.Integral):
        number = int(value)
    if number is None:
        raise InvalidEventError(name, f"must be an integer, got {type(value).__name__}")
    if not _I64_MIN <= number <= _I64_MAX:
        raise InvalidEventError(name, "is outside the signed 64-bit integer range")
    return number


def _check_float(_spec: FieldSpec, name: str, value: object) -> JSONValue:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, Decimal)):
        raise InvalidEventError(name, f"must be a number, got {type(value).__name__}")
    if isinstance(value, int):
        if not _I64_MIN <= value <= _I64_MAX:
            raise InvalidEventError(name, "is outside the signed 64-bit integer range")
        return int.__int__(value)
    try:
        number = float(value)
    except (ArithmeticError, ValueError):  # a signalling NaN, a Fraction too large for a float
        number = math.nan
    if not _isfinite(number):
        raise InvalidEventError(name, _NOT_FINITE)
    return number


def _check_boolean(_spec: FieldSpec, name: str, value: object) -> JSONValue:
    if isinstance(value, bool):
        return value
    raise InvalidEventError(name, f"must be True or False, got {type(value).__name__}")


def _check_object(spec: FieldSpec, name: str, value: object) -> JSONValue:
    if not isinstance(value, Mapping):
        raise InvalidEventError(name, f"must be a mapping, got {type(value).__name__}")
    if spec.max_keys is not None and len(value) > spec.max_keys:
        raise InvalidEventError(
            name,
            f"has {len(value)} entries; Amplitude tracks at most {spec.max_keys}, so send fewer",
        )
    return _convert_mapping(value, name, 1) or None


_CHECK_BY_KIND: dict[FieldKind, Callable[[FieldSpec, str, object], JSONValue]] = {
    FieldKind.STRING: _check_string,
    FieldKind.INTEGER: _check_integer,
    FieldKind.FLOAT: _check_float,
    FieldKind.BOOLEAN: _check_boolean,
    FieldKind.OBJECT: _check_object,
}

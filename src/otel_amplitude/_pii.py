"""Personal data in events: detection and scrubbing, as pure functions over an event's values.

Runs on the dispatcher thread (through the client's screen), so the caller pays nothing. What
counts as personal, in a property value (``event_properties`` and ``user_properties``, at any
depth, in lists too) or a property name:

- an email address: ``local@domain.tld`` (the last label holds a letter);
- a phone number: ``+`` and 7 to 15 digits, grouped or not (E.164 and international
  formats), or 7 to 15 digits in at least three groups split by spaces, dots, dashes or a
  bracketed area code (``(555) 123-4567``, ``020 7946 0958``, ``06 12 34 56 78``). Dates
  (``2024-01-15``, ``15.01.2024``) are not phones. A plain run of digits is not a phone
  number: it reads as an id, a count or a timestamp;
- an IPv4 or IPv6 address;
- a payment card number: 13 to 19 digits that pass the Luhn check, grouped by single spaces or
  dashes, or plain when the first digit is 2 to 6 (the card networks' ranges). Integers follow
  the plain rule, so a millisecond timestamp (``1700000000000``, first digit 1) never matches;
- any value under a name listed in ``AMPLITUDE_PII_KEYS`` (case-insensitive), whatever it is.

A match anywhere in a string replaces the whole value, never just the match: a partly
recognised value must not leak its other part. Fail-closed: a value of a type the scrubber
cannot inspect is replaced too.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable
from typing import Any, Final, Literal

import orjson

from ._event import Event

__all__ = [
    "HASH_PREFIX",
    "REDACTED",
    "PiiMode",
    "Scrubber",
    "is_card_number",
    "looks_like_email",
    "looks_personal",
    "luhn_valid",
]

PiiMode = Literal["off", "redact", "hash"]

#: What a personal value becomes in ``redact`` mode.
REDACTED: Final = "[redacted]"
#: A hashed value is this prefix and 16 hex digits of HMAC-SHA256 under AMPLITUDE_PII_SALT.
HASH_PREFIX: Final = "hmac:"

_HASHED = re.compile(r"hmac:[0-9a-f]{16}")
_EMAIL = re.compile(r"[^\s@]@(?:[^\s@.]+\.)+[^\s@.]*[A-Za-z][^\s@.]*")
_IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
    r"(?!\w|\.\d)",
    re.ASCII,
)
_IPV6_CANDIDATE = re.compile(r"(?<![\w:.])[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?![\w:])")
_INTERNATIONAL_PHONE = re.compile(
    r"(?<![\w+])\+\d(?:[\s().-]{0,2}\d){6,14}(?![\w]|[\s().-]{0,2}\d)", re.ASCII
)
_NATIONAL_PHONE = re.compile(
    r"(?<![\w+.-])(?:\(\d{1,4}\)[\s.-]?|\d{1,4}[\s.-])(?:\d{2,4}[\s.-]){1,4}\d{2,4}"
    r"(?![\w:]|[\s.-]\d)",
    re.ASCII,
)
# Not after a hyphen either: the tail of a UUID ("...-9847-662797224586") is 16 digits in two
# groups, and one in ten such tails passes the Luhn check.
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w]|[ -]?\d)", re.ASCII)
_GROUP = re.compile(r"\d+", re.ASCII)
_DIGITS = b"0123456789"
_CARD_FIRST_DIGITS = frozenset("23456")
_PLAIN, _LISTED, _PERSONAL = 0, 1, 2
_MAX_CACHED_NAMES = 10_000
_MAX_CACHED_VALUES = 10_000
_LONGEST_CACHED_VALUE = 64
_MIN_CARD = 10**12  # 13 digits
_MAX_CARD = 10**19  # 19 digits


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of ASCII digits holds."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def is_card_number(value: int) -> bool:
    """An integer of 13 to 19 digits that starts with 2 to 6 and passes the Luhn check."""
    if not _MIN_CARD <= value < _MAX_CARD:
        return False
    digits = str(value)
    return digits[0] in _CARD_FIRST_DIGITS and luhn_valid(digits)


def looks_like_email(text: str) -> bool:
    """``text`` holds an email address."""
    return "@" in text and _EMAIL.search(text) is not None


def looks_personal(text: str) -> bool:
    """``text`` holds an email address, a phone number, an IP address or a card number.

    Cheap checks first, so most property values never reach a regex: letters only; no ``@``;
    fewer than two colons; then fewer than four digits (counted by a C-level translate).
    Only strings with four digits or more are searched for an IPv4 address, and with seven or
    more for phone and card numbers.
    """
    if text.isalpha():
        return False
    if "@" in text and _EMAIL.search(text) is not None:
        return True
    if ":" in text and text.count(":") >= 2 and _has_ipv6(text):
        return True
    encoded = text.encode("utf-8", "surrogatepass")
    digits = len(encoded) - len(encoded.translate(None, _DIGITS))
    if digits < 4:  # the fewest an IPv4 address has
        return False
    if "." in text and text.count(".") >= 3 and _IPV4.search(text) is not None:
        return True
    return digits >= 7 and (_has_phone(text) or _has_card(text))


def _has_ipv6(text: str) -> bool:
    for match in _IPV6_CANDIDATE.finditer(text):
        candidate = match.group().rstrip(".")
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        return True
    return False


def _has_phone(text: str) -> bool:
    if "+" in text and _INTERNATIONAL_PHONE.search(text) is not None:
        return True
    for match in _NATIONAL_PHONE.finditer(text):
        groups = [len(group) for group in _GROUP.findall(match.group())]
        if 7 <= sum(groups) <= 15 and not _date_shaped(groups):
            return True
    return False


def _date_shaped(groups: list[int]) -> bool:
    """Three groups of 4-2-2 or 2-2-4 digits (or 1-digit days and months): a date."""
    if len(groups) != 3:
        return False
    first, middle, last = groups
    return (first == 4 and middle <= 2 and last <= 2) or (first <= 2 and middle <= 2 and last == 4)


def _has_card(text: str) -> bool:
    for match in _CARD.finditer(text):
        found = match.group()
        digits = found.replace(" ", "").replace("-", "")
        grouped = len(digits) != len(found)
        if (grouped or digits[0] in _CARD_FIRST_DIGITS) and luhn_valid(digits):
            return True
    return False


class Scrubber:
    """Applies the PII policy to one event in place: IP address, user id, property values.

    ``mode`` ``off`` leaves properties alone; ``redact`` replaces a personal value with
    ``"[redacted]"``; ``hash`` with ``"hmac:"`` and 16 hex digits of HMAC-SHA256 under
    ``salt``, so equal values stay equal (joinable) without being readable. ``keys`` are
    property names whose values are always personal. The salt is never shown.
    """

    __slots__ = ("_keys", "_mode", "_names", "_plain", "_plain_names", "_salt", "_send_ip")

    def __init__(
        self,
        mode: PiiMode,
        *,
        keys: Iterable[str] = (),
        salt: str | None = None,
        send_ip: bool = False,
    ) -> None:
        if mode == "hash" and not salt:
            raise ValueError("PII mode 'hash' needs a salt (AMPLITUDE_PII_SALT)")
        self._mode = mode
        self._keys = frozenset(key.casefold() for key in keys)
        self._salt = salt.encode("utf-8") if salt else b""
        self._send_ip = send_ip
        self._names: dict[str, int] = {}  # property name -> _PLAIN, _LISTED or _PERSONAL
        self._plain_names: set[str] = set()  # the names judged _PLAIN, for a test in C
        self._plain: dict[str, None] = {}  # short values seen not to be personal (they repeat)

    @property
    def mode(self) -> PiiMode:
        return self._mode

    def scrub(self, event: Event) -> str | None:
        """Rewrite ``event`` in place; return a drop reason when it must not be sent at all."""
        fields = event.fields
        if fields and not self._send_ip and "ip" in fields:
            del fields["ip"]
        if self._mode == "off":
            return None
        user_id = event.user_id
        if user_id is not None and "@" in user_id and _EMAIL.search(user_id) is not None:
            if self._mode == "redact":
                return "pii_user_id"
            event.user_id = self.hash_text(user_id)
        if event.event_properties:
            self._scrub_dict(event.event_properties)
        if event.user_properties:
            self._scrub_dict(event.user_properties)
        return None

    def user_id_alias(self, user_id: str) -> str | None:
        """What :meth:`scrub` makes of ``user_id`` when it rewrites it (hash mode), else None."""
        if self._mode == "hash" and looks_like_email(user_id):
            return self.hash_text(user_id)
        return None

    def hash_text(self, text: str) -> str:
        """``"hmac:"`` and the first 16 hex digits of HMAC-SHA256(salt, text)."""
        digest = hmac.new(self._salt, text.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return HASH_PREFIX + digest.hexdigest()[:16]

    def scrub_value(self, value: Any) -> Any:
        """``value`` with every personal part replaced (dicts and lists are changed in place)."""
        kind = type(value)
        if kind is str:
            if value not in self._plain and self._personal_text(value):
                return self._replace(value)
            return value
        if kind is int:
            return self._replace(value) if is_card_number(value) else value
        if value is None or kind is bool or kind is float:
            return value
        if kind is dict:
            self._scrub_dict(value)
            return value
        if kind is list:
            for index, item in enumerate(value):
                new = self.scrub_value(item)
                if new is not item:
                    value[index] = new
            return value
        return self._replace(value)  # nothing else is made by validation: fail closed

    def _scrub_dict(self, properties: dict[str, Any]) -> None:
        # The common case costs a name lookup, a type test and a value lookup per property:
        # names and short values seen to be plain are cached, and an int is looked at only
        # when it has the 13 digits of a card number.
        plain = self._plain
        if self._plain_names.issuperset(properties):
            # Every name is plain: nothing to do when every value is a number, a bool, None or
            # a string already seen to be plain (most events, after the first few).
            for value in properties.values():
                kind = type(value)
                if kind is str:
                    if value not in plain:
                        break
                elif kind is int:
                    if value >= _MIN_CARD:
                        break
                elif kind is not float and kind is not bool and value is not None:
                    break
            else:
                return
        names = self._names
        renamed: list[str] | None = None
        for key, value in properties.items():
            verdict = names.get(key)
            if verdict != _PLAIN:
                if verdict is None:
                    verdict = self._judge_name(key)
                if verdict == _LISTED:
                    properties[key] = self._replace(value)
                    continue
                if verdict == _PERSONAL:
                    if renamed is None:
                        renamed = []
                    renamed.append(key)
            kind = type(value)
            if kind is str:
                if value not in plain and self._personal_text(value):
                    properties[key] = self._replace(value)
            elif kind is int:
                if value >= _MIN_CARD and is_card_number(value):
                    properties[key] = self._replace(value)
            elif kind is not float and kind is not bool and value is not None:
                new = self.scrub_value(value)
                if new is not value:
                    properties[key] = new
        if renamed is not None:
            for key in renamed:
                properties[self._replace(key)] = properties.pop(key)

    def _personal_text(self, value: str) -> bool:
        """:func:`looks_personal`, remembering short values that are not (never personal ones)."""
        if looks_personal(value) and not _HASHED.fullmatch(value):
            return True
        if len(value) <= _LONGEST_CACHED_VALUE:
            plain = self._plain
            if len(plain) >= _MAX_CACHED_VALUES:
                plain.clear()
            plain[value] = None
        return False

    def _judge_name(self, key: str) -> int:
        """Whether a property name is listed, personal itself, or plain (cached: names repeat)."""
        if type(key) is not str:
            return _PERSONAL  # cannot be inspected: replaced
        if self._keys and key.casefold() in self._keys:
            verdict = _LISTED
        elif looks_personal(key) and not _HASHED.fullmatch(key):
            verdict = _PERSONAL
        else:
            verdict = _PLAIN
        if verdict != _PERSONAL:  # never keep personal data in the cache
            if len(self._names) >= _MAX_CACHED_NAMES:
                self._names.clear()
                self._plain_names.clear()
            self._names[key] = verdict
            if verdict == _PLAIN:
                self._plain_names.add(key)
        return verdict

    def _replace(self, value: Any) -> str:
        if self._mode != "hash":
            return REDACTED
        if type(value) is str:
            return self.hash_text(value)
        try:
            text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")
        except (TypeError, orjson.JSONEncodeError):
            text = repr(type(value))  # cannot be read: its hash must not depend on it
        return self.hash_text(text)

    def __repr__(self) -> str:
        return f"Scrubber(mode={self._mode!r}, keys={len(self._keys)}, send_ip={self._send_ip})"

"""PII detection and scrubbing: what is caught, what is left alone, and how it is replaced."""

from __future__ import annotations

import copy
import datetime
import ipaddress
import re
import string
from typing import Any
from uuid import UUID

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from otel_amplitude._pii import (
    REDACTED,
    Scrubber,
    is_card_number,
    looks_like_email,
    looks_personal,
    luhn_valid,
)
from otel_amplitude._validate import make_event

SALT = "a-test-salt-of-32-characters-xx"
HASHED = re.compile(r"hmac:[0-9a-f]{16}")

# --- generators ---------------------------------------------------------------------------------


def luhn_complete(body: str) -> str:
    """``body`` plus the check digit that makes it pass Luhn."""
    for check in string.digits:
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable")


@st.composite
def card_numbers(draw: st.DrawFn, *, first: str = "") -> str:
    length = draw(st.integers(13, 19))
    lead = first or draw(st.sampled_from("23456"))
    body = lead + draw(st.text(string.digits, min_size=length - 2, max_size=length - 2))
    return luhn_complete(body)


@st.composite
def grouped(draw: st.DrawFn, digits: str) -> str:
    """``digits`` split into groups of 3 to 6 by one space or one dash each."""
    separator = draw(st.sampled_from([" ", "-"]))
    parts: list[str] = []
    rest = digits
    while rest:
        size = draw(st.integers(3, 6))
        parts.append(rest[:size])
        rest = rest[size:]
    return separator.join(parts)


@st.composite
def formatted_cards(draw: st.DrawFn) -> str:
    digits = draw(card_numbers(first=draw(st.sampled_from("0123456789"))))
    if draw(st.booleans()):
        return draw(grouped(digits))
    assume(digits[0] in "23456")  # plain digits: only the card networks' ranges
    return digits


@st.composite
def e164(draw: st.DrawFn) -> str:
    return (
        "+"
        + draw(st.sampled_from("123456789"))
        + draw(st.text(string.digits, min_size=6, max_size=14))
    )


@st.composite
def international_phones(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(["1", "33", "44", "49", "61", "81", "351"]))
    groups = draw(st.lists(st.text(string.digits, min_size=2, max_size=4), min_size=2, max_size=4))
    assume(7 <= len(country) + sum(map(len, groups)) <= 15)
    separator = draw(st.sampled_from([" ", "-", "."]))
    return f"+{country} " + separator.join(groups)


@st.composite
def national_phones(draw: st.DrawFn) -> str:
    def d(n: int) -> str:
        return draw(st.text(string.digits, min_size=n, max_size=n))

    style = draw(st.integers(0, 5))
    if style == 0:  # (555) 123-4567
        return f"({d(3)}) {d(3)}-{d(4)}"
    if style == 1:  # 555-123-4567
        return f"{d(3)}-{d(3)}-{d(4)}"
    if style == 2:  # 555.123.4567
        return f"{d(3)}.{d(3)}.{d(4)}"
    if style == 3:  # 020 7946 0958
        return f"0{d(2)} {d(4)} {d(4)}"
    if style == 4:  # 06 12 34 56 78
        return " ".join(["0" + d(1), d(2), d(2), d(2), d(2)])
    return f"{d(4)} {d(3)} {d(3)}"  # 0612 345 678


WORDS = st.text(string.ascii_letters, min_size=1, max_size=12)
SENTENCES = st.lists(WORDS, min_size=1, max_size=12).map(" ".join)


def embedded(value: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``value`` alone, or between words."""
    return st.one_of(
        value,
        st.tuples(SENTENCES, value, SENTENCES).map(lambda p: f"{p[0]} {p[1]} {p[2]}"),
        st.tuples(value, SENTENCES).map(lambda p: f"{p[0]}, {p[1]}"),
    )


# --- detection: always caught --------------------------------------------------------------------


@given(embedded(st.emails()))
def test_emails_are_always_caught(text: str) -> None:
    assert looks_personal(text)
    assert looks_like_email(text)


@given(embedded(st.one_of(e164(), international_phones(), national_phones())))
def test_phone_numbers_are_always_caught(text: str) -> None:
    assert looks_personal(text)


@given(embedded(st.ip_addresses().map(str)))
def test_ip_addresses_are_always_caught(text: str) -> None:
    assert looks_personal(text)


@given(st.ip_addresses(v=6))
def test_ipv6_in_brackets_with_a_port_or_zone_is_caught(address: ipaddress.IPv6Address) -> None:
    assert looks_personal(f"[{address}]:8443")
    assert looks_personal(f"{address}%eth0")


@given(embedded(formatted_cards()))
def test_card_numbers_are_always_caught(text: str) -> None:
    assert looks_personal(text)


@given(card_numbers())
def test_card_numbers_as_integers_are_caught(digits: str) -> None:
    assert is_card_number(int(digits))


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "378282246310005",
        "3782 822463 10005",
        "5555 5555 5555 4444",
        "+1 (555) 123-4567",
        "(555) 123-4567",
        "+44 20 7946 0958",
        "06 12 34 56 78",
        "mail me: jane.doe+news@example.co.uk.",
        "fe80::1%eth0",
        "::ffff:192.0.2.1",
        "client 203.0.113.7:51234",
    ],
)
def test_well_known_examples_are_caught(text: str) -> None:
    assert looks_personal(text)


# --- detection: left alone ------------------------------------------------------------------------


@given(SENTENCES)
def test_ordinary_sentences_are_not_flagged(text: str) -> None:
    assert not looks_personal(text)


@given(st.integers(-(10**12), 10**12))
def test_short_numbers_are_not_flagged(number: int) -> None:
    assert not looks_personal(str(number))
    assert not is_card_number(number)


@given(st.integers(1_000_000_000_000, 1_999_999_999_999))
def test_millisecond_timestamps_are_not_cards(timestamp: int) -> None:
    assert not is_card_number(timestamp)
    assert not looks_personal(str(timestamp))


@example(UUID("cf05a316-8682-431f-9847-662797224586"))  # a Luhn-valid 16-digit tail
@given(st.uuids())
def test_uuids_are_not_flagged(uuid: Any) -> None:
    assert not looks_personal(str(uuid))
    assert not looks_personal(str(uuid).upper())


@given(st.datetimes(datetime.datetime(1900, 1, 1), datetime.datetime(2200, 1, 1)))
def test_iso_dates_and_times_are_not_flagged(moment: Any) -> None:
    assert not looks_personal(moment.isoformat())
    assert not looks_personal(moment.date().isoformat())
    assert not looks_personal(moment.strftime("%d.%m.%Y"))
    assert not looks_personal(moment.strftime("%Y-%m-%d %H:%M:%S"))


@pytest.mark.parametrize(
    "text",
    [
        "checkout",
        "Signed Up",
        "premium-plan",
        "v1.2.3",
        "3.14159",
        "$1,234.56",
        "order 12345",
        "1700000000000",
        "12:30:45",
        "std::vector<int>",
        "@handle",
        "user@localhost",
        "ratio 16:9",
        "550e8400-e29b-41d4-a716-446655440000",
        "12345678-1234-1234-1234-123456789012",
        "4111 1111 1111 1112",  # fails Luhn
        "hmac:0123456789abcdef",
        REDACTED,
    ],
)
def test_ordinary_values_are_not_flagged(text: str) -> None:
    assert not looks_personal(text)


# --- scrubbing ------------------------------------------------------------------------------------


def event(**properties: Any) -> Any:
    return make_event(
        "Viewed",
        user_id="user-123",
        event_properties=properties,
        user_properties={"plan": "pro", "contact": "jane@example.com"},
        fields={"ip": "203.0.113.7", "platform": "web"},
    )


def test_redact_replaces_personal_values_at_any_depth_and_in_lists() -> None:
    scrubbed = event(
        plan="pro",
        count=3,
        nested={"deeper": [{"who": "jane@example.com"}, "fine", 4111111111111111]},
        contacts=["+14155552671", "ok"],
        ratio=0.5,
        flag=True,
        nothing=None,
    )

    assert Scrubber("redact").scrub(scrubbed) is None
    assert scrubbed.event_properties == {
        "plan": "pro",
        "count": 3,
        "nested": {"deeper": [{"who": REDACTED}, "fine", REDACTED]},
        "contacts": [REDACTED, "ok"],
        "ratio": 0.5,
        "flag": True,
        "nothing": None,
    }
    assert scrubbed.user_properties == {"plan": "pro", "contact": REDACTED}


def test_hash_replaces_values_by_a_keyed_hash_equal_for_equal_values() -> None:
    first, second = event(who="jane@example.com"), event(who="jane@example.com")
    scrubber = Scrubber("hash", salt=SALT)

    scrubber.scrub(first)
    scrubber.scrub(second)

    hashed = first.event_properties["who"]
    assert HASHED.fullmatch(hashed)
    assert second.event_properties["who"] == hashed
    assert first.user_properties["contact"] == hashed  # joinable across properties
    other_salt = event(who="jane@example.com")
    Scrubber("hash", salt="another-salt-of-enough-chars").scrub(other_salt)
    assert other_salt.event_properties["who"] != hashed


def test_scrubbing_twice_changes_nothing_more() -> None:
    scrubbed = event(who="jane@example.com", card="4111 1111 1111 1111")
    scrubber = Scrubber("hash", salt=SALT)
    scrubber.scrub(scrubbed)
    once = dict(scrubbed.event_properties)

    scrubber.scrub(scrubbed)  # a resend goes through the screen again

    assert scrubbed.event_properties == once


def test_listed_keys_are_replaced_whatever_their_value_case_insensitively() -> None:
    scrubbed = event(Phone=5551234567, address={"street": "1 Main St"}, plan="pro")

    Scrubber("redact", keys=["phone", "ADDRESS"]).scrub(scrubbed)

    assert scrubbed.event_properties == {"Phone": REDACTED, "address": REDACTED, "plan": "pro"}


def test_a_listed_key_hashes_any_value_deterministically() -> None:
    first, second = event(address={"b": 1, "a": 2}), event(address={"a": 2, "b": 1})
    scrubber = Scrubber("hash", keys=["address"], salt=SALT)

    scrubber.scrub(first)
    scrubber.scrub(second)

    assert HASHED.fullmatch(first.event_properties["address"])
    assert first.event_properties["address"] == second.event_properties["address"]


def test_a_property_name_that_is_personal_is_replaced_too() -> None:
    scrubbed = event(**{"jane@example.com": 1, "plan": "pro"})

    Scrubber("redact").scrub(scrubbed)

    assert scrubbed.event_properties == {REDACTED: 1, "plan": "pro"}


def test_a_value_it_cannot_inspect_is_redacted() -> None:
    scrubbed = event(plan="pro")
    scrubbed.event_properties["odd"] = object()  # validation never makes one: fail closed
    scrubbed.event_properties["pair"] = ("jane@example.com", 1)

    Scrubber("redact").scrub(scrubbed)

    assert scrubbed.event_properties == {"plan": "pro", "odd": REDACTED, "pair": REDACTED}


def test_off_leaves_properties_alone() -> None:
    scrubbed = event(who="jane@example.com")

    Scrubber("off").scrub(scrubbed)

    assert scrubbed.event_properties == {"who": "jane@example.com"}


@pytest.mark.parametrize("mode", ["off", "redact", "hash"])
def test_the_ip_is_removed_unless_sending_it_is_on(mode: Any) -> None:
    removed, kept = event(), event()

    Scrubber(mode, salt=SALT).scrub(removed)
    Scrubber(mode, salt=SALT, send_ip=True).scrub(kept)

    assert removed.fields == {"platform": "web"}
    assert kept.fields == {"ip": "203.0.113.7", "platform": "web"}


def test_an_email_user_id_drops_the_event_in_redact_mode() -> None:
    scrubbed = make_event("Viewed", user_id="Jane@Example.com")

    assert Scrubber("redact").scrub(scrubbed) == "pii_user_id"


def test_an_email_user_id_is_hashed_in_hash_mode() -> None:
    scrubbed = make_event("Viewed", user_id="jane@example.com", device_id="device-123")
    scrubber = Scrubber("hash", salt=SALT)

    assert scrubber.scrub(scrubbed) is None
    assert HASHED.fullmatch(scrubbed.user_id or "")
    assert scrubber.user_id_alias("jane@example.com") == scrubbed.user_id
    assert scrubber.user_id_alias("user-123") is None


def test_an_ordinary_user_id_is_kept_in_every_mode() -> None:
    for scrubber in (Scrubber("redact"), Scrubber("hash", salt=SALT), Scrubber("off")):
        kept = make_event("Viewed", user_id="4111111111111111")  # an id, even if Luhn-valid
        assert scrubber.scrub(kept) is None
        assert kept.user_id == "4111111111111111"


def test_hash_mode_needs_a_salt_and_never_shows_it() -> None:
    with pytest.raises(ValueError, match="salt"):
        Scrubber("hash")
    assert SALT not in repr(Scrubber("hash", salt=SALT))


@given(st.text(max_size=200))
def test_any_text_is_inspected_without_error(text: str) -> None:
    looks_personal(text)


class _Text(str):
    """A str subclass: validation never makes one, so the scrubber replaces it (fail-closed)."""


_NAMES = st.sampled_from(["plan", "pages", "contact", "email", "price", "card", "secret"])
_VALUES = st.one_of(
    st.sampled_from(["pdf", "pro", "ada@example.com", "+44 20 7946 0958", "10.0.0.1", "x"]),
    st.sampled_from([4111111111111111, 1_700_000_000_000, 12, -(10**15), True, None, 2.5]),
    st.sampled_from([4111111111111111.0, _Text("pdf")]),
    st.lists(st.sampled_from(["pdf", "ada@example.com", 4111111111111111]), max_size=2),
)
_PROPERTIES = st.dictionaries(_NAMES, _VALUES, max_size=4)


@pytest.mark.parametrize("mode", ["redact", "hash"])
@given(st.lists(_PROPERTIES, min_size=1, max_size=8))
def test_what_the_scrubber_remembers_never_changes_a_result(mode: Any, batches: Any) -> None:
    """A scrubber that has seen many events (its caches of plain names and values, and the
    fast path they allow) scrubs each exactly as a fresh one does."""
    warm = Scrubber(mode, keys=["secret"], salt=SALT)
    for properties in batches:
        seen = make_event("e", user_id="user-1")
        fresh = make_event("e", user_id="user-1")
        seen.event_properties = copy.deepcopy(properties) or None  # the str subclass kept
        fresh.event_properties = copy.deepcopy(properties) or None
        warm.scrub(seen)
        Scrubber(mode, keys=["secret"], salt=SALT).scrub(fresh)
        assert seen.event_properties == fresh.event_properties
        assert [type(v) for v in (seen.event_properties or {}).values()] == [
            type(v) for v in (fresh.event_properties or {}).values()
        ]

"""Typed, validated configuration, read from ``AMPLITUDE_*`` environment variables.

Every setting is described once, as a field of :class:`Settings` made with :func:`setting`: its
variable, parser, doc line and the reason for its default. Reading the environment, validating
values given in code, the masked ``repr``, :meth:`Settings.describe` and ``docs/configuration.md``
are all derived from those fields, so adding a setting is adding a field.

Regenerate the reference after changing a field::

    .venv/bin/python -m otel_amplitude._settings > docs/configuration.md
"""

from __future__ import annotations

import abc
import dataclasses
import difflib
import os
import re
import typing
import urllib.parse
import warnings
from collections.abc import Mapping
from typing import Any, Generic, Literal, TypeVar

from .exceptions import ConfigError

__all__ = [
    "ConfigWarning",
    "ConsentMode",
    "Overflow",
    "PiiMode",
    "ServerZone",
    "Settings",
    "UnknownTenant",
    "configuration_reference",
]

T = TypeVar("T")

ServerZone = Literal["US", "EU"]
Overflow = Literal["drop_oldest", "drop_newest"]
UnknownTenant = Literal["drop", "default"]
ConsentMode = Literal["opt_out", "opt_in"]
#: Property names that hold personal data whatever their values look like.
_DEFAULT_PII_KEYS = (
    "email", "phone", "phone_number", "mobile", "password", "ssn", "card_number", "iban",
    "ip_address",
)  # fmt: skip
PiiMode = Literal["off", "redact", "hash"]

_ENV_PREFIX = "AMPLITUDE_"
_INGESTION_HOSTS: Mapping[str, str] = {
    "US": "https://api2.amplitude.com",
    "EU": "https://api.eu.amplitude.com",
}
_PRIVACY_HOSTS: Mapping[str, str] = {
    "US": "https://amplitude.com",
    "EU": "https://analytics.eu.amplitude.com",
}
_LONGEST_VALUE_SHOWN = 80


class ConfigWarning(UserWarning):
    """A configuration looks wrong but can still work, e.g. an unknown ``AMPLITUDE_*`` variable."""


# --- Parsers: how one kind of setting is read from text, checked in code, and shown ---------------


class _InvalidValueError(Exception):
    """A value breaks its setting's rule; ``rule`` ends a sentence: "AMPLITUDE_X must be ..."."""

    def __init__(self, rule: str, *, show_value: bool = True) -> None:
        super().__init__(rule)
        self.rule = rule
        self.show_value = show_value

    def message(self, subject: str, value: object) -> str:
        """The problem as one line: what, its rule and (unless secret) the value it got."""
        if not self.show_value:
            return f"{subject} {self.rule}"
        shown = repr(value)
        if len(shown) > _LONGEST_VALUE_SHOWN:
            shown = shown[:_LONGEST_VALUE_SHOWN] + "..."
        return f"{subject} {self.rule}, got {shown}"


class _Parser(abc.ABC, Generic[T]):
    """Reads a setting from an environment variable, checks a value given in code, shows one.

    ``accepted`` is a noun phrase ("an integer from 1 to 64") used in errors and in the docs.
    ``from_text`` gets the variable's text already stripped and never empty (empty means unset).
    Both ``from_*`` methods return the normalised value or raise :class:`_InvalidValueError`.
    """

    accepted: str = ""
    secret: bool = False

    @abc.abstractmethod
    def from_text(self, text: str) -> T: ...

    @abc.abstractmethod
    def from_value(self, value: object) -> T: ...

    def show(self, value: T) -> str:
        """The value as a reader would write it in the environment; "not set" for None."""
        return "not set" if value is None else str(value)

    def _invalid(self) -> _InvalidValueError:
        return _InvalidValueError(f"must be {self.accepted}")


class _Integer(_Parser[int]):
    """Plain base-10 digits (no sign, underscore or exponent) within an inclusive range."""

    _DIGITS = re.compile(r"[0-9]+")

    def __init__(self, low: int, high: int) -> None:
        self.low = low
        self.high = high
        self.accepted = f"an integer from {low} to {high}"

    def from_text(self, text: str) -> int:
        if not self._DIGITS.fullmatch(text):
            raise self._invalid()
        try:
            number = int(text)
        except ValueError:  # more digits than int() converts: far out of range anyway
            raise self._invalid() from None
        return self.from_value(number)

    def from_value(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._invalid()
        if not self.low <= value <= self.high:
            raise self._invalid()
        return value


class _Boolean(_Parser[bool]):
    """``true/false/1/0/yes/no/on/off`` in any case; only ``bool`` in code."""

    _WORDS: Mapping[str, bool] = {
        "true": True, "1": True, "yes": True, "on": True,
        "false": False, "0": False, "no": False, "off": False,
    }  # fmt: skip
    accepted = "true or false (also 1/0, yes/no, on/off)"

    def from_text(self, text: str) -> bool:
        try:
            return self._WORDS[text.lower()]
        except KeyError:
            raise self._invalid() from None

    def from_value(self, value: object) -> bool:
        if not isinstance(value, bool):
            raise self._invalid()
        return value

    def show(self, value: bool) -> str:
        return "true" if value else "false"


class _Choice(_Parser[T]):
    """One of a few words, matched case-insensitively and returned in its canonical spelling.

    Build it from the ``Literal`` type of the field, so the words are written once:
    ``_Choice[ServerZone](typing.get_args(ServerZone))``.
    """

    def __init__(self, choices: tuple[T, ...]) -> None:
        self.choices = choices
        *rest, last = (repr(choice) for choice in choices)
        self.accepted = f"{', '.join(rest)} or {last}" if rest else last

    def from_text(self, text: str) -> T:
        folded = text.casefold()
        for choice in self.choices:
            if str(choice).casefold() == folded:
                return choice
        raise self._invalid()

    def from_value(self, value: object) -> T:
        if not isinstance(value, str):
            raise self._invalid()
        return self.from_text(value.strip())


class _Secret(_Parser[str | None]):
    """A key: surrounding whitespace stripped, empty means unset; never echoed back.

    A key is printable ASCII without whitespace: it travels in a JSON body or an HTTP Basic
    header, and a space or newline inside one is a copy-paste accident, not a key.
    """

    accepted = "a key of printable ASCII characters without whitespace"
    secret = True

    def from_text(self, text: str) -> str:
        if any(char.isspace() for char in text):
            raise _InvalidValueError("must not contain whitespace", show_value=False)
        if not all("!" <= char <= "~" for char in text):
            raise _InvalidValueError(
                "must contain only printable ASCII characters", show_value=False
            )
        return text

    def from_value(self, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise _InvalidValueError(
                f"must be a string or None, not {type(value).__name__}", show_value=False
            )
        text = value.strip()
        return self.from_text(text) if text else None

    def show(self, value: str | None) -> str:
        return "not set" if value is None else f"set ({len(value)} chars)"


class _BaseURL(_Parser[str]):
    """An http(s) URL to which API paths are appended; trailing slashes are removed."""

    accepted = (
        "an http or https URL with a host, an optional port and path prefix,"
        " and no query or fragment"
    )

    def from_text(self, text: str) -> str:
        parts = urllib.parse.urlsplit(text)
        if "@" in parts.netloc:
            # Credentials in a URL end up in logs; refuse them without repeating them.
            raise _InvalidValueError("must not contain a user name or password", show_value=False)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or "?" in text
            or "#" in text
            or any(char.isspace() or not char.isprintable() for char in text)
        ):
            raise self._invalid()
        try:
            parts.port  # noqa: B018 - raises ValueError for a port that is not 0..65535
        except ValueError:
            raise self._invalid() from None
        return text.rstrip("/")

    def from_value(self, value: object) -> str:
        if not isinstance(value, str):
            raise self._invalid()
        return self.from_text(value.strip())


class _Text(_Parser[str]):
    """Free text of printable characters, at most ``longest`` of them (empty: the default)."""

    def __init__(self, longest: int) -> None:
        self.longest = longest
        self.accepted = f"text of at most {longest} printable characters"

    def from_text(self, text: str) -> str:
        if len(text) > self.longest or not text.isprintable():
            raise self._invalid()
        return text

    def from_value(self, value: object) -> str:
        if not isinstance(value, str):
            raise self._invalid()
        return self.from_text(value) if value else value


class _Globs(_Parser[tuple[str, ...]]):
    """A comma-separated list of shell-style patterns (``checkout.*, report_*``)."""

    accepted = "a comma-separated list of name patterns such as 'checkout.*,report_*'"

    def from_text(self, text: str) -> tuple[str, ...]:
        return self.from_value(tuple(part.strip() for part in text.split(",")))

    def from_value(self, value: object) -> tuple[str, ...]:
        if isinstance(value, str) or not isinstance(value, (tuple, list)):
            raise self._invalid()
        patterns = tuple(p.strip() for p in value if isinstance(p, str) and p.strip())
        if len(patterns) != len(value) or any(not p.isprintable() for p in patterns):
            raise self._invalid()
        return patterns

    def show(self, value: tuple[str, ...]) -> str:
        return ",".join(value) if value else "not set"


class _Optional(_Parser[T | None]):
    """Another parser's values, or None (the default: the variable is unset)."""

    def __init__(self, inner: _Parser[T]) -> None:
        self.inner = inner
        self.accepted = inner.accepted

    def from_text(self, text: str) -> T | None:
        return self.inner.from_text(text)

    def from_value(self, value: object) -> T | None:
        return None if value is None else self.inner.from_value(value)

    def show(self, value: T | None) -> str:
        return "not set" if value is None else self.inner.show(value)


class _Path(_Parser[str]):
    """A file system path given as text or a ``PathLike``; subclasses say what it must be."""

    def from_value(self, value: object) -> str:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip():
            raise self._invalid()
        return self.from_text(value.strip())


class _FilePath(_Path):
    """A path to a file (created if missing); not a directory."""

    accepted = "a path to a file, which is created if missing"

    def from_text(self, text: str) -> str:
        if not text.isprintable() or os.path.isdir(text):
            raise self._invalid()
        return text


class _ExistingFile(_Path):
    """A path to a file that exists and is readable (read later, not created)."""

    accepted = "a path to an existing, readable file"

    def from_text(self, text: str) -> str:
        if not text.isprintable() or not os.path.isfile(text) or not os.access(text, os.R_OK):
            raise self._invalid()
        return text


class _DirectoryPath(_Path):
    """A path to a directory (created if missing); not an existing file."""

    accepted = "a path to a directory, which is created if missing"

    def from_text(self, text: str) -> str:
        if not text.isprintable() or (os.path.exists(text) and not os.path.isdir(text)):
            raise self._invalid()
        return text


class _AttributeName(_Parser[str]):
    """An OpenTelemetry attribute name such as ``tenant.id``."""

    accepted = "an attribute name of letters, digits, '.', '_' and '-' such as 'tenant.id'"

    def from_text(self, text: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]{0,254}", text):
            raise self._invalid()
        return text

    def from_value(self, value: object) -> str:
        if not isinstance(value, str):
            raise self._invalid()
        return self.from_text(value.strip())


class _RedisURL(_Parser[str | None]):
    """A ``redis://`` or ``rediss://`` URL; a password in it is never shown."""

    accepted = "a redis:// or rediss:// URL such as 'redis://localhost:6379/0'"
    secret = True  # it may hold a password: the repr shows '***', describe() a masked URL

    def from_text(self, text: str) -> str:
        parts = urllib.parse.urlsplit(text)
        shown = "@" not in parts.netloc  # credentials: never repeated in an error
        if (
            parts.scheme not in ("redis", "rediss")
            or not parts.hostname
            or "#" in text
            or any(char.isspace() or not char.isprintable() for char in text)
            or not re.fullmatch(r"(/[0-9]*)?", parts.path)
        ):
            raise _InvalidValueError(f"must be {self.accepted}", show_value=shown)
        try:
            parts.port  # noqa: B018 - raises ValueError for a port that is not 0..65535
        except ValueError:
            raise _InvalidValueError(f"must be {self.accepted}", show_value=shown) from None
        return text

    def from_value(self, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise _InvalidValueError(f"must be {self.accepted}", show_value=False)
        return self.from_text(value.strip())

    def show(self, value: str | None) -> str:
        if value is None:
            return "not set"
        parts = urllib.parse.urlsplit(value)
        if parts.password is None:
            return value
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class _Names(_Parser[tuple[str, ...]]):
    """A comma-separated list of property names, kept in lower case (matched case-insensitively)."""

    accepted = "a comma-separated list of property names such as 'email,phone'"

    def from_text(self, text: str) -> tuple[str, ...]:
        return self.from_value(tuple(part.strip() for part in text.split(",")))

    def from_value(self, value: object) -> tuple[str, ...]:
        if isinstance(value, str) or not isinstance(value, (tuple, list, frozenset, set)):
            raise self._invalid()
        names = tuple(n.strip().casefold() for n in value if isinstance(n, str) and n.strip())
        if len(names) != len(value) or any(not n.isprintable() for n in names):
            raise self._invalid()
        return tuple(dict.fromkeys(sorted(names) if isinstance(value, (set, frozenset)) else names))

    def show(self, value: tuple[str, ...]) -> str:
        return ",".join(value) if value else "not set"


class _Salt(_Secret):
    """A secret key for HMAC: like a key, and at least ``shortest`` characters long."""

    def __init__(self, shortest: int) -> None:
        self.shortest = shortest
        self.accepted = (
            f"a secret of at least {shortest} printable ASCII characters without whitespace"
        )

    def from_text(self, text: str) -> str:
        text = super().from_text(text)
        if len(text) < self.shortest:
            raise _InvalidValueError(
                f"must be at least {self.shortest} characters long", show_value=False
            )
        return text


# --- The settings table -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Setting:
    """What :class:`Settings` knows about one of its fields besides the type."""

    env: str
    parser: _Parser[Any]
    default: object
    doc: str
    why: str


_METADATA_KEY = "otel_amplitude.setting"


def setting(*, env: str, parse: _Parser[T], default: T, doc: str, why: str) -> T:
    """Declare a field of :class:`Settings`: its variable, parser, doc line and why the default."""
    spec = _Setting(env=env, parser=parse, default=default, doc=doc, why=why)
    return dataclasses.field(default=default, metadata={_METADATA_KEY: spec})


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Configuration of otel-amplitude: read with :meth:`from_env`, or built in code.

    Immutable and validated on construction, however it is made; a bad value raises one
    :class:`ConfigError` listing every problem. Keys never appear in its repr or its errors.
    """

    api_key: str | None = setting(
        env="AMPLITUDE_API_KEY",
        parse=_Secret(),
        default=None,
        doc="The API key of the Amplitude project that receives the events, sent in the body of"
        " every ingestion request. Surrounding whitespace is ignored.",
        why="A credential has no sensible default. Without one nothing can be sent, but"
        " `AMPLITUDE_ENABLED=false` and the `otel-amplitude check` command still work, so a"
        " service can start in development without a key.",
    )
    secret_key: str | None = setting(
        env="AMPLITUDE_SECRET_KEY",
        parse=_Secret(),
        default=None,
        doc="The project's secret key, used only by the User Privacy API (deleting users),"
        " with HTTP Basic authentication `API_KEY:SECRET_KEY`.",
        why="Ingestion does not need it, and a key that can delete a project's data should be"
        " present only in the services that delete users.",
    )
    # RUF009 cannot see that setting() is dataclasses.field() and the Literal is immutable.
    server_zone: ServerZone = setting(  # noqa: RUF009
        env="AMPLITUDE_SERVER_ZONE",
        parse=_Choice[ServerZone](typing.get_args(ServerZone)),
        default="US",
        doc="The Amplitude data centre of the project, in any case: `US` sends to"
        " `api2.amplitude.com` and `amplitude.com`, `EU` to `api.eu.amplitude.com` and"
        " `analytics.eu.amplitude.com`.",
        why="Amplitude's own default and the official SDK's. An EU project's key sent to the US"
        " host is answered `400 Invalid API key`, so an EU project must set `EU`.",
    )
    server_url: str | None = setting(
        env="AMPLITUDE_SERVER_URL",
        parse=_Optional(_BaseURL()),
        default=None,
        doc="One base URL that replaces every Amplitude host, whatever the zone: the API paths"
        " (`/2/httpapi`, `/batch`, `/identify`, `/api/2/deletions/users`) are appended to it,"
        " after its own path prefix. A trailing slash is ignored. For a proxy, or for a local"
        " Amplitude-compatible server in tests.",
        why="Unset, the hosts follow `AMPLITUDE_SERVER_ZONE`, which is right for everyone who"
        " talks to Amplitude directly.",
    )
    destinations_file: str | None = setting(
        env="AMPLITUDE_DESTINATIONS_FILE",
        parse=_Optional(_ExistingFile()),
        default=None,
        doc="A TOML file with one `[tenants.NAME]` table per customer project (`api_key`,"
        " optional `secret_key`, `zone`, `server_url`, `environment`, `max_events_per_second`,"
        " `max_requests_per_second`, `max_buffered_events`; keys inline, `env:NAME` or"
        " `file:/path`). Events name their tenant (`track(..., tenant=)`, `extra`, `bind`, the"
        " span attribute `amplitude.tenant`) and go to that project. Re-read within about 2 s of a"
        " change; a malformed change is refused and the previous table kept. See"
        " docs/destinations.md.",
        why="Unset: one project, the one of `AMPLITUDE_API_KEY`, and `tenant` is an ordinary"
        " property name.",
    )
    tenant_attribute: str | None = setting(
        env="AMPLITUDE_TENANT_ATTRIBUTE",
        parse=_Optional(_AttributeName()),
        default=None,
        doc="The OpenTelemetry resource attribute (e.g. `tenant.id`) that names the tenant of"
        " every span and log record of a process, when they carry no `amplitude.tenant` of"
        " their own. Used only when destinations are configured.",
        why="Unset: tenants come from the events themselves. Set it when each deployment"
        " serves one customer.",
    )
    unknown_tenant: UnknownTenant = setting(  # noqa: RUF009
        env="AMPLITUDE_UNKNOWN_TENANT",
        parse=_Choice[UnknownTenant](typing.get_args(UnknownTenant)),
        default="drop",
        doc="What happens to an event whose tenant has no destination: `drop` counts it"
        " (`unknown_tenant`) and warns naming the tenant; `default` sends it to the project of"
        " `AMPLITUDE_API_KEY`.",
        why="A customer's events must never land in another project by accident; falling back"
        " is a decision.",
    )
    destination_max_buffered_events: int | None = setting(
        env="AMPLITUDE_DESTINATION_MAX_BUFFERED_EVENTS",
        parse=_Optional(_Integer(1, 100_000_000)),
        default=None,
        doc="The most events one destination may hold when there are several, so that one"
        " customer's broken key or flood cannot fill the buffers of all. A tenant's own"
        " `max_buffered_events` wins.",
        why="Unset: a quarter of `AMPLITUDE_MAX_BUFFERED_EVENTS` (25,000 events by default), so"
        " at least four broken destinations are needed to fill the process's buffers.",
    )
    use_batch: bool = setting(
        env="AMPLITUDE_USE_BATCH",
        parse=_Boolean(),
        default=False,
        doc="Send events to the Batch Event Upload API (`/batch`) instead of HTTP V2"
        " (`/2/httpapi`).",
        why="HTTP V2 is Amplitude's real-time API, the fit for events sent as they happen. The"
        " Batch API is for backfills and for users or devices above HTTP V2's 30 events/s"
        " throttle (it allows 1,000 events/s per user or device).",
    )
    flush_interval_ms: int = setting(
        env="AMPLITUDE_FLUSH_INTERVAL_MS",
        parse=_Integer(1, 3_600_000),
        default=1000,
        doc="The longest an event waits in its buffer before it is sent, in milliseconds. A full"
        " batch (`AMPLITUDE_FLUSH_MAX_EVENTS`) leaves at once.",
        why="Events reach Amplitude within about a second. At low volume that costs one small"
        " request per second per process, well under Amplitude's limits (even its Starter plan"
        " allows up to 100 requests per second); at high volume batches fill"
        " before the interval ends, so it does not limit throughput.",
    )
    flush_max_events: int = setting(
        env="AMPLITUDE_FLUSH_MAX_EVENTS",
        parse=_Integer(1, 2000),
        default=1000,
        doc="The most events in one request. 2000 is Amplitude's limit per request.",
        why="Half of HTTP V2's 2000-event cap, and a 1000-event batch of typical events stays"
        " far under its 1 MB body limit. Request count, not bytes, is the cost: one urllib3"
        " thread pushes about 500,000 events/s to a loopback server in 1000-event batches, but"
        " about 9,000 events/s in 10-event batches. (Amplitude's Starter plan recommends at"
        " most 10 events per request.)",
    )
    senders: int = setting(
        env="AMPLITUDE_SENDERS",
        parse=_Integer(1, 64),
        default=4,
        doc="The number of sender threads: the most requests in flight at once.",
        why="Four requests in flight hide a ~100 ms round trip to Amplitude: with 1000-event"
        " batches that is up to about 40,000 events/s per process, more than most services"
        " emit, for the cost of four idle threads and their connections.",
    )
    partition_capacity: int = setting(
        env="AMPLITUDE_PARTITION_CAPACITY",
        parse=_Integer(1, 10_000_000),
        default=5000,
        doc="The most events buffered for one partition (one device, or one user without a"
        " device, at one destination). Beyond it the overflow policy applies to that"
        " partition.",
        why="A throttled user or device is paused for 30 s at a time and may send only 30"
        " events/s; a runaway or throttled one cannot take more than 5% of the default total"
        " buffer (100,000 events), so the other users keep flowing.",
    )
    max_buffered_events: int = setting(
        env="AMPLITUDE_MAX_BUFFERED_EVENTS",
        parse=_Integer(1, 100_000_000),
        default=100_000,
        doc="The most events buffered in the process, across all partitions. Beyond it the"
        " overflow policy applies.",
        why="About 75 MB at up to 0.75 KB per buffered event, and 100 s of a 1,000 events/s"
        " service while Amplitude is unreachable.",
    )
    overflow: Overflow = setting(  # noqa: RUF009
        env="AMPLITUDE_OVERFLOW",
        parse=_Choice[Overflow](typing.get_args(Overflow)),
        default="drop_newest",
        doc="What happens when an event arrives at a full buffer, in any case: `drop_newest`"
        " drops the new event, `drop_oldest` drops the oldest buffered event to make room."
        " Either way the drop is counted and the caller never waits.",
        why="The same choice as the OpenTelemetry SDK's BatchSpanProcessor: new data is dropped"
        " when the queue is full, the caller never waits, and the events already queued keep"
        " their order.",
    )
    timeout_ms: int = setting(
        env="AMPLITUDE_TIMEOUT_MS",
        parse=_Integer(1, 600_000),
        default=10_000,
        doc="The timeout of one HTTP request, in milliseconds. A request that times out is"
        " retried.",
        why="10 s, the same as the official Amplitude Python SDK: long enough for a full"
        " request on an ordinary link, short enough that a hung connection frees its sender"
        " soon.",
    )
    max_retries: int = setting(
        env="AMPLITUDE_MAX_RETRIES",
        parse=_Integer(0, 1000),
        default=12,
        doc="How many times an event is retried after a failure that may pass (a server"
        " error, a timeout, a dropped connection) before it is given up, and counted as such."
        " 0 never retries.",
        why="12, the same as the official Amplitude Python SDK; with exponential backoff capped"
        " at 30 s that rides out a few minutes of outage.",
    )
    min_id_length: int | None = setting(
        env="AMPLITUDE_MIN_ID_LENGTH",
        parse=_Optional(_Integer(1, 1024)),
        default=None,
        doc="The minimum length of `user_id` and `device_id`, sent as `options.min_id_length`."
        " Amplitude removes shorter ids from an event, and rejects an event left without one.",
        why="Unset, Amplitude's own minimum of 5 applies. Set it when your ids are shorter, such"
        " as small numeric user ids.",
    )
    enabled: bool = setting(
        env="AMPLITUDE_ENABLED",
        parse=_Boolean(),
        default=True,
        doc="`false` turns delivery off: events are accepted and discarded (and counted), and"
        " nothing is sent.",
        why="Configuring the library means you want events sent; `false` is for tests, local"
        " development, and stopping delivery without a code change.",
    )
    event_prefix: str = setting(
        env="AMPLITUDE_EVENT_PREFIX",
        parse=_Text(64),
        default="",
        doc="Text put before every event type from every source, e.g. `acme_`.",
        why="Empty: event types are exactly what the code names them. A prefix keeps one"
        " service's events apart in a project that several services share.",
    )
    log_include_logger: bool = setting(
        env="AMPLITUDE_LOG_INCLUDE_LOGGER",
        parse=_Boolean(),
        default=False,
        doc="Add the logger name and level to log-derived events as the properties"
        " `logger` and `level`.",
        why="Off: an analytics event carries what the code put in it, nothing of the"
        " logging plumbing, unless asked for.",
    )
    span_events: tuple[str, ...] = setting(
        env="AMPLITUDE_SPAN_EVENTS",
        parse=_Globs(),
        default=(),
        doc="Span names (shell-style patterns, comma-separated) that become events even"
        " without the `amplitude.event_type` attribute; the span name is the event type.",
        why="Empty: only spans tagged with `amplitude.event_type` are events, so turning the"
        " exporter on never floods a project with every HTTP and database span.",
    )
    send_ip: bool = setting(
        env="AMPLITUDE_SEND_IP",
        parse=_Boolean(),
        default=False,
        doc="Send the client IP address (an event's `ip`, or a span's `client.address`) to"
        " Amplitude for geolocation.",
        why="Off: an IP address is personal data; sending it is a decision, not a default.",
    )
    consent_mode: ConsentMode = setting(  # noqa: RUF009
        env="AMPLITUDE_CONSENT_MODE",
        parse=_Choice[ConsentMode](typing.get_args(ConsentMode)),
        default="opt_out",
        doc="Whose events are sent, in any case: `opt_out` sends every user's and device's"
        " events unless they opted out (`client.consent.opt_out(user_id)`); `opt_in` sends only"
        " those of users who opted in (`client.consent.opt_in(user_id)`), and of an event"
        " without a user only when its device opted in. The others are dropped and counted"
        " (`no_consent`). A deleted user is never sent, in either mode. See docs/privacy.md.",
        why="Analytics under legitimate interest with an opt-out is the common case; a service"
        " that needs prior consent (e.g. under the ePrivacy rules) sets `opt_in`.",
    )
    consent_db: str | None = setting(
        env="AMPLITUDE_CONSENT_DB",
        parse=_Optional(_FilePath()),
        default=None,
        doc="An SQLite file that keeps opt-outs, opt-ins, deletions and pending deletion"
        " requests across restarts, shared by every process of the machine that names it"
        " (changes made by one reach the others within a second). Created if missing.",
        why="Unset, consent lives in the process's memory only and is forgotten at exit: fine"
        " for tests, or when the application replays its own consent records at start.",
    )
    consent_redis_url: str | None = setting(
        env="AMPLITUDE_CONSENT_REDIS_URL",
        parse=_RedisURL(),
        default=None,
        doc="A Redis URL (`redis://` or `rediss://`, optionally with user, password and"
        " database number) where a fleet of processes shares consent: each hears of a change"
        " made anywhere within a second. Needs the `redis` extra. A password in it is never"
        " shown. Not together with `AMPLITUDE_CONSENT_DB`.",
        why="Unset: no Redis dependency. Set it when several machines send events for the same"
        " users.",
    )
    pii: PiiMode = setting(  # noqa: RUF009
        env="AMPLITUDE_PII",
        parse=_Choice[PiiMode](typing.get_args(PiiMode)),
        default="redact",
        doc="What happens to property values that look like an email address, a phone number,"
        " an IP address or a payment card number, and to the values of the properties named in"
        " `AMPLITUDE_PII_KEYS`: `redact` replaces them with `[redacted]`, `hash` with a keyed"
        " hash (`hmac:` and 16 hex digits, equal for equal values), `off` sends them as they"
        " are. A user id that is an email address is hashed (`hash`) or its event dropped"
        " (`redact`). See docs/privacy.md.",
        why="Personal data in analytics properties is usually an accident; redacting costs"
        " nothing on the caller's thread and keeps it out of Amplitude.",
    )
    pii_keys: tuple[str, ...] = setting(
        env="AMPLITUDE_PII_KEYS",
        parse=_Names(),
        default=_DEFAULT_PII_KEYS,
        doc="Property names whose values are always personal data, whatever they look like"
        " (comma-separated, case-insensitive, at any depth). Replaces the default list.",
        why="The usual names of personal fields, caught even when the value does not look"
        " personal (a phone number stored as plain digits, a password).",
    )
    pii_salt: str | None = setting(
        env="AMPLITUDE_PII_SALT",
        parse=_Salt(16),
        default=None,
        doc="The secret key of the keyed hash used by `AMPLITUDE_PII=hash` (HMAC-SHA256)."
        " Required in that mode; keep it stable (hashes change with it) and secret (with it,"
        " a hashed email can be confirmed by guessing). Never shown.",
        why="A secret has no default; an unkeyed hash of an email address is trivially"
        " reversed by hashing candidate addresses.",
    )
    spool_dir: str | None = setting(
        env="AMPLITUDE_SPOOL_DIR",
        parse=_Optional(_DirectoryPath()),
        default=None,
        doc="Turns on the durable spool: events are kept in an SQLite database in this"
        " directory (created if missing) until Amplitude has them, so that a crash, a"
        " `kill -9`, a deploy or an outage of hours loses nothing; what a process leaves is"
        " delivered by the next one. Several processes may share the directory. See"
        " docs/spool.md.",
        why="Off: events live in memory only, which costs no disk and suits most services; the"
        " spool is for events that must not be lost.",
    )
    spool_sync_ms: int = setting(
        env="AMPLITUDE_SPOOL_SYNC_MS",
        parse=_Integer(10, 60_000),
        default=200,
        doc="How often the spool commits what was submitted, in milliseconds (one group"
        " commit, off the caller's thread): an event submitted more than this before a crash"
        " is delivered after the next start.",
        why="200 ms: a crash loses at most a fifth of a second of events, and the disk sees at"
        " most five commits a second however many events there are.",
    )
    spool_max_mb: int = setting(
        env="AMPLITUDE_SPOOL_MAX_MB",
        parse=_Integer(1, 1_000_000),
        default=1024,
        doc="The most the spool keeps on disk, in megabytes (about 330 bytes per typical"
        " event). Past it new events are dropped and counted (`overflow`).",
        why="1 GB: about three million typical events, hours of a busy service's events while"
        " Amplitude is unreachable.",
    )
    shutdown_timeout_ms: int = setting(
        env="AMPLITUDE_SHUTDOWN_TIMEOUT_MS",
        parse=_Integer(0, 600_000),
        default=2000,
        doc="The bound on the flush at process exit, in milliseconds. 0 means do not wait.",
        why="The exit flush must not hold a deploy: 2 s is enough for a few full requests on a"
        " healthy connection, and leaves most of a typical termination grace period"
        " (30 s on Kubernetes) to the application.",
    )

    def __post_init__(self) -> None:
        values: dict[str, object] = {}
        problems: list[str] = []
        for name, spec in _SETTINGS:
            value = getattr(self, name)
            try:
                values[name] = spec.parser.from_value(value)
            except _InvalidValueError as invalid:
                problems.append(invalid.message(f"{name} ({spec.env})", value))
        if problems:
            raise _config_error(problems)
        problems = _combination_problems(values)
        if problems:
            raise _config_error(problems)
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read the settings from ``environ`` (default ``os.environ``); ``overrides`` win.

        An empty variable counts as unset. Every bad value is reported in one
        :class:`ConfigError`; unknown ``AMPLITUDE_*`` variables give one :class:`ConfigWarning`.
        """
        environ = os.environ if environ is None else environ
        unexpected = sorted(overrides.keys() - {name for name, _ in _SETTINGS})
        if unexpected:
            msg = f"Settings.from_env() got unexpected keyword arguments: {', '.join(unexpected)}"
            raise TypeError(msg)
        _warn_about_unknown_variables(environ)
        values: dict[str, Any] = {}
        problems: list[str] = []
        for name, spec in _SETTINGS:
            if name in overrides:
                value = overrides[name]
                try:
                    values[name] = spec.parser.from_value(value)
                except _InvalidValueError as invalid:
                    problems.append(invalid.message(f"{name} ({spec.env})", value))
                continue
            raw = environ.get(spec.env, "")
            if not raw.strip():
                continue
            try:
                values[name] = spec.parser.from_text(raw.strip())
            except _InvalidValueError as invalid:
                problems.append(invalid.message(spec.env, raw))
        if problems:
            raise _config_error(problems)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A validated copy with ``changes`` (field names) applied."""
        return dataclasses.replace(self, **changes)

    @property
    def httpapi_url(self) -> str:
        """Amplitude's HTTP V2 endpoint for this zone or ``server_url``."""
        return self._ingestion_base + "/2/httpapi"

    @property
    def batch_url(self) -> str:
        """The Batch Event Upload endpoint."""
        return self._ingestion_base + "/batch"

    @property
    def identify_url(self) -> str:
        """The Identify endpoint (user property updates without an event)."""
        return self._ingestion_base + "/identify"

    @property
    def deletions_url(self) -> str:
        """The User Privacy API's user deletion endpoint (on a different host from ingestion)."""
        return (self.server_url or _PRIVACY_HOSTS[self.server_zone]) + "/api/2/deletions/users"

    @property
    def ingestion_url(self) -> str:
        """Where events go: the Batch API if ``use_batch``, else HTTP V2."""
        return self.batch_url if self.use_batch else self.httpapi_url

    @property
    def _ingestion_base(self) -> str:
        return self.server_url or _INGESTION_HOSTS[self.server_zone]

    def describe(self) -> list[tuple[str, str]]:
        """Each variable and its resolved value as text, keys masked: for a ``check`` command."""
        return [(spec.env, spec.parser.show(getattr(self, name))) for name, spec in _SETTINGS]

    def __repr__(self) -> str:
        parts = []
        for name, spec in _SETTINGS:
            value = getattr(self, name)
            shown = "'***'" if spec.parser.secret and value is not None else repr(value)
            parts.append(f"{name}={shown}")
        return f"Settings({', '.join(parts)})"


_SETTINGS: tuple[tuple[str, _Setting], ...] = tuple(
    (field.name, field.metadata[_METADATA_KEY]) for field in dataclasses.fields(Settings)
)


def _combination_problems(values: Mapping[str, object]) -> list[str]:
    """Settings that are valid alone but not together."""
    problems = []
    if values.get("pii") == "hash" and not values.get("pii_salt"):
        problems.append(
            "AMPLITUDE_PII=hash needs AMPLITUDE_PII_SALT, the secret key of the hash (at least 16"
            " characters): set it, or use AMPLITUDE_PII=redact"
        )
    if values.get("consent_db") is not None and values.get("consent_redis_url") is not None:
        problems.append(
            "AMPLITUDE_CONSENT_DB and AMPLITUDE_CONSENT_REDIS_URL are both set: consent lives in"
            " one store, so set only one of them"
        )
    return problems


def _config_error(problems: list[str]) -> ConfigError:
    if len(problems) == 1:
        return ConfigError(problems[0])
    listed = "\n".join(f"  - {problem}" for problem in problems)
    return ConfigError(f"{len(problems)} settings are invalid:\n{listed}")


def _warn_about_unknown_variables(environ: Mapping[str, str]) -> None:
    """Warn once about every ``AMPLITUDE_*`` variable that is not a setting: likely a typo."""
    known = {spec.env.removeprefix(_ENV_PREFIX): spec.env for _, spec in _SETTINGS}
    unknown = sorted(
        name for name in environ if name.startswith(_ENV_PREFIX) and name not in known.values()
    )
    if not unknown:
        return
    described = []
    for name in unknown:
        # Compare what follows the shared prefix, or every name would look close to every other.
        close = difflib.get_close_matches(name.removeprefix(_ENV_PREFIX).upper(), known, n=1)
        described.append(f"{name} (did you mean {known[close[0]]}?)" if close else name)
    warnings.warn(
        f"otel-amplitude ignores unknown environment variables: {', '.join(described)}",
        ConfigWarning,
        stacklevel=3,
    )


# --- The reference documentation ---------------------------------------------------------------

_INTRO = """\
# Configuration reference

<!-- Generated from the fields of `Settings` in src/otel_amplitude/_settings.py by
     `.venv/bin/python -m otel_amplitude._settings > docs/configuration.md`.
     Edit those fields, not this file: a test fails when the two differ. -->

otel-amplitude reads its configuration from `AMPLITUDE_*` environment variables with
`Settings.from_env()`. Code can pass the same settings by field name, the variable's name in
lower case without the prefix (`AMPLITUDE_FLUSH_INTERVAL_MS` is `flush_interval_ms`): to
`Settings(...)`, or to `Settings.from_env(...)` to override a few variables.

- An empty variable counts as unset: the default applies.
- Integers are plain decimal digits: `100000`, not `100_000` or `1e5`. Booleans are `true` or
  `false`, `1` or `0`, `yes` or `no`, `on` or `off`, in any case.
- Every value is checked when the settings are made, from the environment or in code. All
  problems are reported together in one `ConfigError`, each naming the variable, the value and
  what is accepted. The value of a key is never shown, there or in the settings' `repr`.
- An unknown `AMPLITUDE_*` variable, such as the typo `AMPLITUDE_FLUSH_INTERVAL`, gives a
  `ConfigWarning` naming the closest known variable.
"""


def configuration_reference() -> str:
    """The Markdown of ``docs/configuration.md``: a table of the variables, then a section each."""
    lines = [_INTRO, "| Variable | Accepted values | Default |", "| --- | --- | --- |"]
    for _, spec in _SETTINGS:
        anchor = spec.env.lower()
        accepted = spec.parser.accepted.replace("|", "\\|")
        lines.append(f"| [`{spec.env}`](#{anchor}) | {accepted} | {_default_markdown(spec)} |")
    for name, spec in _SETTINGS:
        lines += [
            "",
            f"## `{spec.env}`",
            "",
            f"Field `{name}`. Default: {_default_markdown(spec)}.",
            "",
            spec.doc,
            "",
            f"Why this default: {spec.why}",
        ]
    return "\n".join(lines) + "\n"


def _default_markdown(spec: _Setting) -> str:
    return "not set" if spec.default is None else f"`{spec.parser.show(spec.default)}`"


if __name__ == "__main__":
    print(configuration_reference(), end="")

"""Destinations: which Amplitude project an event goes to, chosen by its tenant.

A SaaS product sends each customer's events to that customer's project, with that customer's
key and region. A :class:`Destination` is one such project; the single-project configuration
(``AMPLITUDE_API_KEY``, ``AMPLITUDE_SERVER_ZONE``) is the destination named ``default``.
Tenants are resolved through a TOML file (``AMPLITUDE_DESTINATIONS_FILE``, re-read when it or a
secret file it names changes) or through a resolver given in code. This module only reads and
validates; the dispatcher keeps each destination's buffers, pauses and figures.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import sys
import threading
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from ._log import RateLimitedLog
from ._settings import _INGESTION_HOSTS, _PRIVACY_HOSTS, ServerZone, _BaseURL, _InvalidValueError
from .exceptions import ConfigError

__all__ = [
    "DEFAULT",
    "Destination",
    "DestinationsFile",
    "Resolver",
    "Router",
    "check_tenant",
    "read_destinations",
]

#: The name of the destination configured by ``AMPLITUDE_API_KEY`` (events without a tenant).
DEFAULT = "default"
#: Longest tenant name: it is a rate-limit key, a metric attribute and a stats key.
MAX_TENANT_LENGTH = 128
#: How often the destinations file (and the secret files it names) are checked for changes.
POLL_SECONDS = 1.0
#: How long an unknown tenant is remembered as unknown before a resolver is asked again.
UNKNOWN_TTL_SECONDS = 5.0

_ZONES: tuple[str, ...] = typing.get_args(ServerZone)
_KEYS = (
    "api_key",
    "secret_key",
    "zone",
    "server_url",
    "environment",
    "max_events_per_second",
    "max_requests_per_second",
    "max_buffered_events",
)

#: Given a tenant name, its destination, or None when the tenant is unknown.
Resolver = Callable[[str], "Destination | None"]

_log = logging.getLogger("otel_amplitude")


def check_tenant(tenant: object) -> str:
    """``tenant`` if it can name a destination, else a ``ValueError`` saying why."""
    if not isinstance(tenant, str):
        raise ValueError(f"a tenant is a string, not {type(tenant).__name__}")
    size_ok = 0 < len(tenant) <= MAX_TENANT_LENGTH
    if not size_ok or not tenant.isprintable() or tenant.strip() != tenant:
        raise ValueError(
            f"a tenant is 1 to {MAX_TENANT_LENGTH} printable characters without surrounding"
            f" spaces, got {tenant!r:.40}"
        )
    return tenant


@dataclass(frozen=True, slots=True)
class Destination:
    """One Amplitude project: where its events go, with which key, and its own limits.

    ``zone`` picks Amplitude's US or EU hosts; ``server_url`` replaces them (a proxy, the test
    server). ``environment`` is a label shown in stats (``production``, ``staging``).
    ``max_events_per_second`` and ``max_requests_per_second`` cap this destination's sending
    (a Starter plan allows 1,000 events/s and 100 requests/s on HTTP V2);
    ``max_buffered_events`` is its share of the buffers. Keys never appear in the repr.
    """

    name: str
    api_key: str = field(repr=False)
    secret_key: str | None = field(default=None, repr=False)
    zone: ServerZone = "US"
    server_url: str | None = None
    environment: str | None = None
    max_events_per_second: float | None = None
    max_requests_per_second: float | None = None
    max_buffered_events: int | None = None

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ConfigError(_listed(f"destination {self.name!r}", problems))
        if self.server_url is not None:
            object.__setattr__(self, "server_url", _BaseURL().from_text(self.server_url.strip()))
        object.__setattr__(self, "zone", self.zone.upper())

    def ingestion_base(self, override: str | None = None) -> str:
        """Where its events go: its own ``server_url``, else ``override``, else its zone's host."""
        return self.server_url or override or _INGESTION_HOSTS[self.zone]

    def privacy_base(self, override: str | None = None) -> str:
        """Where its deletions go (User Privacy API), by the same rule."""
        return self.server_url or override or _PRIVACY_HOSTS[self.zone]


def _problems(d: Destination) -> list[str]:
    problems: list[str] = []
    try:
        check_tenant(d.name)
    except ValueError as error:
        problems.append(f"name: {error}")
    for key in ("api_key", "secret_key"):
        value = getattr(d, key)
        if value is None and key == "secret_key":
            continue
        if not isinstance(value, str) or not value or not all("!" <= c <= "~" for c in value):
            problems.append(f"{key} must be a non-empty key of printable ASCII without whitespace")
    if not isinstance(d.zone, str) or d.zone.upper() not in _ZONES:
        problems.append(f"zone must be one of {', '.join(_ZONES)}, got {d.zone!r:.40}")
    if d.server_url is not None:
        try:
            if not isinstance(d.server_url, str):
                raise _InvalidValueError(f"must be {_BaseURL.accepted}")
            _BaseURL().from_text(d.server_url.strip())
        except _InvalidValueError as invalid:
            problems.append(invalid.message("server_url", d.server_url))
    if d.environment is not None and (
        not isinstance(d.environment, str) or not 0 < len(d.environment) <= 64
    ):
        problems.append("environment must be a label of 1 to 64 characters")
    for key in ("max_events_per_second", "max_requests_per_second"):
        value = getattr(d, key)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value <= 0
        ):
            problems.append(f"{key} must be a positive number, got {value!r:.40}")
    limit = d.max_buffered_events
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        problems.append(f"max_buffered_events must be a positive integer, got {limit!r:.40}")
    return problems


def _listed(subject: str, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{subject}: {problems[0]}"
    return f"{subject} has {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


# -- the destinations file ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DestinationsFile:
    """What one read of the destinations file gave: the table, and every file it depends on."""

    destinations: Mapping[str, Destination]
    #: (path, signature) of the file and of every ``file:`` secret it names, to spot changes.
    signatures: tuple[tuple[str, tuple[int, int, int] | None], ...]


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def read_destinations(path: str, environ: Mapping[str, str] | None = None) -> DestinationsFile:
    """Read and validate the TOML destinations file at ``path``.

    One :class:`ConfigError` lists every problem, each naming the tenant and the key, never a
    key's value. Values of ``api_key`` and ``secret_key`` may be inline, ``env:NAME`` or
    ``file:/path`` (whose content, stripped, is the key).
    """
    environ = os.environ if environ is None else environ
    where = f"AMPLITUDE_DESTINATIONS_FILE={path}"
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file; create it or unset the variable") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({type(exc).__name__}: {exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc}); fix the file") from None
    problems: list[str] = []
    extra = sorted(set(document) - {"tenants"})
    if extra:
        problems.append(
            f"unknown top-level key(s) {', '.join(extra)}: the file holds one [tenants.NAME]"
            " table per tenant"
        )
    tenants = document.get("tenants", {})
    if not isinstance(tenants, dict):
        problems.append("'tenants' must be a table of [tenants.NAME] tables")
        tenants = {}
    elif not tenants:
        # Also what a reader sees of a file being rewritten in place: never "remove them all".
        problems.append("no [tenants.NAME] table: the file must name at least one tenant")
    destinations: dict[str, Destination] = {}
    secret_files: list[str] = []
    for name, table in tenants.items():
        subject = f"[tenants.{name}]"
        if name == DEFAULT:
            problems.append(
                f"{subject}: '{DEFAULT}' names the destination of AMPLITUDE_API_KEY; choose"
                " another tenant name"
            )
            continue
        if not isinstance(table, dict):
            problems.append(f"{subject} must be a table with at least api_key")
            continue
        found = _tenant_problems(subject, table, environ, secret_files)
        if found[0]:
            problems.extend(found[0])
            continue
        try:
            destinations[name] = Destination(name=name, **found[1])
        except ConfigError as error:
            problems.append(f"{subject}: {error}")
    if problems:
        raise ConfigError(_listed(where, problems))
    signatures = tuple((p, _signature(p)) for p in (path, *secret_files))
    return DestinationsFile(destinations, signatures)


def _tenant_problems(
    subject: str, table: dict[str, Any], environ: Mapping[str, str], secret_files: list[str]
) -> tuple[list[str], dict[str, Any]]:
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _KEYS:
            close = difflib.get_close_matches(key, _KEYS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f"; known keys: {', '.join(_KEYS)}"
            problems.append(f"{subject}: unknown key {key!r}{hint}")
            continue
        if key in ("api_key", "secret_key"):
            try:
                values[key] = _secret(value, environ, secret_files)
            except ValueError as error:
                problems.append(f"{subject} {key}: {error}")
            continue
        values[key] = value
    if "api_key" not in table:
        problems.append(f"{subject}: api_key is required")
    return problems, values


def _secret(value: object, environ: Mapping[str, str], secret_files: list[str]) -> str:
    """A key given inline, as ``env:NAME`` or as ``file:/path``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string: the key, env:NAME or file:/path")
    value = value.strip()
    if value.startswith("env:"):
        name = value[4:]
        found = environ.get(name, "").strip()
        if not found:
            raise ValueError(f"environment variable {name} is not set or empty")
        return found
    if value.startswith("file:"):
        path = value[5:]
        secret_files.append(path)
        try:
            with open(path, encoding="utf-8") as handle:
                found = handle.read().strip()
        except OSError as exc:
            raise ValueError(f"cannot read {path} ({type(exc).__name__})") from None
        if not found:
            raise ValueError(f"{path} is empty")
        return found
    return value


# -- routing ----------------------------------------------------------------------------------


class Router:
    """Resolves tenant names to destinations, and notices when the answer changes.

    Either ``path`` (the destinations file) or ``resolver`` (a callable, or a mapping) is the
    source. Used by the dispatcher thread (``lookup``, ``poll``) and by
    ``Client.reload_destinations`` (``reload``), under the dispatcher's lock or before it.
    """

    def __init__(
        self,
        *,
        path: str | None = None,
        resolver: Resolver | Mapping[str, Destination] | None = None,
        monotonic: Callable[[], float],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if path is not None and resolver is not None:
            raise ConfigError(
                "destinations come from AMPLITUDE_DESTINATIONS_FILE or from a resolver given in"
                " code, not both: unset the variable or drop the resolver"
            )
        self._path = path
        self._environ = environ
        self._monotonic = monotonic
        self._log = RateLimitedLog(monotonic)
        self._next_poll = 0.0
        self._changing: tuple[tuple[str, tuple[int, int, int] | None], ...] | None = None
        self._lock = threading.Lock()  # poll (dispatcher thread) against reload (any thread)
        self._refused: tuple[tuple[str, tuple[int, int, int] | None], ...] | None = None
        self.reload_errors = 0
        self.last_error: str | None = None
        self._file: DestinationsFile | None = None
        self._resolver: Resolver | None = None
        self._cache: dict[str, Destination] = {}
        self._unknown: dict[str, float] = {}
        if isinstance(resolver, Mapping):
            table = dict(resolver)
            for name, destination in table.items():
                if not isinstance(destination, Destination) or destination.name != name:
                    raise ConfigError(
                        f"destinations[{name!r}] must be a Destination named {name!r}"
                    )
            self._resolver = table.get
        elif resolver is not None:
            if not callable(resolver):
                raise ConfigError("destinations must be a mapping or a callable(tenant)")
            self._resolver = resolver
        if path is not None:
            self._file = read_destinations(path, environ)  # a bad file fails the client's start

    @property
    def active(self) -> bool:
        """Whether events are routed by tenant at all."""
        return self._file is not None or self._resolver is not None

    def lookup(self, tenant: str) -> Destination | None:
        """The tenant's destination, or None when it is unknown."""
        if self._file is not None:
            return self._file.destinations.get(tenant)
        found = self._cache.get(tenant)
        if found is not None or self._resolver is None:
            return found
        now = self._monotonic()
        if self._unknown.get(tenant, -math.inf) > now:
            return None
        try:
            found = self._resolver(tenant)
            if found is not None and not isinstance(found, Destination):
                raise TypeError(f"returned {type(found).__name__}, not a Destination")
        except Exception as exc:  # noqa: BLE001 - a resolver's failure drops the event, counted
            self._log.log(
                logging.ERROR,
                "resolver",
                "the destinations resolver failed for a tenant (%s: %s); its events are dropped"
                " as unknown_tenant",
                type(exc).__name__,
                exc,
            )
            found = None
        if found is None:
            if len(self._unknown) > 10_000:
                self._unknown.clear()
            self._unknown[tenant] = now + UNKNOWN_TTL_SECONDS
            return None
        self._cache[tenant] = found
        return found

    def poll(self) -> Mapping[str, Destination] | None:
        """The new table when the file (or a secret it names) changed; at most once a second.

        A change is read once it has stood still for one look (a second), so that a file
        being rewritten in place is not read half-written. A malformed new file is refused:
        logged (once a minute), counted in ``reload_errors``, and the previous table stays in
        force.
        """
        if self._path is None:
            return None
        now = self._monotonic()
        if now < self._next_poll:
            return None
        self._next_poll = now + POLL_SECONDS
        assert self._file is not None
        seen = tuple((p, _signature(p)) for p, _ in self._file.signatures)
        if seen == self._file.signatures:
            self._changing = None
            return None
        if seen != self._changing:
            self._changing = seen  # changed since the last look: read it at the next
            return None
        self._changing = None
        try:
            return self.reload()
        except ConfigError as error:
            self._log.log(
                logging.ERROR,
                "destinations-reload",
                "the changed destinations file was refused; the previous destinations stay in"
                " force until it is fixed: %s",
                error,
            )
            return None

    def reload(self) -> Mapping[str, Destination]:
        """Read the source again now: the whole new table (file), or the re-resolved cache.

        Raises :class:`ConfigError` for a malformed file, keeping the previous table.
        """
        if self._path is not None:
            with self._lock:
                assert self._file is not None
                seen = tuple((p, _signature(p)) for p, _ in self._file.signatures)
                try:
                    new = read_destinations(self._path, self._environ)
                except ConfigError as error:
                    if seen != self._refused:  # each bad version of the file counts once
                        self.reload_errors += 1
                        self._refused = seen
                    self.last_error = str(error)
                    # Look again only when the file changes again.
                    self._file = DestinationsFile(self._file.destinations, seen)
                    raise
                self._file = new
                self._refused = None
                self.last_error = None
                return new.destinations
        self._unknown.clear()
        table: dict[str, Destination] = {}
        for tenant in list(self._cache):
            self._cache.pop(tenant)
            found = self.lookup(tenant)
            if found is not None:
                table[tenant] = found
        return table

    def known(self) -> Mapping[str, Destination]:
        """The destinations known now (the file's, or those resolved so far)."""
        if self._file is not None:
            return self._file.destinations
        return dict(self._cache)

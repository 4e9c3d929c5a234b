"""Consent: who may be sent to Amplitude, checked in front of the buffers on every path.

``Client.submit`` (which the logging handler, the structlog processor, both OpenTelemetry
exporters and ``track`` all go through) asks :class:`Gate` first: two dict lookups, no lock, no
I/O, and a single attribute check when nothing is recorded in opt-out mode. The dispatcher asks
again through :meth:`Consent.screen` as an event enters the buffers and before any resend, where
the PII policy is applied too. Changes are made durable in the store before a call returns, and
an opt-out or a deletion removes the subject's buffered and retrying events before it returns.

Rules, in order: a ``deleted`` user (forever) or an ``opted_out`` user or device is dropped
(counted by that name); in ``opt_in`` mode an event is then sent only when its user, or its
device when it has no user, has opted in (else dropped, counted ``no_consent``).

With destinations, each of these can be scoped to one tenant (``tenant=``): it then applies only
to that tenant's events, and a deletion goes to that tenant's project with its secret key. A
scoped record is kept under the subject ``tenant + "\x1f" + id``, so every store keeps it as is.
Unscoped records (the default) apply to every destination.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, TypedDict

from ._clock import Clock
from ._consent_store import (
    SCOPE,
    Change,
    ConsentStore,
    ConsentStoreError,
    Kind,
    MemoryConsentStore,
    Snapshot,
    SQLiteConsentStore,
    State,
)
from ._deletion import DeletionWorker, Target
from ._destinations import Destination, check_tenant
from ._event import Event
from ._log import RateLimitedLog
from ._pii import Scrubber
from ._settings import Settings
from .exceptions import ConfigError

if TYPE_CHECKING:
    from ._destinations import Router
    from ._dispatcher import Dispatcher

__all__ = [
    "Consent",
    "ConsentStats",
    "Gate",
    "Status",
    "consent_status",
    "delete_user",
    "open_store",
    "opt_in",
    "opt_out",
    "project_of",
]

Status = Literal["opted_in", "opted_out", "deleted", "unknown"]

_MAX_REQUESTER = 1024


class ConsentStats(TypedDict):
    """Consent and deletion figures for ``client.consent.stats()``."""

    pending_deletions: int
    deletions_waiting_for: str | None
    deletion_requests: int
    deleted_users: int
    invalid_ids: int
    deletion_failures: int
    deletion_throttled: int


class Gate:
    """The consent check on the caller's thread: lookups in dicts that writers replace or grow.

    ``active`` is False only when no check can refuse anything (opt-out mode, nothing recorded),
    so ``Client.submit`` skips the call. ``ready`` is False while a shared store could not be
    read yet: events are then dropped (``consent_unavailable``) rather than risk one of a user
    who opted out.
    """

    __slots__ = ("active", "devices", "opt_in", "ready", "scoped", "users")

    def __init__(self, *, opt_in: bool) -> None:
        self.users: dict[str, State] = {}
        self.devices: dict[str, State] = {}
        self.opt_in = opt_in
        self.ready = True
        self.active = opt_in
        self.scoped = False  # some record applies to one tenant only

    def refuse(self, event: Event) -> str | None:
        """The reason to drop ``event``, or None to send it."""
        if self.opt_in or not self.ready or self.scoped:
            return self.check(event.user_id, event.device_id, event.destination)
        # Opt-out mode, inlined: this runs on the caller's thread for every event.
        user_id = event.user_id
        if user_id is not None:
            state = self.users.get(user_id)
            if state is not None and state != "opted_in":
                return state
        if self.devices:
            device_id = event.device_id
            if device_id is not None:
                state = self.devices.get(device_id)
                if state is not None and state != "opted_in":
                    return state
        return None

    def check(self, user_id: str | None, device_id: str | None, tenant: str = "") -> str | None:
        """The reason to drop anything about this user or device (at ``tenant``), or None."""
        if not self.ready:
            return "consent_unavailable"
        scope = tenant + SCOPE if self.scoped and tenant else None
        user_state: State | None = None
        if user_id is not None:
            user_state = _state(self.users, user_id, scope)
            if user_state is not None and user_state != "opted_in":
                return user_state
        device_state: State | None = None
        if device_id is not None and self.devices:
            device_state = _state(self.devices, device_id, scope)
            if device_state is not None and device_state != "opted_in":
                return device_state
        if self.opt_in and (user_state if user_id is not None else device_state) != "opted_in":
            return "no_consent"
        return None

    def refresh(self) -> None:
        self.active = self.opt_in or not self.ready or bool(self.users) or bool(self.devices)

    def __repr__(self) -> str:
        return (
            f"Gate(opt_in={self.opt_in}, users={len(self.users)}, "
            f"devices={len(self.devices)}, ready={self.ready})"
        )


def project_of(api_key: str | None) -> str:
    """A stable, non-secret name for an Amplitude project: deletion jobs are kept per project."""
    if not api_key:
        return "no-api-key"
    return hashlib.sha256(b"otel-amplitude:" + api_key.encode("utf-8")).hexdigest()[:16]


def open_store(settings: Settings) -> ConsentStore:
    """The store the settings ask for: Redis, SQLite, or memory."""
    if settings.consent_redis_url is not None:
        from ._consent_redis import RedisConsentStore

        return RedisConsentStore(settings.consent_redis_url)
    if settings.consent_db is not None:
        try:
            return SQLiteConsentStore(settings.consent_db)
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(
                f"AMPLITUDE_CONSENT_DB cannot be opened as an SQLite database "
                f"({type(exc).__name__}: {exc}), got {settings.consent_db!r}: point it at a "
                "writable file path"
            ) from None
    return MemoryConsentStore()


class Consent:
    """The consent API of one client: ``client.consent``.

    ``opt_out``, ``opt_in`` and ``delete_user`` take effect in this process at once, are
    durable in the store when they return, and reach the other processes sharing the store
    within about a second. ``status`` reads memory only.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock,
        dispatcher: Callable[[], Dispatcher],
        store: ConsentStore | None = None,
        router: Router | None = None,
    ) -> None:
        self._settings = settings
        self._router = router if router is not None and router.active else None
        self._tenant_workers: dict[str, DeletionWorker] = {}
        self._dispatcher = dispatcher
        self._store = store if store is not None else open_store(settings)
        self._scrubber = Scrubber(
            settings.pii, keys=settings.pii_keys, salt=settings.pii_salt, send_ip=settings.send_ip
        )
        self._project = project_of(settings.api_key)
        self._clock = clock
        self._deleted: set[str] = set()
        self.gate = Gate(opt_in=settings.consent_mode == "opt_in")
        self._worker = DeletionWorker(settings, clock, self._store, self._project)
        self._closed = False
        self._reset_locks()
        try:
            snapshot = self._store.load()
        except Exception as exc:  # noqa: BLE001 - e.g. Redis down at start: fail closed, retry later
            self.gate.ready = False
            self.gate.refresh()
            self._log.log(
                logging.WARNING,
                "load",
                "the consent store could not be read (%s): events are dropped as"
                " consent_unavailable until it can",
                type(exc).__name__,
            )
        else:
            self._swap(snapshot)
        self._resume_deletions()
        self._resume_tenant_deletions()
        _instances.add(self)

    def _reset_locks(self) -> None:
        self._lock = threading.Lock()
        self._log = RateLimitedLog(self._clock.monotonic)
        self._secret_log = RateLimitedLog(self._clock.monotonic, interval=3600.0)

    @property
    def mode(self) -> str:
        """``opt_out`` or ``opt_in`` (``AMPLITUDE_CONSENT_MODE``)."""
        return "opt_in" if self.gate.opt_in else "opt_out"

    @property
    def store(self) -> ConsentStore:
        return self._store

    # -- the public API -----------------------------------------------------------------------

    def opt_out(
        self, user_id: str | None = None, *, device_id: str | None = None, tenant: str | None = None
    ) -> Status:
        """Stop sending anything about this user (or device); drop what is buffered for it.

        Everywhere by default; with ``tenant``, only to that tenant's destination.
        """
        kind, subject = _subject(user_id, device_id, tenant)
        failure: Exception | None = None
        with self._lock:
            self._apply(kind, subject, "opted_out")  # blocked before anything else
            try:
                self._apply(kind, subject, self._store.record(kind, subject, "opted_out"))
            except Exception as exc:  # noqa: BLE001 - reported below, after the purge
                failure = exc
        reason = self._status(kind, subject)  # opted_out, or deleted if it was before
        if kind == "user":
            self._purge(reason, {subject}, set())
        else:
            self._purge(reason, set(), {subject})
        if failure is not None:
            raise ConsentStoreError(
                f"the opt-out is applied in this process but the consent store could not record"
                f" it ({type(failure).__name__}); call opt_out again"
            ) from failure
        return self._status(kind, subject)

    def opt_in(
        self, user_id: str | None = None, *, device_id: str | None = None, tenant: str | None = None
    ) -> Status:
        """Record consent for this user (or device), everywhere or for one ``tenant``.

        A deleted user stays deleted; an opt-out everywhere wins over a tenant's opt-in.
        """
        kind, subject = _subject(user_id, device_id, tenant)
        with self._lock:
            try:
                state = self._store.record(kind, subject, "opted_in")
            except Exception as exc:
                raise ConsentStoreError(
                    f"the consent store could not record the opt-in ({type(exc).__name__});"
                    " nothing changed"
                ) from exc
            self._apply(kind, subject, state)
        return self._status(kind, subject)

    def status(
        self, user_id: str | None = None, *, device_id: str | None = None, tenant: str | None = None
    ) -> Status:
        """``opted_in``, ``opted_out``, ``deleted`` or ``unknown`` (nothing recorded).

        With ``tenant``: the record for that tenant, else the one for every destination.
        """
        kind, subject = _subject(user_id, device_id, tenant)
        status = self._status(kind, subject)
        if tenant is not None:
            everywhere = self._status(kind, subject.partition(SCOPE)[2])
            if everywhere in ("deleted", "opted_out") or status == "unknown":
                return everywhere
        return status

    def delete_user(
        self, user_id: str, requester: str | None = None, *, tenant: str | None = None
    ) -> None:
        """Block the user forever, drop their buffered events, and have Amplitude delete them.

        The deletion request is queued in the store and sent in the background (batched, at
        most one request a second); a restart resumes it. ``requester`` is recorded by
        Amplitude for audit. Needs ``AMPLITUDE_SECRET_KEY`` to be sent; without it the user is
        still blocked and the request waits.

        With ``tenant``, the user is blocked for that tenant only and the deletion goes to that
        tenant's project, with its ``secret_key`` from the destinations. Without, the user is
        blocked everywhere and deleted from the default project only: the same id in another
        customer's project may be another person.
        """
        if tenant is not None:
            self._destination(tenant)  # fails early for a tenant without a destination
        kind, subject = _subject(user_id, None, tenant)
        if requester is not None and (
            not isinstance(requester, str) or not requester or len(requester) > _MAX_REQUESTER
        ):
            raise ValueError(f"requester must be a non-empty string of at most {_MAX_REQUESTER}")
        with self._lock:
            self._apply(kind, subject, "deleted")
        self._purge("deleted", {subject}, set())
        with self._lock:
            try:
                # A tenant's job holds the scoped subject, so that the store records the block
                # for that tenant only; the worker sends the plain id.
                self._store.record_deletion(
                    self._project if tenant is None else _tenant_project(tenant), subject, requester
                )
            except Exception as exc:
                raise ConsentStoreError(
                    "the user is blocked and their buffered events dropped in this process, but"
                    f" the consent store could not record the deletion ({type(exc).__name__});"
                    " call delete_user again"
                ) from exc
        if tenant is None:
            self._start_deletions()
        else:
            self._start_tenant_deletions(tenant)

    def pending_deletions(self, tenant: str | None = None) -> int:
        """How many user deletions wait to be sent to Amplitude (default project, or tenant's)."""
        project = self._project if tenant is None else _tenant_project(tenant)
        return self._store.pending_deletions(project)

    def stats(self) -> ConsentStats:
        """Deletion figures, and what pending deletions wait for (None: nothing)."""
        worker = self._worker.stats()
        return ConsentStats(
            pending_deletions=self.pending_deletions(),
            deletions_waiting_for=self._missing(),
            deletion_requests=worker["deletion_requests"],
            deleted_users=worker["deleted_users"],
            invalid_ids=worker["invalid_ids"],
            deletion_failures=worker["deletion_failures"],
            deletion_throttled=worker["deletion_throttled"],
        )

    def refuses(self, user_id: str | None, device_id: str | None) -> str | None:
        """Why nothing about this user or device may be sent (Identify, ...), or None."""
        return self.gate.check(user_id, device_id)

    # -- the pipeline's side ------------------------------------------------------------------

    def screen(self, event: Event) -> str | None:
        """The dispatcher's check as an event enters the buffers or is resent: consent, PII."""
        gate = self.gate
        if gate.active:
            refused = gate.refuse(event)
            if refused is not None:
                return refused
        try:
            reason = self._scrubber.scrub(event)
        except Exception as exc:  # noqa: BLE001 - fail closed: send no property rather than PII
            event.event_properties = None
            event.user_properties = None
            self._log.log(
                logging.ERROR,
                "scrub",
                "scrubbing an event's properties failed (%s); its properties were dropped",
                type(exc).__name__,
            )
            return None
        if reason == "pii_user_id":
            self._log.log(
                logging.WARNING,
                "pii-user-id",
                "an event was dropped because its user_id is an email address"
                " (AMPLITUDE_PII=redact): send another id, or set AMPLITUDE_PII=hash to send it"
                " hashed",
            )
        return reason

    def start(self) -> None:
        """Start hearing about other processes' changes (at the client's first event)."""
        if self._closed:
            return
        try:
            self._store.watch(self)
        except Exception as exc:  # noqa: BLE001 - the store's own thread keeps trying
            self._log.log(
                logging.WARNING,
                "watch",
                "catching up with the consent store failed (%s); retrying in the background",
                type(exc).__name__,
            )

    def update(self, read: Callable[[], Snapshot | Sequence[Change] | None]) -> None:
        """Apply a store's news (see :class:`~otel_amplitude._consent_store.Watcher`).

        Subjects newly blocked elsewhere get their buffered events purged here too.
        """
        blocked: dict[str, tuple[set[str], set[str]]] = {}
        with self._lock:
            result = read()
            if result is None:
                return
            gate = self.gate
            if isinstance(result, Snapshot):
                before_users, before_devices = gate.users, gate.devices
                self._swap(result)
                for user_id, state in gate.users.items():
                    if state != "opted_in" and before_users.get(user_id) != state:
                        blocked.setdefault(state, (set(), set()))[0].add(user_id)
                for device_id, state in gate.devices.items():
                    if state != "opted_in" and before_devices.get(device_id) != state:
                        blocked.setdefault(state, (set(), set()))[1].add(device_id)
            else:
                for kind, subject, state in result:
                    table = gate.users if kind == "user" else gate.devices
                    before = table.get(subject)
                    self._apply(kind, subject, state)
                    after = table.get(subject)
                    if after is not None and after not in ("opted_in", before):
                        blocked.setdefault(after, (set(), set()))[kind == "device"].add(subject)
        for reason, (users, devices) in blocked.items():
            self._purge(reason, users, devices)

    def close(self, deadline: float | None = None) -> None:
        """Stop the deletion worker and the store's watcher (at client shutdown)."""
        if deadline is None:
            deadline = time.monotonic() + 5.0
        self._closed = True
        self._worker.stop(deadline)
        for worker in self._tenant_workers.values():
            worker.stop(deadline)
        self._store.close()

    # -- inside -------------------------------------------------------------------------------

    def _status(self, kind: Kind, subject: str) -> Status:
        table = self.gate.users if kind == "user" else self.gate.devices
        return table.get(subject, "unknown")

    def _apply(self, kind: Kind, subject: str, state: State) -> None:
        """Record ``state`` in memory (under ``_lock``); ``deleted`` is never overwritten."""
        table = self.gate.users if kind == "user" else self.gate.devices
        if table.get(subject) == "deleted":
            return
        table[subject] = state
        if kind == "user":
            if state == "deleted":
                self._deleted.add(subject)
            alias = self._alias(subject)
            if alias is not None and table.get(alias) != "deleted":
                table[alias] = state
        if SCOPE in subject:
            self.gate.scoped = True
        self.gate.refresh()

    def _alias(self, subject: str) -> str | None:
        """The subject under the user id events carry in hash mode (scoped ones kept scoped)."""
        tenant, scoped, user_id = subject.rpartition(SCOPE)
        alias = self._scrubber.user_id_alias(user_id)
        return None if alias is None else tenant + scoped + alias

    def _swap(self, snapshot: Snapshot) -> None:
        """Replace what is known by ``snapshot`` (under ``_lock``); deleted users stay deleted."""
        gate = self.gate
        if snapshot.complete:
            users = dict(snapshot.users)
            devices = dict(snapshot.devices)
        else:
            users = {**gate.users, **snapshot.users}
            devices = {**gate.devices, **snapshot.devices}
        for user_id, state in users.items():
            if state == "deleted":
                self._deleted.add(user_id)
        for user_id in self._deleted:
            users[user_id] = "deleted"
        if self._scrubber.mode == "hash":
            for user_id, state in list(users.items()):
                alias = self._alias(user_id)
                if alias is not None and users.get(alias) != "deleted":
                    users[alias] = state
        gate.scoped = any(SCOPE in s for s in users) or any(SCOPE in s for s in devices)
        gate.users = users
        gate.devices = devices
        gate.ready = True
        gate.refresh()

    def _purge(self, reason: str, users: set[str], devices: set[str]) -> None:
        """Drop buffered and retrying events of these users and devices, counted as ``reason``."""
        dispatcher = self._dispatcher()
        if dispatcher.closed or not (users or devices):
            return
        for user_id in list(users):
            alias = self._alias(user_id)
            if alias is not None:
                users.add(alias)
        scoped = any(SCOPE in s for s in users) or any(SCOPE in s for s in devices)

        def matches(event: Event) -> bool:
            if event.user_id in users or event.device_id in devices:
                return True
            if not scoped or not event.destination:
                return False
            prefix = event.destination + SCOPE
            return (event.user_id is not None and prefix + event.user_id in users) or (
                event.device_id is not None and prefix + event.device_id in devices
            )

        dispatcher.purge(matches, reason, users=users, devices=devices)

    def _missing(self) -> str | None:
        if not self._settings.enabled:
            return "AMPLITUDE_ENABLED"
        if not self._settings.secret_key:
            return "AMPLITUDE_SECRET_KEY"
        return None

    def _resume_deletions(self) -> None:
        try:
            pending = self.pending_deletions()
        except Exception:  # noqa: BLE001 - the store is unavailable: the next delete_user retries
            return
        if pending:
            self._start_deletions(pending)

    def _start_deletions(self, pending: int | None = None) -> None:
        missing = self._missing()
        if missing is None:
            if not self._closed:
                self._worker.start()
                self._worker.wake()
            return
        if pending is None:
            pending = self.pending_deletions()
        if missing == "AMPLITUDE_SECRET_KEY":
            self._secret_log.log(
                logging.ERROR,
                "no-secret-key",
                "%d user deletions are pending but cannot be sent to Amplitude:"
                " AMPLITUDE_SECRET_KEY is not set. The users are blocked and their buffered"
                " events dropped; set AMPLITUDE_SECRET_KEY to the project's secret key so that"
                " Amplitude deletes their data (the deletions are kept until then)",
                pending,
            )
        else:
            self._secret_log.log(
                logging.WARNING,
                "disabled",
                "%d user deletions are pending and are not sent while AMPLITUDE_ENABLED=false",
                pending,
            )

    # -- tenants ------------------------------------------------------------------------------

    def _destination(self, tenant: str) -> Destination:
        destination = None if self._router is None else self._router.lookup(tenant)
        if destination is None:
            raise ValueError(
                f"tenant {tenant!r} has no destination: add it to AMPLITUDE_DESTINATIONS_FILE (or"
                " the resolver) before deleting its users"
            )
        return destination

    def _tenant_target(self, tenant: str) -> Target:
        """A tenant's credentials and privacy host, looked up at each send (key rotation)."""
        destination = None if self._router is None else self._router.lookup(tenant)
        keys = f"tenant {tenant!r}'s api_key and secret_key in the destinations"
        if destination is None:
            return Target(None, None, self._settings.deletions_url, keys)
        url = destination.privacy_base(self._settings.server_url) + "/api/2/deletions/users"
        return Target(destination.api_key, destination.secret_key, url, keys)

    def _start_tenant_deletions(self, tenant: str) -> None:
        destination = None if self._router is None else self._router.lookup(tenant)
        if destination is None or not destination.secret_key or not self._settings.enabled:
            self._secret_log.log(
                logging.ERROR,
                f"no-secret-key:{tenant}",
                "user deletions for tenant %r are pending but cannot be sent: %s. The users are"
                " blocked for that tenant and their buffered events dropped; the deletions are"
                " kept until then",
                tenant,
                "delivery is disabled (AMPLITUDE_ENABLED=false)"
                if not self._settings.enabled
                else "its destination has no secret_key",
            )
            return
        worker = self._tenant_workers.get(tenant)
        if worker is None:
            worker = self._tenant_workers[tenant] = DeletionWorker(
                self._settings,
                self._clock,
                self._store,
                _tenant_project(tenant),
                target=lambda: self._tenant_target(tenant),
            )
        if not self._closed:
            worker.start()
            worker.wake()

    def _resume_tenant_deletions(self) -> None:
        if self._router is None:
            return
        for tenant in self._router.known():
            try:
                pending = self.pending_deletions(tenant)
            except Exception:  # noqa: BLE001 - the store is unavailable: the next call retries
                return
            if pending:
                self._start_tenant_deletions(tenant)

    def _after_fork_in_child(self) -> None:
        self._reset_locks()
        self._worker.after_fork_in_child()
        for worker in self._tenant_workers.values():
            worker.after_fork_in_child()
        self._store.after_fork_in_child()

    def __repr__(self) -> str:
        return f"Consent(mode={self.mode!r}, store={self._store!r})"


def _state(table: dict[str, State], subject: str, scope: str | None) -> State | None:
    """A subject's state: a block everywhere wins, then its tenant's record, then everywhere's."""
    everywhere = table.get(subject)
    if scope is None or (everywhere is not None and everywhere != "opted_in"):
        return everywhere
    own = table.get(scope + subject)
    return everywhere if own is None else own


def _tenant_project(tenant: str) -> str:
    """The deletion jobs of a tenant are kept under its name, which outlives key rotations."""
    return f"tenant:{tenant}"


def _subject(
    user_id: str | None, device_id: str | None, tenant: str | None = None
) -> tuple[Kind, str]:
    kind, subject = _plain_subject(user_id, device_id)
    if SCOPE in subject:
        raise TypeError(f"{kind}_id must not contain the control character \\x1f")
    if tenant is None:
        return kind, subject
    try:
        return kind, check_tenant(tenant) + SCOPE + subject
    except ValueError as error:
        raise TypeError(str(error)) from None


def _plain_subject(user_id: str | None, device_id: str | None) -> tuple[Kind, str]:
    if (user_id is None) == (device_id is None):
        raise TypeError("give exactly one of user_id or device_id")
    if user_id is not None:
        if not isinstance(user_id, str) or not user_id:
            raise TypeError("user_id must be a non-empty string")
        return "user", user_id
    assert device_id is not None
    if not isinstance(device_id, str) or not device_id:
        raise TypeError("device_id must be a non-empty string")
    return "device", device_id


# -- module-level shortcuts, on the process-wide client --------------------------------------------


def opt_out(
    user_id: str | None = None, *, device_id: str | None = None, tenant: str | None = None
) -> Status:
    """``default_client().consent.opt_out(...)``."""
    from ._client import default_client

    return default_client().consent.opt_out(user_id, device_id=device_id, tenant=tenant)


def opt_in(
    user_id: str | None = None, *, device_id: str | None = None, tenant: str | None = None
) -> Status:
    """``default_client().consent.opt_in(...)``."""
    from ._client import default_client

    return default_client().consent.opt_in(user_id, device_id=device_id, tenant=tenant)


def consent_status(
    user_id: str | None = None, *, device_id: str | None = None, tenant: str | None = None
) -> Status:
    """``default_client().consent.status(...)``."""
    from ._client import default_client

    return default_client().consent.status(user_id, device_id=device_id, tenant=tenant)


def delete_user(user_id: str, requester: str | None = None, *, tenant: str | None = None) -> None:
    """``default_client().consent.delete_user(...)``."""
    from ._client import default_client

    default_client().consent.delete_user(user_id, requester, tenant=tenant)


# -- fork ------------------------------------------------------------------------------------------

_instances: weakref.WeakSet[Consent] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for consent in list(_instances):
        consent._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

"""``Client``: the one delivery pipeline every integration feeds.

The caller's side is deliberately tiny: ``submit`` appends to a deque and returns. It takes no
lock, does no I/O and calls nothing that releases the GIL, so it never waits on the background
threads. Everything else happens in the dispatcher (see ``_dispatcher``).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from opentelemetry.metrics import MeterProvider

from ._clock import Clock, SystemClock
from ._consent import Consent
from ._context import current_identity
from ._destinations import Destination, Resolver, Router, check_tenant
from ._dispatcher import DeadLetterCallback, Deferred, Dispatcher
from ._event import Event
from ._health import Health, health
from ._identify import IDENTIFY, operations
from ._metrics import MetricsObserver
from ._settings import Settings
from ._spool import Spool, open_spool
from ._stats import Stats
from ._validate import make_event, new_event
from .exceptions import ConfigError, InvalidEventError

__all__ = ["Client", "default_client"]

_clients: weakref.WeakSet[Client] = weakref.WeakSet()
_TRANSIT_SLACK = 10_000
#: Users whose last accepted $set values identify() remembers.
_IDENTIFIED_USERS = 10_000
_exit_hook_lock = threading.Lock()
_exit_hook_registered = False


class Client:
    """Batches events per user and device and delivers them to Amplitude in the background.

    One client serves a whole process; integrations use :func:`default_client` unless given
    one. Threads start on the first event, stop at :meth:`shutdown` or at interpreter exit
    (bounded by ``AMPLITUDE_SHUTDOWN_TIMEOUT_MS``), and start afresh in a forked child, which
    never resends its parent's events.

    ``name`` tells clients apart in the library's metrics (their ``client`` attribute);
    ``meter_provider`` is where those metrics go, by default the global one (a no-op until the
    application sets one, whenever it does).

    ``destinations`` routes events by tenant to several Amplitude projects: a mapping of tenant
    names to :class:`Destination`, or a callable ``tenant -> Destination | None`` (called on the
    dispatcher thread the first time a tenant is seen, so keep it fast; its answers are kept
    until :meth:`reload_destinations`). ``AMPLITUDE_DESTINATIONS_FILE`` does the same from a file.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        on_dead_letter: DeadLetterCallback | None = None,
        name: str = "default",
        meter_provider: MeterProvider | None = None,
        destinations: Resolver | Mapping[str, Destination] | None = None,
    ) -> None:
        settings = settings if settings is not None else Settings.from_env()
        if not isinstance(name, str) or not 0 < len(name) <= 64 or not name.isprintable():
            raise ConfigError(
                f"Client name must be 1 to 64 printable characters, got {name!r:.80}: it is the "
                "'client' attribute of the library's metrics, so keep it short and fixed"
            )
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._router = Router(
            path=settings.destinations_file,
            resolver=destinations,
            monotonic=self._clock.monotonic,
        )
        if settings.enabled and not settings.api_key and not self._router.active:
            raise ConfigError(
                "AMPLITUDE_API_KEY is required to send events: set it to your Amplitude "
                "project's API key, or set AMPLITUDE_ENABLED=false to run without sending"
            )
        self._settings = settings
        # Read on every track(): kept here, one attribute away (none of them ever changes).
        self._prefix = settings.event_prefix
        self._min_id_length = settings.min_id_length
        self._routes_tenants = self._router.active
        self._on_dead_letter = on_dead_letter
        self._closed = False
        self._name = name
        self._observer = MetricsObserver(
            self.stats,
            name=name,
            endpoint="batch" if settings.use_batch else "httpapi",
            meter_provider=meter_provider,
        )
        self.consent = Consent(
            settings,
            clock=self._clock,
            dispatcher=lambda: self._dispatcher,
            router=self._router,
        )
        """Opt-outs, opt-ins, deletions: see :class:`~otel_amplitude._consent.Consent`."""
        self._new_pipeline()
        _clients.add(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> Client:
        """A client configured from ``AMPLITUDE_*`` environment variables."""
        return cls(Settings.from_env(environ), **kwargs)

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def routes_tenants(self) -> bool:
        """Whether events go to the destination of their tenant (destinations configured)."""
        return self._router.active

    def reload_destinations(self) -> list[str]:
        """Read the destinations again now (the file, or the resolver for known tenants).

        A destination whose key or host changed resumes at once and delivers what it kept; one
        that is gone has its buffered events dropped (counted ``destination_removed``).
        Returns the tenant names now in force. Raises :class:`ConfigError` for a malformed
        file, and the previous destinations stay in force.
        """
        table = self._router.reload()
        self._dispatcher.apply_destinations(table)
        return sorted(table)

    def _new_pipeline(self) -> None:
        """Fresh state and no threads: at construction, and in a forked child."""
        self._dispatcher = Dispatcher(
            self._settings,
            self._clock,
            on_dead_letter=self._on_dead_letter,
            observer=self._observer,
            screen=self.consent.screen,
            router=self._router,
            spool=self._open_spool(),
        )
        self._gate = self.consent.gate
        # health(): snapshots of earlier calls, oldest first, from a fresh zero at this moment.
        self._health_lock = threading.Lock()
        self._health_samples: deque[tuple[float, Stats | None]] = deque(
            [(self._clock.monotonic(), None)]
        )
        # Last $set values Amplitude accepted, per user (bounded): lets identify() skip repeats.
        self._identified: dict[str, dict[str, Any]] = {}
        self._dispatcher.on_identified = self._remember_identified
        self._inbound = self._dispatcher.inbound
        self._wake = self._dispatcher.wake
        # The deque between callers and the dispatcher is transit, not storage: the overflow
        # policy is applied by the dispatcher. This cap only bounds memory should the dispatcher
        # fall far behind; past it, new events are dropped (counted as overflow).
        self._inbound_limit = self._settings.max_buffered_events + _TRANSIT_SLACK
        self._wake_at = self._settings.flush_max_events
        self._refusal = "shutdown" if self._closed else "disabled"
        self._accepting = self._settings.enabled and not self._closed
        self._started = False
        self._start_lock = threading.Lock()
        if self._dispatcher.spool is not None and self._dispatcher.spool.rows:
            self._start()  # what an earlier process left is delivered now, not at a first event

    def _open_spool(self) -> Spool | None:
        """This process's segment of ``AMPLITUDE_SPOOL_DIR`` (orphans adopted), or None."""
        settings = self._settings
        if settings.spool_dir is None or not settings.enabled or self._closed:
            return None
        return open_spool(
            settings.spool_dir,
            max_bytes=settings.spool_max_mb * 1_000_000,
            sync_ms=settings.spool_sync_ms,
        )

    # -- the caller's side ------------------------------------------------------------------

    def track(
        self,
        event_type: str,
        *,
        user_id: str | None = None,
        device_id: str | None = None,
        event_properties: Mapping[str, Any] | None = None,
        user_properties: Mapping[str, Any] | None = None,
        time: Any = None,
        insert_id: str | None = None,
        tenant: str | None = None,
        **amplitude_fields: Any,
    ) -> str:
        """Validate an event and queue it for delivery; return its ``insert_id``.

        ``amplitude_fields`` are Amplitude's other top-level fields (``session_id``,
        ``app_version``, ``platform``, ``revenue``, ...). ``tenant`` picks the destination
        (default: the one bound with ``bind(tenant=...)``, else the default project). Raises
        :class:`InvalidEventError` naming the field when the event cannot be sent; never blocks.
        """
        prefix = self._prefix
        event = new_event(
            prefix + event_type if prefix and isinstance(event_type, str) else event_type,
            user_id,
            device_id,
            time,
            insert_id,
            event_properties,
            user_properties,
            amplitude_fields or None,
            self._min_id_length,
            None,
            False,
        )
        if tenant is not None or self._routes_tenants:
            event.destination = self._tenant(tenant)
        self.submit(event)
        return event.insert_id

    def _tenant(self, tenant: str | None) -> str:
        """The destination name of an event: ``tenant``, else the bound one, else default."""
        if tenant is None:
            if not self._router.active:
                return ""
            bound = current_identity()
            return "" if bound is None or bound.tenant is None else bound.tenant
        if not self._router.active:
            raise InvalidEventError(
                "tenant",
                "no destinations are configured: set AMPLITUDE_DESTINATIONS_FILE or pass"
                " destinations= to Client, or leave tenant out",
            )
        try:
            return check_tenant(tenant)
        except ValueError as error:
            raise InvalidEventError("tenant", str(error)) from None

    def submit(self, event: Event) -> None:
        """Queue a validated event: an O(1) append, no lock, no I/O, never a wait."""
        if not self._started:
            self._start()
        gate = self._gate
        if gate.active and (refused := gate.refuse(event)) is not None:
            self._inbound.append(refused)  # opted out, deleted, no consent: counted as dropped
            return
        inbound = self._inbound
        if len(inbound) >= self._inbound_limit:
            inbound.append("overflow")  # counted as dropped by the dispatcher
            return
        inbound.append(event if self._accepting else self._refusal)
        if len(inbound) == self._wake_at:
            self._wake.set()  # a full batch is waiting: no need to wait for the flush interval

    def _defer(self, builder: Deferred) -> None:
        """Queue an event to be built on the dispatcher's thread (integrations' fast path).

        The consent gate and PII screen apply when it is built, before it is buffered.
        """
        if not self._started:
            self._start()
        inbound = self._inbound
        if len(inbound) >= self._inbound_limit:
            inbound.append("overflow")
            return
        inbound.append(builder if self._accepting else self._refusal)
        if len(inbound) == self._wake_at:
            self._wake.set()

    def identify(
        self,
        user_id: str | None = None,
        device_id: str | None = None,
        *,
        set: Mapping[str, Any] | None = None,
        set_once: Mapping[str, Any] | None = None,
        add: Mapping[str, Any] | None = None,
        append: Mapping[str, Any] | None = None,
        prepend: Mapping[str, Any] | None = None,
        unset: Sequence[str] | None = None,
        tenant: str | None = None,
        **amplitude_fields: Any,
    ) -> bool:
        """Queue a user-property update for Amplitude's Identify API; False if it was skipped.

        It travels with the user's events, in order, through the same buffers, throttles and
        retries. Consecutive updates of one user are merged into one identification when sent.
        An update that only ``$set``s the values last accepted for that user is skipped (it
        would change nothing but would count against Amplitude's 1,800 updates per user and
        hour). Raises :class:`InvalidEventError` for an update that cannot be sent.
        """
        ops = operations(
            set=set, set_once=set_once, add=add, append=append, prepend=prepend, unset=unset
        )
        if not ops:
            raise InvalidEventError("user_properties", "an identify call needs an operation")
        destination = self._tenant(tenant) if tenant is not None or self._router.active else ""
        key = user_id if user_id is not None else device_id
        if key is not None and destination:
            key = f"{destination}\x1f{key}"  # remembered per destination: projects differ
        if set is not None and list(ops) == ["$set"] and key is not None:
            known = self._identified.get(key)
            if known is not None and all(
                name in known and known[name] == value for name, value in set.items()
            ):
                return False
        event = make_event(
            IDENTIFY,
            user_id=user_id,
            device_id=device_id,
            user_properties=ops,
            fields=amplitude_fields or None,
            min_id_length=self._settings.min_id_length,
        )
        event.destination = destination
        self.submit(event)
        return True

    def _remember_identified(self, event: Event) -> None:
        """On the dispatcher thread: remember the ``$set`` values Amplitude accepted."""
        values = (event.user_properties or {}).get("$set")
        unset = (event.user_properties or {}).get("$unset")
        key = event.user_id if event.user_id is not None else event.device_id
        if key is None or not (values or unset):
            return
        if event.destination:
            key = f"{event.destination}\x1f{key}"
        known = self._identified.pop(key, {})  # re-inserted last: eviction takes the oldest
        if isinstance(values, dict):
            known.update(values)
        for name in unset or ():
            known.pop(name, None)
        for op in ("$setOnce", "$add", "$append", "$prepend"):
            for name in (event.user_properties or {}).get(op, ()):
                known.pop(name, None)  # its value is no longer known here
        self._identified[key] = known
        while len(self._identified) > _IDENTIFIED_USERS:
            self._identified.pop(next(iter(self._identified)))

    def discard(self, reason: str) -> None:
        """Count an event an integration could not submit (``no_identity``, ...) as dropped."""
        if not self._started:
            self._start()
        self._inbound.append(reason)

    def _start(self) -> None:
        with self._start_lock:
            if self._started:
                return
            if not self._closed:
                self._dispatcher.start()
                self.consent.start()
                _register_exit_hook()
            self._started = True

    # -- life cycle ---------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything submitted so far; True when all of it reached a final state in time.

        Final means accepted, rejected, dropped or dead-lettered. A throttled user's events wait
        out their pause, so a flush shorter than the pause returns False and keeps them.
        ``timeout`` is in seconds of real time; None waits as long as it takes.
        """
        if not self._started or self._closed:
            return not self._inbound or self._closed
        barrier = self._dispatcher.request_flush()
        return barrier.done.wait(timeout)

    def shutdown(self, timeout: float | None = None) -> None:
        """Flush within ``timeout`` seconds (default ``AMPLITUDE_SHUTDOWN_TIMEOUT_MS``), then stop.

        Events still undelivered at the deadline are dead-lettered (counted, and handed to
        ``on_dead_letter``). Later calls do nothing; later events are counted as dropped.
        """
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
            self._accepting = False
            self._refusal = "shutdown"
            started = self._started
            self._started = True
        if timeout is None:
            timeout = self._settings.shutdown_timeout_ms / 1000.0
        deadline = time.monotonic() + timeout
        if started:
            self._dispatcher.request_flush().done.wait(timeout)
            self._dispatcher.stop(deadline)
        else:
            self._dispatcher.mark_closed()
        self.consent.close(deadline)  # pending deletions stay in the store for the next start

    def stats(self) -> Stats:
        """A consistent snapshot of the pipeline's counters (cheap; safe to poll)."""
        return self._dispatcher.snapshot()

    def health(self, window: float = 60.0) -> Health:
        """``ok``, ``degraded`` or ``failing``, with the reason, judged on recent activity.

        Recent means since the latest earlier call of ``health()`` made at least ``window``
        seconds ago (of the client's clock), or since the client started: poll it as often as
        you like. The rules are :func:`otel_amplitude._health.health`'s.
        """
        if not window > 0:
            raise ValueError(f"window must be a positive number of seconds, got {window!r}")
        current = self.stats()
        with self._health_lock:
            now = self._clock.monotonic()
            samples = self._health_samples
            while len(samples) > 1 and samples[1][0] <= now - window:
                samples.popleft()  # the newest sample at least ``window`` old stays in front
            since, previous = samples[0]
            if now - samples[-1][0] >= window / 10:  # bounded: about 11 samples per window
                samples.append((now, current))
        return health(current, previous, seconds=now - since)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        s = self._settings
        return (
            f"Client(name={self._name!r}, url={s.ingestion_url!r}, started={self._started}, "
            f"closed={self._closed})"
        )

    def _after_fork_in_child(self) -> None:
        # The parent's threads do not exist here and its locks may be held: start clean, and
        # leave the parent's buffered events to the parent.
        self._new_pipeline()


# -- process-wide ---------------------------------------------------------------------------

_default_client: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """The process-wide client, built from the environment on first use."""
    global _default_client  # noqa: PLW0603 - one lazily built client per process, by design
    client = _default_client
    if client is None:
        with _default_lock:
            client = _default_client
            if client is None:
                client = _default_client = Client.from_env()
    return client


def _register_exit_hook() -> None:
    global _exit_hook_registered  # noqa: PLW0603 - registered once per process
    with _exit_hook_lock:
        if not _exit_hook_registered:
            atexit.register(_shutdown_all)
            _exit_hook_registered = True


def _shutdown_all() -> None:
    """At exit: flush every live client at once, all within the longest shutdown timeout."""
    clients = [c for c in list(_clients) if c._started and not c._closed]
    if not clients:
        return
    budget = max(c.settings.shutdown_timeout_ms for c in clients) / 1000.0
    deadline = time.monotonic() + budget
    barriers = [c._dispatcher.request_flush() for c in clients]
    for barrier in barriers:
        barrier.done.wait(max(0.0, deadline - time.monotonic()))
    for client in clients:
        client.shutdown(max(0.0, deadline - time.monotonic()))


def _after_fork_in_child() -> None:
    global _default_lock  # noqa: PLW0603 - a lock held at fork time is useless in the child
    _default_lock = threading.Lock()
    for client in list(_clients):
        client._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

# Registered at import, before any TracerProvider or LoggerProvider the application creates:
# atexit runs hooks last-in first-out, so the providers' own exit shutdown (which exports their
# final spans and records to us) runs first, and this flush still delivers what they exported.
_register_exit_hook()

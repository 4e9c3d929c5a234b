"""``AmplitudeHandler``: stdlib ``logging`` records in, Amplitude events out.

The record's message template is the event type and its ``extra`` values are the event, mapped by
the rules every source shares (:mod:`otel_amplitude._mapping`). All of it runs on the caller's
thread, so the path is kept short: no handler lock, no formatting, no copy beyond the extras.

This module also holds what the handler shares with the structlog processor
(:mod:`otel_amplitude.structlog`): the client resolved on first use, the counted and rate-limited
report of an event that could not be sent, and the marker that keeps a structlog call that both
see from being sent twice.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Mapping
from types import FrameType
from typing import Any

from opentelemetry import trace

from ._client import Client, default_client
from ._context import current_identity
from ._event import Event
from ._log import RateLimitedLog, warn_invalid
from ._log import _local as _library_thread
from ._log import logger as library_logger
from ._mapping import EventMapper, span_fallback
from .exceptions import InvalidEventError

__all__ = ["AmplitudeHandler"]

#: The attributes every LogRecord has, in the order ``LogRecord.__init__`` sets them.
_RECORD_LAYOUT = tuple(vars(logging.LogRecord("", logging.NOTSET, "", 0, "", (), None)))
_LAST = len(_RECORD_LAYOUT) - 1
_LAST_KEY = _RECORD_LAYOUT[_LAST]
#: Attributes that are not ``extra``: the standard ones, those formatters add, those the
#: OpenTelemetry logging instrumentation's record factory adds, and those structlog's
#: ``wrap_for_formatter`` adds.
_NOT_EXTRA = frozenset(_RECORD_LAYOUT) | {
    "message",
    "asctime",
    "taskName",
    "otelSpanID",
    "otelTraceID",
    "otelTraceSampled",
    "otelServiceName",
    "_logger",
    "_name",
}

#: Keys of a structlog event dict that are logging plumbing, not event data. ``event`` is the
#: event type; ``timestamp``, ``level`` and ``logger`` feed the event's time and the optional
#: ``logger``/``level`` properties; ``exception`` and ``stack`` are what ``format_exc_info`` and
#: ``StackInfoRenderer`` make of ``exc_info`` and ``stack_info``: a traceback is not analytics.
STRUCTLOG_PLUMBING = frozenset(
    {
        "event",
        "_record",
        "_from_structlog",
        "timestamp",
        "level",
        "logger",
        "exc_info",
        "stack_info",
        "exception",
        "stack",
    }
)

_GUARDED_LOGGERS = frozenset({"otel_amplitude", "urllib3"})
_GUARDED_CHILDREN = tuple(name + "." for name in _GUARDED_LOGGERS)

_reports = RateLimitedLog(time.monotonic)


def event_dict_values(event_dict: Mapping[str, Any]) -> dict[str, Any]:
    """A structlog event dict's event data: every key but the plumbing."""
    return {key: value for key, value in event_dict.items() if key not in STRUCTLOG_PLUMBING}


def is_guarded(name: str) -> bool:
    """Whether logger ``name`` is the library's own or urllib3's: never made into events."""
    return name in _GUARDED_LOGGERS or name.startswith(_GUARDED_CHILDREN)


# -- one structlog call, one event -----------------------------------------------------------------


class _ForwardedCall(threading.local):
    """Per thread: the frame of the structlog call whose event the processor sent, if running."""

    frame: FrameType | None = None


_forwarded = _ForwardedCall()


def mark_forwarded(frame: FrameType) -> None:
    """Note that the processor sent the event of the structlog call running in ``frame``.

    ``frame`` is structlog's ``_proxy_to_logger``, which runs the processors and then calls
    the stdlib logger: every record made by that call is made while it is on the stack. Holding
    it keeps it from being reused by another frame, so the test is exact, whatever the renderer
    turned the event into (a dict for ``ProcessorFormatter``, keyword arguments, a string).
    """
    _forwarded.frame = frame


def in_forwarded_call() -> bool:
    """Whether this record is made by a structlog call whose event the processor already sent.

    Records are handled on the thread that made them, after the processor ran: if the call's
    frame is not on the stack, the call is over, so the mark is dropped (and the frame freed).
    """
    marked = _forwarded.frame
    if marked is None:
        return False
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame is marked:
            return True
        frame = frame.f_back
    _forwarded.frame = None
    return False


# -- failures: counted, reported at most once a minute, never raised -----------------------------


def report_invalid(client: Client, error: InvalidEventError, source: str) -> None:
    """Count an event that cannot be sent, and say which field is wrong (never its value)."""
    with contextlib.suppress(Exception):  # a broken client must not break the caller
        client.discard("invalid")
    warn_invalid(_reports, source, error.field, error.reason)


def report_failure(client: Client | None, error: Exception, source: str) -> None:
    """Count an event lost to an unexpected error, and name the error's type.

    Only the type: its message may quote the payload. ``logging.Handler.handleError`` is not
    used: it prints a traceback to stderr for every record, at the application's log rate,
    message included, and counts nothing.
    """
    if client is not None:
        with contextlib.suppress(Exception):  # a broken client must not break the caller
            client.discard("error")
    kind = type(error).__name__
    _reports.log(
        logging.WARNING,
        f"error:{source}:{kind}",
        "%s dropped an event after an unexpected %s",
        source,
        kind,
    )


class Target:
    """The client an integration feeds and its mapper, resolved on first use.

    Without a client, the process-wide :func:`default_client` is built at the first event, not
    at construction, so a handler made by ``dictConfig`` before the environment is complete
    still works. If it cannot be built (no API key), that is logged once and events are ignored.
    """

    __slots__ = ("_client", "_failed", "_lock", "_resolved", "_source")

    def __init__(self, client: Client | None, source: str) -> None:
        self._client = client
        self._source = source
        self._resolved: tuple[Client, EventMapper, bool] | None = None
        self._failed = False
        self._lock = threading.Lock()

    def get(self) -> tuple[Client, EventMapper, bool] | None:
        """(client, its mapper, whether to add logger and level), or None without a client."""
        resolved = self._resolved
        if resolved is not None:
            return resolved
        with self._lock:
            if self._resolved is None and not self._failed:
                try:
                    client = self._client if self._client is not None else default_client()
                except Exception as error:  # noqa: BLE001 - logged once, never raised to the app
                    self._failed = True
                    library_logger.error(
                        "%s sends nothing: no client could be made: %s", self._source, error
                    )
                    return None
                settings = client.settings
                mapper = EventMapper(settings, routing=client.routes_tenants)
                self._resolved = (client, mapper, settings.log_include_logger)
            return self._resolved

    @property
    def client(self) -> Client | None:
        """The client, if it was given or has been resolved; never builds one."""
        if self._resolved is not None:
            return self._resolved[0]
        return self._client


# -- the handler ---------------------------------------------------------------------------------


def _extras(attributes: dict[str, Any]) -> dict[str, Any]:
    """The record attributes that ``extra=`` added: all but the standard ones.

    ``LogRecord.__init__`` sets the standard attributes first, in a fixed order, and
    ``Logger.makeRecord`` adds the extras after them. So when the record has that layout (its
    last standard attribute sits where it should), only the keys after it need checking: 1.5x
    faster than checking every attribute, which is the fallback for records of other shapes.
    """
    keys = list(attributes)
    if len(keys) > _LAST and keys[_LAST] == _LAST_KEY:
        return {key: attributes[key] for key in keys[_LAST + 1 :] if key not in _NOT_EXTRA}
    return {key: value for key, value in attributes.items() if key not in _NOT_EXTRA}


class _RecordEvent(tuple[Any, ...]):
    """A log record's event, captured on the caller's thread and built on the dispatcher's.

    The capture is a tuple (cheaper to make than any object with an ``__init__``): the mapper, a
    copy of the record's attributes (later handlers and filters may change the record, and the
    copy is read on another thread), the event type, the identity bound with ``bind()``, the
    current span when neither the record nor the binding names anybody (its ``enduser.id`` is
    read when the event is built), and whether to add the ``logger`` and ``level`` properties.
    Everything else (finding the extras, mapping, validation) runs when it is called.
    """

    __slots__ = ()
    source = "AmplitudeHandler"

    def __call__(self) -> Event | None:
        mapper, attributes, event_type, bound, span, include_logger = self
        return mapper.build(  # type: ignore[no-any-return]
            event_type,
            _extras(attributes),
            time=int(attributes["created"] * 1000),
            properties={"logger": attributes["name"], "level": attributes["levelname"]}
            if include_logger
            else None,
            bound=bound,
            fallback=span_fallback(span),
        )


class AmplitudeHandler(logging.Handler):
    """Sends each log record to Amplitude as an event: message template = event type.

    ``logger.info("report_exported", extra={"user_id": "user-123", "format": "pdf"})`` becomes
    the event ``report_exported`` of ``user-123`` with the property ``format``. The type is the
    unformatted message (``record.msg``), so ``%s`` arguments never split one event into many;
    the time is the record's creation time. ``extra`` keys naming Amplitude fields
    (``device_id``, ``session_id``, ``app_version``, ``price``...) go to the top level,
    ``event_properties``/``user_properties`` dicts are merged, the rest are event properties.
    Without a user or device id in ``extra``, the ids bound with ``otel_amplitude.bind`` apply,
    then the current span's ``enduser.id``; a record naming nobody is counted as dropped
    (``no_identity``), as is an invalid one (``invalid``, with a rate-limited warning naming the
    field). With ``AMPLITUDE_LOG_INCLUDE_LOGGER`` the properties ``logger`` and ``level`` are
    added.

    Never raises into the application and never blocks: the event is appended to the client's
    buffer and delivered in the background. Without ``client``, the process-wide
    :func:`~otel_amplitude.default_client` is used, resolved at the first record, so this works
    from ``logging.config.dictConfig`` before the environment is complete::

        {"handlers": {"amplitude": {"class": "otel_amplitude.AmplitudeHandler", "level": "INFO"}}}

    Records of the library's own loggers (``otel_amplitude``), of ``urllib3``, and any logged on
    the library's threads never become events, so the handler can sit on the root logger.

    ``bind()`` identity lives in ``contextvars``: it follows asyncio tasks (each runs in a copy
    of its creator's context) but not records handed to another thread. Behind a
    ``QueueHandler``, records are handled on the ``QueueListener``'s thread, where the bound ids
    are unknown: pass ``user_id``/``device_id`` in ``extra`` there. ``QueueHandler`` also formats
    the message before queueing it, so ``%s`` arguments end up in the event type. This handler
    never blocks, so it needs no queue in front of it.

    structlog's stdlib integration: a structlog event dict arriving as the message
    (``ProcessorFormatter.wrap_for_formatter``) is sent like ``AmplitudeProcessor`` sends one,
    and ``render_to_log_kwargs`` records are ordinary records. A call whose event
    ``AmplitudeProcessor`` already sent is skipped, so it is sent once either way. Records that
    structlog rendered to text (``JSONRenderer``, or a ``QueueHandler`` in between) carry no
    event data: send those with ``AmplitudeProcessor``.

    Closing the handler leaves the client running: it may be shared, and it flushes at exit.
    """

    _SOURCE = "AmplitudeHandler"

    def __init__(self, client: Client | None = None, level: int | str = logging.NOTSET) -> None:
        super().__init__(level)
        self._target = Target(client, self._SOURCE)

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter and emit, without the handler lock: nothing here needs it (the client is
        thread-safe), and a lock held by another thread would make the caller wait."""
        if self.filters:
            result = self.filter(record)
            if not result:
                return False
            if isinstance(result, logging.LogRecord):  # Python 3.12+: a filter may replace it
                record = result
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """Turn ``record`` into an event and submit it; count, never raise, what cannot be."""
        name = record.name
        if (
            name in _GUARDED_LOGGERS
            or name.startswith(_GUARDED_CHILDREN)  # is_guarded, inline: it runs for every record
            or _library_thread.library  # in_library_thread(), inline
            or (_forwarded.frame is not None and in_forwarded_call())
        ):
            return
        target = self._target._resolved
        if target is None:
            target = self._target.get()
            if target is None:
                return
        client, mapper, include_logger = target
        try:
            msg = record.msg
            attributes = record.__dict__
            if type(msg) is not dict:
                if "_logger" in attributes:
                    # A structlog record already rendered to text (by a QueueHandler's
                    # formatter): its event dict is gone, and the processor may have sent it on
                    # its own thread.
                    return
                # The common case. Only what the record and the context hold *now* is captured
                # here (a copy of the record's attributes, the bound ids, the current span when
                # nobody is named); finding the extras, mapping and validation, most of an
                # event's cost, run on the dispatcher's thread (_RecordEvent).
                bound = current_identity()
                if (
                    "user_id" in attributes
                    or "device_id" in attributes
                    or (
                        bound is not None
                        and (bound.user_id is not None or bound.device_id is not None)
                    )
                ):
                    span = None
                else:
                    span = trace.get_current_span()
                client._defer(
                    _RecordEvent(
                        (
                            mapper,
                            attributes.copy(),
                            msg if isinstance(msg, str) else str(msg),
                            bound,
                            span,
                            include_logger,
                        )
                    )
                )
                return
            # A structlog event dict (ProcessorFormatter.wrap_for_formatter).
            event = msg.get("event")
            event_type = event if isinstance(event, str) else str(event)
            values = _extras(attributes)
            values.update(event_dict_values(msg))
            event = mapper.build(
                event_type,
                values,
                time=int(record.created * 1000),
                properties={"logger": name, "level": record.levelname} if include_logger else None,
            )
        except InvalidEventError as error:
            report_invalid(client, error, self._SOURCE)
            return
        except Exception as error:  # noqa: BLE001 - counted and reported, see report_failure
            report_failure(client, error, self._SOURCE)
            return
        try:
            if event is None:
                client.discard("no_identity")
            else:
                client.submit(event)
        except Exception as error:  # noqa: BLE001 - the client itself failed: reported only
            report_failure(None, error, self._SOURCE)

    def flush(self) -> None:
        """Deliver what the client holds, waiting at most ``AMPLITUDE_SHUTDOWN_TIMEOUT_MS``.

        Bounded, because ``logging.shutdown()`` calls it at exit. Never builds a client.
        """
        client = self._target.client
        if client is not None:
            client.flush(client.settings.shutdown_timeout_ms / 1000.0)

    def __repr__(self) -> str:
        return f"<AmplitudeHandler ({logging.getLevelName(self.level)})>"

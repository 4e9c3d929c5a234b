"""structlog events in, Amplitude events out: :class:`AmplitudeProcessor`.

structlog is an optional extra: ``pip install 'otel-amplitude[structlog]'``. This module imports
nothing from structlog, so importing it (or ``otel_amplitude``) never needs structlog installed.

Standalone structlog::

    import structlog
    from otel_amplitude.structlog import AmplitudeProcessor

    structlog.configure(processors=[
        structlog.contextvars.merge_contextvars,
        AmplitudeProcessor(),
        structlog.processors.JSONRenderer(),
    ])
    structlog.get_logger().info("report_exported", user_id="user-123", format="pdf")

With structlog's stdlib integration, put it in the same chain, before the renderer
(``structlog.stdlib.ProcessorFormatter.wrap_for_formatter``, ``render_to_log_kwargs``,
``JSONRenderer``...). An :class:`~otel_amplitude.AmplitudeHandler` that then receives the same
call's log record skips it: one log call is one event, whichever of them sees it.
"""

from __future__ import annotations

import datetime as _dt
import logging
import sys
from collections.abc import MutableMapping
from types import FrameType
from typing import Any

from opentelemetry import trace

from ._client import Client
from ._context import current_identity
from ._event import Event
from ._handler import (
    Target,
    event_dict_values,
    mark_forwarded,
    report_failure,
    report_invalid,
)
from ._log import in_library_thread, logger
from ._mapping import span_fallback
from .exceptions import InvalidEventError

__all__ = ["AmplitudeProcessor"]

EventDict = MutableMapping[str, Any]

#: How far above the processor structlog's ``_proxy_to_logger`` is looked for (it is 2 frames up:
#: processor <- ``_process_event`` <- ``_proxy_to_logger``).
_CALL_SEARCH_DEPTH = 4


def _structlog_call() -> FrameType | None:
    """The frame of the structlog call running the processors: it goes on to call the logger."""
    frame: FrameType | None = sys._getframe(2)
    for _ in range(_CALL_SEARCH_DEPTH):
        if frame is None:
            return None
        if frame.f_code.co_name == "_proxy_to_logger":
            return frame
        frame = frame.f_back
    return None


def _event_time(timestamp: object) -> object:
    """The event time ``timestamp`` names unambiguously, else None (now).

    Accepted: a float of seconds since the epoch (``TimeStamper(fmt=None)``), a timezone-aware
    datetime, an ISO 8601 string with an offset or ``Z`` (``TimeStamper(fmt="iso")``). Anything
    else, a naive local time or a custom format, would put the event at the wrong time or drop
    it, so it is ignored: the processor runs within the log call, so "now" is the same moment.
    """
    if type(timestamp) is float:
        return timestamp
    if isinstance(timestamp, _dt.datetime):
        return timestamp if timestamp.utcoffset() is not None else None
    if isinstance(timestamp, str):
        text = timestamp.strip()
        if text[-1:] in ("Z", "z"):  # fromisoformat accepts "Z" only from Python 3.11
            text = text[:-1] + "+00:00"
        try:
            parsed = _dt.datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed if parsed.utcoffset() is not None else None
    return None


class _StructlogEvent(tuple[Any, ...]):
    """A structlog event, captured on the caller's thread and built on the dispatcher's.

    A tuple (cheaper to make than an object with an ``__init__``): the mapper, the event type,
    a copy of the event dict, the ``logger``/``level`` properties (or None), the identity bound
    with ``bind()``, and the current span when neither the dict nor the binding names anybody.
    Dropping the plumbing keys, reading the timestamp, mapping and validation run when called.
    """

    __slots__ = ()
    source = "AmplitudeProcessor"

    def __call__(self) -> Event | None:
        mapper, event_type, event_dict, properties, bound, span = self
        return mapper.build(  # type: ignore[no-any-return]
            event_type,
            event_dict_values(event_dict),
            time=_event_time(event_dict.get("timestamp")),
            properties=properties,
            bound=bound,
            fallback=span_fallback(span),
        )


class AmplitudeProcessor:
    """A structlog processor that sends each event to Amplitude and passes it on unchanged.

    The ``event`` is the event type; the other keys follow the rules of every source: Amplitude
    field names (``device_id``, ``session_id``, ``price``...) go to the top level,
    ``event_properties``/``user_properties`` dicts are merged, the rest are event properties.
    structlog plumbing is left out: ``timestamp`` (used as the event time when unambiguous: a
    float, an aware datetime or an ISO string with an offset; otherwise now), ``level`` and
    ``logger`` (the properties ``level`` and ``logger`` with ``AMPLITUDE_LOG_INCLUDE_LOGGER``),
    ``exc_info``, ``stack_info``, ``exception``, ``stack``, ``_record``, ``_from_structlog``.

    Ids bound with ``structlog.contextvars.bind_contextvars(user_id=...)`` count when
    ``merge_contextvars`` runs before this processor (put it first in the chain); then come the
    ids bound with :func:`otel_amplitude.bind` and the current span's ``enduser.id``. An event
    with no id is counted as dropped (``no_identity``). Put the processor after any filtering
    processor: it sends every event that reaches it.

    With structlog's stdlib integration, put it in ``structlog.configure``'s chain before the
    renderer. An :class:`~otel_amplitude.AmplitudeHandler` receiving the log record of a call
    this processor sent skips it, whatever the renderer made of it: one call, one event. Do not
    put it in a ``ProcessorFormatter``'s ``processors``: a formatter runs once per handler, so
    there it would send an event per handler. It does nothing there (and says so once).

    Never raises into the application and never blocks. Without ``client``, the process-wide
    :func:`~otel_amplitude.default_client` is used, resolved at the first event.
    """

    _SOURCE = "AmplitudeProcessor"

    def __init__(self, client: Client | None = None) -> None:
        self._target = Target(client, self._SOURCE)
        self._warned_in_formatter = False

    def __call__(self, wrapped_logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        """Send ``event_dict`` as an event; return it unchanged (the same object)."""
        if "_record" in event_dict:  # running inside a ProcessorFormatter: see the class doc
            if not self._warned_in_formatter:
                self._warned_in_formatter = True
                logger.warning(
                    "AmplitudeProcessor sends nothing from ProcessorFormatter.processors; put it "
                    "in structlog.configure(processors=[...]) before wrap_for_formatter, or add "
                    "an AmplitudeHandler to send log records"
                )
            return event_dict
        if in_library_thread():
            return event_dict
        target = self._target.get()
        if target is None:
            return event_dict
        client, mapper, include_logger = target
        try:
            if isinstance(wrapped_logger, logging.Logger):  # a stdlib record will follow
                call = _structlog_call()
                if call is not None:
                    mark_forwarded(call)
            event = event_dict.get("event")
            properties = None
            if include_logger:
                properties = {"level": str(event_dict.get("level") or method_name).upper()}
                name = event_dict.get("logger") or getattr(wrapped_logger, "name", None)
                if isinstance(name, str):
                    properties["logger"] = name
            # Built on the dispatcher's thread from a copy: later processors may change the dict.
            bound = current_identity()
            if (
                "user_id" in event_dict
                or "device_id" in event_dict
                or (
                    bound is not None and (bound.user_id is not None or bound.device_id is not None)
                )
            ):
                span = None
            else:
                span = trace.get_current_span()
            client._defer(
                _StructlogEvent(
                    (
                        mapper,
                        event if isinstance(event, str) else "" if event is None else str(event),
                        dict(event_dict),
                        properties,
                        bound,
                        span,
                    )
                )
            )
        except InvalidEventError as error:
            report_invalid(client, error, self._SOURCE)
        except Exception as error:  # noqa: BLE001 - counted and reported, never raised
            report_failure(client, error, self._SOURCE)
        return event_dict

    def __repr__(self) -> str:
        return "AmplitudeProcessor()"

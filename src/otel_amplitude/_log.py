"""The library's own log lines: logger ``otel_amplitude``, rate-limited, never a key or a payload.

Threads that belong to the library mark themselves, so the integrations can refuse to turn a
record logged on them (by this library or by urllib3) into an event: the recursion guard.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from opentelemetry import context
from opentelemetry.context import (
    _SUPPRESS_HTTP_INSTRUMENTATION_KEY,
    _SUPPRESS_INSTRUMENTATION_KEY,
)

__all__ = [
    "RateLimitedLog",
    "in_library_thread",
    "logger",
    "mark_library_thread",
    "warn_invalid",
]

logger = logging.getLogger("otel_amplitude")


class _Local(threading.local):
    library = False  # a class default: reading it costs ~60 ns, a missing-attribute getattr ~400


_local = _Local()


def mark_library_thread() -> None:
    """Declare the current thread one of the library's (dispatcher, sender).

    Also suppresses OpenTelemetry instrumentation on it, so that an instrumented urllib3 does not
    turn the library's own requests to Amplitude into spans (and those into events).
    """
    _local.library = True
    context.attach(context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    context.attach(context.set_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY, True))
    context.attach(context.set_value("suppress_instrumentation", True))  # older instrumentations


def in_library_thread() -> bool:
    """True on a thread the library started: what is logged there must not become an event."""
    return _local.library


class RateLimitedLog:
    """Logs a repeated message at most once per ``interval`` seconds per key, counting the rest."""

    def __init__(self, monotonic: Callable[[], float], interval: float = 60.0) -> None:
        self._monotonic = monotonic
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def log(self, level: int, key: str, msg: str, *args: object) -> None:
        """Log ``msg % args`` unless ``key`` was logged less than ``interval`` seconds ago."""
        now = self._monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            msg += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        logger.log(level, msg, *args)


def warn_invalid(reports: RateLimitedLog, source: str, field: str, reason: str) -> None:
    """Say, at most once a minute per source and field, that ``source`` dropped an invalid event.

    Names the field and the reason, never the value (it may be personal data).
    """
    top = field.split(".", 1)[0].split("[", 1)[0]  # a bounded set of rate-limit keys
    reports.log(
        logging.WARNING,
        f"invalid:{source}:{top}",
        "%s dropped an invalid event: %s: %s",
        source,
        field,
        reason,
    )

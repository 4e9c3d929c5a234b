"""The typical event, emitted the same way through every API the suite compares.

One event everywhere: ``report_exported`` by ``user-NNNNNN`` with three properties
(``format``, ``pages``, ``plan``). Every ``emit(i)`` builds its user id and properties afresh,
as application code does, so each API pays for the same argument building, and held events
own their strings as they would in a real service.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import structlog
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Tracer

from otel_amplitude import Client, Settings
from otel_amplitude._handler import AmplitudeHandler
from otel_amplitude.structlog import AmplitudeProcessor

__all__ = [
    "EVENT_TYPE",
    "PAGES",
    "Emit",
    "NoOpExporter",
    "black_hole",
    "handler_logger",
    "logging_emitter",
    "null_logger",
    "settings_for",
    "span_emitter",
    "span_pipeline",
    "structlog_emitter",
    "structlog_logger",
    "track_emitter",
    "user_id",
]

EVENT_TYPE = "report_exported"
PAGES = 20
SPAN_NAME = "POST /reports/export"
RESOURCE = Resource.create({"service.name": "bench", "service.version": "1.0.0"})

Emit = Callable[[int], object]


def user_id(i: int, users: int) -> str:
    """The id of the user of the ``i``-th event, out of ``users`` distinct users."""
    return f"user-{i % users:06d}"


def settings_for(url: str, events: int, *, use_batch: bool = False, **extra: Any) -> Settings:
    """Our client's settings, with buffers sized to hold ``events`` without a drop."""
    return Settings(
        api_key="bench-api-key",
        server_url=url,
        use_batch=use_batch,
        max_buffered_events=max(events, 1) + 10_000,
        partition_capacity=max(events, 1) + 10_000,
        **extra,
    )


# -- stdlib logging -----------------------------------------------------------------------------


def null_logger(name: str) -> logging.Logger:
    """A logger with only a ``logging.NullHandler``: the baseline every ratio divides by."""
    return _logger(name, logging.NullHandler())


def handler_logger(name: str, client: Client) -> logging.Logger:
    """A logger with only an ``AmplitudeHandler`` feeding ``client``."""
    return _logger(name, AmplitudeHandler(client))


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def logging_emitter(logger: logging.Logger, users: int) -> Emit:
    """``logger.info("report_exported", extra={user_id and 3 properties})``."""
    info = logger.info

    def emit(i: int) -> None:
        info(
            EVENT_TYPE,
            extra={
                "user_id": f"user-{i % users:06d}",
                "format": "pdf",
                "pages": i % PAGES + 1,
                "plan": "pro",
            },
        )

    return emit


# -- structlog ----------------------------------------------------------------------------------


def structlog_logger(processor: AmplitudeProcessor | None) -> Any:
    """A standalone structlog logger (``ReturnLogger``) with a typical production chain.

    ``merge_contextvars``, ``add_log_level``, ``TimeStamper(fmt="iso", utc=True)``, then the
    ``AmplitudeProcessor`` when given, then ``JSONRenderer``: the same chain with and without
    the processor, so the difference is the processor's cost.
    """
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if processor is not None:
        processors.append(processor)
    processors.append(structlog.processors.JSONRenderer())
    return structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )


def structlog_emitter(log: Any, users: int) -> Emit:
    """``log.info("report_exported", user_id=..., format=..., pages=..., plan=...)``."""
    info = log.info

    def emit(i: int) -> None:
        info(
            EVENT_TYPE,
            user_id=f"user-{i % users:06d}",
            format="pdf",
            pages=i % PAGES + 1,
            plan="pro",
        )

    return emit


# -- OpenTelemetry spans ------------------------------------------------------------------------


class NoOpExporter(SpanExporter):
    """Accepts every batch and does nothing: the span baseline's exporter."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:  # noqa: ARG002
        return SpanExportResult.SUCCESS


def span_pipeline(exporter: SpanExporter, queue: int) -> tuple[TracerProvider, Tracer]:
    """A provider with one ``BatchSpanProcessor`` holding up to ``queue`` spans (no drops)."""
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=max(queue, 2048)))
    return provider, provider.get_tracer("bench")


def span_emitter(tracer: Tracer, users: int) -> Emit:
    """A tagged span (``amplitude.event_type``, ``enduser.id``, 3 properties) started, ended."""
    start_span = tracer.start_span

    def emit(i: int) -> None:
        start_span(
            SPAN_NAME,
            attributes={
                "amplitude.event_type": EVENT_TYPE,
                "enduser.id": f"user-{i % users:06d}",
                "format": "pdf",
                "pages": i % PAGES + 1,
                "plan": "pro",
            },
        ).end()

    return emit


# -- Client.track ---------------------------------------------------------------------------------


class Tracker(Protocol):
    """Anything with ``Client.track``'s call shape (the floor benchmark's stand-in too)."""

    def track(
        self, event_type: str, *, user_id: str, event_properties: dict[str, Any]
    ) -> object: ...


def track_emitter(client: Tracker, users: int) -> Emit:
    """``client.track("report_exported", user_id=..., event_properties={3 properties})``."""
    track = client.track

    def emit(i: int) -> None:
        track(
            EVENT_TYPE,
            user_id=f"user-{i % users:06d}",
            event_properties={"format": "pdf", "pages": i % PAGES + 1, "plan": "pro"},
        )

    return emit


# -- an unreachable Amplitude ---------------------------------------------------------------------


@contextmanager
def black_hole() -> Iterator[str]:
    """A URL whose server accepts connections (the kernel's backlog) but never answers.

    Requests hang until the client's timeout: Amplitude stalled. Closing it resets the
    connections still waiting, so clients get their senders back at once.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()

"""``AmplitudeLogExporter``: an OpenTelemetry log record exporter that queues records as events.

Which records are events, and what each becomes, is :mod:`otel_amplitude._log_record_mapping`'s
job; this module is the SDK contract around it, the same as the span exporter's
(:mod:`otel_amplitude._span_exporter`): ``export`` returns ``SUCCESS`` once the events are queued
(the client delivers and retries them; the log record processor would not) and ``FAILURE`` after
``shutdown()``; ``force_flush`` flushes the client; ``shutdown()`` flushes it within a bound but
never shuts it down, since it may be shared. Importing this module registers the client's exit
flush ahead of the ``LoggerProvider``'s own exit hook, so the records its batch processor exports
at exit are still delivered.

The base class is ``LogRecordExporter`` on recent ``opentelemetry-sdk`` releases (1.45 among
them), which pass ``ReadableLogRecord`` objects, and ``LogExporter`` on older ones, which pass
``LogData``: both carry the ``log_record`` and ``instrumentation_scope`` the mapping reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._client import Client
from ._exporting import ClientFeed
from ._log_record_mapping import ExportedLogRecord, LogRecordMapper

if TYPE_CHECKING:
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
else:
    try:
        from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
    except ImportError:  # pragma: no cover - older opentelemetry-sdk releases
        from opentelemetry.sdk._logs.export import LogExporter as LogRecordExporter
        from opentelemetry.sdk._logs.export import LogExportResult as LogRecordExportResult

__all__ = ["AmplitudeLogExporter"]


# The client's exit hook is registered when _client is imported, before any provider's.


class AmplitudeLogExporter(LogRecordExporter):
    """Sends OpenTelemetry log records to Amplitude as events, through ``client`` (default: the
    process-wide client). The body (or the event name) is the event type, the attributes the
    event; records without a user or device are counted as dropped, not sent.

    Add it behind a log record processor::

        provider.add_log_record_processor(BatchLogRecordProcessor(AmplitudeLogExporter()))

    or set ``OTEL_LOGS_EXPORTER=amplitude`` under ``opentelemetry-instrument``. Without a client,
    the default client is built at construction, so a missing ``AMPLITUDE_API_KEY`` raises
    :class:`~otel_amplitude.ConfigError` at once.
    """

    def __init__(self, client: Client | None = None) -> None:
        self._feed = ClientFeed(client, "AmplitudeLogExporter")
        client = self._feed.client
        self._mapper = LogRecordMapper(client.settings, routing=client.routes_tenants)

    @property
    def client(self) -> Client:
        """The client this exporter feeds."""
        return self._feed.client

    def export(self, batch: Sequence[ExportedLogRecord]) -> LogRecordExportResult:
        """Queue the events among ``batch``; ``SUCCESS`` once queued, ``FAILURE`` after shutdown."""
        if self._feed.closed:
            return LogRecordExportResult.FAILURE
        self._feed.put(map(self._mapper.map, batch))
        return LogRecordExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Deliver what the client holds; True when all of it reached a final state in time."""
        return self._feed.flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """Refuse further exports and flush, bounded; the client keeps running."""
        self._feed.close(timeout_millis)

"""``AmplitudeSpanExporter``: an OpenTelemetry ``SpanExporter`` that queues spans as events.

Which spans are events, and what each becomes, is :mod:`otel_amplitude._span_mapping`'s job;
this module is the SDK contract around it.

**Why ``export`` succeeds once the events are queued.** The span processor calls ``export`` on
its worker thread and does nothing with a failure but log it: it never retries. The client does
retry, per event, across throttling and outages, with ``insert_id`` deduplication, within its own
bounded buffers, and counts every event that ends undelivered. Waiting for Amplitude in
``export`` would stall the processor's queue (dropping spans of the whole application) for no
gain, so, like other exporters that hand data to a background transport, ``export`` returns
``SUCCESS`` when the events are queued, and ``FAILURE`` only after ``shutdown()``.

**Shutdown and ownership.** The exporter never shuts its client down. Without a client argument it
feeds :func:`~otel_amplitude.default_client`, which the logging handler, the structlog processor
and the log exporter may share and which stops at interpreter exit; a client passed in belongs to
whoever made it. ``shutdown()`` marks the exporter closed and flushes the client within the
smaller of the caller's ``timeout_millis`` and ``AMPLITUDE_SHUTDOWN_TIMEOUT_MS``, so the spans a
``BatchSpanProcessor`` exports at its own shutdown are delivered before the process moves on.

**Process exit.** ``TracerProvider`` shuts down at exit through ``atexit``; its batch processor
then exports what is still queued. Handlers registered with ``atexit`` run last-registered-first,
so the client's exit flush must be registered *before* the provider is created, or it would close
the client before those last spans reach it: importing this module registers it (the provider is
created after its exporter's module is imported, both by ``opentelemetry-instrument`` and in
ordinary setup code).

**No feedback loop.** The client's own HTTP requests, traced by an HTTP client instrumentation
such as ``opentelemetry-instrumentation-urllib3``, are neither tagged with
``amplitude.event_type`` nor, when a name pattern matches them, sent: a span that describes a
request to the Amplitude hosts the client uses is skipped (see ``SpanMapper``'s ``own_hosts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ._client import Client
from ._exporting import ClientFeed
from ._settings import Settings
from ._span_mapping import SpanMapper

__all__ = ["AmplitudeSpanExporter"]


# The client's exit hook is registered when _client is imported, before any provider's.


class AmplitudeSpanExporter(SpanExporter):
    """Sends spans tagged ``amplitude.event_type`` (or named by ``AMPLITUDE_SPAN_EVENTS``) to
    Amplitude as events, through ``client`` (default: the process-wide client).

    Add it to a provider like any exporter, behind a ``BatchSpanProcessor``::

        provider.add_span_processor(BatchSpanProcessor(AmplitudeSpanExporter()))

    or set ``OTEL_TRACES_EXPORTER=amplitude`` under ``opentelemetry-instrument``. Without a
    client, the default client is built at construction from ``AMPLITUDE_*`` variables, so a
    missing ``AMPLITUDE_API_KEY`` raises :class:`~otel_amplitude.ConfigError` at once.
    """

    def __init__(self, client: Client | None = None) -> None:
        self._feed = ClientFeed(client, "AmplitudeSpanExporter")
        client = self._feed.client
        settings = client.settings
        self._mapper = SpanMapper(
            settings, own_hosts=_own_hosts(settings), routing=client.routes_tenants
        )

    @property
    def client(self) -> Client:
        """The client this exporter feeds."""
        return self._feed.client

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Queue the events among ``spans``; ``SUCCESS`` once queued, ``FAILURE`` after shutdown."""
        if self._feed.closed:
            return SpanExportResult.FAILURE
        map_span = self._mapper.map
        for span in spans:
            self._feed.put(map_span(span))
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Deliver what the client holds; True when all of it reached a final state in time."""
        return self._feed.flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """Refuse further exports and flush, bounded; the client keeps running (module doc)."""
        self._feed.close(timeout_millis)


def _own_hosts(settings: Settings) -> frozenset[str]:
    """The hosts the client sends to: spans of requests to them are the library's own."""
    hosts = set()
    for url in (settings.ingestion_url, settings.identify_url, settings.deletions_url):
        host = urlsplit(url).hostname
        if host:
            hosts.add(host)
    return frozenset(hosts)

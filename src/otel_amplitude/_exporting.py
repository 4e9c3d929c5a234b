"""What the two OTel exporters share: handing mapped outcomes to the client, and the SDK's
flush and shutdown contract (the client is shared, so shutting an exporter down never stops it).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from ._client import Client, default_client
from ._event import Event
from ._log import RateLimitedLog, warn_invalid
from ._span_mapping import Skipped

__all__ = ["ClientFeed"]

_warnings = RateLimitedLog(time.monotonic)


class ClientFeed:
    """An exporter's link to its client: queues events, counts what is skipped, flushes."""

    __slots__ = ("client", "closed", "source")

    def __init__(self, client: Client | None, source: str) -> None:
        # Built at construction: a missing AMPLITUDE_API_KEY is a ConfigError right away.
        self.client = client if client is not None else default_client()
        self.source = source
        self.closed = False

    def put(self, outcomes: Iterable[Event | Skipped | None]) -> None:
        """Queue each event; count each skipped one by its reason, warning about invalid ones."""
        client = self.client
        for outcome in outcomes:
            if outcome is None:
                continue
            if isinstance(outcome, Event):
                client.submit(outcome)
                continue
            client.discard(outcome.reason)
            error = outcome.error
            if error is not None:
                warn_invalid(_warnings, self.source, error.field, error.reason)

    def flush(self, timeout_millis: float) -> bool:
        """Deliver what the client holds; True when all of it reached a final state in time."""
        return self.client.flush(timeout_millis / 1000.0)

    def close(self, timeout_millis: float) -> None:
        """Refuse further exports and flush, within the processor's time and the exit bound."""
        if self.closed:
            return
        self.closed = True
        limit = self.client.settings.shutdown_timeout_ms
        self.client.flush(max(0.0, min(timeout_millis, limit)) / 1000.0)

"""otel-amplitude: what your service already emits, delivered to Amplitude in the background.

OpenTelemetry spans and log records, stdlib ``logging`` records and structlog events become
Amplitude events, batched per user and device, retried without duplicates, US or EU.
"""

from __future__ import annotations

from ._client import Client, default_client
from ._consent import consent_status, delete_user, opt_in, opt_out
from ._context import bind
from ._destinations import Destination
from ._handler import AmplitudeHandler
from ._log_exporter import AmplitudeLogExporter
from ._settings import Settings
from ._span_exporter import AmplitudeSpanExporter
from ._stats import DestinationStats, Stats
from ._version import __version__
from .exceptions import (
    ConfigError,
    ConsentStoreError,
    InvalidEventError,
    OtelAmplitudeError,
    SpoolError,
)

__all__ = [
    "AmplitudeHandler",
    "AmplitudeLogExporter",
    "AmplitudeSpanExporter",
    "Client",
    "ConfigError",
    "ConsentStoreError",
    "Destination",
    "DestinationStats",
    "InvalidEventError",
    "OtelAmplitudeError",
    "Settings",
    "SpoolError",
    "Stats",
    "__version__",
    "bind",
    "consent_status",
    "default_client",
    "delete_user",
    "opt_in",
    "opt_out",
]

"""The exceptions otel-amplitude raises, under one root so callers catch at the level they need.

Messages name the thing, the bad value (never a secret) and the fix.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConsentStoreError",
    "InvalidEventError",
    "OtelAmplitudeError",
    "SpoolError",
]


class OtelAmplitudeError(Exception):
    """Root of every exception raised by otel-amplitude."""


class ConfigError(OtelAmplitudeError, ValueError):
    """A setting (an environment variable or a ``Settings`` argument) cannot work as given."""


class InvalidEventError(OtelAmplitudeError, ValueError):
    """An event cannot be sent as given: ``field`` says which part, ``reason`` why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"invalid Amplitude event: {field}: {reason}")
        self.field = field
        self.reason = reason


class ConsentStoreError(OtelAmplitudeError):
    """The consent store could not record a change (it is still applied in this process)."""


class SpoolError(OtelAmplitudeError):
    """The durable spool (``AMPLITUDE_SPOOL_DIR``) cannot be used: the message names the file."""

"""A local Amplitude-compatible HTTP server with fault injection, for testing event delivery.

``AmplitudeServer`` speaks HTTP V2, Batch, Identify, Group Identify and the User Privacy API on
127.0.0.1, records what it receives, and fails on demand through ``server.faults`` (throttled
ids, an EPS limit, daily quotas, scripted or random 5xx, resets, slow replies). The pytest
plugin of this package provides it as the ``amplitude_server`` fixture, and
``python -m otel_amplitude.testing`` runs it standalone.
"""

from __future__ import annotations

from otel_amplitude._clock import ManualClock
from otel_amplitude.testing._faults import Fault, FaultPlan
from otel_amplitude.testing._server import AmplitudeServer
from otel_amplitude.testing._standalone import serve
from otel_amplitude.testing._store import RecordedRequest

__all__ = ["AmplitudeServer", "Fault", "FaultPlan", "ManualClock", "RecordedRequest", "serve"]

"""otel-amplitude's pytest plugin (entry point ``pytest11``): the ``amplitude_server`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from otel_amplitude.testing._server import AmplitudeServer

__all__ = ["amplitude_server"]


@pytest.fixture
def amplitude_server() -> Iterator[AmplitudeServer]:
    """A started Amplitude-compatible server on 127.0.0.1, stopped after the test.

    Point the code under test at ``amplitude_server.url``; inspect ``.events`` and
    ``.requests``; inject faults through ``.faults``.
    """
    with AmplitudeServer() as server:
        yield server

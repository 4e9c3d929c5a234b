"""Each example in examples/ runs against the local server and sends exactly its events."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from otel_amplitude.testing import AmplitudeServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, server: AmplitudeServer) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMPLITUDE_", "OTEL_"))}
    env.update(AMPLITUDE_API_KEY="example-key-0001", AMPLITUDE_SERVER_URL=server.url)
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return server.events


def test_logging_example(server: AmplitudeServer):
    events = run_example("logging_example.py", server)
    assert [(e["event_type"], e["user_id"], e["event_properties"]) for e in events] == [
        ("report_exported", "user-00042", {"format": "pdf"}),
        ("dashboard_viewed", "user-00042", {"dashboard": "sales"}),
    ]
    assert events[1]["session_id"] == 1_767_225_600_000


def test_otel_sdk_example(server: AmplitudeServer):
    events = run_example("otel_sdk_example.py", server)
    by_type = {e["event_type"]: e for e in events}
    assert sorted(by_type) == ["checkout_completed", "coupon_applied"]
    checkout = by_type["checkout_completed"]
    assert checkout["user_id"] == "user-00042"
    assert checkout["app_version"] == "2.1.0"
    assert checkout["event_properties"]["cart.items"] == 3
    assert checkout["event_properties"]["status"] in ("unset", "ok")
    assert by_type["coupon_applied"]["event_properties"]["code"] == "SPRING"


def test_structlog_example(server: AmplitudeServer):
    pytest.importorskip("structlog", reason="the structlog extra is not installed")
    events = run_example("structlog_example.py", server)
    assert [(e["event_type"], e["user_id"], e["event_properties"]) for e in events] == [
        ("invoice_paid", "user-00042", {"amount": 120, "currency_code": "EUR"}),
    ]

"""Zero-code: ``opentelemetry-instrument`` with ``OTEL_*_EXPORTER=amplitude`` and ``AMPLITUDE_*``
variables, and nothing about Amplitude in the program, delivers its events and exits promptly.

Each test runs a real ``opentelemetry-instrument`` (the one installed next to this interpreter)
in a subprocess against the local server. The programs end right after their last span or log
record, so those are still in the SDK's batch processor at exit: they reach the server only if
the exit sequence is right (the provider's shutdown exports them into a client that is still
running, then the client's exit flush delivers them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

from otel_amplitude.testing import AmplitudeServer

from .conftest import API_KEY

INSTRUMENT = Path(sys.executable).with_name("opentelemetry-instrument")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "otel_instrument_app.py"
USER = "user-00001"
#: A run that needs longer than this to exit is waiting on something it should not.
PROMPT_EXIT_SECONDS = 15.0


def environment(server: AmplitudeServer, **variables: str) -> dict[str, str]:
    """This process's environment without any OTEL_*/AMPLITUDE_* setting, plus ``variables``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OTEL_", "AMPLITUDE_"))
    }
    env.update(
        AMPLITUDE_API_KEY=API_KEY,
        AMPLITUDE_SERVER_URL=server.url,
        OTEL_SERVICE_NAME="zero-code-test",
        OTEL_RESOURCE_ATTRIBUTES="service.version=3.1.4",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    env.update(variables)
    return env


def instrument(program: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    result = subprocess.run(
        [str(INSTRUMENT), sys.executable, "-c", textwrap.dedent(program)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert time.monotonic() - started < PROMPT_EXIT_SECONDS, "the program did not exit promptly"
    return result


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert "Failed to auto initialize" not in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_traces_exporter_amplitude_delivers_tagged_spans(server: AmplitudeServer):
    result = instrument(
        """
        from opentelemetry import trace

        tracer = trace.get_tracer("app")
        with tracer.start_as_current_span(
            "POST /signup",
            attributes={"amplitude.event_type": "Signed Up", "enduser.id": "user-00001",
                        "plan": "pro"},
        ):
            with tracer.start_as_current_span("SELECT users"):  # not an event
                pass
        """,
        environment(server, OTEL_TRACES_EXPORTER="amplitude"),
    )

    assert_clean(result)
    assert server.wait_for_events(1, timeout=5)
    (event,) = server.events
    assert event["event_type"] == "Signed Up"
    assert event["user_id"] == USER
    assert event["app_version"] == "3.1.4"
    assert event["event_properties"]["plan"] == "pro"


def test_spans_ended_after_an_earlier_export_are_still_delivered_at_exit(server: AmplitudeServer):
    # After the first export the client is running; its exit flush must still come after the
    # TracerProvider's exit shutdown, or the last spans would meet a closed client.
    result = instrument(
        """
        from opentelemetry import trace

        tracer = trace.get_tracer("app")
        tracer.start_span("a", attributes={"amplitude.event_type": "First",
                                           "enduser.id": "user-00001"}).end()
        trace.get_tracer_provider().force_flush()
        tracer.start_span("b", attributes={"amplitude.event_type": "Second",
                                           "enduser.id": "user-00001"}).end()
        """,
        environment(server, OTEL_TRACES_EXPORTER="amplitude"),
    )

    assert_clean(result)
    assert server.wait_for_events(2, timeout=5)
    assert sorted(e["event_type"] for e in server.events) == ["First", "Second"]


def test_logs_exporter_amplitude_delivers_bridged_log_records(server: AmplitudeServer):
    result = instrument(
        """
        import logging

        log = logging.getLogger("shop.reports")
        log.warning("Report Exported", extra={"user_id": "user-00001", "format": "pdf"})
        log.warning("disk almost full")  # nobody's: counted, not sent
        """,
        environment(
            server,
            OTEL_LOGS_EXPORTER="amplitude",
            OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true",
        ),
    )

    assert_clean(result)
    assert server.wait_for_events(1, timeout=5)
    (event,) = server.events
    assert event["event_type"] == "Report Exported"
    assert event["user_id"] == USER
    assert event["event_properties"] == {"format": "pdf"}
    assert event["app_version"] == "3.1.4"


def test_traces_and_logs_together_share_one_client(server: AmplitudeServer):
    result = instrument(
        """
        import logging
        from opentelemetry import trace

        tracer = trace.get_tracer("app")
        with tracer.start_as_current_span(
            "checkout", attributes={"amplitude.event_type": "Order Placed",
                                    "enduser.id": "user-00001"}
        ):
            logging.getLogger("shop").warning("Coupon Applied", extra={"user_id": "user-00001"})
        """,
        environment(
            server,
            OTEL_TRACES_EXPORTER="amplitude",
            OTEL_LOGS_EXPORTER="amplitude",
            OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true",
        ),
    )

    assert_clean(result)
    assert server.wait_for_events(2, timeout=5)
    assert sorted(e["event_type"] for e in server.events) == ["Coupon Applied", "Order Placed"]


def test_a_missing_api_key_is_reported_clearly_and_the_program_still_runs(
    server: AmplitudeServer,
):
    env = environment(server, OTEL_TRACES_EXPORTER="amplitude")
    del env["AMPLITUDE_API_KEY"]

    result = instrument("print('still running')", env)

    assert result.returncode == 0
    assert "still running" in result.stdout
    assert "AMPLITUDE_API_KEY is required" in result.stderr
    assert server.requests == []


def test_the_example_wsgi_app_sends_sign_ups_with_env_vars_only(server: AmplitudeServer):
    env = environment(server, OTEL_TRACES_EXPORTER="amplitude", PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [str(INSTRUMENT), sys.executable, str(EXAMPLE), "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on " in line, line
        url = line.rsplit(" ", 1)[1].strip()
        signup = urllib.request.Request(
            f"{url}/signup?user=user-00042&plan=pro",
            method="POST",
            headers={"User-Agent": "zero-code-test/1.0"},
        )
        with urllib.request.urlopen(signup, timeout=10) as response:
            assert response.status == 201
        with urllib.request.urlopen(f"{url}/", timeout=10) as response:
            assert response.status == 200

        process.send_signal(signal.SIGTERM)  # what a container platform sends to stop it
        _, stderr = process.communicate(timeout=PROMPT_EXIT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, stderr
    assert server.wait_for_events(1, timeout=5)
    (event,) = server.events
    assert event["event_type"] == "Signed Up"
    assert event["user_id"] == "user-00042"
    assert event["user_agent"] == "zero-code-test/1.0"
    assert event["event_properties"]["plan"] == "pro"
    assert "ip" not in event  # AMPLITUDE_SEND_IP is off

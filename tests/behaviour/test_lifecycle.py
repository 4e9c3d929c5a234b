"""Process life cycle: exit flush, fork, lazy threads."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

from otel_amplitude import Client, Settings
from otel_amplitude.testing import AmplitudeServer

from .conftest import API_KEY, MakeClient


def run_python(
    code: str, server: AmplitudeServer, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AMPLITUDE_API_KEY": API_KEY, "AMPLITUDE_SERVER_URL": server.url}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_no_thread_starts_before_the_first_event(server: AmplitudeServer):
    before = {t.name for t in threading.enumerate()}
    client = Client(Settings(api_key=API_KEY, server_url=server.url))
    assert {t.name for t in threading.enumerate()} == before
    client.track("e", user_id="user-00001")
    assert any(t.name == "otel_amplitude.dispatcher" for t in threading.enumerate())
    client.shutdown(timeout=2)
    assert not any(t.name.startswith("otel_amplitude.") for t in threading.enumerate())
    assert len(server.events) == 1


def test_events_are_flushed_at_interpreter_exit(server: AmplitudeServer):
    result = run_python(
        """
        import otel_amplitude
        client = otel_amplitude.default_client()
        for n in range(25):
            client.track("exit_test", user_id=f"user-{n:04d}")
        """,
        server,
    )
    assert result.returncode == 0, result.stderr
    assert server.wait_for_events(25, timeout=5)
    assert len(server.events) == 25


def test_exit_flush_is_bounded_by_the_shutdown_timeout(server: AmplitudeServer):
    server.faults.delay_seconds = 10.0
    started = time.monotonic()
    result = run_python(
        """
        import os
        os.environ["AMPLITUDE_SHUTDOWN_TIMEOUT_MS"] = "500"
        import otel_amplitude
        otel_amplitude.default_client().track("slow", user_id="user-00001")
        """,
        server,
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 8.0


def test_forked_child_starts_fresh_and_never_resends_the_parents_events(server: AmplitudeServer):
    result = run_python(
        """
        import os
        import otel_amplitude
        os.environ["AMPLITUDE_FLUSH_INTERVAL_MS"] = "3600000"
        client = otel_amplitude.Client.from_env()
        for n in range(5):
            client.track("parent", user_id="user-parent", event_properties={"seq": n})
        pid = os.fork()
        if pid == 0:
            for n in range(3):
                client.track("child", user_id="user-child-", event_properties={"seq": n})
            ok = client.flush(timeout=5)
            stats = client.stats()
            os._exit(0 if ok and stats["submitted"] == 3 and stats["accepted"] == 3 else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "child failed"
        assert client.flush(timeout=5)
        assert client.stats()["accepted"] == 5
        """,
        server,
    )
    assert result.returncode == 0, result.stderr
    types = sorted(e["event_type"] for e in server.events)
    assert types == ["child"] * 3 + ["parent"] * 5
    assert server.duplicates == 0
    assert sum(r.events_count for r in server.requests) == 8


def test_client_is_a_context_manager_that_flushes(server: AmplitudeServer, make_client: MakeClient):
    with make_client() as client:
        client.track("e", user_id="user-00001")
    assert len(server.events) == 1

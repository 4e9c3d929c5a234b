"""The ``otel-amplitude`` command: demo, serve and check."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import urllib3

from otel_amplitude.__main__ import main
from otel_amplitude._demo import _report, run_demo

CLI = str(Path(sys.executable).with_name("otel-amplitude"))


def test_demo_delivers_everything_and_exits_0():
    out = io.StringIO()

    assert run_demo(users=60, quiet=True, out=out) == 0

    text = out.getvalue()
    for line in ("delivered exactly once", "per-device order", "counters conserved"):
        assert f"[ok  ] {line}" in text
    assert "report_exported" in text
    assert "checkout_completed" in text


def _stats(**overrides: int) -> dict[str, int]:
    stats = dict.fromkeys(
        ("submitted", "accepted", "rejected", "dropped", "dead_lettered", "buffered", "in_flight",
         "retried", "throttled"),
        0,
    )  # fmt: skip
    stats.update(overrides)
    return stats


def _event(insert_id: str, seq: int) -> dict[str, object]:
    return {
        "event_type": "e",
        "user_id": "user-1",
        "insert_id": insert_id,
        "event_properties": {"source": "logging", "seq": seq},
    }


@pytest.mark.parametrize(
    ("stored", "stats"),
    [
        ([_event("a", 0)], _stats(submitted=2, accepted=2)),  # one event missing
        ([_event("a", 0), _event("a", 0)], _stats(submitted=2, accepted=2)),  # a duplicate
        ([_event("a", 1), _event("b", 0)], _stats(submitted=2, accepted=2)),  # out of order
        ([_event("a", 0), _event("b", 1)], _stats(submitted=3, accepted=2)),  # not conserved
    ],
    ids=["missing", "duplicate", "out-of-order", "not-conserved"],
)
def test_demo_report_exits_1_when_any_promise_is_broken(stored, stats):
    out = io.StringIO()
    assert _report(out, stats, stored, [], 0, 2, 1.0, "user-9") == 1
    assert "[FAIL]" in out.getvalue()


def test_check_prints_resolved_settings_with_the_key_masked(monkeypatch, capsys):
    monkeypatch.setenv("AMPLITUDE_API_KEY", "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("AMPLITUDE_SERVER_ZONE", "eu")

    assert main(["check"]) == 0

    out = capsys.readouterr().out
    assert "0123456789abcdef" not in out
    assert "set (32 chars)" in out
    assert "EU" in out
    assert "configuration OK" in out


def test_check_reports_a_bad_variable_like_start_up_does(monkeypatch, capsys):
    monkeypatch.setenv("AMPLITUDE_API_KEY", "0123456789abcdef")
    monkeypatch.setenv("AMPLITUDE_SENDERS", "0")

    assert main(["check"]) == 2

    err = capsys.readouterr().err
    assert "AMPLITUDE_SENDERS must be an integer from 1 to 64, got '0'" in err


def test_check_without_an_api_key_says_so(monkeypatch, capsys):
    monkeypatch.delenv("AMPLITUDE_API_KEY", raising=False)
    assert main(["check"]) == 1
    assert "AMPLITUDE_API_KEY is not set" in capsys.readouterr().err


def test_check_lists_the_tenants_of_the_destinations_file_keys_masked(
    monkeypatch, capsys, tmp_path
):
    path = tmp_path / "destinations.toml"
    path.write_text(
        '[tenants.acme]\napi_key = "acme-key-000000000001"\nzone = "EU"\n'
        'environment = "staging"\nsecret_key = "env:ACME_SECRET"\n'
        '[tenants.globex]\napi_key = "globex-key-0000000001"\n'
    )
    monkeypatch.delenv("AMPLITUDE_API_KEY", raising=False)
    monkeypatch.setenv("ACME_SECRET", "acme-secret-00000001")
    monkeypatch.setenv("AMPLITUDE_DESTINATIONS_FILE", str(path))

    assert main(["check"]) == 0

    out = capsys.readouterr().out
    assert "destinations (2 tenants):" in out
    assert (
        "acme: EU, staging, https://api.eu.amplitude.com, api_key set (21 chars),"
        " secret_key set" in out
    )
    assert "globex: US, https://api2.amplitude.com, api_key set (21 chars), no secret_key" in out
    assert "acme-key" not in out
    assert "acme-secret" not in out


def test_check_reports_a_bad_destinations_file(monkeypatch, capsys, tmp_path):
    path = tmp_path / "destinations.toml"
    path.write_text("[tenants.acme]\nzone = 'EU'\n")
    monkeypatch.setenv("AMPLITUDE_DESTINATIONS_FILE", str(path))

    assert main(["check"]) == 2

    assert "[tenants.acme]: api_key is required" in capsys.readouterr().err


def test_serve_prints_its_url_and_answers_amplitude_requests():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLITUDE_")}
    proc = subprocess.Popen(
        [CLI, "serve", "--port", "0"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        with urllib3.PoolManager() as http:
            reply = http.request(
                "POST",
                f"{url}/2/httpapi",
                json={"api_key": "k", "events": [{"event_type": "e", "user_id": "user-1"}]},
            )
        assert reply.status == 200
        assert reply.json()["events_ingested"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

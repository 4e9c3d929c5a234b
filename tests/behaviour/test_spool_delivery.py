"""The durable spool end to end: no event lost across a crash, a restart or a long outage, none
delivered twice (after Amplitude's insert_id deduplication), each device's order kept.

Real processes are killed with SIGKILL; outages are a local server answering 503 to everything;
time is the injected clock, so a 10-minute outage takes seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from otel_amplitude import Client, Settings, SpoolError
from otel_amplitude.__main__ import main
from otel_amplitude.testing import AmplitudeServer, ManualClock

from .conftest import API_KEY, MakeClient, assert_conserved, assert_in_order, drive

OUTAGE = ("503",)


def outage(server: AmplitudeServer) -> None:
    server.faults.random(1.0, seed=7, kinds=OUTAGE)


def recover(server: AmplitudeServer) -> None:
    server.faults.random(0.0, seed=0)


def track_seq(client: Client, n: int, devices: int, *, start: int = 0) -> list[str]:
    return [
        client.track(
            "page_viewed",
            user_id=f"user-{i % devices:04d}",
            device_id=f"device-{i % devices:04d}",
            event_properties={"seq": i},
        )
        for i in range(start, start + n)
    ]


def eventually(condition: Any, timeout: float = 5.0) -> bool:
    """Spool rows of delivered events go at the next group commit (every sync_ms)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def stored_ids(server: AmplitudeServer) -> list[str]:
    return [e["insert_id"] for e in server.events]


def test_what_a_client_could_not_deliver_is_delivered_by_the_next_one_exactly_once(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path, clock: ManualClock
):
    spool = str(tmp_path / "spool")
    outage(server)
    first = make_client(spool_dir=spool)
    ids = track_seq(first, 300, devices=7)
    assert first.flush(timeout=0.3) is False  # Amplitude is down: kept
    first.shutdown(timeout=0.2)
    assert first.stats()["buffered"] == 300
    assert first.stats()["dead_lettered"] == 0
    assert server.events == []

    recover(server)
    second = make_client(spool_dir=spool)  # starts delivering at once, no event needed

    drive(second, clock, lambda: len(server.events) == 300, step=1.0)
    assert sorted(stored_ids(server)) == sorted(ids)
    assert server.duplicates == 0
    assert_in_order(server.events)
    stats = second.stats()
    assert stats["replayed"] == stats["submitted"] == stats["accepted"] == 300
    assert second.flush(timeout=5)
    assert eventually(lambda: second.stats()["spooled"] == 0)


def test_a_long_outage_keeps_every_event_on_disk_with_bounded_memory_and_then_drains(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path, clock: ManualClock
):
    outage(server)
    client = make_client(
        spool_dir=str(tmp_path / "spool"),
        max_buffered_events=5_000,
        partition_capacity=5_000,
        flush_max_events=1_000,
        max_retries=3,
    )
    ids: list[str] = []
    most_in_memory = 0
    # 10 minutes of a 1,000 events/s service squeezed into 100,000 events, 10 s of clock a step.
    for step in range(60):
        ids += track_seq(client, 100_000 // 60 + (1 if step < 100_000 % 60 else 0), 500,
                         start=len(ids))  # fmt: skip
        clock.advance(10.0)
        client.flush(timeout=0.01)
        stats = client.stats()
        most_in_memory = max(most_in_memory, stats["buffered"] - stats["backlog_on_disk"])
    assert len(ids) == 100_000
    stats = client.stats()
    assert stats["dropped"] == stats["dead_lettered"] == stats["accepted"] == 0
    assert stats["buffered"] + stats["in_flight"] == 100_000
    assert stats["backlog_on_disk"] >= 90_000
    # The buffers (5,000) plus at most one step's events still in transit from the caller:
    # bounded, whatever the length of the outage.
    assert most_in_memory <= 5_000 + 100_000 // 60 + 1

    recover(server)
    drive(client, clock, lambda: client.stats()["accepted"] == 100_000, step=1.0, real_timeout=60)

    assert len(server.events) == 100_000
    assert len(set(stored_ids(server))) == 100_000
    assert_in_order(server.events)
    assert client.flush(timeout=5)
    assert eventually(lambda: client.stats()["spooled"] == 0)


def test_flush_waits_for_the_backlog_on_disk(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path, clock: ManualClock
):
    client = make_client(spool_dir=str(tmp_path / "spool"), max_buffered_events=50)
    outage(server)
    track_seq(client, 500, devices=5)
    assert client.flush(timeout=0.2) is False
    assert client.stats()["backlog_on_disk"] > 0
    seen: list[int] = []

    def flush() -> None:
        assert client.flush(timeout=20)
        seen.append(len(server.events))  # what had arrived when flush() returned

    flusher = threading.Thread(target=flush)
    flusher.start()
    recover(server)
    while flusher.is_alive():
        clock.advance(1.0)  # retries wait out their backoff
        flusher.join(0.01)

    assert seen == [500]
    assert client.stats()["backlog_on_disk"] == 0


def test_an_opt_out_or_a_deletion_removes_the_users_events_from_the_spool(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path, clock: ManualClock
):
    spool = str(tmp_path / "spool")
    outage(server)
    client = make_client(spool_dir=spool, max_buffered_events=20, secret_key="secret-000001")
    for i in range(200):
        for user in ("user-stays", "user-leaves", "user-erased"):
            client.track("page_viewed", user_id=user, event_properties={"seq": i})
    client.flush(timeout=0.1)
    assert client.stats()["backlog_on_disk"] > 100

    client.consent.opt_out("user-leaves")
    client.consent.delete_user("user-erased")
    stats = client.stats()
    assert stats["dropped_by_reason"] == {"opted_out": 200, "deleted": 200}
    assert_conserved(stats)
    client.shutdown(timeout=0.2)

    recover(server)
    second = make_client(spool_dir=spool)
    assert second.flush(timeout=5)
    assert {e["user_id"] for e in server.events} == {"user-stays"}
    assert len(server.events) == 200


def test_a_corrupt_or_foreign_file_in_the_spool_directory_is_a_clear_error(tmp_path: Path):
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "segment-1-deadbeef.db").write_bytes(b"not a database" * 100)

    with pytest.raises(SpoolError, match=r"segment-1-deadbeef\.db"):
        Client(Settings(api_key=API_KEY, spool_dir=str(spool)))

    (spool / "segment-1-deadbeef.db").unlink()
    (spool / "notes.txt").write_text("hello")
    with pytest.raises(SpoolError, match=r"notes\.txt"):
        Client(Settings(api_key=API_KEY, spool_dir=str(spool)))


def test_a_full_spool_drops_the_newest_events_counted(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path
):
    outage(server)
    client = make_client(spool_dir=str(tmp_path / "spool"), spool_max_mb=1)
    track_seq(client, 5_000, devices=5)
    client.flush(timeout=0.2)

    stats = client.stats()
    assert 0 < stats["dropped_by_reason"]["overflow"] < 5_000
    assert stats["spooled"] + stats["dropped"] == 5_000
    assert_conserved(stats)


def test_a_broken_destination_keeps_its_backlog_on_disk_while_the_others_flow(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path, clock: ManualClock
):
    path = tmp_path / "destinations.toml"
    path.write_text('[tenants.acme]\napi_key = "acme-key-refused-01"\n'
                    '[tenants.globex]\napi_key = "globex-key-00000001"\n')  # fmt: skip
    with AmplitudeServer(api_keys=["globex-key-00000001", "acme-key-accepted-1"]) as srv:
        client = make_client(
            server_url=srv.url,
            destinations_file=str(path),
            spool_dir=str(tmp_path / "spool"),
            max_buffered_events=400,
        )
        kept = [client.track("a", user_id=f"acme-{i % 3}", tenant="acme") for i in range(1_000)]
        sent = [client.track("b", user_id=f"glob-{i % 3}", tenant="globex") for i in range(500)]
        drive(client, clock, lambda: len(srv.events) == 500, step=0.5)

        acme = client.stats()["destinations"]["acme"]
        assert acme["destination_paused"]
        assert acme["dropped"] == 0  # beyond its share of memory, on disk
        assert client.stats()["backlog_on_disk"] >= 1_000 - 100

        path.write_text('[tenants.acme]\napi_key = "acme-key-accepted-1"\n'
                        '[tenants.globex]\napi_key = "globex-key-00000001"\n')  # fmt: skip
        client.reload_destinations()
        drive(client, clock, lambda: len(srv.events) == 1_500, step=0.5)

        assert sorted(e["insert_id"] for e in srv.events_for("acme-key-accepted-1")) == sorted(kept)
        assert sorted(e["insert_id"] for e in srv.events_for("globex-key-00000001")) == sorted(sent)
        assert srv.duplicates == 0


# -- processes ------------------------------------------------------------------------------


EMITTER = textwrap.dedent(
    """
    import sys, time
    from otel_amplitude import Client, Settings

    url, spool, sync_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = Client(Settings(api_key="test-api-key-0001", server_url=url, spool_dir=spool,
                             spool_sync_ms=sync_ms, flush_interval_ms=50))
    n = 0
    while True:
        insert_id = client.track("page_viewed", user_id=f"user-{n % 13:04d}",
                                 device_id=f"device-{n % 13:04d}", event_properties={"seq": n})
        print(f"{time.monotonic():.6f} {insert_id}", flush=True)
        n += 1
        if n % 50 == 0:
            time.sleep(0.005)
        if len(sys.argv) > 4 and n == int(sys.argv[4]):
            client.shutdown(0.2)
            print("done", flush=True)
            break
    """
)


def emitter(url: str, spool: str, sync_ms: int, count: int | None = None) -> Any:
    args = [sys.executable, "-c", EMITTER, url, spool, str(sync_ms)]
    if count is not None:
        args.append(str(count))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLITUDE_")}
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)


def test_events_of_a_process_killed_with_sigkill_are_delivered_by_the_next_exactly_once(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path, clock: ManualClock
):
    spool = str(tmp_path / "spool")
    sync_ms = 100
    server.faults.random(0.5, seed=3, kinds=OUTAGE)  # some delivered before the kill, some not
    proc = emitter(server.url, spool, sync_ms)
    assert proc.stdout is not None
    emitted: list[tuple[float, str]] = []
    started = time.monotonic()
    while time.monotonic() - started < 1.5:
        stamp, insert_id = proc.stdout.readline().split()
        emitted.append((float(stamp), insert_id))
    proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    proc.wait(timeout=10)
    for line in proc.stdout:  # what it printed before dying
        stamp, insert_id = line.split()
        emitted.append((float(stamp), insert_id))
    proc.stdout.close()
    recover(server)

    second = make_client(spool_dir=spool)
    must = {i for stamp, i in emitted if stamp < killed - (sync_ms + 300) / 1000.0}
    assert len(must) > 100
    drive(second, clock, lambda: must <= set(stored_ids(server)), step=1.0, real_timeout=30)
    assert second.flush(timeout=10)

    stored = stored_ids(server)
    assert len(stored) == len(set(stored))  # exactly once, after Amplitude's deduplication
    assert set(stored) <= {i for _, i in emitted}
    assert_in_order(server.events)
    assert second.stats()["replayed"] > 0


def test_two_processes_share_a_spool_directory_and_each_event_is_delivered_once(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path, clock: ManualClock
):
    spool = str(tmp_path / "spool")
    outage(server)
    here = make_client(spool_dir=spool)
    mine = track_seq(here, 100, devices=3)
    other = emitter(server.url, spool, 50, count=400)  # a live neighbour, then a clean exit
    assert other.stdout is not None
    theirs = [line.split()[1] for line in other.stdout if line.strip() != "done"]
    other.wait(timeout=20)
    other.stdout.close()
    assert len(theirs) == 400
    assert here.stats()["replayed"] == 0  # its segment was never touched while it lived

    recover(server)
    # Within the adoption period (5 s of the client's clock) the dead neighbour's segment is
    # taken over; every event of both processes arrives once.
    drive(here, clock, lambda: len(server.events) == 500, step=1.0, real_timeout=30)

    assert sorted(stored_ids(server)) == sorted(mine + theirs)
    assert server.duplicates == 0
    assert here.stats()["replayed"] == 400
    assert here.flush(timeout=5)


def test_spool_drain_delivers_what_a_dead_process_left_with_a_progress_bar(
    server: AmplitudeServer,
    make_client: MakeClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    spool = str(tmp_path / "spool")
    outage(server)
    first = make_client(spool_dir=spool)
    ids = track_seq(first, 250, devices=4)
    first.shutdown(timeout=0.2)
    recover(server)
    for name in [n for n in os.environ if n.startswith("AMPLITUDE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AMPLITUDE_API_KEY", API_KEY)
    monkeypatch.setenv("AMPLITUDE_SERVER_URL", server.url)

    assert main(["spool", "drain", spool, "--timeout", "20"]) == 0

    out = capsys.readouterr().out
    assert "[##############################]       250/250 events" in out
    assert "drained 250 events" in out
    assert "0 left in the spool" in out
    assert sorted(stored_ids(server)) == sorted(ids)
    assert_in_order(server.events)
    assert os.listdir(spool) == []  # an empty spool leaves no file behind


def test_spool_drain_of_a_bad_directory_says_why(tmp_path: Path, capsys: Any):
    (tmp_path / "notes.txt").write_text("hello")

    assert main(["spool", "drain", str(tmp_path)]) == 2

    assert "notes.txt" in capsys.readouterr().err


def test_replayed_events_go_to_their_own_destination_and_an_unknown_one_is_dropped_counted(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path, clock: ManualClock
):
    spool = str(tmp_path / "spool")
    path = tmp_path / "destinations.toml"
    path.write_text('[tenants.acme]\napi_key = "acme-key-0000000001"\n'
                    '[tenants.globex]\napi_key = "globex-key-00000001"\n')  # fmt: skip
    outage(server)
    first = make_client(spool_dir=spool, destinations_file=str(path))
    acme = [first.track("a", user_id="user-1", tenant="acme") for _ in range(3)]
    for _ in range(2):
        first.track("b", user_id="user-1", tenant="globex")
    first.shutdown(timeout=0.2)
    recover(server)
    path.write_text('[tenants.acme]\napi_key = "acme-key-0000000001"\n')  # globex is gone

    second = make_client(spool_dir=spool, destinations_file=str(path))
    drive(second, clock, lambda: len(server.events) == 3, step=1.0)

    assert sorted(e["insert_id"] for e in server.events_for("acme-key-0000000001")) == sorted(acme)
    stats = second.stats()
    assert stats["replayed"] == 5
    assert stats["dropped_by_reason"] == {"unknown_tenant": 2}
    assert_conserved(stats)

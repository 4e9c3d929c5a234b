"""The Redis consent store against a real ``redis-server``: a fleet hears every change in < 1 s.

Each client here has its own connections, as separate processes would. The server is started
on a free loopback port for each test and killed afterwards.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otel_amplitude import Client
from otel_amplitude.testing import AmplitudeServer, ManualClock

from .conftest import API_KEY, MakeClient, drive

SECRET_KEY = "test-secret-key-0001"
REDIS_SERVER = shutil.which("redis-server")

pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None,
    reason="redis-server is not installed (apt-get install redis-server); CI installs it",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A throw-away ``redis-server`` on 127.0.0.1, no persistence."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        assert REDIS_SERVER is not None
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    if client.ping():
                        return self
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, "redis-server did not start"
                    assert self.process.poll() is None, "redis-server exited"
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def cli(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    running = RedisServer().start()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _no_threads_left() -> Iterator[None]:
    yield
    deadline = time.monotonic() + 5
    while (left := _consent_threads()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not left


def _consent_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("otel_amplitude.consent")]


@pytest.fixture
def server(clock: ManualClock) -> Iterator[AmplitudeServer]:
    with AmplitudeServer(clock=clock, secret_keys={API_KEY: SECRET_KEY}) as running:
        yield running


def within(seconds: float, condition: Callable[[], bool]) -> float:
    """Seconds until ``condition()`` held; fails past ``seconds``."""
    started = time.monotonic()
    while not condition():
        elapsed = time.monotonic() - started
        assert elapsed < seconds, f"not within {seconds} s"
        time.sleep(0.002)
    return time.monotonic() - started


def started(client: Client) -> Client:
    """A client that has sent an event, so it listens to the store (as a running service does)."""
    client.track("Warmed Up", user_id="user-warm-up")
    return client


def test_an_opt_out_reaches_another_client_within_a_second(
    server: AmplitudeServer, make_client: MakeClient, redis_server: RedisServer
):
    here = make_client(consent_redis_url=redis_server.url)
    there = started(make_client(consent_redis_url=redis_server.url, flush_interval_ms=3_600_000))
    for n in range(3):
        there.track("Viewed", user_id="user-leaving", event_properties={"n": n})
    there._dispatcher.wake.set()

    here.consent.opt_out("user-leaving")

    assert within(1.0, lambda: there.consent.status("user-leaving") == "opted_out") < 1.0
    there.track("Viewed", user_id="user-leaving")
    assert there.flush(5)
    assert {e["user_id"] for e in server.events} == {"user-warm-up"}
    assert there.stats()["dropped_by_reason"] == {"opted_out": 4}  # 3 purged, 1 refused


def test_a_deletion_reaches_every_client_and_is_sent_once(
    server: AmplitudeServer,
    make_client: MakeClient,
    redis_server: RedisServer,
    clock: ManualClock,
):
    here = make_client(consent_redis_url=redis_server.url, secret_key=SECRET_KEY)
    there = started(make_client(consent_redis_url=redis_server.url, secret_key=SECRET_KEY))

    here.consent.delete_user("user-deleted", requester="dpo@example.com")
    here.consent.opt_in("user-deleted")  # no effect: deleted is forever

    within(1.0, lambda: there.consent.status("user-deleted") == "deleted")
    drive(here, clock, lambda: here.consent.pending_deletions() == 0, step=1.0)
    assert [b["user_ids"] for b in server.deletions] == [["user-deleted"]]
    assert there.consent.pending_deletions() == 0  # one queue for the fleet
    assert redis_server.cli().hget("{otel_amplitude}:consent:user", "user-deleted") == b"deleted"


def test_opt_in_mode_across_clients(
    server: AmplitudeServer, make_client: MakeClient, redis_server: RedisServer
):
    here = make_client(consent_redis_url=redis_server.url, consent_mode="opt_in")
    there = started(make_client(consent_redis_url=redis_server.url, consent_mode="opt_in"))

    here.consent.opt_in("user-consented")
    within(1.0, lambda: there.consent.status("user-consented") == "opted_in")
    there.track("Viewed", user_id="user-consented")
    there.track("Viewed", user_id="user-unknown")

    assert there.flush(5)
    assert [e["user_id"] for e in server.events] == ["user-consented"]


def test_consent_survives_clients_and_a_new_one_loads_it(
    server: AmplitudeServer, make_client: MakeClient, redis_server: RedisServer
):
    first = make_client(consent_redis_url=redis_server.url)
    first.consent.opt_out("user-leaving")
    first.consent.opt_out(device_id="device-leaving")
    first.shutdown()

    second = make_client(consent_redis_url=redis_server.url)

    assert second.consent.status("user-leaving") == "opted_out"
    assert second.consent.status(device_id="device-leaving") == "opted_out"


def test_a_change_made_behind_the_stores_back_is_found_by_the_resync(
    server: AmplitudeServer, make_client: MakeClient, redis_server: RedisServer
):
    client = started(make_client(consent_redis_url=redis_server.url))
    cli = redis_server.cli()

    # An operator's fix with redis-cli: no message is published, only the counter moves.
    cli.hset("{otel_amplitude}:consent:user", "user-by-hand", "opted_out")
    cli.incr("{otel_amplitude}:consent:version")

    within(3.0, lambda: client.consent.status("user-by-hand") == "opted_out")
    cli.close()


def test_events_wait_for_nothing_when_redis_is_down_they_are_dropped_until_it_is_back(
    server: AmplitudeServer, make_client: MakeClient
):
    later = RedisServer()  # not started yet
    client = make_client(consent_redis_url=later.url)
    client.track("Viewed", user_id="user-1")
    assert client.flush(5)
    assert client.stats()["dropped_by_reason"] == {"consent_unavailable": 1}

    later.start()
    try:
        within(10.0, lambda: client.consent.gate.ready)
        client.track("Viewed", user_id="user-1")
        assert client.flush(5)
        assert [e["user_id"] for e in server.events] == ["user-1"]
    finally:
        client.shutdown()
        later.stop()


def test_the_store_repr_never_shows_the_url(make_client: MakeClient, redis_server: RedisServer):
    client = make_client(consent_redis_url=redis_server.url.replace("//", "//:s3cret@"))

    assert "s3cret" not in repr(client.consent)
    assert "s3cret" not in repr(client.settings)


def test_a_redis_that_lost_its_data_does_not_unblock_anyone(
    server: AmplitudeServer, make_client: MakeClient, redis_server: RedisServer
):
    client = started(make_client(consent_redis_url=redis_server.url))
    client.consent.opt_out("user-leaving")
    client.consent.opt_in("user-other")
    cli = redis_server.cli()

    restarted = cli.pipeline(transaction=True)  # a restart without persistence, then a write
    restarted.flushall()
    restarted.hset("{otel_amplitude}:consent:device", "device-new", "opted_out")
    restarted.execute()
    time.sleep(1.5)  # the counter check runs every second

    assert client.consent.status("user-leaving") == "opted_out"
    assert client.consent.status(device_id="device-new") == "opted_out"
    client.track("Viewed", user_id="user-leaving")
    assert client.flush(5)
    assert [e["user_id"] for e in server.events] == ["user-warm-up"]
    cli.close()

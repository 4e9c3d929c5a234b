"""The transport: one POST over a kept-alive connection, and every failure reported, not raised."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from otel_amplitude._sender import MAX_POOLS, Transport
from otel_amplitude._version import __version__
from otel_amplitude.testing import AmplitudeServer, Fault

BODY = b'{"api_key":"key-0001","events":[{"event_type":"x","user_id":"user-0001"}]}'


@pytest.fixture
def transport() -> Iterator[Transport]:
    transport = Transport(timeout_s=5.0, maxsize=2)
    yield transport
    transport.close()


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_post_sends_the_body_with_json_headers_and_returns_the_answer(
    server: AmplitudeServer, transport: Transport
) -> None:
    response = transport.post(server.url + "/2/httpapi", BODY)
    assert response.status == 200
    assert b'"events_ingested":1' in response.body
    assert response.failure is None
    [request] = server.requests
    assert request.path == "/2/httpapi"
    assert request.body == BODY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"otel-amplitude/{__version__}"
    assert request.headers["content-length"] == str(len(BODY))


def test_a_form_post_says_so_in_its_content_type(
    server: AmplitudeServer, transport: Transport
) -> None:
    transport.post(server.url + "/identify", b"api_key=key-0001&identification=%5B%5D", form=True)
    [request] = server.requests
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"


def test_the_paths_of_one_host_share_its_connections(
    server: AmplitudeServer, transport: Transport
) -> None:
    for path in ("/2/httpapi", "/batch", "/2/httpapi"):
        assert transport.post(server.url + path, BODY).status == 200
    assert len(transport._pools) == 1
    [pool] = transport._pools.values()
    assert pool.num_connections == 1  # kept alive and reused by every request


def test_a_server_prefix_in_the_url_is_kept_in_the_request_path(
    server: AmplitudeServer, transport: Transport
) -> None:
    transport.post(server.url + "/proxy/2/httpapi", BODY)
    assert [r.path for r in server.requests] == ["/proxy/2/httpapi"]


def test_a_refused_connection_is_reported_not_raised(transport: Transport) -> None:
    response = transport.post(f"http://127.0.0.1:{closed_port()}/2/httpapi", BODY)
    # urllib3 2's NewConnectionError subclasses its ConnectTimeoutError: named as a refusal
    # all the same, so the log line tells an operator nothing listens there.
    assert (response.status, response.failure) == (None, "connection_refused")


def test_an_answer_later_than_the_timeout_is_reported_as_a_timeout(
    server: AmplitudeServer,
) -> None:
    server.faults.script(Fault(200, delay=1.0))
    transport = Transport(timeout_s=0.1, maxsize=1)
    try:
        response = transport.post(server.url + "/2/httpapi", BODY)
    finally:
        transport.close()
    assert (response.status, response.failure) == (None, "timeout")


def test_a_connection_reset_is_reported_as_such(
    server: AmplitudeServer, transport: Transport
) -> None:
    server.faults.script(Fault(reset=True))
    response = transport.post(server.url + "/2/httpapi", BODY)
    assert (response.status, response.failure) == (None, "connection_reset")


def test_a_malformed_url_is_reported_as_a_connection_error(transport: Transport) -> None:
    response = transport.post("http://[::1/2/httpapi", BODY)
    assert (response.status, response.failure) == (None, "connection_error")


def test_at_most_max_pools_hosts_stay_connected_the_oldest_closed_first(
    transport: Transport,
) -> None:
    urls = [f"http://127.0.0.1:{closed_port()}/2/httpapi" for _ in range(MAX_POOLS + 1)]
    for url in urls:
        transport.post(url, BODY)
    assert len(transport._pools) == MAX_POOLS
    assert urls[0] not in transport._routes
    assert urls[-1] in transport._routes


def test_a_closed_transport_connects_again_on_its_next_post(
    server: AmplitudeServer, transport: Transport
) -> None:
    assert transport.post(server.url + "/2/httpapi", BODY).status == 200
    transport.close()
    assert transport._pools == {}
    assert transport.post(server.url + "/2/httpapi", BODY).status == 200

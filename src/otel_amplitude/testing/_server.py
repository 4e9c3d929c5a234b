"""The test server's HTTP plumbing and its public face, :class:`AmplitudeServer`.

One accept thread and one daemon thread per connection (HTTP/1.1 keep-alive, concurrent
requests). :meth:`AmplitudeServer.stop` wakes the accept loop, shuts every open connection and
joins every thread, so that a test leaves nothing running. The behaviour itself lives in
``_app``; this module only moves bytes.
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import selectors
import socket
import struct
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import orjson

from otel_amplitude._clock import Clock, SystemClock
from otel_amplitude.testing._app import AmplitudeApp, IncomingRequest, Reply
from otel_amplitude.testing._faults import FaultPlan
from otel_amplitude.testing._protocol import error_body, partition_key
from otel_amplitude.testing._store import RecordedRequest, Store

__all__ = ["AmplitudeServer"]

#: Bodies above this are refused before being read, whatever the configured limits.
_MAX_BODY_BYTES = 64 * 1024 * 1024
#: How long stop() waits for each thread; they end in milliseconds once their socket is shut.
_JOIN_TIMEOUT = 5.0


class _Handler(http.server.BaseHTTPRequestHandler):
    """Reads each request of one connection, hands it to the app and writes the reply."""

    protocol_version = "HTTP/1.1"
    server_version = "otel-amplitude-testing"
    sys_version = ""
    disable_nagle_algorithm = True

    def __init__(
        self, connection: socket.socket, address: tuple[str, int], listener: _Listener
    ) -> None:
        # socketserver's constructor runs the whole connection; serve() does it explicitly.
        self.request = connection
        self.client_address = address
        self._listener = listener

    def serve(self) -> None:
        """Handle requests on this connection until it closes."""
        self.setup()
        try:
            self.handle()
        finally:
            self.finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: nothing per request on stderr, and never a body or a key."""

    # http.server dispatches on these names.
    def do_POST(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        body = self._read_body()
        if body is None:
            return
        path, _, query = self.path.partition("?")
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        request = IncomingRequest(self.command, path, query, headers, body)
        try:
            reply = self._listener.app.handle(request)
        except Exception:
            self._refuse(500, "Internal Server Error: the test server failed (see the traceback)")
            raise
        if reply.delay and self._listener.stopping.wait(reply.delay):
            self.close_connection = True
            return
        if reply.reset:
            self._reset()
        else:
            self._send(reply)

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering a request whose framing is unusable."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        declared = self.headers.get("Content-Length")
        if declared is None:
            return b""
        try:
            length = int(declared)
        except ValueError:
            length = -1
        if length < 0:
            self._refuse(400, "Invalid Content-Length")
            return None
        if length > _MAX_BODY_BYTES:
            self._refuse(413, "Payload too large")
            return None
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return None
        return body

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024)
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self._refuse(400, "Invalid chunked encoding")
                return None
            total += size
            if total > _MAX_BODY_BYTES:
                self._refuse(413, "Payload too large")
                return None
            if size == 0:
                break
            chunk = self.rfile.read(size)
            self.rfile.readline(1024)
            if len(chunk) < size:
                self.close_connection = True
                return None
            chunks.append(chunk)
        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
            pass  # trailer fields, ignored
        return b"".join(chunks)

    def _refuse(self, status: int, error: str) -> None:
        """Answer a request that never reaches the app, and close the connection."""
        self.close_connection = True
        self._send(Reply(status, error_body(status, error), headers=(("Connection", "close"),)))

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def _reset(self) -> None:
        """Close abruptly: SO_LINGER 0 makes close() send a TCP RST, the client sees a reset."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # drop the file's reference, so that close() really closes
        self.connection.close()


class _Listener:
    """A bound socket, its accept thread and the threads of its open connections."""

    def __init__(self, host: str, port: int, app: AmplitudeApp) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listening = socket.socket(family, socket.SOCK_STREAM)
        try:
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listening.bind((host, port))
            listening.listen(128)
            listening.setblocking(False)
        except OSError:
            listening.close()
            raise
        self.app = app
        self.port: int = listening.getsockname()[1]
        self.stopping = threading.Event()
        self._socket = listening
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"amplitude-server-{self.port}-accept", daemon=True
        )

    def start(self) -> None:
        self._accept_thread.start()

    def close(self) -> None:
        """Stop accepting, shut every open connection, join every thread, close every socket."""
        self.stopping.set()
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")
        if self._accept_thread.ident is not None:
            self._accept_thread.join(_JOIN_TIMEOUT)
        self._socket.close()
        with self._lock:
            connections, threads = list(self._connections), list(self._threads)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its own thread
                connection.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(_JOIN_TIMEOUT)
        self._wake_reader.close()
        self._wake_writer.close()

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self.stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake_reader:
                        return
                    try:
                        connection, address = self._socket.accept()
                    except OSError:
                        continue  # the client gave up before we accepted, or a transient error
                    self._serve_in_thread(connection, address)

    def _serve_in_thread(self, connection: socket.socket, address: tuple[str, int]) -> None:
        thread = threading.Thread(
            target=self._serve,
            args=(connection, address),
            name=f"amplitude-server-{self.port}-connection",
            daemon=True,
        )
        with self._lock:
            self._connections.add(connection)
            self._threads = [alive for alive in self._threads if alive.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _serve(self, connection: socket.socket, address: tuple[str, int]) -> None:
        try:
            _Handler(connection, address, self).serve()
        except OSError:
            pass  # the client went away, or stop() shut the connection
        finally:
            with self._lock:
                self._connections.discard(connection)
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_WR)
            connection.close()


class AmplitudeServer:
    """An HTTP server that speaks Amplitude's ingestion and privacy APIs, for tests.

    It answers ``POST /2/httpapi``, ``/batch``, ``/identify``, ``/groupidentify`` and
    ``/api/2/deletions/users`` as ``amplitude-api.md`` describes (the stricter reading where
    Amplitude is ambiguous), records every request and stored event, and misbehaves on demand
    through :attr:`faults`. ``api_keys`` None accepts any non-empty key, else only those keys;
    ``secret_keys`` (api_key → secret_key) None accepts any non-empty secret on the privacy
    API. ``clock`` (``.monotonic()``) times the EPS window and the privacy API's 1 request/s
    limit, so a :class:`~otel_amplitude._clock.ManualClock` slides them without sleeping.

    Use it as a context manager, or :meth:`start` and :meth:`stop`. It can be started again
    after :meth:`stop`, on the same port, keeping what it recorded (a server outage).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_keys: Iterable[str] | None = None,
        secret_keys: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        if isinstance(api_keys, str):
            raise TypeError("api_keys must be an iterable of keys, not one string: api_keys=[key]")
        self._host = host
        self._port = port
        self._store = Store()
        self.faults = FaultPlan()
        """What to do wrong on purpose, and the limits to enforce: see :class:`FaultPlan`."""
        self._app = AmplitudeApp(
            store=self._store,
            faults=self.faults,
            clock=clock if clock is not None else SystemClock(),
            api_keys=None if api_keys is None else frozenset(api_keys),
            secret_keys=None if secret_keys is None else dict(secret_keys),
        )
        self._lifecycle = threading.Lock()
        self._listener: _Listener | None = None

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> AmplitudeServer:
        """Bind and serve on daemon threads; return self. Port 0 picks a free port."""
        with self._lifecycle:
            if self._listener is not None:
                raise RuntimeError("this AmplitudeServer is already running")
            listener = _Listener(self._host, self._port, self._app)
            self._port = listener.port
            listener.start()
            self._listener = listener
        return self

    def stop(self) -> None:
        """Close the listener and every open connection, and join all threads. Idempotent."""
        with self._lifecycle:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def __enter__(self) -> AmplitudeServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._listener is not None

    @property
    def port(self) -> int:
        """The bound port (0 until the first :meth:`start` when the port was left to the OS)."""
        return self._port

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        if self._port == 0:
            raise RuntimeError("the server has no port yet: start() it first")
        host = self._host
        try:
            if ipaddress.ip_address(host).is_unspecified:
                host = "::1" if ":" in host else "127.0.0.1"
        except ValueError:
            pass  # a host name
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._port}"

    # --- inspection (thread-safe; each call returns a copy) --------------------------------------

    @property
    def events(self) -> list[dict[str, Any]]:
        """Stored events (after dedup) in arrival order, as received (long strings truncated)."""
        with self._store.lock:
            return _copy(self._store.events)

    def events_by_device(self) -> dict[str, list[dict[str, Any]]]:
        """Stored events by partition (``device_id``, else ``user_id``), in arrival order.

        ``$groupidentify`` events with neither id are under ``""``.
        """
        partitions: dict[str, list[dict[str, Any]]] = {}
        for event in self.events:
            partitions.setdefault(partition_key(event) or "", []).append(event)
        return partitions

    def events_for(self, api_key: str) -> list[dict[str, Any]]:
        """Stored events sent with ``api_key`` (one project), in arrival order."""
        with self._store.lock:
            return _copy(
                [
                    event
                    for event, key in zip(
                        self._store.events, self._store.event_api_keys, strict=True
                    )
                    if key == api_key
                ]
            )

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in processing order."""
        with self._store.lock:
            return list(self._store.requests)

    @property
    def duplicates(self) -> int:
        """How many events were not stored because their insert_id was seen before."""
        with self._store.lock:
            return self._store.duplicates

    @property
    def identifications(self) -> list[dict[str, Any]]:
        """Accepted ``/identify`` identifications, in order."""
        with self._store.lock:
            return _copy(self._store.identifications)

    @property
    def group_identifications(self) -> list[dict[str, Any]]:
        """Accepted ``/groupidentify`` identifications, in order."""
        with self._store.lock:
            return _copy(self._store.group_identifications)

    @property
    def deletions(self) -> list[dict[str, Any]]:
        """Accepted deletion request bodies (parsed JSON), in order."""
        with self._store.lock:
            return _copy(self._store.deletions)

    def amplitude_id_of(self, user_id: str, api_key: str) -> int | None:
        """The Amplitude ID the server gave ``user_id`` in that project, None if never seen."""
        return self._store.amplitude_id(api_key, user_id)

    def wait_for_events(self, n: int, timeout: float = 5.0) -> bool:
        """Block (real time) until at least ``n`` events are stored; False on timeout."""
        with self._store.lock:
            return self._store.lock.wait_for(lambda: len(self._store.events) >= n, timeout)

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> bool:
        """Block (real time) until at least ``n`` requests were processed; False on timeout."""
        with self._store.lock:
            return self._store.lock.wait_for(lambda: len(self._store.requests) >= n, timeout)

    def reset(self) -> None:
        """Forget everything recorded and clear every fault (the server keeps running)."""
        with self._store.lock:
            self._store.clear()
            self.faults.clear()

    def __repr__(self) -> str:
        where = self.url if self._listener is not None else "stopped"
        with self._store.lock:
            counts = f"events={len(self._store.events)}, requests={len(self._store.requests)}"
        return f"AmplitudeServer({where}, {counts})"


def _copy(value: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A deep copy of JSON data, so that callers cannot change what the server recorded."""
    copied: list[dict[str, Any]] = orjson.loads(orjson.dumps(value))
    return copied

"""The test server as a process of its own: :func:`serve` until SIGINT or SIGTERM, and its CLI.

Used by ``python -m otel_amplitude.testing`` and by the package's ``otel-amplitude serve``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterable, Sequence

from otel_amplitude.testing._server import AmplitudeServer

__all__ = ["main", "serve"]


def serve(host: str = "127.0.0.1", port: int = 0, api_keys: Iterable[str] | None = None) -> int:
    """Serve until SIGINT or SIGTERM; return the exit status (1 when the port cannot be bound).

    Prints ``Amplitude-compatible server listening on <url>`` once listening. Signal handlers
    are installed only when called from the main thread.
    """
    server = AmplitudeServer(host=host, port=port, api_keys=api_keys or None)
    try:
        server.start()
    except OSError as error:
        print(f"cannot listen on {host}:{port}: {error.strerror or error}", file=sys.stderr)
        return 1
    done = threading.Event()

    def on_signal(*_: object) -> None:
        done.set()

    signals = (signal.SIGINT, signal.SIGTERM)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {signum: signal.signal(signum, on_signal) for signum in signals if in_main_thread}
    try:
        print(f"Amplitude-compatible server listening on {server.url}", flush=True)
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and :func:`serve`."""
    parser = argparse.ArgumentParser(
        prog="python -m otel_amplitude.testing",
        description="Run a local Amplitude-compatible HTTP server (for tests) until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="a valid API key (repeatable); without it any non-empty key is accepted",
    )
    args = parser.parse_args(argv)
    return serve(args.host, args.port, args.api_keys)

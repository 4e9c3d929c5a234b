"""A tiny WSGI shop whose sign-ups reach Amplitude with no Amplitude code: environment only.

The app knows nothing of Amplitude. It uses the OpenTelemetry API, as instrumented code does,
and tags the one span that is a product event with ``amplitude.event_type``. Everything else is
configuration: ``opentelemetry-instrument`` sets up the SDK, ``OTEL_TRACES_EXPORTER=amplitude``
picks otel-amplitude's exporter (an entry point), and ``AMPLITUDE_*`` variables configure it::

    export AMPLITUDE_API_KEY=<your project's API key>   # add AMPLITUDE_SERVER_ZONE=EU for EU
    export OTEL_SERVICE_NAME=shop OTEL_RESOURCE_ATTRIBUTES=service.version=1.4.0
    export OTEL_TRACES_EXPORTER=amplitude OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none
    opentelemetry-instrument python examples/otel_instrument_app.py --port 8000

    curl -X POST 'http://127.0.0.1:8000/signup?user=user-00042&plan=pro'

Each ``POST /signup`` becomes the Amplitude event ``Signed Up`` of that user, with the event
property ``plan``, the request's user agent, the span's duration and status, ``app_version``
from ``service.version``, and (only with ``AMPLITUDE_SEND_IP=true``) the client's IP address.
``GET /`` makes an ordinary span, which is not an event. Stop the server with Ctrl-C or SIGTERM:
the events still queued are delivered on the way out. To try it without an Amplitude project, run
``python -m otel_amplitude.testing --port 0`` and set ``AMPLITUDE_SERVER_URL`` to the URL it
prints.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import make_server

from opentelemetry import trace

tracer = trace.get_tracer("shop")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``POST /signup?user=...&plan=...`` signs a user up; anything else is a plain page."""
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "/")
    attributes: dict[str, Any] = {"http.request.method": method, "url.path": path}
    if environ.get("HTTP_USER_AGENT"):
        attributes["user_agent.original"] = environ["HTTP_USER_AGENT"]
    if environ.get("REMOTE_ADDR"):
        attributes["client.address"] = environ["REMOTE_ADDR"]
    with tracer.start_as_current_span(
        f"{method} {path}", kind=trace.SpanKind.SERVER, attributes=attributes
    ) as span:
        if method == "POST" and path == "/signup":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            user = query.get("user", [""])[0]
            if not user:
                start_response("400 Bad Request", [("Content-Type", "text/plain")])
                return [b"user is required\n"]
            # The only Amplitude-specific line: this span is the product event "Signed Up".
            span.set_attribute("amplitude.event_type", "Signed Up")
            span.set_attribute("enduser.id", user)
            span.set_attribute("plan", query.get("plan", ["free"])[0])
            start_response("201 Created", [("Content-Type", "text/plain")])
            return [b"welcome\n"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"shop\n"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    args = parser.parse_args(argv)
    with make_server(args.host, args.port, app) as server:

        def stop(_signum: int, _frame: FrameType | None) -> None:
            # Finish the request in progress, then leave serve_forever() and exit normally, so
            # that the exit hooks deliver what is queued. (Python's default for SIGTERM, what
            # a container platform sends, ends the process without running them.) shutdown()
            # waits for the serving loop, which is this thread: call it from another one.
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        print(f"shop listening on http://{args.host}:{server.server_port}", flush=True)
        server.serve_forever()
    print("shop stopped", file=sys.stderr)


if __name__ == "__main__":
    main()

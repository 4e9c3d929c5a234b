"""Log calls delivered over real HTTP to the local Amplitude-compatible server.

What is asserted is what arrives at the server: the application's events, each exactly once,
and nothing of the library's own logging or urllib3's, even with the handler on the root logger.
"""

from __future__ import annotations

import io
import logging
import queue
import time
from collections.abc import Iterator
from logging.handlers import QueueHandler, QueueListener
from typing import Any

import pytest
import structlog

from otel_amplitude import Client
from otel_amplitude._handler import AmplitudeHandler
from otel_amplitude.structlog import AmplitudeProcessor
from otel_amplitude.testing import AmplitudeServer, Fault, ManualClock
from tests.test_handler import restored_logging

from .conftest import MakeClient, drive

USER = "user-123"


@pytest.fixture(autouse=True)
def _restore_logging_and_structlog() -> Iterator[None]:
    with restored_logging():
        yield
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


class Collect(logging.Handler):
    """Keeps every record it is given (to show what the handler was offered)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def on_root(*handlers: logging.Handler, level: int = logging.INFO) -> logging.Logger:
    root = logging.getLogger()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    return root


def without_insert_ids(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "insert_id"} for e in events]


def test_a_log_call_arrives_as_one_event(server: AmplitudeServer, make_client: MakeClient):
    client = make_client()
    on_root(AmplitudeHandler(client))
    before = time.time_ns() // 1_000_000

    logging.getLogger("app.reports").info(
        "report_exported", extra={"user_id": USER, "format": "pdf", "app_version": "2.3.1"}
    )

    assert client.flush(5)
    [event] = without_insert_ids(server.events)
    assert before <= event.pop("time") <= time.time_ns() // 1_000_000
    assert event == {
        "event_type": "report_exported",
        "user_id": USER,
        "app_version": "2.3.1",
        "event_properties": {"format": "pdf"},
    }


def test_a_root_handler_never_sends_the_records_of_deliveries(
    server: AmplitudeServer, make_client: MakeClient, clock: ManualClock
):
    client = make_client(flush_max_events=5)
    seen = Collect()
    on_root(AmplitudeHandler(client), seen, level=logging.DEBUG)
    logging.getLogger("urllib3").setLevel(logging.DEBUG)
    logging.getLogger("otel_amplitude").setLevel(logging.DEBUG)
    # A failed request and a reset make the library and urllib3 log warnings while retrying.
    server.faults.script(Fault(503), Fault(reset=True))
    app = logging.getLogger("app")

    for n in range(20):
        app.info("page_viewed", extra={"user_id": f"user-{n % 4:04d}", "seq": n})
    drive(client, clock, until=lambda: len(server.events) >= 20)

    offered = {r.name.split(".")[0] for r in seen.records}
    assert offered == {"app", "urllib3", "otel_amplitude"}  # all were offered to the handler
    assert sorted(e["event_properties"]["seq"] for e in server.events) == list(range(20))
    assert {e["event_type"] for e in server.events} == {"page_viewed"}
    assert client.flush(5)
    stats = client.stats()
    assert (stats["submitted"], stats["accepted"], stats["dropped"]) == (20, 20, 0)


def test_a_record_naming_nobody_is_counted_and_not_sent(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client()
    on_root(AmplitudeHandler(client))

    logging.getLogger("app").info("anonymous_visit", extra={"page": "/"})
    logging.getLogger("app").info("signed_in", extra={"user_id": USER})

    assert client.flush(5)
    assert [e["event_type"] for e in server.events] == ["signed_in"]
    assert client.stats()["dropped_by_reason"] == {"no_identity": 1}


def test_through_a_queue_listener(server: AmplitudeServer, make_client: MakeClient):
    client = make_client()
    records: queue.Queue[logging.LogRecord] = queue.Queue()
    listener = QueueListener(records, AmplitudeHandler(client))
    on_root(QueueHandler(records))
    listener.start()
    try:
        for n in range(5):
            logging.getLogger("app").info("report_exported", extra={"user_id": USER, "n": n})
    finally:
        listener.stop()

    assert client.flush(5)
    assert [e["event_properties"]["n"] for e in server.events] == list(range(5))


# -- structlog -----------------------------------------------------------------------------------


def test_structlog_standalone_sends_each_call_once(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client()
    output = io.StringIO()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.TimeStamper(fmt="iso"),
            AmplitudeProcessor(client),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(output),
    )
    structlog.contextvars.bind_contextvars(user_id=USER)
    log = structlog.get_logger()

    for n in range(10):
        log.info("report_exported", n=n)

    assert client.flush(5)
    assert [e["event_properties"]["n"] for e in server.events] == list(range(10))
    assert {e["user_id"] for e in server.events} == {USER}
    assert len(output.getvalue().splitlines()) == 10


def configure_stdlib_integration(*chain: Any) -> None:
    """structlog's stdlib integration, ProcessorFormatter flavour, with a rendering handler."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso"),
            *chain,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    rendering = logging.StreamHandler(io.StringIO())
    rendering.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ]
        )
    )
    on_root(rendering)


@pytest.mark.parametrize("with_processor", [True, False], ids=["processor+handler", "handler"])
def test_structlog_stdlib_integration_sends_each_call_once(
    server: AmplitudeServer, make_client: MakeClient, with_processor: bool
):
    client: Client = make_client()
    configure_stdlib_integration(*([AmplitudeProcessor(client)] if with_processor else []))
    on_root(AmplitudeHandler(client))
    structlog.contextvars.bind_contextvars(user_id=USER)
    log = structlog.get_logger("app")

    for n in range(10):
        log.info("report_exported", n=n)
    for n in range(10, 13):  # plain stdlib records through the same handlers
        logging.getLogger("app.legacy").info("legacy_event", extra={"user_id": USER, "n": n})

    assert client.flush(5)
    assert [e["event_properties"]["n"] for e in server.events] == list(range(13))
    assert [e["event_type"] for e in server.events] == ["report_exported"] * 10 + [
        "legacy_event"
    ] * 3
    stats = client.stats()
    assert (stats["submitted"], stats["accepted"], stats["dropped"]) == (13, 13, 0)


def test_an_invalid_record_is_counted_and_reported_by_the_pipeline_without_its_value(
    server: AmplitudeServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
):
    client = make_client()
    caplog.set_level(logging.WARNING, logger="otel_amplitude")
    on_root(AmplitudeHandler(client))
    log = logging.getLogger("app.billing")

    log.info("paid", extra={"user_id": USER, "amount": float("nan"), "card": "secret-value"})
    log.info("paid", extra={"user_id": USER, "amount": 12.5})

    assert client.flush(5)
    assert [e["event_properties"] for e in server.events] == [{"amount": 12.5}]
    assert client.stats()["dropped_by_reason"] == {"invalid": 1}
    [warning] = [r.getMessage() for r in caplog.records if "invalid event" in r.getMessage()]
    assert "event_properties.amount" in warning
    assert "secret-value" not in caplog.text


def test_a_bound_identity_is_captured_when_the_record_is_logged(
    server: AmplitudeServer, make_client: MakeClient
):
    from otel_amplitude import bind

    client = make_client()
    on_root(AmplitudeHandler(client))
    log = logging.getLogger("app.reports")
    with bind(user_id="user-bound-1", session_id=1_700_000_000_000):
        log.info("report_exported")
    log.info("report_exported")  # after the binding ended: nobody to attribute it to

    assert client.flush(5)
    [event] = server.events
    assert (event["user_id"], event["session_id"]) == ("user-bound-1", 1_700_000_000_000)
    assert client.stats()["dropped_by_reason"] == {"no_identity": 1}

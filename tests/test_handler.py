"""AmplitudeHandler: which event a log record becomes, what never becomes one, and that the
application never sees an error from it.

The events are inspected as submitted (a client that records instead of sending), in their wire
form; delivery over HTTP is covered in ``tests/behaviour/test_logging_delivery.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import logging.config
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from logging.handlers import QueueHandler, QueueListener
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_amplitude
from otel_amplitude import Client, Settings, _client, _handler
from otel_amplitude._context import bind
from otel_amplitude._dispatcher import Deferred
from otel_amplitude._event import Event, to_wire
from otel_amplitude._handler import AmplitudeHandler
from otel_amplitude._log import RateLimitedLog, mark_library_thread
from otel_amplitude._stats import Counters
from otel_amplitude.testing import AmplitudeServer

API_KEY = "test-api-key-0001"
USER = "user-123"


class RecordingClient(Client):
    """A client that keeps what it is given instead of delivering it (and starts no threads)."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(Settings(api_key=API_KEY, **settings))
        self.events: list[Event] = []
        self.discarded: list[str] = []

    def submit(self, event: Event) -> None:
        self.events.append(event)

    def _defer(self, builder: Deferred) -> None:
        # What the dispatcher does with a deferred event, done at once: build it, count what
        # cannot be built (tests/behaviour/test_logging_delivery.py covers the real thread).
        self._dispatcher.counters = self.counters = Counters()
        event = self._dispatcher._build(builder)
        dropped = list(self.counters.dropped_by_reason)
        if event is not None:
            self.submit(event)
        self.discarded.extend(dropped)

    def discard(self, reason: str) -> None:
        self.discarded.append(reason)

    def wire(self) -> list[dict[str, Any]]:
        """The submitted events as Amplitude receives them, without their insert ids."""
        return [{k: v for k, v in to_wire(e).items() if k != "insert_id"} for e in self.events]


class BrokenClient(RecordingClient):
    def submit(self, event: Event) -> None:
        raise RuntimeError("the client is broken")

    def _defer(self, builder: Deferred) -> None:
        raise RuntimeError("the client is broken")

    def discard(self, reason: str) -> None:
        raise RuntimeError("the client is broken")


@contextmanager
def restored_logging() -> Iterator[None]:
    """Put back every logger's handlers, level and flags, the record factory, and forget the
    rate-limited warnings: each test starts with logging as it found it."""
    reports = _handler._reports
    _handler._reports = RateLimitedLog(time.monotonic)
    loggers = [logging.root] + [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers]
    factory = logging.getLogRecordFactory()
    try:
        yield
    finally:
        logging.setLogRecordFactory(factory)
        for lg in logging.root.manager.loggerDict.values():
            if isinstance(lg, logging.Logger):  # made by the test: back to a new logger's state
                lg.handlers.clear()
                lg.setLevel(logging.NOTSET)
                lg.propagate = True
                lg.disabled = False
        for lg, handlers, level, propagate, disabled in saved:
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate
            lg.disabled = disabled
        _handler._reports = reports


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    with restored_logging():
        yield


@pytest.fixture
def client() -> Iterator[RecordingClient]:
    recording = RecordingClient()
    yield recording
    recording.shutdown()


def app_logger(handler: logging.Handler, name: str = "app") -> logging.Logger:
    """A logger that sends INFO and up to ``handler`` only."""
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def emitted(client: RecordingClient, **extra: Any) -> dict[str, Any]:
    """The wire event that one ``logger.info("report_exported", extra=extra)`` submits."""
    app_logger(AmplitudeHandler(client)).info("report_exported", extra=extra)
    [event] = client.wire()
    return event


# -- the event a record becomes ------------------------------------------------------------------


def test_message_is_the_event_type_and_extra_the_event_properties(client: RecordingClient):
    before = time.time_ns() // 1_000_000
    event = emitted(client, user_id=USER, format="pdf")

    assert event.pop("time") >= before
    assert event == {
        "event_type": "report_exported",
        "user_id": USER,
        "event_properties": {"format": "pdf"},
    }


def test_percent_args_do_not_split_the_event_type(client: RecordingClient):
    logger = app_logger(AmplitudeHandler(client))
    for name in ("alice", "bob"):
        logger.info("report %s exported", name, extra={"user_id": USER})

    assert [e["event_type"] for e in client.wire()] == ["report %s exported"] * 2


def test_a_message_that_is_not_a_string_becomes_its_str(client: RecordingClient):
    class Message:
        def __str__(self) -> str:
            return "lazy_event"

    app_logger(AmplitudeHandler(client)).info(Message(), extra={"user_id": USER})

    assert client.wire()[0]["event_type"] == "lazy_event"


def test_the_time_is_when_the_record_was_made_not_when_it_was_handled(client: RecordingClient):
    logger = app_logger(AmplitudeHandler(client))
    record = logger.makeRecord("app", logging.INFO, __file__, 1, "late", (), None,
                               extra={"user_id": USER})  # fmt: skip
    record.created = 1_700_000_000.1234

    logger.handle(record)

    assert client.wire()[0]["time"] == 1_700_000_000_123


def test_amplitude_field_names_in_extra_go_to_the_top_level(client: RecordingClient):
    event = emitted(
        client,
        user_id=USER,
        device_id="device-42",
        session_id=1_700_000_000_000,
        app_version="2.3.1",
        price=9.99,
        quantity=2,
        product_id="sku-1",
        format="pdf",
    )

    del event["time"]
    assert event == {
        "event_type": "report_exported",
        "user_id": USER,
        "device_id": "device-42",
        "session_id": 1_700_000_000_000,
        "app_version": "2.3.1",
        "price": 9.99,
        "quantity": 2,
        "productId": "sku-1",
        "event_properties": {"format": "pdf"},
    }


def test_event_and_user_properties_dicts_are_merged(client: RecordingClient):
    event = emitted(
        client,
        user_id=USER,
        format="pdf",
        event_properties={"pages": 12, "template": "invoice"},
        user_properties={"$set": {"plan": "pro"}},
    )

    assert event["event_properties"] == {"format": "pdf", "pages": 12, "template": "invoice"}
    assert event["user_properties"] == {"$set": {"plan": "pro"}}


def test_an_extra_named_like_a_field_but_of_another_type_stays_a_property(
    client: RecordingClient,
):
    event = emitted(client, user_id=USER, plan="pro")

    assert event["event_properties"] == {"plan": "pro"}
    assert "plan" not in {k for k in event if k != "event_properties"}


def test_values_json_cannot_carry_are_converted(client: RecordingClient):
    class Report:
        def __str__(self) -> str:
            return "Report#7"

    event = emitted(
        client,
        user_id=USER,
        at=dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc),
        request_id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        amount=Decimal("12.50"),
        tags={"b", "a"},
        pair=(1, 2),
        report=Report(),
    )

    assert event["event_properties"] == {
        "at": "2024-05-01T12:00:00+00:00",
        "request_id": "12345678-1234-5678-1234-567812345678",
        "amount": 12.5,
        "tags": ["a", "b"],
        "pair": [1, 2],
        "report": "Report#7",
    }


def test_a_record_without_extra_has_no_event_properties(client: RecordingClient):
    with bind(user_id=USER):
        app_logger(AmplitudeHandler(client)).info("signed_in")

    assert set(client.wire()[0]) == {"event_type", "user_id", "time"}


def test_the_event_prefix_is_applied():
    prefixed = RecordingClient(event_prefix="acme_")
    try:
        assert emitted(prefixed, user_id=USER)["event_type"] == "acme_report_exported"
    finally:
        prefixed.shutdown()


def test_logger_and_level_are_properties_only_when_asked_for(client: RecordingClient):
    assert emitted(client, user_id=USER, format="pdf")["event_properties"] == {"format": "pdf"}

    including = RecordingClient(log_include_logger=True)
    try:
        logger = app_logger(AmplitudeHandler(including), "app.reports")
        logger.warning("report_exported", extra={"user_id": USER, "format": "pdf"})
        assert including.wire()[0]["event_properties"] == {
            "format": "pdf",
            "logger": "app.reports",
            "level": "WARNING",
        }
    finally:
        including.shutdown()


def test_attributes_of_the_otel_logging_instrumentation_are_not_properties(
    client: RecordingClient,
):
    default_factory = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = default_factory(*args, **kwargs)
        record.otelTraceID = "0" * 32
        record.otelSpanID = "0" * 16
        record.otelTraceSampled = False
        record.otelServiceName = "svc"
        return record

    logging.setLogRecordFactory(factory)

    assert emitted(client, user_id=USER, format="pdf")["event_properties"] == {"format": "pdf"}


def test_extras_are_found_in_records_of_another_layout(client: RecordingClient):
    class TaggedRecord(logging.LogRecord):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.tenant = "acme"  # set before the standard attributes
            super().__init__(*args, **kwargs)

    logging.setLogRecordFactory(TaggedRecord)

    event = emitted(client, user_id=USER, format="pdf")

    assert event["event_properties"] == {"tenant": "acme", "format": "pdf"}


class DeferringClient(RecordingClient):
    """Keeps deferred events unbuilt, as the dispatcher's thread would get to them later."""

    def __init__(self) -> None:
        super().__init__()
        self.deferred: list[Deferred] = []

    def _defer(self, builder: Deferred) -> None:
        self.deferred.append(builder)


def test_the_event_is_the_record_as_the_handler_saw_it_whenever_it_is_built():
    class Rewriter(logging.Handler):
        """A later handler that changes the record after ours has seen it."""

        def emit(self, record: logging.LogRecord) -> None:
            record.format = "csv"
            record.tenant = "acme"
            record.msg = "something_else"
            record.user_id = "user-other"

    client = DeferringClient()
    try:
        logger = app_logger(AmplitudeHandler(client))
        logger.addHandler(Rewriter())
        logger.info("report_exported", extra={"user_id": USER, "format": "pdf"})

        [builder] = client.deferred
        event = builder()
        assert event is not None
        assert (event.event_type, event.user_id) == ("report_exported", USER)
        assert event.event_properties == {"format": "pdf"}
    finally:
        client.shutdown()


def test_a_message_that_is_not_a_str_is_its_text_when_logged():
    class Message:
        text = "report_exported"

        def __str__(self) -> str:
            return self.text

    message = Message()
    deferring = DeferringClient()
    try:
        app_logger(AmplitudeHandler(deferring)).info(message, extra={"user_id": USER})
        message.text = "changed_later"
        [builder] = deferring.deferred
        event = builder()
        assert event is not None
        assert event.event_type == "report_exported"
    finally:
        deferring.shutdown()


# -- identity ------------------------------------------------------------------------------------


@pytest.fixture
def tracer_provider() -> Iterator[TracerProvider]:
    provider = TracerProvider(shutdown_on_exit=False)
    yield provider
    provider.shutdown()


def test_identity_comes_from_extra_then_bind_then_the_current_span(
    client: RecordingClient, tracer_provider: TracerProvider
):
    logger = app_logger(AmplitudeHandler(client))
    tracer = tracer_provider.get_tracer("test")

    with tracer.start_as_current_span("request", attributes={"enduser.id": "span-user"}):
        logger.info("e", extra={"user_id": "extra-user"})
        with bind(user_id="bound-user"):
            logger.info("e", extra={"user_id": "extra-user"})
            logger.info("e")
        logger.info("e")

    assert [e["user_id"] for e in client.wire()] == [
        "extra-user",
        "extra-user",
        "bound-user",
        "span-user",
    ]


def test_a_device_id_in_extra_is_the_identity_without_the_bound_user(client: RecordingClient):
    with bind(user_id="bound-user", session_id=1_700_000_000_000):
        event = emitted(client, device_id="device-42")

    assert event["device_id"] == "device-42"
    assert "user_id" not in event
    assert event["session_id"] == 1_700_000_000_000


def test_a_record_naming_nobody_is_counted_as_dropped_not_raised(client: RecordingClient):
    app_logger(AmplitudeHandler(client)).info("anonymous_visit", extra={"page": "/"})

    assert client.events == []
    assert client.discarded == ["no_identity"]


def test_no_identity_shows_in_the_client_stats(amplitude_server: AmplitudeServer):
    with Client(Settings(api_key=API_KEY, server_url=amplitude_server.url)) as real:
        app_logger(AmplitudeHandler(real)).info("anonymous_visit")
        assert real.flush(5)
        assert real.stats()["dropped_by_reason"] == {"no_identity": 1}
    assert amplitude_server.events == []


def test_bind_follows_each_asyncio_task(client: RecordingClient):
    logger = app_logger(AmplitudeHandler(client))

    async def request(user: str) -> None:
        bind(user_id=user)
        for step in range(3):
            await asyncio.sleep(0)  # interleave the tasks
            logger.info("step", extra={"step": step})

    async def main() -> None:
        await asyncio.gather(request("user-aaa"), request("user-bbb"))

    asyncio.run(main())

    steps: dict[str, list[int]] = {}
    for event in client.wire():
        steps.setdefault(event["user_id"], []).append(event["event_properties"]["step"])
    assert steps == {"user-aaa": [0, 1, 2], "user-bbb": [0, 1, 2]}


def test_behind_a_queue_listener_ids_must_be_in_extra(client: RecordingClient):
    records: queue.Queue[logging.LogRecord] = queue.Queue()
    listener = QueueListener(records, AmplitudeHandler(client))
    logger = app_logger(QueueHandler(records))
    listener.start()
    try:
        with bind(user_id="bound-user"):
            logger.info("lost_identity")  # bound ids do not travel to the listener's thread
            logger.info("report_exported", extra={"user_id": USER, "format": "pdf"})
    finally:
        listener.stop()

    assert [(e["event_type"], e["user_id"]) for e in client.wire()] == [("report_exported", USER)]
    assert client.wire()[0]["event_properties"] == {"format": "pdf"}
    assert client.discarded == ["no_identity"]


# -- what never becomes an event -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["otel_amplitude", "otel_amplitude._sender", "urllib3", "urllib3.connectionpool"]
)
def test_records_of_the_library_and_urllib3_are_never_events(client: RecordingClient, name: str):
    logger = app_logger(AmplitudeHandler(client), name)

    logger.info("sent", extra={"user_id": USER})

    assert client.events == []
    assert client.discarded == []


def test_loggers_that_only_start_like_the_guarded_ones_are_not_guarded(client: RecordingClient):
    app_logger(AmplitudeHandler(client), "urllib3_extras").info("e", extra={"user_id": USER})
    app_logger(AmplitudeHandler(client), "otel_amplitudes").info("e", extra={"user_id": USER})

    assert len(client.events) == 2


def test_records_logged_on_a_library_thread_are_never_events(client: RecordingClient):
    logger = app_logger(AmplitudeHandler(client))

    def library_work() -> None:
        mark_library_thread()
        logger.info("app_code_called_from_a_library_thread", extra={"user_id": USER})

    thread = threading.Thread(target=library_work)
    thread.start()
    thread.join()

    assert client.events == []


# -- never an error, never a wait ----------------------------------------------------------------


def test_an_invalid_event_is_counted_and_reported_without_its_value(
    client: RecordingClient, caplog: pytest.LogCaptureFixture
):
    logger = app_logger(AmplitudeHandler(client))

    logger.info("report_exported", extra={"user_id": USER, "score": float("nan"),
                                          "secret_note": "s3cr3t"})  # fmt: skip

    assert client.events == []
    assert client.discarded == ["invalid"]
    [warning] = [r for r in caplog.records if r.name == "otel_amplitude"]
    assert warning.levelno == logging.WARNING
    assert "event_properties.score" in warning.getMessage()
    assert "s3cr3t" not in warning.getMessage()


def test_an_invalid_id_is_reported_by_field_without_the_id(
    client: RecordingClient, caplog: pytest.LogCaptureFixture
):
    app_logger(AmplitudeHandler(client)).info("e", extra={"user_id": "u9z"})  # too short

    [warning] = [r for r in caplog.records if r.name == "otel_amplitude"]
    assert "user_id" in warning.getMessage()
    assert "u9z" not in warning.getMessage()


def test_repeated_invalid_events_are_reported_once_but_all_counted(
    client: RecordingClient, caplog: pytest.LogCaptureFixture
):
    logger = app_logger(AmplitudeHandler(client))

    for _ in range(5):
        logger.info("e", extra={"user_id": "nil"})

    assert client.discarded == ["invalid"] * 5
    assert len([r for r in caplog.records if r.name == "otel_amplitude"]) == 1


def test_an_unexpected_error_is_counted_and_reported_not_raised(
    client: RecordingClient, caplog: pytest.LogCaptureFixture
):
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("payload-in-message")

    app_logger(AmplitudeHandler(client)).info(Unprintable(), extra={"user_id": USER})

    assert client.discarded == ["error"]
    [warning] = [r for r in caplog.records if r.name == "otel_amplitude"]
    assert "RuntimeError" in warning.getMessage()
    assert "payload-in-message" not in warning.getMessage()


def test_a_broken_client_never_breaks_the_application(caplog: pytest.LogCaptureFixture):
    broken = BrokenClient()
    try:
        logger = app_logger(AmplitudeHandler(broken))
        logger.info("e", extra={"user_id": USER})
        logger.info("e")  # no identity
        logger.info("e", extra={"user_id": "nil"})  # invalid
    finally:
        broken.shutdown()

    assert any("RuntimeError" in r.getMessage() for r in caplog.records)


def test_without_an_api_key_the_default_client_fails_once_and_logging_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.delenv("AMPLITUDE_API_KEY", raising=False)
    monkeypatch.setattr(_client, "_default_client", None)
    logger = app_logger(AmplitudeHandler())

    logger.info("e", extra={"user_id": USER})
    logger.info("e", extra={"user_id": USER})

    errors = [r for r in caplog.records if r.name == "otel_amplitude"]
    assert len(errors) == 1
    assert "AMPLITUDE_API_KEY" in errors[0].getMessage()


def test_emit_does_not_wait_for_the_handler_lock(client: RecordingClient):
    handler = AmplitudeHandler(client)
    logger = app_logger(handler)
    assert handler.lock is not None
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with handler.lock:  # type: ignore[union-attr]
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    locked.wait(10)
    caller = threading.Thread(target=logger.info, args=("e",), kwargs={"extra": {"user_id": USER}})
    try:
        caller.start()
        caller.join(5)  # the stdlib's handle() would wait here until the lock is released
        assert len(client.events) == 1
    finally:
        release.set()
        holder.join()
        caller.join()


def test_handler_filters_and_level_apply(client: RecordingClient):
    handler = AmplitudeHandler(client, level=logging.WARNING)
    handler.addFilter(lambda record: "skip" not in record.getMessage())
    logger = app_logger(handler)

    logger.info("too_low", extra={"user_id": USER})
    logger.warning("skip_me", extra={"user_id": USER})
    logger.warning("kept", extra={"user_id": USER})

    assert [e["event_type"] for e in client.wire()] == ["kept"]


def test_closing_the_handler_leaves_the_client_running(client: RecordingClient):
    handler = AmplitudeHandler(client)
    handler.close()

    app_logger(handler).info("after_close", extra={"user_id": USER})

    assert len(client.events) == 1


# -- configuration -------------------------------------------------------------------------------


@pytest.fixture
def default_client_env(
    monkeypatch: pytest.MonkeyPatch, amplitude_server: AmplitudeServer
) -> Iterator[AmplitudeServer]:
    """A fresh process-wide client, configured from the environment once a test sets it."""
    monkeypatch.setattr(_client, "_default_client", None)
    monkeypatch.delenv("AMPLITUDE_API_KEY", raising=False)
    yield amplitude_server
    made = _client._default_client
    if made is not None:
        made.shutdown()


@pytest.mark.parametrize(
    "class_name", ["otel_amplitude._handler.AmplitudeHandler", "otel_amplitude.AmplitudeHandler"]
)
def test_dict_config_before_the_environment_is_complete(
    class_name: str, default_client_env: AmplitudeServer, monkeypatch: pytest.MonkeyPatch
):
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"amplitude": {"class": class_name, "level": "INFO"}},
            "loggers": {"app": {"handlers": ["amplitude"], "level": "INFO", "propagate": False}},
        }
    )
    [handler] = logging.getLogger("app").handlers
    assert isinstance(handler, AmplitudeHandler)
    # The environment is completed after the handler exists; the first record resolves it.
    monkeypatch.setenv("AMPLITUDE_API_KEY", API_KEY)
    monkeypatch.setenv("AMPLITUDE_SERVER_URL", default_client_env.url)

    logging.getLogger("app").info("report_exported", extra={"user_id": USER, "format": "pdf"})
    handler.flush()

    [event] = default_client_env.events
    assert (event["event_type"], event["user_id"]) == ("report_exported", USER)


def test_the_handler_is_exported_from_the_package():
    from otel_amplitude import AmplitudeHandler as Exported

    assert Exported is AmplitudeHandler
    assert "AmplitudeHandler" in otel_amplitude.__all__

"""AmplitudeProcessor: the event a structlog event dict becomes, the dict passed on untouched, and
one event per log call when an AmplitudeHandler sees the same call through the stdlib.

Delivery to the local server, in both structlog setups, is in
``tests/behaviour/test_logging_delivery.py``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
import structlog

from otel_amplitude._context import bind
from otel_amplitude._handler import AmplitudeHandler
from otel_amplitude.structlog import AmplitudeProcessor
from tests.test_handler import (
    USER,
    BrokenClient,
    DeferringClient,
    RecordingClient,
    restored_logging,
)

EventDict = dict[str, Any]


@pytest.fixture(autouse=True)
def _restore_logging_and_structlog() -> Iterator[None]:
    with restored_logging():
        yield
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


@pytest.fixture
def client() -> Iterator[RecordingClient]:
    recording = RecordingClient()
    yield recording
    recording.shutdown()


def process(
    client: RecordingClient, event_dict: EventDict, method: str = "info"
) -> MutableMapping[str, Any]:
    return AmplitudeProcessor(client)(None, method, event_dict)


def only_event(client: RecordingClient) -> dict[str, Any]:
    [event] = client.wire()
    return event


# -- structlog stays optional --------------------------------------------------------------------


def test_importing_the_library_never_imports_structlog():
    code = (
        "import sys, otel_amplitude, otel_amplitude.structlog; "
        "assert 'structlog' not in sys.modules, 'structlog was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_processor_module_imports_without_structlog_installed():
    code = (
        "import sys; sys.modules['structlog'] = None; "  # makes `import structlog` fail
        "from otel_amplitude.structlog import AmplitudeProcessor, __all__; "
        "assert __all__ == ['AmplitudeProcessor']"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the event -----------------------------------------------------------------------------------


def test_the_event_dict_is_returned_unchanged(client: RecordingClient):
    event_dict: EventDict = {
        "event": "report_exported",
        "user_id": USER,
        "format": "pdf",
        "timestamp": 1_700_000_000.5,
        "level": "info",
    }
    snapshot = dict(event_dict)

    returned = process(client, event_dict)

    assert returned is event_dict
    assert returned == snapshot
    assert list(returned) == list(snapshot)


def test_the_event_is_the_dict_as_the_processor_saw_it_whenever_it_is_built():
    client = DeferringClient()
    try:
        event_dict: EventDict = {"event": "report_exported", "user_id": USER, "format": "pdf"}
        AmplitudeProcessor(client)(None, "info", event_dict)
        event_dict.update(format="csv", event="other", tenant="acme", user_id="user-other")

        [builder] = client.deferred
        event = builder()
        assert event is not None
        assert (event.event_type, event.user_id) == ("report_exported", USER)
        assert event.event_properties == {"format": "pdf"}
    finally:
        client.shutdown()


def test_event_is_the_type_and_other_keys_map_like_logging_extras(client: RecordingClient):
    process(
        client,
        {
            "event": "report_exported",
            "user_id": USER,
            "device_id": "device-42",
            "app_version": "2.3.1",
            "price": 9.99,
            "format": "pdf",
            "event_properties": {"pages": 12},
            "user_properties": {"$set": {"plan": "pro"}},
            "timestamp": 1_700_000_000.5,
        },
    )

    assert only_event(client) == {
        "event_type": "report_exported",
        "user_id": USER,
        "device_id": "device-42",
        "time": 1_700_000_000_500,
        "app_version": "2.3.1",
        "price": 9.99,
        "event_properties": {"format": "pdf", "pages": 12},
        "user_properties": {"$set": {"plan": "pro"}},
    }


def test_structlog_plumbing_is_not_sent(client: RecordingClient):
    process(
        client,
        {
            "event": "report_exported",
            "user_id": USER,
            "format": "pdf",
            "level": "info",
            "logger": "app.reports",
            "timestamp": "2024-05-01T12:00:00Z",
            "exc_info": True,
            "stack_info": True,
            "exception": "Traceback (most recent call last): ...",
            "stack": "Stack (most recent call last): ...",
        },
    )

    assert only_event(client)["event_properties"] == {"format": "pdf"}


def test_logger_and_level_are_properties_only_when_asked_for():
    including = RecordingClient(log_include_logger=True)
    try:
        process(including, {"event": "a", "user_id": USER, "logger": "app.reports"}, "warning")
        process(including, {"event": "b", "user_id": USER, "level": "error"}, "error")
        first, second = including.wire()
        assert first["event_properties"] == {"level": "WARNING", "logger": "app.reports"}
        assert second["event_properties"] == {"level": "ERROR"}
    finally:
        including.shutdown()


@pytest.mark.parametrize(
    ("timestamp", "expected_ms"),
    [
        (1_700_000_000.25, 1_700_000_000_250),
        ("2023-11-14T22:13:20.250000Z", 1_700_000_000_250),
        ("2023-11-14T23:13:20.250+01:00", 1_700_000_000_250),
        (dt.datetime(2023, 11, 14, 22, 13, 20, 250_000, tzinfo=dt.timezone.utc),
         1_700_000_000_250),
    ],
)  # fmt: skip
def test_an_unambiguous_timestamp_is_the_event_time(
    client: RecordingClient, timestamp: object, expected_ms: int
):
    process(client, {"event": "e", "user_id": USER, "timestamp": timestamp})

    assert only_event(client)["time"] == expected_ms


@pytest.mark.parametrize(
    "timestamp",
    [
        "2023-11-14T22:13:20",  # TimeStamper(fmt="iso", utc=False): local time, no offset
        "14/11/2023 22:13",  # a custom format
        dt.datetime(2023, 11, 14, 22, 13, 20),  # naive
        1_700_000_000,  # an int: seconds or ms?
        None,
    ],
)
def test_an_ambiguous_timestamp_is_ignored_and_the_time_is_now(
    client: RecordingClient, timestamp: object
):
    before = time.time_ns() // 1_000_000
    process(client, {"event": "e", "user_id": USER, "timestamp": timestamp})
    after = time.time_ns() // 1_000_000

    assert before <= only_event(client)["time"] <= after


def test_an_explicit_time_wins_over_the_timestamp(client: RecordingClient):
    process(client, {"event": "e", "user_id": USER, "time": 1_600_000_000_000,
                     "timestamp": 1_700_000_000.0})  # fmt: skip

    assert only_event(client)["time"] == 1_600_000_000_000


def test_ids_come_from_the_event_dict_then_from_bind(client: RecordingClient):
    with bind(user_id="bound-user"):
        process(client, {"event": "e", "user_id": "dict-user"})
        process(client, {"event": "e"})

    assert [e["user_id"] for e in client.wire()] == ["dict-user", "bound-user"]


def test_an_event_naming_nobody_is_counted_as_dropped(client: RecordingClient):
    process(client, {"event": "anonymous_visit"})

    assert client.events == []
    assert client.discarded == ["no_identity"]


def test_an_invalid_event_is_counted_and_reported_not_raised(
    client: RecordingClient, caplog: pytest.LogCaptureFixture
):
    event_dict: EventDict = {"event": "e", "user_id": USER, "ratio": float("inf")}

    assert process(client, event_dict) is event_dict

    assert client.discarded == ["invalid"]
    [warning] = [r for r in caplog.records if r.name == "otel_amplitude"]
    assert "event_properties.ratio" in warning.getMessage()


def test_an_event_dict_without_event_is_invalid(client: RecordingClient):
    process(client, {"user_id": USER})

    assert client.discarded == ["invalid"]


def test_a_broken_client_never_breaks_the_log_call(caplog: pytest.LogCaptureFixture):
    broken = BrokenClient()
    try:
        event_dict: EventDict = {"event": "e", "user_id": USER}
        assert AmplitudeProcessor(broken)(None, "info", event_dict) is event_dict
    finally:
        broken.shutdown()
    assert any("RuntimeError" in r.getMessage() for r in caplog.records)


# -- in structlog setups -------------------------------------------------------------------------


def test_standalone_setup_with_contextvars(client: RecordingClient):
    output = io.StringIO()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            AmplitudeProcessor(client),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(output),
    )
    structlog.contextvars.bind_contextvars(user_id=USER, request_id="req-1")

    structlog.get_logger().info("report_exported", format="pdf")

    event = only_event(client)
    assert (event["event_type"], event["user_id"]) == ("report_exported", USER)
    assert event["event_properties"] == {"request_id": "req-1", "format": "pdf"}
    line = json.loads(output.getvalue())
    assert set(line) == {"event", "user_id", "request_id", "format", "level", "timestamp"}


def stdlib_setup(*chain: Any) -> logging.Handler:
    """structlog's stdlib integration: ``chain`` then wrap_for_formatter, and a handler on the
    root logger rendering JSON through ProcessorFormatter, which is returned."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
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
    root = logging.getLogger()
    root.addHandler(rendering)
    root.setLevel(logging.INFO)
    return rendering


def test_stdlib_setup_with_processor_and_handler_sends_each_call_once(client: RecordingClient):
    stdlib_setup(AmplitudeProcessor(client))
    logging.getLogger().addHandler(AmplitudeHandler(client))
    log = structlog.get_logger("app")

    for n in range(3):
        log.info("report_exported", user_id=USER, n=n)
    logging.getLogger("app.legacy").info("legacy_event", extra={"user_id": USER})

    assert [(e["event_type"], e.get("event_properties")) for e in client.wire()] == [
        ("report_exported", {"n": 0}),
        ("report_exported", {"n": 1}),
        ("report_exported", {"n": 2}),
        ("legacy_event", None),
    ]


def test_stdlib_setup_with_only_the_handler_sends_structlog_calls_too(client: RecordingClient):
    stdlib_setup()
    logging.getLogger().addHandler(AmplitudeHandler(client))
    structlog.contextvars.bind_contextvars(user_id=USER)

    structlog.get_logger("app").info("report_exported", format="pdf")

    event = only_event(client)
    assert (event["event_type"], event["user_id"]) == ("report_exported", USER)
    assert event["event_properties"] == {"format": "pdf"}


@pytest.mark.parametrize(
    "renderer",
    [structlog.stdlib.render_to_log_kwargs, structlog.processors.JSONRenderer()],
    ids=["render_to_log_kwargs", "JSONRenderer"],
)
@pytest.mark.parametrize(
    "wrapper_class",
    [structlog.stdlib.BoundLogger, structlog.make_filtering_bound_logger(logging.INFO)],
    ids=["stdlib.BoundLogger", "filtering_bound_logger"],
)
def test_with_any_renderer_a_call_seen_by_processor_and_handler_is_sent_once(
    client: RecordingClient, renderer: Any, wrapper_class: Any
):
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, AmplitudeProcessor(client), renderer],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=wrapper_class,
        cache_logger_on_first_use=False,
    )
    logging.getLogger().addHandler(AmplitudeHandler(client))
    logging.getLogger().setLevel(logging.INFO)

    for n in range(3):
        structlog.get_logger("app").info("report_exported", user_id=USER, n=n)

    assert [e["event_properties"] for e in client.wire()] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert client.discarded == []  # not even counted as dropped by the handler


def test_render_to_log_kwargs_records_are_sent_by_the_handler_alone(client: RecordingClient):
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars,
                    structlog.stdlib.render_to_log_kwargs],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )  # fmt: skip
    logging.getLogger().addHandler(AmplitudeHandler(client))
    logging.getLogger().setLevel(logging.INFO)
    structlog.contextvars.bind_contextvars(user_id=USER)

    structlog.get_logger("app").info("report_exported", format="pdf")

    event = only_event(client)
    assert (event["event_type"], event["user_id"]) == ("report_exported", USER)
    assert event["event_properties"] == {"format": "pdf"}


def test_records_after_a_forwarded_call_are_sent(client: RecordingClient):
    stdlib_setup(AmplitudeProcessor(client))
    logging.getLogger().addHandler(AmplitudeHandler(client))
    logging.getLogger("app").setLevel(logging.WARNING)

    structlog.get_logger("app").info("dropped_by_the_stdlib_level", user_id=USER)
    logging.getLogger("app").warning("plain_record", extra={"user_id": USER})

    assert [e["event_type"] for e in client.wire()] == [
        "dropped_by_the_stdlib_level",  # sent by the processor, which comes before the level
        "plain_record",
    ]


def test_in_a_processor_formatter_the_processor_sends_nothing_and_says_so(
    client: RecordingClient, caplog: pytest.LogCaptureFixture
):
    rendering = stdlib_setup()
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[
            AmplitudeProcessor(client),
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ]
    )
    rendering.setFormatter(formatter)
    caplog.set_level(logging.WARNING, "otel_amplitude")

    for _ in range(2):
        structlog.get_logger("app").info("report_exported", user_id=USER)

    assert client.events == []
    warnings = [r for r in caplog.records if r.name == "otel_amplitude"]
    assert len(warnings) == 1
    assert "ProcessorFormatter" in warnings[0].getMessage()

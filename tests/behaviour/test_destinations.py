"""Destinations: each tenant's events reach that tenant's Amplitude project, and one customer's
problems (a refused key, a flood, a removed destination) never touch the others.

Over real HTTP against the local server, which serves several projects (API keys) and refuses
the keys it is not given; the destinations file is rewritten on disk to rotate keys.
"""

from __future__ import annotations

import io
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import structlog
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_amplitude import (
    AmplitudeHandler,
    AmplitudeLogExporter,
    AmplitudeSpanExporter,
    Client,
    ConfigError,
    Destination,
    InvalidEventError,
    Settings,
    bind,
)
from otel_amplitude.structlog import AmplitudeProcessor
from otel_amplitude.testing import AmplitudeServer, ManualClock

from .conftest import API_KEY, MakeClient, assert_conserved, assert_in_order, drive

KEY_A_OLD = "acme-key-revoked-0001"
KEY_A = "acme-key-rotated-0002"
KEY_B = "globex-key-0000000001"
KEY_C = "initech-key-000000001"


@pytest.fixture
def server() -> Any:
    # Serves the default project and B and C; A's old key is refused as Amplitude does.
    with AmplitudeServer(api_keys=[API_KEY, KEY_A, KEY_B, KEY_C]) as running:
        yield running


def write_destinations(path: Path, tenants: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for name, table in tenants.items():
        lines.append(f"[tenants.{name}]")
        for key, value in table.items():
            shown = f'"{value}"' if isinstance(value, str) else repr(value)
            lines.append(f"{key} = {shown}")
    path.write_text("\n".join(lines) + "\n")
    return path


def paused(client: Client, tenant: str) -> bool:
    destination = client.stats()["destinations"].get(tenant)
    return destination is not None and destination["destination_paused"]


def keys_of(server: AmplitudeServer, key: str) -> list[str]:
    return [e["insert_id"] for e in server.events_for(key)]


def three_tenants(tmp_path: Path, a_key: str = KEY_A) -> Path:
    return write_destinations(
        tmp_path / "destinations.toml",
        {
            "acme": {"api_key": a_key, "environment": "production"},
            "globex": {"api_key": KEY_B},
            "initech": {"api_key": KEY_C},
        },
    )


# -- routing ----------------------------------------------------------------------------------


def test_each_tenant_reaches_its_own_project_and_no_tenant_goes_to_the_default(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path
):
    client = make_client(destinations_file=str(three_tenants(tmp_path)))

    acme = client.track("report_exported", user_id="user-1", tenant="acme")
    globex = client.track("report_exported", user_id="user-1", tenant="globex")
    default = client.track("report_exported", user_id="user-1")
    assert client.flush(timeout=5)

    assert keys_of(server, KEY_A) == [acme]
    assert keys_of(server, KEY_B) == [globex]
    assert keys_of(server, API_KEY) == [default]
    assert keys_of(server, KEY_C) == []
    per_destination = client.stats()["destinations"]
    assert per_destination["acme"]["accepted"] == 1
    assert per_destination["acme"]["environment"] == "production"
    assert per_destination["default"]["accepted"] == 1


def test_bind_routes_every_event_of_the_context_and_track_may_override_it(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path
):
    client = make_client(destinations_file=str(three_tenants(tmp_path)))

    with bind(tenant="globex"):
        bound = client.track("page_viewed", user_id="user-1")
        explicit = client.track("page_viewed", user_id="user-1", tenant="initech")
    assert client.flush(timeout=5)

    assert keys_of(server, KEY_B) == [bound]
    assert keys_of(server, KEY_C) == [explicit]


def test_logging_extra_and_bound_tenant_route_and_tenant_is_not_a_property(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path
):
    client = make_client(destinations_file=str(three_tenants(tmp_path)))
    logger = logging.getLogger("tests.destinations.logging")
    logger.propagate = False
    handler = AmplitudeHandler(client=client)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("report_exported", extra={"user_id": "user-1", "tenant": "acme", "n": 1})
        with bind(user_id="user-2", tenant="globex"):
            logger.info("report_exported", extra={"n": 2})
        assert client.flush(timeout=5)
    finally:
        logger.removeHandler(handler)

    [acme] = server.events_for(KEY_A)
    [globex] = server.events_for(KEY_B)
    assert acme["event_properties"] == {"n": 1}
    assert (globex["user_id"], globex["event_properties"]) == ("user-2", {"n": 2})


def test_tenant_stays_an_ordinary_property_when_no_destinations_are_configured(
    server: AmplitudeServer, make_client: MakeClient
):
    client = make_client()
    logger = logging.getLogger("tests.destinations.plain")
    logger.propagate = False
    handler = AmplitudeHandler(client=client)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("report_exported", extra={"user_id": "user-1", "tenant": "acme"})
        assert client.flush(timeout=5)
    finally:
        logger.removeHandler(handler)

    [event] = server.events_for(API_KEY)
    assert event["event_properties"] == {"tenant": "acme"}
    with pytest.raises(InvalidEventError, match="tenant: no destinations are configured"):
        client.track("page_viewed", user_id="user-1", tenant="acme")


def test_span_attribute_and_resource_attribute_route_spans(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path
):
    client = make_client(
        destinations_file=str(three_tenants(tmp_path)), tenant_attribute="tenant.id"
    )
    provider = TracerProvider(resource=Resource.create({"tenant.id": "initech"}))
    provider.add_span_processor(SimpleSpanProcessor(AmplitudeSpanExporter(client)))
    tracer = provider.get_tracer("tests")

    with tracer.start_as_current_span(
        "export",
        attributes={
            "amplitude.event_type": "report_exported",
            "enduser.id": "user-1",
            "amplitude.tenant": "acme",
        },
    ):
        pass
    with tracer.start_as_current_span(
        "export", attributes={"amplitude.event_type": "report_exported", "enduser.id": "user-2"}
    ):
        pass
    assert client.flush(timeout=5)
    provider.shutdown()

    [acme] = server.events_for(KEY_A)
    [initech] = server.events_for(KEY_C)
    assert acme["user_id"] == "user-1"
    assert "amplitude.tenant" not in acme["event_properties"]
    assert initech["user_id"] == "user-2"


def test_structlog_and_otel_log_records_route_by_tenant(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path
):
    client = make_client(
        destinations_file=str(three_tenants(tmp_path)), tenant_attribute="tenant.id"
    )
    structlog.configure(
        processors=[AmplitudeProcessor(client), structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(io.StringIO()),
    )
    try:
        structlog.get_logger().info("report_exported", user_id="user-1", tenant="acme")
    finally:
        structlog.reset_defaults()
    provider = LoggerProvider(
        resource=Resource.create({"tenant.id": "initech"}), shutdown_on_exit=False
    )
    exporter = AmplitudeLogExporter(client)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    otel_logger = provider.get_logger("tests")
    otel_logger.emit(
        body="plan_changed", attributes={"user_id": "user-2", "amplitude.tenant": "globex"}
    )
    otel_logger.emit(body="plan_changed", attributes={"user_id": "user-3"})  # the resource's
    assert client.flush(timeout=5)
    provider.shutdown()

    [acme] = server.events_for(KEY_A)
    [globex] = server.events_for(KEY_B)
    [initech] = server.events_for(KEY_C)
    assert (acme["event_type"], acme.get("event_properties")) == ("report_exported", None)
    assert (globex["user_id"], initech["user_id"]) == ("user-2", "user-3")
    assert "tenant" not in (globex.get("event_properties") or {})


def test_an_unknown_tenant_is_dropped_counted_and_named_never_sent_to_the_default(
    server: AmplitudeServer,
    make_client: MakeClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
):
    client = make_client(destinations_file=str(three_tenants(tmp_path)))

    with caplog.at_level(logging.WARNING, logger="otel_amplitude"):
        client.track("page_viewed", user_id="user-1", tenant="umbrella")
        client.track("page_viewed", user_id="user-1", tenant="umbrella")
        assert client.flush(timeout=5)

    assert server.events == []
    assert client.stats()["dropped_by_reason"] == {"unknown_tenant": 2}
    warnings = [r.getMessage() for r in caplog.records if "unknown_tenant" in r.getMessage()]
    assert len(warnings) == 1
    assert "'umbrella'" in warnings[0]
    assert "AMPLITUDE_UNKNOWN_TENANT" in warnings[0]


def test_an_unknown_tenant_goes_to_the_default_project_only_when_asked(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path
):
    client = make_client(destinations_file=str(three_tenants(tmp_path)), unknown_tenant="default")

    insert_id = client.track("page_viewed", user_id="user-1", tenant="umbrella")
    assert client.flush(timeout=5)

    assert keys_of(server, API_KEY) == [insert_id]


def test_without_a_default_key_an_event_without_tenant_is_dropped_as_no_tenant(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path
):
    client = make_client(api_key=None, destinations_file=str(three_tenants(tmp_path)))

    client.track("page_viewed", user_id="user-1")
    routed = client.track("page_viewed", user_id="user-1", tenant="globex")
    assert client.flush(timeout=5)

    assert keys_of(server, KEY_B) == [routed]
    assert client.stats()["dropped_by_reason"] == {"no_tenant": 1}
    assert "default" not in client.stats()["destinations"]


def test_a_resolver_in_code_routes_and_is_asked_once_per_tenant(
    server: AmplitudeServer, make_client: MakeClient
):
    asked: list[str] = []

    def resolve(tenant: str) -> Destination | None:
        asked.append(tenant)
        if tenant == "globex":
            return Destination("globex", KEY_B, server_url=server.url)
        return None

    client = make_client(destinations=resolve)
    for _ in range(3):
        client.track("page_viewed", user_id="user-1", tenant="globex")
        client.track("page_viewed", user_id="user-1", tenant="umbrella")
    assert client.flush(timeout=5)

    assert len(server.events_for(KEY_B)) == 3
    assert asked == ["globex", "umbrella"]  # answers, and unknowns for a while, are remembered
    assert client.stats()["dropped_by_reason"] == {"unknown_tenant": 3}


# -- isolation and rotation -------------------------------------------------------------------


def test_a_refused_key_pauses_that_tenant_only_and_rotation_delivers_what_it_kept_once(
    server: AmplitudeServer, make_client: MakeClient, clock: ManualClock, tmp_path: Path
):
    path = three_tenants(tmp_path, a_key=KEY_A_OLD)
    client = make_client(destinations_file=str(path))

    kept: list[str] = []
    for seq in range(30):
        kept.append(
            client.track("page_viewed", user_id=f"acme-{seq % 3}", tenant="acme",
                         event_properties={"seq": seq})
        )  # fmt: skip
        client.track("page_viewed", user_id=f"glob-{seq % 3}", tenant="globex",
                     event_properties={"seq": seq})  # fmt: skip
        client.track("page_viewed", user_id=f"init-{seq % 3}", tenant="initech",
                     event_properties={"seq": seq})  # fmt: skip
    drive(client, clock, lambda: len(server.events) == 60, step=0.5)

    stats = client.stats()
    acme = stats["destinations"]["acme"]
    assert acme["destination_paused"] is True
    assert acme["paused_reason"] == "invalid_api_key"
    assert acme["buffered"] == 30
    assert stats["paused_destinations"] == 1
    assert not stats["destinations"]["globex"]["destination_paused"]
    assert len(server.events_for(KEY_B)) == len(server.events_for(KEY_C)) == 30
    health = client.health()
    assert health.status == "degraded"  # one customer's key, not the service, is broken
    assert "(acme)" in health.reason
    assert health.destinations == {
        "default": "ok",
        "acme": "failing",
        "globex": "ok",
        "initech": "ok",
    }

    # More of B and C while A is held: they flow at once.
    more = client.track("page_viewed", user_id="glob-0", tenant="globex",
                        event_properties={"seq": 30})  # fmt: skip
    assert client.flush(timeout=0.5) is False  # A's events wait for its key
    assert more in keys_of(server, KEY_B)

    time.sleep(0.01)  # a new mtime even on coarse file systems
    three_tenants(tmp_path, a_key=KEY_A)
    drive(client, clock, lambda: len(server.events_for(KEY_A)) == 30, step=0.5)

    assert sorted(keys_of(server, KEY_A)) == sorted(kept)
    assert server.duplicates == 0
    assert_in_order(server.events_for(KEY_A))
    assert client.stats()["destinations"]["acme"]["destination_paused"] is False
    assert client.flush(timeout=5)


def test_reload_destinations_resumes_at_once_and_refuses_a_malformed_file(
    server: AmplitudeServer, make_client: MakeClient, clock: ManualClock, tmp_path: Path
):
    path = three_tenants(tmp_path, a_key=KEY_A_OLD)
    client = make_client(destinations_file=str(path))
    kept = client.track("page_viewed", user_id="acme-1", tenant="acme")
    drive(client, clock, lambda: paused(client, "acme"))

    path.write_text('[tenants.acme]\napi_key = "x"\nzone = "MARS"\n')
    with pytest.raises(ConfigError, match=r"tenants.acme.*zone must be one of US, EU"):
        client.reload_destinations()
    globex = client.track("page_viewed", user_id="glob-1", tenant="globex")  # previous table holds
    assert client.flush(timeout=0.5) is False
    assert keys_of(server, KEY_B) == [globex]
    assert client.stats()["destinations_reload_errors"] == 1

    three_tenants(tmp_path, a_key=KEY_A)
    assert client.reload_destinations() == ["acme", "globex", "initech"]
    assert client.flush(timeout=5)
    assert keys_of(server, KEY_A) == [kept]


def test_a_malformed_change_on_disk_is_refused_and_the_previous_table_stays(
    server: AmplitudeServer,
    make_client: MakeClient,
    clock: ManualClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
):
    path = three_tenants(tmp_path)
    client = make_client(destinations_file=str(path))
    client.track("page_viewed", user_id="acme-1", tenant="acme")
    assert client.flush(timeout=5)

    time.sleep(0.01)
    path.write_text("[tenants.acme\napi_key = ")
    with caplog.at_level(logging.ERROR, logger="otel_amplitude"):
        drive(client, clock, lambda: client.stats()["destinations_reload_errors"] == 1, step=1.0)
    second = client.track("page_viewed", user_id="acme-1", tenant="acme")
    assert client.flush(timeout=5)

    assert second in keys_of(server, KEY_A)
    assert any("previous destinations stay in force" in r.getMessage() for r in caplog.records)
    assert all(KEY_A not in r.getMessage() for r in caplog.records)


def test_removing_a_destination_drops_its_buffered_events_counted(
    server: AmplitudeServer, make_client: MakeClient, clock: ManualClock, tmp_path: Path
):
    path = three_tenants(tmp_path, a_key=KEY_A_OLD)
    client = make_client(destinations_file=str(path))
    for seq in range(5):
        client.track("page_viewed", user_id="acme-1", tenant="acme", event_properties={"seq": seq})
    drive(client, clock, lambda: paused(client, "acme"))

    write_destinations(path, {"globex": {"api_key": KEY_B}, "initech": {"api_key": KEY_C}})
    assert client.reload_destinations() == ["globex", "initech"]

    assert client.flush(timeout=5)
    stats = client.stats()
    assert stats["dropped_by_reason"] == {"destination_removed": 5}
    assert "acme" not in stats["destinations"]
    assert_conserved(stats)


def test_a_broken_destination_keeps_within_its_share_of_the_buffers(
    server: AmplitudeServer, make_client: MakeClient, clock: ManualClock, tmp_path: Path
):
    path = write_destinations(
        tmp_path / "d.toml",
        {"acme": {"api_key": KEY_A_OLD, "max_buffered_events": 50}, "globex": {"api_key": KEY_B}},
    )
    client = make_client(destinations_file=str(path), max_buffered_events=1000)
    client.track("page_viewed", user_id="acme-0", tenant="acme")
    drive(client, clock, lambda: paused(client, "acme"))

    for seq in range(200):
        client.track("page_viewed", user_id=f"acme-{seq % 7}", tenant="acme")
        client.track("page_viewed", user_id=f"glob-{seq % 7}", tenant="globex")
    drive(client, clock, lambda: len(server.events_for(KEY_B)) == 200, step=0.5)

    acme = client.stats()["destinations"]["acme"]
    assert acme["buffered"] == 50
    assert acme["dropped_by_reason"] == {"overflow": 151}
    assert client.stats()["destinations"]["globex"]["dropped"] == 0


# -- zones, limits, fairness ------------------------------------------------------------------


def test_us_and_eu_destinations_use_their_own_hosts(tmp_path: Path):
    path = write_destinations(
        tmp_path / "d.toml",
        {"acme": {"api_key": KEY_A, "zone": "EU"}, "globex": {"api_key": KEY_B, "zone": "us"}},
    )
    client = Client(Settings(destinations_file=str(path), api_key=API_KEY, server_zone="EU"))
    try:
        dispatcher = client._dispatcher
        lanes = {
            name: dispatcher._add_lane(name, destination, 0.0)
            for name, destination in client._router.known().items()
        }
        assert lanes["acme"].url == "https://api.eu.amplitude.com/2/httpapi"
        assert lanes["globex"].url == "https://api2.amplitude.com/2/httpapi"
        assert dispatcher._lanes[""].url == "https://api.eu.amplitude.com/2/httpapi"
        acme = client._router.known()["acme"]
        assert acme.privacy_base() == "https://analytics.eu.amplitude.com"
        assert acme.ingestion_base("http://127.0.0.1:9") == "http://127.0.0.1:9"
    finally:
        client.shutdown(timeout=0)


def test_eu_and_us_tenants_in_one_process_reach_their_own_base_urls(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path
):
    with AmplitudeServer(api_keys=[KEY_A]) as eu:
        path = write_destinations(
            tmp_path / "d.toml",
            {
                "acme": {"api_key": KEY_A, "zone": "EU", "server_url": eu.url},
                "globex": {"api_key": KEY_B},
            },
        )
        client = make_client(destinations_file=str(path))  # AMPLITUDE_SERVER_URL = server
        acme = client.track("page_viewed", user_id="user-1", tenant="acme")
        globex = client.track("page_viewed", user_id="user-1", tenant="globex")
        assert client.flush(timeout=5)

        assert [e["insert_id"] for e in eu.events] == [acme]
        assert [e["insert_id"] for e in server.events] == [globex]


def test_a_destination_rate_limit_paces_its_requests(
    server: AmplitudeServer, make_client: MakeClient, clock: ManualClock, tmp_path: Path
):
    path = write_destinations(
        tmp_path / "d.toml",
        {"acme": {"api_key": KEY_A, "max_events_per_second": 100}, "globex": {"api_key": KEY_B}},
    )
    client = make_client(destinations_file=str(path), flush_max_events=1000)
    for seq in range(350):
        client.track("page_viewed", user_id=f"acme-{seq % 5}", tenant="acme")
    client.track("page_viewed", user_id="glob-1", tenant="globex")

    client.flush(timeout=0.3)
    assert len(server.events_for(KEY_A)) == 100  # one second's worth, at once
    assert len(server.events_for(KEY_B)) == 1
    clock.advance(1.0)
    client.flush(timeout=0.3)
    assert len(server.events_for(KEY_A)) == 200
    drive(client, clock, lambda: len(server.events_for(KEY_A)) == 350, step=1.0)
    sizes = [r.events_count for r in server.requests if r.json and r.json["api_key"] == KEY_A]
    assert max(sizes) <= 100


def test_a_backlog_of_one_tenant_does_not_starve_the_others(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path
):
    client = make_client(
        destinations_file=str(three_tenants(tmp_path)), senders=1, flush_max_events=100
    )
    client.track("page_viewed", user_id="acme-0", tenant="acme")
    assert client.flush(timeout=5)
    server.reset()
    # All of it is in transit at once (the dispatcher waits for its lock): a backlog of 10,000
    # events of A, then 100 each of B and C.
    with client._dispatcher.lock:
        for seq in range(10_000):
            client.track("page_viewed", user_id=f"acme-{seq % 50}", tenant="acme")
        for seq in range(100):
            client.track("page_viewed", user_id=f"glob-{seq % 5}", tenant="globex")
            client.track("page_viewed", user_id=f"init-{seq % 5}", tenant="initech")
    assert client.flush(timeout=20)

    order = [
        {KEY_A: "acme", KEY_B: "globex", KEY_C: "initech"}[r.json["api_key"]]
        for r in server.requests
        if r.json is not None
    ]
    assert Counter(order) == {"acme": 100, "globex": 1, "initech": 1}
    # B and C wait only for A's requests formed before their events were read from transit
    # (a few slices of 2,048 events), then take their turn; first come, first served would
    # put them behind all 100 of A's.
    assert order.index("globex") < 10
    assert order.index("initech") < 10


# -- privacy per destination ------------------------------------------------------------------

SECRET_B = "globex-secret-00000001"


def test_an_opt_out_applies_to_every_destination_by_default(
    server: AmplitudeServer, make_client: MakeClient, tmp_path: Path
):
    client = make_client(destinations_file=str(three_tenants(tmp_path)))

    client.consent.opt_out("user-gone")
    for tenant in ("acme", "globex", None):
        client.track("page_viewed", user_id="user-gone", tenant=tenant)
    assert client.flush(timeout=5)

    assert server.events == []
    assert client.stats()["dropped_by_reason"] == {"opted_out": 3}


def test_an_opt_out_scoped_to_a_tenant_blocks_and_purges_only_that_tenants_events(
    server: AmplitudeServer, make_client: MakeClient, clock: ManualClock, tmp_path: Path
):
    client = make_client(
        destinations_file=str(three_tenants(tmp_path)), flush_interval_ms=3_600_000
    )
    client.track("page_viewed", user_id="user-1", tenant="acme")  # buffered, then purged
    client.track("page_viewed", user_id="user-1", tenant="globex")  # buffered, then sent

    assert client.consent.opt_out("user-1", tenant="acme") == "opted_out"
    client.track("page_viewed", user_id="user-1", tenant="acme")
    sent = client.track("page_viewed", user_id="user-1", tenant="globex")
    assert client.flush(timeout=5)

    assert server.events_for(KEY_A) == []
    assert len(server.events_for(KEY_B)) == 2
    assert sent in keys_of(server, KEY_B)
    assert client.stats()["dropped_by_reason"] == {"opted_out": 2}
    assert client.consent.status("user-1", tenant="acme") == "opted_out"
    assert client.consent.status("user-1", tenant="globex") == "unknown"
    assert client.consent.status("user-1") == "unknown"


def test_a_tenant_scoped_deletion_goes_to_that_tenants_project_with_its_secret_key(
    make_client: MakeClient, clock: ManualClock, tmp_path: Path
):
    path = write_destinations(
        tmp_path / "d.toml",
        {
            "acme": {"api_key": KEY_A},
            "globex": {"api_key": KEY_B, "secret_key": "file:" + str(tmp_path / "b.secret")},
        },
    )
    (tmp_path / "b.secret").write_text(SECRET_B + "\n")
    with AmplitudeServer(api_keys=[API_KEY, KEY_A, KEY_B], secret_keys={KEY_B: SECRET_B}) as srv:
        client = make_client(destinations_file=str(path), server_url=srv.url)
        client.track("signed_up", user_id="user-1", tenant="globex")
        client.track("signed_up", user_id="user-1", tenant="acme")
        drive(client, clock, lambda: len(srv.events) == 2)

        client.consent.delete_user("user-1", requester="dpo@globex.example", tenant="globex")
        client.track("page_viewed", user_id="user-1", tenant="globex")  # blocked there
        kept = client.track("page_viewed", user_id="user-1", tenant="acme")  # not there
        drive(client, clock, lambda: client.consent.pending_deletions(tenant="globex") == 0)

        [request] = [r for r in srv.requests if r.path == "/api/2/deletions/users"]
        assert request.status == 200
        assert request.json is not None
        assert request.json["user_ids"] == ["user-1"]
        assert request.json["requester"] == "dpo@globex.example"
        assert srv.amplitude_id_of("user-1", KEY_A) is not None
        assert kept in [e["insert_id"] for e in srv.events_for(KEY_A)]
        assert len(srv.events_for(KEY_B)) == 1
        assert client.consent.status("user-1", tenant="globex") == "deleted"
        assert client.consent.status("user-1") == "unknown"
        assert client.consent.pending_deletions() == 0  # nothing for the default project


def test_deleting_for_a_tenant_without_a_destination_is_refused(
    make_client: MakeClient, tmp_path: Path
):
    client = make_client(destinations_file=str(three_tenants(tmp_path)))

    with pytest.raises(ValueError, match="tenant 'umbrella' has no destination"):
        client.consent.delete_user("user-1", tenant="umbrella")


def test_a_429_pauses_the_user_at_that_destination_only(
    make_client: MakeClient, clock: ManualClock, tmp_path: Path
):
    with AmplitudeServer() as throttling, AmplitudeServer() as calm:
        throttling.faults.throttle(users=["user-shared"])
        path = write_destinations(
            tmp_path / "d.toml",
            {
                "acme": {"api_key": KEY_A, "server_url": throttling.url},
                "globex": {"api_key": KEY_B, "server_url": calm.url},
            },
        )
        client = make_client(destinations_file=str(path), server_url=calm.url)
        for seq in range(5):
            client.track("page_viewed", user_id="user-shared", tenant="acme")
            client.track("page_viewed", user_id="user-shared", tenant="globex",
                         event_properties={"seq": seq})  # fmt: skip
        drive(client, clock, lambda: paused_ids(client, "acme") == 1, step=0.2)

        assert client.flush(timeout=0.5) is False  # acme's user waits out its 30 s pause
        assert len(calm.events_for(KEY_B)) == 5  # the same id at globex was never held
        assert paused_ids(client, "globex") == 0
        assert client.stats()["destinations"]["acme"]["throttled"] >= 5
        throttling.faults.unthrottle()
        drive(client, clock, lambda: len(throttling.events) == 5, step=5.0)


def paused_ids(client: Client, tenant: str) -> int:
    destination = client.stats()["destinations"].get(tenant)
    return 0 if destination is None else destination["paused_partitions"]

"""The consent gate and API: the rules, purging, durability failures, news from elsewhere."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

import otel_amplitude._client as client_module
from otel_amplitude import Client, Settings
from otel_amplitude._consent import (
    Consent,
    Gate,
    consent_status,
    delete_user,
    opt_in,
    opt_out,
    project_of,
)
from otel_amplitude._consent_store import (
    ConsentStoreError,
    MemoryConsentStore,
    Snapshot,
    State,
)
from otel_amplitude._dispatcher import Dispatcher
from otel_amplitude._event import Event
from otel_amplitude._validate import make_event
from otel_amplitude.testing import ManualClock

API_KEY = "test-api-key-0001"
SALT = "a-test-salt-of-32-characters-xx"


def settings(**changes: Any) -> Settings:
    return Settings(api_key=API_KEY, **changes)


class Pipeline:
    """A consent object over a dispatcher that never starts: purges without threads."""

    def __init__(self, store: Any = None, **changes: Any) -> None:
        self.settings = settings(**changes)
        self.clock = ManualClock()
        self.dispatcher = Dispatcher(self.settings, self.clock)
        self.consent = Consent(
            self.settings, clock=self.clock, dispatcher=lambda: self.dispatcher, store=store
        )
        self.dispatcher.screen = self.consent.screen

    def submit(self, event: Event) -> None:
        """What Client.submit does: the gate, then the append."""
        gate = self.consent.gate
        refused = gate.refuse(event) if gate.active else None
        self.dispatcher.inbound.append(refused if refused is not None else event)

    def drain(self) -> None:
        """What the dispatcher thread does first: admit everything in transit."""
        with self.dispatcher.lock:
            while self.dispatcher.inbound:
                self.dispatcher._drain(self.clock.monotonic())

    def dropped(self) -> dict[str, int]:
        self.drain()
        return self.dispatcher.snapshot()["dropped_by_reason"]

    def buffered_users(self) -> list[str | None]:
        self.drain()
        with self.dispatcher.lock:
            return [
                e.user_id
                for lane in self.dispatcher._lanes.values()
                for p in lane.partitions.values()
                for e in p
            ]

    def close(self) -> None:
        self.consent.close()
        self.dispatcher.mark_closed()


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    made = Pipeline()
    yield made
    made.close()


def ev(user_id: str | None = "user-123", device_id: str | None = None, **props: Any) -> Event:
    return make_event("Viewed", user_id=user_id, device_id=device_id, event_properties=props)


# --- the gate's rules -----------------------------------------------------------------------------


def test_opt_out_mode_with_nothing_recorded_checks_nothing() -> None:
    gate = Gate(opt_in=False)

    assert gate.active is False
    assert gate.check("user-1", "device-1") is None


def test_an_opted_out_user_or_device_is_refused_by_name() -> None:
    gate = Gate(opt_in=False)
    gate.users["user-1"] = "opted_out"
    gate.users["user-2"] = "deleted"
    gate.devices["device-1"] = "opted_out"
    gate.refresh()

    assert gate.active
    assert gate.check("user-1", None) == "opted_out"
    assert gate.check("user-2", "device-9") == "deleted"
    assert gate.check("user-3", "device-1") == "opted_out"
    assert gate.check(None, "device-1") == "opted_out"
    assert gate.check("user-3", "device-9") is None


def test_opt_in_mode_sends_only_users_or_deviceless_devices_with_consent() -> None:
    gate = Gate(opt_in=True)
    gate.users["user-1"] = "opted_in"
    gate.devices["device-1"] = "opted_in"
    gate.devices["device-2"] = "opted_out"

    assert gate.check("user-1", None) is None
    assert gate.check("user-1", "device-9") is None
    assert gate.check("user-2", None) == "no_consent"
    assert gate.check("user-2", "device-1") == "no_consent"  # the user decides when there is one
    assert gate.check(None, "device-1") is None
    assert gate.check(None, "device-9") == "no_consent"
    assert gate.check("user-1", "device-2") == "opted_out"  # any opt-out wins


def test_a_gate_that_could_not_load_refuses_everything() -> None:
    gate = Gate(opt_in=False)
    gate.ready = False
    gate.refresh()

    assert gate.active
    assert gate.check("user-1", None) == "consent_unavailable"


# --- the API --------------------------------------------------------------------------------------


def test_opt_out_blocks_the_user_and_counts_their_events(pipeline: Pipeline) -> None:
    assert pipeline.consent.status("user-1") == "unknown"

    assert pipeline.consent.opt_out("user-1") == "opted_out"
    pipeline.submit(ev("user-1"))
    pipeline.submit(ev("user-2"))

    assert pipeline.consent.status("user-1") == "opted_out"
    assert pipeline.buffered_users() == ["user-2"]
    assert pipeline.dropped() == {"opted_out": 1}


def test_opting_in_again_unblocks_an_opted_out_user(pipeline: Pipeline) -> None:
    pipeline.consent.opt_out("user-1")

    assert pipeline.consent.opt_in("user-1") == "opted_in"
    pipeline.submit(ev("user-1"))

    assert pipeline.buffered_users() == ["user-1"]


def test_a_device_can_opt_out(pipeline: Pipeline) -> None:
    pipeline.consent.opt_out(device_id="device-1")
    pipeline.submit(ev("user-1", device_id="device-1"))
    pipeline.submit(ev(None, device_id="device-1"))

    assert pipeline.consent.status(device_id="device-1") == "opted_out"
    assert pipeline.consent.status("device-1") == "unknown"  # users and devices apart
    assert pipeline.dropped() == {"opted_out": 2}


def test_opt_in_mode_drops_events_without_consent() -> None:
    pipeline = Pipeline(consent_mode="opt_in")
    try:
        pipeline.consent.opt_in("user-1")
        pipeline.submit(ev("user-1"))
        pipeline.submit(ev("user-2"))
        pipeline.submit(ev(None, device_id="device-1"))

        assert pipeline.consent.mode == "opt_in"
        assert pipeline.buffered_users() == ["user-1"]
        assert pipeline.dropped() == {"no_consent": 2}
    finally:
        pipeline.close()


def test_a_deleted_user_stays_blocked_whatever_follows(pipeline: Pipeline) -> None:
    pipeline.consent.delete_user("user-1")

    assert pipeline.consent.opt_in("user-1") == "deleted"
    assert pipeline.consent.opt_out("user-1") == "deleted"
    pipeline.submit(ev("user-1"))

    assert pipeline.consent.status("user-1") == "deleted"
    assert pipeline.dropped() == {"deleted": 1}
    assert pipeline.consent.refuses("user-1", None) == "deleted"


def test_opt_out_purges_what_is_buffered_and_in_transit(pipeline: Pipeline) -> None:
    for _ in range(3):
        pipeline.submit(ev("user-1"))
        pipeline.submit(ev("user-2"))
    pipeline.buffered_users()  # admitted into the partitions
    pipeline.submit(ev("user-1"))  # still in transit

    pipeline.consent.opt_out("user-1")

    assert pipeline.buffered_users() == ["user-2"] * 3
    assert pipeline.dropped() == {"opted_out": 4}


def test_delete_user_purges_counted_as_deleted_and_queues_a_job(pipeline: Pipeline) -> None:
    pipeline.submit(ev("user-1"))
    pipeline.submit(ev("user-1", device_id="device-1"))

    pipeline.consent.delete_user("user-1", requester="dpo@example.com")

    assert pipeline.dropped() == {"deleted": 2}
    assert pipeline.consent.pending_deletions() == 1


def test_the_screen_stops_an_event_of_a_user_blocked_after_the_caller_checked(
    pipeline: Pipeline,
) -> None:
    late = ev("user-1")
    pipeline.consent.opt_out("user-1")
    pipeline.dispatcher.inbound.append(late)  # the caller passed the gate just before

    assert pipeline.buffered_users() == []
    assert pipeline.dropped() == {"opted_out": 1}


def test_the_screen_applies_the_pii_policy(pipeline: Pipeline) -> None:
    event = make_event(
        "Viewed", user_id="user-1", event_properties={"who": "jane@example.com"},
        fields={"ip": "203.0.113.7"},
    )  # fmt: skip

    assert pipeline.consent.screen(event) is None
    assert event.event_properties == {"who": "[redacted]"}
    assert event.fields is None or "ip" not in event.fields


def test_hash_mode_purges_and_screens_the_hashed_user_id_too() -> None:
    pipeline = Pipeline(pii="hash", pii_salt=SALT)
    try:
        pipeline.submit(ev("jane@example.com"))
        hashed = pipeline.buffered_users()
        assert hashed != ["jane@example.com"]  # the screen hashed it

        pipeline.consent.opt_out("jane@example.com")

        assert pipeline.buffered_users() == []
        resend = ev(hashed[0])  # as a retried event comes back to the screen
        assert pipeline.consent.screen(resend) == "opted_out"
    finally:
        pipeline.close()


def test_exactly_one_id_is_required() -> None:
    pipeline = Pipeline()
    try:
        with pytest.raises(TypeError, match="exactly one"):
            pipeline.consent.opt_out()
        with pytest.raises(TypeError, match="exactly one"):
            pipeline.consent.status("user-1", device_id="device-1")
        with pytest.raises(TypeError, match="non-empty"):
            pipeline.consent.opt_in("")
        with pytest.raises(ValueError, match="requester"):
            pipeline.consent.delete_user("user-1", requester="")
    finally:
        pipeline.close()


# --- stores that fail -----------------------------------------------------------------------------


class FailingStore(MemoryConsentStore):
    def record(self, kind: Any, subject: str, state: State) -> State:
        raise OSError("disk full")

    def record_deletion(self, project: str, user_id: str, requester: str | None) -> None:
        raise OSError("disk full")


def test_an_opt_out_the_store_cannot_record_still_applies_here_and_raises() -> None:
    pipeline = Pipeline(store=FailingStore())
    try:
        pipeline.submit(ev("user-1"))

        with pytest.raises(ConsentStoreError, match="applied in this process"):
            pipeline.consent.opt_out("user-1")

        assert pipeline.consent.status("user-1") == "opted_out"
        assert pipeline.dropped() == {"opted_out": 1}
        with pytest.raises(ConsentStoreError, match="blocked"):
            pipeline.consent.delete_user("user-2")
        assert pipeline.consent.status("user-2") == "deleted"
    finally:
        pipeline.close()


def test_an_opt_in_the_store_cannot_record_changes_nothing() -> None:
    pipeline = Pipeline(store=FailingStore(), consent_mode="opt_in")
    try:
        with pytest.raises(ConsentStoreError, match="nothing changed"):
            pipeline.consent.opt_in("user-1")

        assert pipeline.consent.status("user-1") == "unknown"
    finally:
        pipeline.close()


class UnreadableStore(MemoryConsentStore):
    def load(self) -> Snapshot:
        raise ConnectionError("store down")


def test_a_store_that_cannot_be_read_at_start_fails_closed_until_it_can() -> None:
    pipeline = Pipeline(store=UnreadableStore())
    try:
        pipeline.submit(ev("user-1"))
        assert pipeline.dropped() == {"consent_unavailable": 1}

        pipeline.consent.update(lambda: Snapshot({"user-2": "opted_out"}, {}, 1))
        pipeline.submit(ev("user-1"))
        pipeline.submit(ev("user-2"))

        assert pipeline.buffered_users() == ["user-1"]
    finally:
        pipeline.close()


# --- news from other processes --------------------------------------------------------------------


def test_an_opt_out_heard_from_elsewhere_purges_here(pipeline: Pipeline) -> None:
    pipeline.submit(ev("user-1"))
    pipeline.submit(ev("user-2"))
    changes: Sequence[Any] = [("user", "user-1", "opted_out"), ("user", "user-3", "opted_in")]

    pipeline.consent.update(lambda: changes)

    assert pipeline.consent.status("user-1") == "opted_out"
    assert pipeline.consent.status("user-3") == "opted_in"
    assert pipeline.buffered_users() == ["user-2"]
    assert pipeline.dropped() == {"opted_out": 1}


def test_a_snapshot_never_forgets_a_deleted_user(pipeline: Pipeline) -> None:
    pipeline.consent.delete_user("user-1")
    pipeline.submit(ev("user-2"))

    pipeline.consent.update(lambda: Snapshot({"user-2": "deleted"}, {"device-1": "opted_out"}, 7))

    assert pipeline.consent.status("user-1") == "deleted"
    assert pipeline.consent.status("user-2") == "deleted"
    assert pipeline.consent.status(device_id="device-1") == "opted_out"
    assert pipeline.dropped() == {"deleted": 1}


def test_nothing_new_changes_nothing(pipeline: Pipeline) -> None:
    pipeline.consent.update(lambda: None)

    assert pipeline.consent.gate.active is False


# --- deletions without a secret key ---------------------------------------------------------------


def test_without_a_secret_key_the_deletion_waits_and_says_why_once(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="otel_amplitude")

    pipeline.consent.delete_user("user-secret-1")
    pipeline.consent.delete_user("user-secret-2")

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "AMPLITUDE_SECRET_KEY" in errors[0].getMessage()
    assert "user-secret" not in caplog.text
    stats = pipeline.consent.stats()
    assert stats["pending_deletions"] == 2
    assert stats["deletions_waiting_for"] == "AMPLITUDE_SECRET_KEY"
    assert stats["deletion_requests"] == 0


def test_projects_are_named_without_their_key() -> None:
    assert project_of(API_KEY) == project_of(API_KEY)
    assert project_of(API_KEY) != project_of("another-api-key")
    assert API_KEY not in project_of(API_KEY)
    assert project_of(None) == "no-api-key"


# --- the client and the module-level shortcuts ----------------------------------------------------


def test_the_client_gates_track_and_shortcuts_use_the_default_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = Client(settings(enabled=False))
    monkeypatch.setattr(client_module, "_default_client", client)
    try:
        assert opt_out("user-1") == "opted_out"
        assert consent_status("user-1") == "opted_out"
        assert opt_in("user-2") == "opted_in"
        delete_user("user-3")
        client.track("Viewed", user_id="user-1")
        client.track("Viewed", user_id="user-3")

        assert client.consent.status("user-3") == "deleted"
        assert client.flush(5)
        assert client.stats()["dropped_by_reason"] == {"opted_out": 1, "deleted": 1}
    finally:
        client.shutdown()


def test_consent_repr_shows_no_salt() -> None:
    pipeline = Pipeline(pii="hash", pii_salt=SALT)
    try:
        assert SALT not in repr(pipeline.consent)
        assert repr(pipeline.consent) == "Consent(mode='opt_out', store=MemoryConsentStore())"
    finally:
        pipeline.close()


def test_an_email_user_id_is_dropped_with_a_warning_that_never_names_it(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline.submit(ev("jane@example.com"))
    pipeline.submit(ev("john@example.com"))

    assert pipeline.dropped() == {"pii_user_id": 2}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # rate-limited
    assert "AMPLITUDE_PII=hash" in warnings[0].getMessage()
    assert "example.com" not in caplog.text

"""The dispatcher driven on one thread, no sender or dispatcher thread started: admission,
requests, outcomes (the bulk path of an all-accepted response against the per-event one)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from otel_amplitude import Settings
from otel_amplitude import _dispatcher as dispatcher_module
from otel_amplitude._dispatcher import Barrier, Dispatcher, _Request
from otel_amplitude._event import Event
from otel_amplitude._identify import IDENTIFY
from otel_amplitude._partition import Partition
from otel_amplitude._response import Action, classify
from otel_amplitude._sender import Delivery, Response
from otel_amplitude._validate import make_event
from otel_amplitude.testing import ManualClock

ACCEPT = (Action.ACCEPT, None)
RETRY = (Action.RETRY, None)
REJECT = (Action.REJECT, "invalid_field")


class Recorder:
    """An observer that keeps what it is told."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, int]] = []
        self.oldest: list[float] = []

    def request_done(self, outcome: str, seconds: float, events: int) -> None:
        self.requests.append((outcome, events))

    def delivered(self, oldest: float) -> None:
        self.oldest.append(oldest)


class Pipeline:
    """A dispatcher and the steps its thread takes, one at a time."""

    def __init__(self, *, bulk: bool = True, **changes: Any) -> None:
        self.clock = ManualClock()
        self.observer = Recorder()
        self.dispatcher = Dispatcher(
            Settings(api_key="key", **changes), self.clock, observer=self.observer
        )
        self.identified: list[str] = []
        self.dispatcher.on_identified = lambda event: self.identified.append(event.insert_id)
        self.sent: list[list[str]] = []
        if not bulk:  # every response through the per-event path, to compare with
            dispatcher = self.dispatcher

            def one_by_one(request: _Request, now: float) -> None:
                delivery = Delivery([ACCEPT] * len(request.events))
                dispatcher._apply_each(request, delivery, now)

            dispatcher._accept_all = one_by_one  # type: ignore[method-assign]

    def submit(self, *events: Event) -> None:
        self.dispatcher.inbound.extend(events)
        while self.dispatcher.inbound:
            self.dispatcher._drain(self.clock.monotonic())

    def flush(self) -> Barrier:
        barrier = self.dispatcher.request_flush()
        self.dispatcher._drain(self.clock.monotonic())  # seals it
        return barrier

    def form(self, room: int = 1_000) -> _Request:
        dispatcher = self.dispatcher
        now = self.clock.monotonic()
        dispatcher._wake_waiting(now)
        assert dispatcher._form(dispatcher._lanes[""], room, now)
        request = dispatcher._outbox.get_nowait()
        assert request is not None
        self.sent.append([event.insert_id for event in request.events])
        return request

    def answer(self, request: _Request, actions: list[tuple[Action, str | None]]) -> None:
        verdict = classify(request.events, 200, b'{"code":200}')
        response = Response(200, b'{"code":200}', None, None, 0.01)
        now = self.clock.monotonic()
        self.dispatcher._apply(request, Delivery(actions, [verdict], [response]), now)
        self.dispatcher._check_barriers()

    def state(self) -> dict[str, Any]:
        """Everything outcomes change, but the latencies (real time)."""
        dispatcher = self.dispatcher
        stats: dict[str, Any] = dict(dispatcher.snapshot())
        for key in ("latency_ms_mean", "latency_ms_max"):
            assert stats.pop(key) >= 0.0
        lane = dispatcher._lanes[""]
        return {
            "stats": stats,
            "outstanding": dict(dispatcher._outstanding),
            "partitions": {
                key: ([e.insert_id for e in p], p.state, p.failures)
                for key, p in lane.partitions.items()
            },
            "ready": [p.key for p in lane.ready],
            "ready_events": dispatcher._ready_events,
            "requests": self.observer.requests,
            "delivered": len(self.observer.oldest),
            "identified": list(self.identified),
        }


def event(user: str, n: int, event_type: str = "clicked", **extra: Any) -> Event:
    return make_event(event_type, user_id=f"user-{user}", insert_id=f"{user}-{n}", **extra)


def test_an_all_accepted_response_is_applied_in_bulk_as_it_would_be_one_by_one():
    pipelines = [Pipeline(), Pipeline(bulk=False)]
    barriers: list[tuple[Barrier, Barrier]] = []
    for pipeline in pipelines:
        pipeline.submit(*(event(f"u{i % 3}", i) for i in range(6)))
        first = pipeline.flush()
        pipeline.submit(*(event(f"u{i % 4}", i) for i in range(6, 14)))
        barriers.append((first, pipeline.flush()))
        request = pipeline.form(room=5)  # events of two flush epochs
        assert len({e.epoch for e in request.events}) == 2
        pipeline.answer(request, [ACCEPT] * len(request.events))
        assert not first.done.is_set()
    assert pipelines[0].state() == pipelines[1].state()
    for pipeline, (first, second) in zip(pipelines, barriers, strict=True):
        while pipeline.dispatcher._lanes[""].ready:
            request = pipeline.form(room=4)
            pipeline.answer(request, [ACCEPT] * len(request.events))
        assert first.done.is_set()
        assert second.done.is_set()
    assert pipelines[0].state() == pipelines[1].state()
    assert pipelines[0].sent == pipelines[1].sent
    state = pipelines[0].state()
    assert state["stats"]["accepted"] == state["stats"]["submitted"] == 14
    assert state["stats"]["destinations"]["default"]["accepted"] == 14
    assert state["outstanding"] == {}
    assert state["partitions"] == {}  # emptied partitions are gone


def test_mixed_outcomes_then_a_bulk_accept_keep_each_users_order_and_the_counts():
    pipeline = Pipeline()
    pipeline.submit(event("a", 1), event("a", 2), event("b", 1), event("b", 2), event("c", 1))
    request = pipeline.form()
    pipeline.answer(request, [ACCEPT, ACCEPT, RETRY, RETRY, REJECT])
    pipeline.submit(event("b", 3), event("a", 3))
    barrier = pipeline.flush()
    state = pipeline.state()
    assert state["partitions"]["user-b"][0] == ["b-1", "b-2", "b-3"]  # the retried ones first
    assert state["stats"]["accepted"] == 2
    assert state["stats"]["rejected"] == 1
    assert state["stats"]["retried"] == 2
    request = pipeline.form()
    assert [e.insert_id for e in request.events] == ["a-3"]  # b waits out its backoff
    pipeline.answer(request, [ACCEPT])
    assert not barrier.done.is_set()
    pipeline.clock.advance(60.0)
    request = pipeline.form()
    assert [e.insert_id for e in request.events] == ["b-1", "b-2", "b-3"]
    pipeline.answer(request, [ACCEPT] * 3)
    assert barrier.done.is_set()
    stats = pipeline.dispatcher.snapshot()
    assert stats["submitted"] == 7
    assert (stats["accepted"], stats["rejected"], stats["buffered"], stats["in_flight"]) == (
        6,
        1,
        0,
        0,
    )
    assert pipeline.dispatcher._outstanding == {}
    assert pipeline.dispatcher._lanes[""].partitions == {}


def test_a_bulk_accept_reports_the_oldest_latency_and_only_identify_updates():
    pipeline = Pipeline()
    old = event("a", 1, created=time.monotonic() - 5.0)
    pipeline.submit(event("a", 0), old, event("b", 1))
    pipeline.answer(request := pipeline.form(), [ACCEPT] * len(request.events))
    assert len(pipeline.observer.oldest) == 1
    assert pipeline.observer.oldest[0] >= 5.0
    assert pipeline.dispatcher.snapshot()["latency_ms_max"] >= 5_000.0
    assert pipeline.identified == []
    update = event("a", 2, IDENTIFY, user_properties={"$set": {"plan": "pro"}})
    pipeline.submit(update, event("a", 3))
    pipeline.answer(request := pipeline.form(), [ACCEPT] * len(request.events))
    pipeline.answer(request := pipeline.form(), [ACCEPT] * len(request.events))
    assert pipeline.identified == ["a-2"]
    assert pipeline.dispatcher.snapshot()["accepted"] == 5


def test_a_bulk_accept_after_the_destination_was_removed_counts_the_events_as_accepted():
    pipeline = Pipeline()
    pipeline.submit(event("a", 1), event("b", 1))
    request = pipeline.form()
    lane = pipeline.dispatcher._lanes[""]
    lane.removed = True  # as _remove_lane leaves it, while the request was on the wire
    lane.partitions.clear()
    pipeline.answer(request, [ACCEPT, ACCEPT])
    assert pipeline.dispatcher.snapshot()["accepted"] == 2
    assert lane.counters.accepted == 2
    assert lane.in_flight == 0


def test_a_partition_emptied_by_an_accepted_request_is_reused_for_the_next_user():
    pipeline = Pipeline()
    dispatcher = pipeline.dispatcher
    pipeline.submit(event("a", 1), event("b", 1))
    request = pipeline.form()
    [used_a, used_b] = request.partitions
    pipeline.answer(request, [ACCEPT, ACCEPT])
    assert dispatcher._spare == [used_a, used_b]
    pipeline.submit(event("c", 1), event("c", 2))
    partition = dispatcher._lanes[""].partitions["user-c"]
    assert partition is used_b
    assert (partition.key, partition.failures, partition.not_before) == ("user-c", 0, 0.0)
    assert [e.insert_id for e in partition] == ["c-1", "c-2"]
    pipeline.answer(request := pipeline.form(), [ACCEPT, ACCEPT])
    assert pipeline.sent[-1] == ["c-1", "c-2"]
    assert dispatcher.snapshot()["accepted"] == 4


def test_partitions_are_not_reused_when_a_retry_or_drop_oldest_may_still_name_them():
    pipeline = Pipeline()
    pipeline.submit(event("a", 1), event("b", 1))
    pipeline.answer(pipeline.form(), [ACCEPT, RETRY])
    assert pipeline.dispatcher._spare == []  # the per-event path keeps its own schedule
    oldest = Pipeline(overflow="drop_oldest")
    oldest.submit(event("a", 1))
    oldest.answer(oldest.form(), [ACCEPT])
    assert oldest.dispatcher._spare == []  # its arrivals queue still names the partition


def test_a_request_takes_whole_partitions_then_the_front_of_the_last_in_order():
    pipeline = Pipeline()
    pipeline.submit(*(event(user, n) for n in range(3) for user in ("a", "b", "c")))
    request = pipeline.form(room=5)
    assert [e.insert_id for e in request.events] == ["a-0", "a-1", "a-2", "b-0", "b-1"]
    assert pipeline.dispatcher._ready_events == 3  # c's three; b-2 waits for its request
    pipeline.answer(request, [ACCEPT] * 5)
    rest = pipeline.form()
    assert [e.insert_id for e in rest.events] == ["c-0", "c-1", "c-2", "b-2"]
    pipeline.answer(rest, [ACCEPT] * 4)
    stats = pipeline.dispatcher.snapshot()
    assert (stats["accepted"], stats["buffered"], stats["in_flight"]) == (9, 0, 0)


def test_a_partition_is_its_own_list_of_events_and_compares_by_identity():
    lane = Pipeline().dispatcher._lanes[""]
    first, second = Partition("user-a", lane), Partition("user-b", lane)
    assert not first  # empty: false, so the dispatcher tests a partition variable with `is None`
    assert first != second  # two empty queues, yet two partitions
    assert len({first, second}) == 2
    first.append(event("a", 1))
    assert first
    assert len(first) == 1
    assert repr(first) == "Partition(events=1, state=0)"  # never the events


def test_an_event_for_a_partition_its_request_emptied_waits_for_that_request():
    pipeline = Pipeline()
    pipeline.submit(event("a", 1))
    request = pipeline.form()
    lane = pipeline.dispatcher._lanes[""]
    in_flight = lane.partitions["user-a"]
    assert not in_flight  # emptied by its request, still the user's partition
    pipeline.submit(event("a", 2))
    assert lane.partitions["user-a"] is in_flight
    assert [e.insert_id for e in in_flight] == ["a-2"]
    assert not pipeline.dispatcher._form(lane, 1_000, pipeline.clock.monotonic())  # not ready
    pipeline.answer(request, [ACCEPT])
    pipeline.answer(pipeline.form(), [ACCEPT])
    assert pipeline.sent == [["a-1"], ["a-2"]]
    assert lane.partitions == {}


def test_drop_oldest_skips_partitions_emptied_since_they_were_named():
    pipeline = Pipeline(overflow="drop_oldest", max_buffered_events=2)
    pipeline.submit(event("a", 1))
    pipeline.answer(pipeline.form(), [ACCEPT])  # a's partition is empty and gone
    pipeline.submit(event("b", 1), event("c", 1), event("d", 1))
    stats = pipeline.dispatcher.snapshot()
    assert stats["dropped_by_reason"] == {"overflow": 1}
    assert [e.insert_id for e in pipeline.form().events] == ["c-1", "d-1"]  # b's was the oldest


def test_a_slice_admits_each_event_into_the_epoch_of_the_barriers_around_it(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(dispatcher_module, "_SLICE", 3)
    pipeline = Pipeline(max_buffered_events=5)
    dispatcher = pipeline.dispatcher
    now = pipeline.clock.monotonic()
    update = event("b", 2, IDENTIFY, user_properties={"$set": {"plan": "pro"}})
    dispatcher.inbound.extend([event("a", 1), "invalid", update, event("a", 2)])
    barrier = dispatcher.request_flush()
    dispatcher._drain(now)  # a-1, the counted drop and the update; the barrier is after a-2
    dispatcher.inbound.extend([event("c", i) for i in range(3)])
    dispatcher._drain(now)  # a-2, the seal, then c-0 and c-1 in the next epoch
    assert barrier.epoch == 0
    assert dispatcher._outstanding == {0: 3, 1: 2}
    dispatcher._drain(now)  # c-2: the buffers are full
    stats = dispatcher.snapshot()
    assert stats["submitted"] == 7
    assert stats["buffered"] == 5
    assert stats["dropped_by_reason"] == {"invalid": 1, "overflow": 1}
    assert dispatcher._ready_events == 5
    lane = dispatcher._lanes[""]
    assert {key: [e.insert_id for e in p] for key, p in lane.partitions.items()} == {
        "user-a": ["a-1", "a-2"],
        "user-b": ["b-2"],
        "user-c": ["c-0", "c-1"],
    }
    while lane.ready:
        pipeline.answer(request := pipeline.form(), [ACCEPT] * len(request.events))
    assert barrier.done.is_set()
    assert dispatcher._outstanding == {}
    assert dispatcher.snapshot()["accepted"] == 5


def test_requests_take_events_and_identify_updates_apart_and_stop_at_a_paused_user():
    pipeline = Pipeline()
    update = event("a", 3, IDENTIFY, user_properties={"$set": {"plan": "pro"}})
    pipeline.submit(event("a", 1), event("a", 2), update, event("a", 4), event("b", 1))
    pipeline.dispatcher._lanes[""].paused_users["user-b"] = pipeline.clock.monotonic() + 30.0
    for _ in range(3):
        pipeline.answer(request := pipeline.form(), [ACCEPT] * len(request.events))
    assert pipeline.sent == [["a-1", "a-2"], ["a-3"], ["a-4"]]  # b waits out its pause
    pipeline.clock.advance(31.0)
    pipeline.answer(request := pipeline.form(), [ACCEPT])
    assert pipeline.sent[-1] == ["b-1"]
    assert pipeline.dispatcher.snapshot()["accepted"] == 5


def test_a_paused_user_stops_a_shared_device_at_its_first_event_while_other_users_flow():
    pipeline = Pipeline()
    device = {"device_id": "tablet-1"}
    pipeline.submit(
        event("a", 1, **device),
        event("b", 1, **device),  # b is throttled: the device waits from here on, in order
        event("a", 2, **device),
        event("c", 1),
        event("b", 2),
    )
    pipeline.dispatcher._lanes[""].paused_users["user-b"] = pipeline.clock.monotonic() + 30.0
    pipeline.answer(request := pipeline.form(), [ACCEPT] * len(request.events))
    assert pipeline.sent == [["a-1", "c-1"]]
    dispatcher, now = pipeline.dispatcher, pipeline.clock.monotonic()
    assert not dispatcher._form(dispatcher._lanes[""], 1_000, now)  # nothing else may go yet
    pipeline.clock.advance(31.0)
    pipeline.answer(request := pipeline.form(), [ACCEPT] * len(request.events))
    assert sorted(pipeline.sent[1]) == ["a-2", "b-1", "b-2"]
    assert pipeline.sent[1].index("b-1") < pipeline.sent[1].index("a-2")  # the device's order
    assert pipeline.dispatcher.snapshot()["accepted"] == 5


class Interrupting:
    """A deferred event whose building is interrupted (as by Ctrl-C in ``purge``)."""

    source = "test"

    def __call__(self) -> Event | None:
        raise KeyboardInterrupt


def test_a_run_stopped_by_an_exception_keeps_the_counts_of_what_it_placed():
    pipeline = Pipeline()
    dispatcher = pipeline.dispatcher
    dispatcher.inbound.extend([event("a", 1), event("b", 1), Interrupting(), event("a", 2)])
    with pytest.raises(KeyboardInterrupt):
        dispatcher._drain(pipeline.clock.monotonic())
    assert dispatcher.counters.drained == 3
    assert dispatcher._outstanding == {0: 2}
    assert dispatcher._ready_events == 2
    assert dispatcher.snapshot()["buffered"] == 2 + 1  # a-2 still waits in inbound
    pipeline.submit()
    assert dispatcher._outstanding == {0: 3}
    assert dispatcher.snapshot()["buffered"] == 3

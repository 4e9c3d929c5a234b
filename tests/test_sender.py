"""Sending one request: the per-event actions a response turns into (no network)."""

from __future__ import annotations

import orjson

from otel_amplitude._event import to_wire
from otel_amplitude._response import Action
from otel_amplitude._sender import HTTPAPI_MAX_BYTES, Response, Transport, deliver, encode_request
from otel_amplitude._validate import make_event


class ScriptedTransport(Transport):
    """Answers every POST with one status and body, and keeps the bodies it was given."""

    def __init__(self, status: int, body: dict[str, object]) -> None:
        self._answer = Response(status, orjson.dumps(body), None, None, 0.001)
        self.bodies: list[bytes] = []

    def post(self, url: str, body: bytes, *, form: bool = False) -> Response:
        self.bodies.append(body)
        return self._answer


EVENTS = [make_event("x", user_id=f"user-{i:04d}") for i in range(5)]


def send(transport: ScriptedTransport) -> list[tuple[Action, str | None]]:
    delivery = deliver(
        transport, "http://amplitude", "key", EVENTS, min_id_length=None,
        max_bytes=HTTPAPI_MAX_BYTES,
    )  # fmt: skip
    return delivery.actions


def test_an_accepted_request_accepts_every_event():
    transport = ScriptedTransport(200, {"code": 200, "events_ingested": 5})
    assert send(transport) == [(Action.ACCEPT, None)] * 5
    [body] = transport.bodies
    assert [e["user_id"] for e in orjson.loads(body)["events"]] == [e.user_id for e in EVENTS]


def test_a_400_naming_events_rejects_those_and_resends_the_others():
    transport = ScriptedTransport(
        400,
        {"code": 400, "error": "Invalid field values on some events",
         "events_with_invalid_fields": {"time": [1, 3]}},
    )  # fmt: skip
    actions = send(transport)
    assert [action for action, _ in actions] == [
        Action.RESEND, Action.REJECT, Action.RESEND, Action.REJECT, Action.RESEND,
    ]  # fmt: skip


def test_a_request_body_carries_each_event_in_its_wire_form_in_order() -> None:
    body = encode_request("key", EVENTS, None)
    assert orjson.loads(body) == {"api_key": "key", "events": [to_wire(e) for e in EVENTS]}


def test_a_request_body_takes_any_sequence_of_events_and_the_min_id_length_option() -> None:
    body = encode_request("key", tuple(EVENTS[:2]), 3)
    assert orjson.loads(body) == {
        "api_key": "key",
        "events": [to_wire(e) for e in EVENTS[:2]],
        "options": {"min_id_length": 3},
    }

"""The event as the pipeline carries it: a slotted object, validated once, serialised late.

An :class:`Event` is built by :func:`otel_amplitude._validate.make_event` (never by hand in the
pipeline), which guarantees every field is already in its wire form. The pipeline adds only its
own bookkeeping (attempts, flush epoch) and never changes what will be sent.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Event", "to_wire"]


class Event:
    """One Amplitude event plus the pipeline's bookkeeping for it.

    ``fields`` holds the other top-level Amplitude fields, keyed by their wire names
    (``productId``, ``app_version``, ...). ``created`` is the monotonic time of creation, for the
    end-to-end latency figure; ``attempts`` counts failed deliveries (not splits or throttles).
    ``destination`` names the Amplitude project it goes to ("" for the default one); ``spool_id``
    is its row in the durable spool (0: not spooled).

    :func:`~otel_amplitude._validate.new_event` fills the slots itself, without calling the
    class (the caller's hot path): a new slot must be set there too (a test checks that every
    slot is).
    """

    __slots__ = (
        "attempts",
        "created",
        "destination",
        "device_id",
        "epoch",
        "event_properties",
        "event_type",
        "fields",
        "insert_id",
        "spool_id",
        "time",
        "user_id",
        "user_properties",
    )

    def __init__(
        self,
        event_type: str,
        user_id: str | None,
        device_id: str | None,
        time: int,
        insert_id: str,
        event_properties: dict[str, Any] | None = None,
        user_properties: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
        created: float = 0.0,
        destination: str = "",
    ) -> None:
        self.event_type = event_type
        self.user_id = user_id
        self.device_id = device_id
        self.time = time
        self.insert_id = insert_id
        self.event_properties = event_properties
        self.user_properties = user_properties
        self.fields = fields
        self.created = created
        self.destination = destination
        self.attempts = 0
        self.epoch = 0
        self.spool_id = 0

    @property
    def partition_key(self) -> str:
        """The id whose events must stay in order: the device, else the user."""
        key = self.device_id if self.device_id is not None else self.user_id
        assert key is not None  # make_event guarantees one of them
        return key

    def __repr__(self) -> str:
        # Never the properties: they are payload and may hold personal data.
        return (
            f"Event(event_type={self.event_type!r}, insert_id={self.insert_id!r}, "
            f"attempts={self.attempts})"
        )


def to_wire(event: Event) -> dict[str, Any]:
    """The JSON object Amplitude's HTTP V2 and Batch APIs take for ``event``."""
    wire: dict[str, Any] = {
        "event_type": event.event_type,
        "time": event.time,
        "insert_id": event.insert_id,
    }
    if event.user_id is not None:
        wire["user_id"] = event.user_id
    if event.device_id is not None:
        wire["device_id"] = event.device_id
    if event.event_properties:
        wire["event_properties"] = event.event_properties
    if event.user_properties:
        wire["user_properties"] = event.user_properties
    if event.fields:
        wire.update(event.fields)
    return wire

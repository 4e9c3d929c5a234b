"""Product events from OpenTelemetry spans: tag the span that is an event.

    otel-amplitude serve &
    export AMPLITUDE_SERVER_URL=http://127.0.0.1:PORT AMPLITUDE_API_KEY=any-key-for-the-local-server
    python examples/otel_sdk_example.py

Sends ``checkout_completed`` for user ``user-00042`` with the properties ``cart.items: 3``,
``duration_ms`` and ``status``, and ``app_version: "2.1.0"`` from the resource; the span event
``coupon_applied`` becomes an event of its own. The untagged ``load cart`` span is not an event.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_amplitude import AmplitudeSpanExporter


def main() -> None:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "shop", "service.version": "2.1.0"})
    )
    provider.add_span_processor(BatchSpanProcessor(AmplitudeSpanExporter()))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("shop")

    with tracer.start_as_current_span("POST /checkout") as span:
        span.set_attribute("amplitude.event_type", "checkout_completed")
        span.set_attribute("enduser.id", "user-00042")
        span.set_attribute("cart.items", 3)
        with tracer.start_as_current_span("load cart"):
            pass
        span.add_event("coupon", {"amplitude.event_type": "coupon_applied", "code": "SPRING"})

    provider.shutdown()  # exports the spans; the client delivers them before the process exits


if __name__ == "__main__":
    main()

"""Product events from structlog: one processor in the chain.

    pip install 'otel-amplitude[structlog]'
    otel-amplitude serve &
    export AMPLITUDE_SERVER_URL=http://127.0.0.1:PORT AMPLITUDE_API_KEY=any-key-for-the-local-server
    python examples/structlog_example.py

Sends ``invoice_paid`` for user ``user-00042`` (bound with structlog's contextvars) with the
properties ``amount: 120`` and ``currency_code: "EUR"``; the log line is printed as usual.
"""

from __future__ import annotations

import structlog

from otel_amplitude import default_client
from otel_amplitude.structlog import AmplitudeProcessor


def main() -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,  # before the processor: it sees bound ids
            AmplitudeProcessor(),  # passes the event dict on unchanged
            structlog.processors.JSONRenderer(),
        ]
    )
    log = structlog.get_logger()
    structlog.contextvars.bind_contextvars(user_id="user-00042")
    log.info("invoice_paid", amount=120, currency_code="EUR")
    default_client().flush(timeout=5)


if __name__ == "__main__":
    main()

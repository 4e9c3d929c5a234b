"""Product events from stdlib ``logging``: one handler, and log calls you may already have.

    otel-amplitude serve &                       # prints its URL; or use your real project:
    export AMPLITUDE_SERVER_URL=http://127.0.0.1:PORT AMPLITUDE_API_KEY=any-key-for-the-local-server
    python examples/logging_example.py

Sends two events for user ``user-00042``: ``report_exported`` with the property
``format: "pdf"``, and ``dashboard_viewed`` with ``dashboard: "sales"`` and the bound session.
"""

from __future__ import annotations

import logging

from otel_amplitude import AmplitudeHandler, bind, default_client

log = logging.getLogger("shop.reports")


def main() -> None:
    logging.basicConfig(level=logging.INFO)  # your usual console output stays as it is
    logging.getLogger().addHandler(AmplitudeHandler())  # configured by AMPLITUDE_* variables

    log.info("report_exported", extra={"user_id": "user-00042", "format": "pdf"})
    with bind(user_id="user-00042", session_id=1_767_225_600_000):  # e.g. in a request middleware
        log.info("dashboard_viewed", extra={"dashboard": "sales"})

    default_client().flush(timeout=5)  # only because this script ends at once; exit flushes too


if __name__ == "__main__":
    main()

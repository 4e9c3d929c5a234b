"""``python -m otel_amplitude.testing [--host 127.0.0.1] [--port 0] [--api-key KEY ...]``.

Runs the Amplitude-compatible test server until SIGINT or SIGTERM (see :func:`serve`).
"""

from __future__ import annotations

import sys

from otel_amplitude.testing._standalone import main

if __name__ == "__main__":
    sys.exit(main())

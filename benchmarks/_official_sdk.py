"""The official Amplitude Python SDK (``amplitude-analytics``), driven like our client.

It is optional: :func:`available` says whether it is installed, and the suite prints
"skipped: amplitude-analytics not installed" for its rows otherwise. It is imported through
:mod:`importlib` because it ships no type information.

How the SDK is set up (read from its source, 1.3.0):

- ``Config.server_url`` is used as the full endpoint, so the path is given:
  ``{url}/2/httpapi`` (HTTP V2) or ``{url}/batch`` (Batch);
- ``flush_queue_size`` 1,000 and ``flush_interval_millis`` 1,000, the same batch size and
  interval as our client's defaults (its own defaults are 200 and 10 s);
- delivery is known from ``Config(callback=...)``, called once per event with the response code
  after the request that carried it: an event is delivered when its callback sees a 2xx;
- its storage (``InMemoryStorage``) is reached through a ``StorageProvider`` of ours, to
  measure what it holds and to empty it after a memory measurement.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from typing import Any

from ._workloads import EVENT_TYPE, PAGES

__all__ = ["SKIPPED", "OfficialSdk", "available", "version"]

SKIPPED = "skipped: amplitude-analytics not installed"
BATCH_SIZE = 1_000
INTERVAL_MS = 1_000


def available() -> bool:
    """Whether ``amplitude-analytics`` can be imported."""
    try:
        return importlib.util.find_spec("amplitude") is not None
    except (ImportError, ValueError):
        return False


def version() -> str | None:
    """The installed ``amplitude-analytics`` version, or None."""
    if not available():
        return None
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("amplitude-analytics")
    except PackageNotFoundError:
        return None


class OfficialSdk:
    """One ``amplitude.Amplitude`` client against ``url``, counting the events it delivered."""

    def __init__(
        self,
        url: str,
        *,
        use_batch: bool = False,
        batch_size: int = BATCH_SIZE,
        interval_ms: int = INTERVAL_MS,
    ) -> None:
        amplitude = importlib.import_module("amplitude")
        storage_module = importlib.import_module("amplitude.storage")
        self._event_class: Any = amplitude.BaseEvent
        self._lock = threading.Lock()
        self._delivered = 0
        self._failed = 0
        self._target = 0
        self._done = threading.Event()
        self.storage: Any = None
        holder = self

        class _Provider(storage_module.StorageProvider):  # type: ignore[misc, name-defined]
            """Makes the SDK's own in-memory storage and keeps a reference to it."""

            def get_storage(self) -> Any:
                holder.storage = storage_module.InMemoryStorage()
                return holder.storage

        path = "/batch" if use_batch else "/2/httpapi"
        self.config: Any = amplitude.Config(
            server_url=f"{url}{path}",
            use_batch=use_batch,
            flush_queue_size=batch_size,
            flush_interval_millis=interval_ms,
            callback=self._callback,
            storage_provider=_Provider(),
        )
        self.client: Any = amplitude.Amplitude("bench-api-key", self.config)

    def _callback(self, event: Any, code: int, message: str | None = None) -> None:  # noqa: ARG002
        with self._lock:
            if 200 <= code < 300:
                self._delivered += 1
            else:
                self._failed += 1
            if self._target and self._delivered >= self._target:
                self._done.set()

    @property
    def delivered(self) -> int:
        """Events whose request was answered with a 2xx so far."""
        return self._delivered

    @property
    def failed(self) -> int:
        """Events whose callback reported a failure so far."""
        return self._failed

    def emitter(self, users: int) -> Any:
        """``emit(i)``: the typical event, tracked through ``client.track(BaseEvent(...))``."""
        track = self.client.track
        event_class = self._event_class

        def emit(i: int) -> None:
            track(
                event_class(
                    EVENT_TYPE,
                    user_id=f"user-{i % users:06d}",
                    event_properties={"format": "pdf", "pages": i % PAGES + 1, "plan": "pro"},
                )
            )

        return emit

    def wait_delivered(self, total: int, timeout: float) -> bool:
        """Flush, then wait until ``total`` events (counted since creation) were delivered."""
        with self._lock:
            self._target = total
            self._done.clear()
            if self._delivered >= total:
                self._done.set()
        self.client.flush()
        return self._done.wait(timeout)

    def buffered(self) -> int:
        """Events held by the SDK's storage, not yet sent."""
        return int(self.storage.total_events) if self.storage is not None else 0

    def discard_buffered(self) -> None:
        """Empty the storage unsent and wake its consumer thread so that it ends."""
        if self.storage is None:
            return
        self.storage.pull_all()
        with self.storage.lock:
            self.storage.lock.notify_all()

    def shutdown(self) -> None:
        """Flush and stop its threads; wake the consumer thread so that the process can exit."""
        self.client.shutdown()
        if self.storage is not None:
            with self.storage.lock:
                self.storage.lock.notify_all()

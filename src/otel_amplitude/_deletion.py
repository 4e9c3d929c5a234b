"""Sending user deletions to Amplitude's User Privacy API, from jobs kept in the consent store.

One worker thread per client, started when there is something to send. It claims up to 100
pending jobs of one requester from the store, posts them (Basic ``API_KEY:SECRET_KEY``,
``ignore_invalid_id``), and forgets them only once Amplitude accepted them, so a restart resumes
what was pending. Requests start at least one second apart (Amplitude's limit per project) on
the injected clock; a 429 pauses, server errors and dropped connections back off with jitter.
Its log lines carry counts and statuses, never a user id or a key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple, TypedDict

import orjson
import urllib3
from urllib3.exceptions import HTTPError

from ._backoff import Backoff
from ._clock import Clock
from ._consent_store import SCOPE, ConsentStore, DeletionJob
from ._log import RateLimitedLog, mark_library_thread
from ._settings import Settings
from ._version import __version__

__all__ = [
    "MAX_IDS_PER_REQUEST",
    "MIN_REQUEST_INTERVAL",
    "DeletionOutcome",
    "DeletionStats",
    "DeletionWorker",
    "classify_deletion",
    "deletion_body",
]

#: Amplitude takes at most 100 ids per deletion request ...
MAX_IDS_PER_REQUEST = 100
#: ... and one request per second per project (amplitude-api.md §4).
MIN_REQUEST_INTERVAL = 1.0
#: How often an idle worker looks for jobs that another worker gave up (its lease ran out).
IDLE_SECONDS = 30.0
#: How long to wait after Amplitude refused the credentials before trying again.
REFUSED_PAUSE_SECONDS = 60.0
#: The longest pause a Retry-After header may impose.
MAX_PAUSE_SECONDS = 3_600.0

OutcomeKind = Literal["done", "throttled", "retry", "refused", "rejected"]


@dataclasses.dataclass(frozen=True, slots=True)
class DeletionOutcome:
    """What one deletion response means: ``pause`` for 429, ``invalid`` ids for 200."""

    kind: OutcomeKind
    pause: float = 0.0
    invalid: int = 0


class DeletionStats(TypedDict):
    """Counters of one worker since its client started."""

    deletion_requests: int
    deleted_users: int
    invalid_ids: int
    deletion_failures: int
    deletion_throttled: int


class Target(NamedTuple):
    """Where one project's deletions go, and with which credentials (looked up at each send,
    so that a rotated key is used at once)."""

    api_key: str | None
    secret_key: str | None
    url: str
    #: Names the project in log lines: ``AMPLITUDE_API_KEY and AMPLITUDE_SECRET_KEY``, or a
    #: tenant's keys in the destinations.
    keys: str = "AMPLITUDE_API_KEY and AMPLITUDE_SECRET_KEY"


def deletion_body(user_ids: Sequence[str], requester: str | None) -> bytes:
    """The JSON body of one deletion request."""
    body: dict[str, Any] = {"user_ids": list(user_ids), "ignore_invalid_id": True}
    if requester is not None:
        body["requester"] = requester
    return orjson.dumps(body)


def classify_deletion(status: int | None, body: bytes, retry_after: str | None) -> DeletionOutcome:
    """The meaning of a response (``status`` None: no response at all)."""
    if status is None or status == 408 or status >= 500:
        return DeletionOutcome("retry")
    if 200 <= status < 300:
        invalid = 0
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("invalid_ids"), list):
            invalid = len(parsed["invalid_ids"])
        return DeletionOutcome("done", invalid=invalid)
    if status == 429:
        return DeletionOutcome("throttled", pause=_pause(retry_after))
    if status in (401, 403):
        return DeletionOutcome("refused")
    return DeletionOutcome("rejected")


def _pause(retry_after: str | None) -> float:
    if retry_after:
        try:
            seconds = float(retry_after.strip())
        except ValueError:
            seconds = MIN_REQUEST_INTERVAL
        if not math.isnan(seconds):
            return min(max(seconds, MIN_REQUEST_INTERVAL), MAX_PAUSE_SECONDS)
    return MIN_REQUEST_INTERVAL


class DeletionWorker:
    """Drains one project's deletion jobs from ``store`` to ``settings.deletions_url``."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        store: ConsentStore,
        project: str,
        *,
        rng: random.Random | None = None,
        target: Callable[[], Target] | None = None,
    ) -> None:
        self._settings = settings
        self._target = target or (
            lambda: Target(settings.api_key, settings.secret_key, settings.deletions_url)
        )
        self._clock = clock
        self._store = store
        self._project = project
        self._rng = rng or random.Random()
        self._backoff = Backoff(base=1.0, cap=60.0)
        self._log = RateLimitedLog(clock.monotonic)
        self._stats = DeletionStats(
            deletion_requests=0,
            deleted_users=0,
            invalid_ids=0,
            deletion_failures=0,
            deletion_throttled=0,
        )
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._signal = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._owner = f"{os.getpid()}-{os.urandom(8).hex()}"

    def start(self) -> None:
        """Start the thread unless it runs (or the worker was stopped); idempotent."""
        with self._lock:
            if self._stopping or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(
                target=self._run, name="otel_amplitude.deletions", daemon=True
            )
            self._thread.start()

    def wake(self) -> None:
        """A job was queued: look for it now rather than at the next idle check."""
        self._signal.set()

    def stop(self, deadline: float) -> None:
        """Stop by ``deadline`` (``time.monotonic()``); jobs not sent stay in the store."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._signal.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.2, deadline - time.monotonic()))

    def stats(self) -> DeletionStats:
        return DeletionStats(**self._stats)

    def after_fork_in_child(self) -> None:
        """The parent's thread does not exist here: start fresh (jobs stay in the store)."""
        self._reset()

    # -- the worker thread ---------------------------------------------------------------------

    def _run(self) -> None:
        mark_library_thread()
        timeout_s = self._settings.timeout_ms / 1000.0
        pool = urllib3.PoolManager(
            num_pools=1,
            maxsize=1,
            retries=False,
            timeout=urllib3.Timeout(connect=min(timeout_s, 10.0), read=timeout_s),
        )
        clock = self._clock
        not_before = clock.monotonic()
        failures = 0
        try:
            while not self._stopping:
                now = clock.monotonic()
                if now < not_before:
                    self._signal.clear()
                    if self._stopping:
                        break
                    clock.wait(self._signal, not_before - now)
                    continue
                self._signal.clear()
                try:
                    jobs = self._store.claim_deletions(
                        self._project, self._owner, MAX_IDS_PER_REQUEST
                    )
                except Exception as exc:  # noqa: BLE001 - a store outage must not end the worker
                    self._log.log(
                        logging.WARNING,
                        "claim",
                        "reading pending user deletions from the consent store failed (%s);"
                        " will retry",
                        type(exc).__name__,
                    )
                    not_before = now + 5.0
                    continue
                if not jobs:
                    clock.wait(self._signal, IDLE_SECONDS)
                    continue
                started = clock.monotonic()
                outcome = self._send(pool, jobs)
                not_before = started + MIN_REQUEST_INTERVAL
                after = clock.monotonic()
                failures = 0 if outcome.kind == "done" else failures + 1
                if outcome.kind == "done":
                    self._done(jobs, outcome)
                elif outcome.kind == "throttled":
                    self._stats["deletion_throttled"] += 1
                    pause = outcome.pause + self._rng.uniform(0.0, MIN_REQUEST_INTERVAL)
                    not_before = max(not_before, after + pause)
                elif outcome.kind == "retry":
                    self._stats["deletion_failures"] += 1
                    delay = self._backoff.delay(failures, self._rng)
                    not_before = max(not_before, after + delay)
                elif outcome.kind == "refused":
                    self._stats["deletion_failures"] += 1
                    not_before = after + REFUSED_PAUSE_SECONDS
                else:
                    self._stats["deletion_failures"] += 1
                    not_before = max(not_before, after + self._backoff.ceiling(failures))
        finally:
            pool.clear()
            with contextlib.suppress(Exception):  # if it fails, the leases run out on their own
                self._store.release_deletions(self._project, self._owner)

    def _send(self, pool: urllib3.PoolManager, jobs: list[DeletionJob]) -> DeletionOutcome:
        target = self._target()
        credentials = f"{target.api_key or ''}:{target.secret_key or ''}"
        headers = urllib3.make_headers(basic_auth=credentials)
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = f"otel-amplitude/{__version__}"
        # A tenant's jobs hold scoped subjects ("tenant\x1fuser"): Amplitude gets the user id.
        body = deletion_body([job.user_id.rpartition(SCOPE)[2] for job in jobs], jobs[0].requester)
        self._stats["deletion_requests"] += 1
        try:
            reply = pool.request("POST", target.url, body=body, headers=headers, redirect=False)
        except HTTPError as exc:
            self._log.log(
                logging.WARNING,
                "deletion-no-response",
                "a user deletion request for %d users got no response (%s); will retry",
                len(jobs),
                type(exc).__name__,
            )
            return DeletionOutcome("retry")
        outcome = classify_deletion(reply.status, reply.data, reply.headers.get("Retry-After"))
        if outcome.kind == "refused":
            self._log.log(
                logging.ERROR,
                "deletion-refused",
                "the User Privacy API refused the credentials (HTTP %d): check %s; %d user"
                " deletions wait and are retried every %d s",
                reply.status,
                target.keys,
                len(jobs),
                int(REFUSED_PAUSE_SECONDS),
            )
        elif outcome.kind in ("retry", "rejected"):
            self._log.log(
                logging.ERROR if outcome.kind == "rejected" else logging.WARNING,
                f"deletion-{reply.status}",
                "the User Privacy API answered HTTP %d to a deletion request for %d users;"
                " they stay pending and are retried",
                reply.status,
                len(jobs),
            )
        return outcome

    def _done(self, jobs: list[DeletionJob], outcome: DeletionOutcome) -> None:
        try:
            self._store.complete_deletions(self._project, [job.user_id for job in jobs])
        except Exception as exc:  # noqa: BLE001 - sent again later: Amplitude takes it twice
            self._log.log(
                logging.WARNING,
                "complete",
                "could not mark %d sent user deletions as done in the consent store (%s)",
                len(jobs),
                type(exc).__name__,
            )
        self._stats["deleted_users"] += len(jobs) - outcome.invalid
        if outcome.invalid:
            self._stats["invalid_ids"] += outcome.invalid
            self._log.log(
                logging.INFO,
                "invalid-ids",
                "Amplitude did not know %d of %d user ids sent for deletion (they never reached"
                " this project); nothing to delete for them",
                outcome.invalid,
                len(jobs),
            )

    def __repr__(self) -> str:
        return f"DeletionWorker(url={self._target().url!r}, running={self._thread})"

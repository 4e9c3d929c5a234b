"""A consent store in Redis, for a fleet: every process hears of a change within a second.

Needs the ``redis`` package (``pip install 'otel-amplitude[redis]'``), imported only when this
store is configured. State lives in two hashes (users, devices) and a change counter; every
change is made by a Lua script that refuses to overwrite ``deleted``, bumps the counter and
publishes the change. Each process keeps the whole state in memory (the hot path reads only
that), applies published changes in counter order, and reloads everything when it sees a gap in
the counter, after a reconnection, and every ``resync_interval`` seconds as a safety net. All
keys share one hash tag, so the store works on Redis Cluster too.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import orjson

from ._consent_store import (
    DELETION_LEASE_SECONDS,
    STATES,
    Change,
    DeletionJob,
    Kind,
    Snapshot,
    State,
    Watcher,
)
from ._log import RateLimitedLog, mark_library_thread
from .exceptions import ConfigError

__all__ = ["RedisConsentStore"]

_PREFIX = "{otel_amplitude}"

_RECORD = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current == 'deleted' then return {current, 0} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local version = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', KEYS[3], cjson.encode({v = version, k = ARGV[3], s = ARGV[1],
    st = ARGV[2], o = ARGV[4]}))
return {ARGV[2], version}
"""

_DELETE = """
local version = 0
if redis.call('HGET', KEYS[1], ARGV[1]) ~= 'deleted' then
    redis.call('HSET', KEYS[1], ARGV[1], 'deleted')
    version = redis.call('INCR', KEYS[2])
    redis.call('PUBLISH', KEYS[3], cjson.encode({v = version, k = 'user', s = ARGV[1],
        st = 'deleted', o = ARGV[2]}))
end
if redis.call('HSETNX', KEYS[5], ARGV[1], ARGV[3]) == 1 then
    redis.call('ZADD', KEYS[4], redis.call('INCR', KEYS[6]), ARGV[1])
end
return version
"""

_CLAIM = """
local owner, now = ARGV[1], tonumber(ARGV[2])
local lease, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local found, requester, claimed = false, nil, {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, 4999)) do
    local raw = redis.call('HGET', KEYS[2], id)
    if not raw then
        redis.call('ZREM', KEYS[1], id)
    else
        local job = cjson.decode(raw)
        if job.o == owner or tonumber(job.l) < now then
            if not found then found = true; requester = job.r end
            if job.r == requester then
                job.o = owner
                job.l = now + lease
                redis.call('HSET', KEYS[2], id, cjson.encode(job))
                claimed[#claimed + 1] = id
                if #claimed >= limit then break end
            end
        end
    end
end
if not found then return {} end
local out
if requester == cjson.null or requester == nil then out = {'0', ''} else out = {'1', requester} end
for _, id in ipairs(claimed) do out[#out + 1] = id end
return out
"""

_RELEASE = """
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local raw = redis.call('HGET', KEYS[2], id)
    if raw then
        local job = cjson.decode(raw)
        if job.o == ARGV[1] then
            job.o = cjson.null
            job.l = 0
            redis.call('HSET', KEYS[2], id, cjson.encode(job))
        end
    end
end
return 0
"""


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class RedisConsentStore:
    """Consent shared through Redis by every process of a fleet."""

    def __init__(
        self,
        url: str,
        *,
        check_interval: float = 1.0,
        resync_interval: float = 300.0,
        socket_timeout: float = 5.0,
    ) -> None:
        try:
            import redis
        except ImportError:
            raise ConfigError(
                "AMPLITUDE_CONSENT_REDIS_URL needs the redis package: "
                "pip install 'otel-amplitude[redis]'"
            ) from None
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._redis: Any = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            health_check_interval=30,
        )
        self._record_script: Any = self._redis.register_script(_RECORD)
        self._delete_script: Any = self._redis.register_script(_DELETE)
        self._claim_script: Any = self._redis.register_script(_CLAIM)
        self._release_script: Any = self._redis.register_script(_RELEASE)
        self._check_interval = check_interval
        self._resync_interval = resync_interval
        self._users_key = f"{_PREFIX}:consent:user"
        self._devices_key = f"{_PREFIX}:consent:device"
        self._version_key = f"{_PREFIX}:consent:version"
        self._channel = f"{_PREFIX}:consent:changes"
        self._job_seq_key = f"{_PREFIX}:deletions:seq"
        self._log = RateLimitedLog(time.monotonic)
        self._reset()

    def _reset(self) -> None:
        """Fresh per-process state: at construction and in a forked child."""
        self._lock = threading.Lock()
        self._origin = f"{os.getpid()}-{os.urandom(6).hex()}"
        self._seen = 0  # the highest change applied, with every change before it
        self._loaded = False
        self._own: dict[tuple[str, str], int] = {}  # this process's changes not yet heard back
        self._watcher: Watcher | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._pid = os.getpid()

    def _table(self, kind: Kind) -> str:
        return self._users_key if kind == "user" else self._devices_key

    def _jobs_keys(self, project: str) -> list[str]:
        return [f"{_PREFIX}:deletions:{project}", f"{_PREFIX}:deletions:{project}:jobs"]

    # -- state ---------------------------------------------------------------------------------

    def load(self) -> Snapshot:
        version = int(self._redis.get(self._version_key) or 0)
        users: dict[str, State] = {}
        devices: dict[str, State] = {}
        for key, table in ((self._users_key, users), (self._devices_key, devices)):
            for subject, state in self._redis.hscan_iter(key, count=10_000):
                state_text = _text(state)
                if state_text in STATES:
                    table[_text(subject)] = state_text  # type: ignore[assignment]
        with self._lock:
            complete = not self._loaded or version >= self._seen
            self._seen = version
            self._own.clear()
            self._loaded = True
        if not complete:
            self._log.log(
                logging.WARNING,
                "redis-reset",
                "the Redis consent store lost data (its change counter went back); this"
                " process keeps the opt-outs and deletions it knew",
            )
        return Snapshot(users, devices, version, complete=complete)

    def record(self, kind: Kind, subject: str, state: State) -> State:
        result = self._record_script(
            keys=[self._table(kind), self._version_key, self._channel],
            args=[subject, state, kind, self._origin],
        )
        recorded, version = _text(result[0]), int(result[1])
        if version:
            with self._lock:
                self._own[(kind, subject)] = version
        return recorded  # type: ignore[return-value]

    def record_deletion(self, project: str, user_id: str, requester: str | None) -> None:
        job = orjson.dumps({"r": requester, "o": None, "l": 0, "q": time.time()})
        version = int(
            self._delete_script(
                keys=[
                    self._users_key,
                    self._version_key,
                    self._channel,
                    *self._jobs_keys(project),
                    self._job_seq_key,
                ],
                args=[user_id, self._origin, job],
            )
        )
        if version:
            with self._lock:
                self._own[("user", user_id)] = version

    def claim_deletions(self, project: str, owner: str, limit: int) -> list[DeletionJob]:
        result = self._claim_script(
            keys=self._jobs_keys(project),
            args=[owner, repr(time.time()), repr(DELETION_LEASE_SECONDS), limit],
        )
        if not result:
            return []
        requester = _text(result[1]) if _text(result[0]) == "1" else None
        return [DeletionJob(_text(user_id), requester) for user_id in result[2:]]

    def complete_deletions(self, project: str, user_ids: Sequence[str]) -> None:
        if not user_ids:
            return
        order, jobs = self._jobs_keys(project)
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrem(order, *user_ids)
        pipe.hdel(jobs, *user_ids)
        pipe.execute()

    def release_deletions(self, project: str, owner: str) -> None:
        self._release_script(keys=self._jobs_keys(project), args=[owner])

    def pending_deletions(self, project: str) -> int:
        return int(self._redis.zcard(self._jobs_keys(project)[0]))

    # -- hearing of other processes' changes -------------------------------------------------

    def watch(self, watcher: Watcher) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._lock_free_reset()
            self._watcher = watcher
            if self._thread is None or not self._thread.is_alive():
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._listen,
                    args=(self._stop,),
                    name="otel_amplitude.consent-redis",
                    daemon=True,
                )
                self._thread.start()
        self._catch_up(watcher)

    def _lock_free_reset(self) -> None:
        lock = self._lock
        self._reset()
        self._lock = lock

    def _catch_up(self, watcher: Watcher) -> None:
        """Reload everything when the counter moved past what was applied."""
        version = int(self._redis.get(self._version_key) or 0)
        if version != self._seen or not self._loaded:
            watcher.update(self.load)

    def _listen(self, stop: threading.Event) -> None:
        mark_library_thread()
        failures = 0
        while not stop.is_set():
            pubsub = None
            try:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self._channel)
                watcher = self._watcher
                if watcher is None:
                    return
                # Subscribed first, so nothing published from now on is missed; then reload if
                # anything changed while this process was not listening.
                self._catch_up(watcher)
                failures = 0
                self._follow(pubsub, watcher, stop)
            except self._errors as exc:
                failures += 1
                self._log.log(
                    logging.WARNING,
                    "redis",
                    "the Redis consent store is unreachable (%s); this process keeps its last"
                    " known consent state and reconnects",
                    type(exc).__name__,
                )
                stop.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))
            except Exception as exc:  # noqa: BLE001 - the listener must outlive a bad message
                self._log.log(
                    logging.ERROR,
                    "redis-listener",
                    "unexpected %s in the Redis consent listener; restarting it",
                    type(exc).__name__,
                )
                stop.wait(1.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # closing a broken connection
                        pubsub.close()

    def _follow(self, pubsub: Any, watcher: Watcher, stop: threading.Event) -> None:
        last_check = last_resync = time.monotonic()
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.2)
            while message is not None:
                if message.get("type") == "message":
                    watcher.update(functools.partial(self._changes_in, message["data"]))
                message = pubsub.get_message(timeout=0)
            now = time.monotonic()
            if now - last_resync >= self._resync_interval:
                watcher.update(self.load)
                last_resync = last_check = now
            elif now - last_check >= self._check_interval:
                self._catch_up(watcher)
                last_check = now

    def _changes_in(self, data: bytes) -> Snapshot | list[Change] | None:
        """What one published change means here (called under the consent lock)."""
        try:
            change = orjson.loads(data)
            version = int(change["v"])
            kind, subject, state = change["k"], str(change["s"]), change["st"]
            origin = change.get("o")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return self.load()  # cannot read it: reload everything rather than guess
        with self._lock:
            if version <= self._seen:
                return None  # already in the state loaded
            if version > self._seen + 1:
                gap = True
            else:
                gap = False
                self._seen = version
                own = self._own.get((kind, subject), 0)
                self._own = {key: v for key, v in self._own.items() if v > version}
        if gap:
            return self.load()  # a change was missed
        if origin == self._origin or own > version:
            return None  # ours, already applied; or older than a change of ours
        if kind not in ("user", "device") or state not in STATES:
            return None
        return [(kind, subject, state)]

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
            self._watcher = None
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
        if self._pid == os.getpid():
            self._redis.close()

    def after_fork_in_child(self) -> None:
        """The pool reconnects by itself in a child; the listener starts again on watch()."""
        self._reset()

    def __repr__(self) -> str:
        return "RedisConsentStore()"  # the URL may hold a password

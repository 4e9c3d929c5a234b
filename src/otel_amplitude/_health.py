"""Is delivery healthy? A pure judgement over two ``Client.stats()`` snapshots.

``health(current, previous)`` looks at what changed between the snapshots (the recent window)
and at the current levels, and answers ``ok``, ``degraded`` or ``failing`` with the reasons,
worst first. No clock, no I/O: ``Client.health()`` keeps the snapshots and picks the window.

failing
    - delivery is paused because Amplitude refused the API key or the URL (events are kept)
      of the default destination (``AMPLITUDE_API_KEY``);
    - events were dead-lettered in the window (retry budget spent, or shutdown deadline);
    - requests failed in the window (5xx, 408, timeouts, connection errors) and none succeeded.

degraded
    - a tenant's destination is paused because Amplitude refused its key (its events are kept;
      the other destinations flow): that destination is ``failing`` in ``destinations``;
    - user or device ids are paused after a 429 (throttled);
    - requests failed in the window, but others succeeded (the failed ones are being retried);
    - events were lost in the window to a full buffer (``overflow``), Amplitude's daily quota
      (``daily_quota``), an unexpected error in an integration (``error``) or an unreadable
      consent store (``consent_unavailable``);
    - Amplitude rejected events in the window (they will not be sent);
    - events were sent again in the window (after failures, throttling or a 400 naming others).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ._stats import Outcomes, Stats

__all__ = ["Health", "Status", "health"]

Status = Literal["ok", "degraded", "failing"]

#: Drop reasons that mean an event the application wanted sent was lost by the pipeline (the
#: others are decisions: no identity, invalid, opted out, deleted, no consent, delivery
#: disabled, after shutdown). ``consent_unavailable``: the consent store could not be read.
LOSS_REASONS = frozenset({"overflow", "daily_quota", "error", "consent_unavailable"})


@dataclass(frozen=True, slots=True)
class Health:
    """The verdict: ``status``, and ``reason`` (every finding, worst first, ``; ``-separated).

    ``destinations`` judges each destination alone by the same rules (``default`` included).
    """

    status: Status
    reason: str
    reasons: tuple[str, ...] = ()
    destinations: Mapping[str, Status] = field(default_factory=dict)


def _delta(current: Mapping[str, int], previous: Mapping[str, int] | None) -> dict[str, int]:
    before = previous or {}
    changed = {key: value - before.get(key, 0) for key, value in current.items()}
    return {key: value for key, value in changed.items() if value > 0}


def _listed(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in sorted(counts.items()))


def _is_failure(outcome: str) -> bool:
    """A response that says nothing about the events: a server error, a timeout, no answer."""
    if outcome.isdigit():
        return outcome.startswith("5") or outcome == "408"
    return True  # timeout, connection_reset, connection_refused, connection_error, no_response


def health(
    current: Stats, previous: Stats | None = None, *, seconds: float | None = None
) -> Health:
    """Judge ``current`` against ``previous`` (None: since the start), rules in the module doc.

    ``seconds``, the length of the window, only words the reasons ("in the last 60 s").
    """
    per_destination = current.get("destinations", {})
    tenants_paused = sorted(
        name
        for name, stats in per_destination.items()
        if name != "default" and stats["destination_paused"]
    )
    default = per_destination.get("default")
    key_paused = (
        default["destination_paused"]
        if default is not None
        else current["destination_paused"] and not tenants_paused
    )
    overall = _judge(
        current, previous, seconds, key_paused=key_paused, tenants_paused=tenants_paused
    )
    before = {} if previous is None else previous.get("destinations", {})
    destinations = {
        name: _judge(
            stats, before.get(name), seconds, key_paused=stats["destination_paused"]
        ).status
        for name, stats in per_destination.items()
    }
    return Health(overall.status, overall.reason, overall.reasons, destinations)


def _judge(
    current: Outcomes,
    previous: Outcomes | None,
    seconds: float | None,
    *,
    key_paused: bool,
    tenants_paused: list[str] | None = None,
) -> Health:
    if previous is None:
        window = "since the client started"
    elif seconds is not None:
        window = f"in the last {seconds:.0f} s"
    else:
        window = "since the previous check"
    failing: list[str] = []
    degraded: list[str] = []

    responses = _delta(
        current["responses_by_status"],
        None if previous is None else previous["responses_by_status"],
    )
    failures = {k: v for k, v in responses.items() if _is_failure(k)}
    successes = sum(v for k, v in responses.items() if k.isdigit() and k.startswith("2"))

    if key_paused:
        failing.append(
            f"Amplitude refused the API key or the URL: delivery is paused and "
            f"{current['buffered']} events are kept; check AMPLITUDE_API_KEY, "
            "AMPLITUDE_SERVER_ZONE (US or EU) and AMPLITUDE_SERVER_URL"
        )
    dead = _delta(
        current["dead_lettered_by_reason"],
        None if previous is None else previous["dead_lettered_by_reason"],
    )
    if dead:
        failing.append(f"{sum(dead.values())} events dead-lettered {window} ({_listed(dead)})")
    if failures and not successes:
        failing.append(
            f"{sum(failures.values())} requests failed {window} ({_listed(failures)}) and none "
            "succeeded: Amplitude is unreachable or failing; events are kept and retried"
        )

    if tenants_paused:
        degraded.append(
            f"Amplitude refused the key or URL of {len(tenants_paused)} destination(s)"
            f" ({', '.join(tenants_paused[:5])}{', ...' if len(tenants_paused) > 5 else ''}):"
            " their delivery is paused and their events kept while the others flow; check those"
            " tenants' api_key, zone and server_url in the destinations"
        )
    if current["paused_partitions"]:
        degraded.append(
            f"{current['paused_partitions']} user or device ids are throttled by Amplitude (429);"
            " their events wait for the pause to end"
        )
    if failures and successes:
        degraded.append(
            f"{sum(failures.values())} requests failed {window} ({_listed(failures)}); "
            "their events are being retried"
        )
    dropped = _delta(
        current["dropped_by_reason"], None if previous is None else previous["dropped_by_reason"]
    )
    lost = {reason: n for reason, n in dropped.items() if reason in LOSS_REASONS}
    if lost:
        degraded.append(f"{sum(lost.values())} events lost {window} ({_listed(lost)})")
    rejected = _delta(
        current["rejected_by_reason"], None if previous is None else previous["rejected_by_reason"]
    )
    if rejected:
        degraded.append(
            f"{sum(rejected.values())} events rejected by Amplitude {window} ({_listed(rejected)})"
        )
    retried = current["retried"] - (previous["retried"] if previous is not None else 0)
    if retried > 0:
        degraded.append(f"{retried} events sent again {window}")

    reasons = (*failing, *degraded)
    if failing:
        return Health("failing", "; ".join(reasons), reasons)
    if degraded:
        return Health("degraded", "; ".join(reasons), reasons)
    return Health("ok", f"no problem seen {window}", ())

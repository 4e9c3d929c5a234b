"""``otel-amplitude spool drain PATH``: deliver what dead processes left in a spool directory.

A client configured from the ``AMPLITUDE_*`` environment opens the directory as its spool,
which adopts every segment whose owner is dead and replays it; this waits, with a progress bar,
until all of it is delivered (or ``timeout``), then shuts the client down. Segments of live
processes are theirs to deliver and are left alone. What cannot be delivered in time stays in
the spool for the next attempt.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ._client import Client
from ._settings import Settings
from ._spool_inspect import inspect_spool
from .exceptions import OtelAmplitudeError

__all__ = ["drain_spool"]

_BAR = 30


def drain_spool(
    path: str, *, timeout: float | None = None, quiet: bool = False, out: TextIO = sys.stdout
) -> int:
    """Deliver the orphaned events of the spool at ``path``; 0 when all of them were delivered.

    1 when some were left (timeout, Amplitude refusing them), 2 for a configuration or spool
    error.
    """
    try:
        summary = inspect_spool(path)
        settings = Settings.from_env(spool_dir=path)
        live = sum(s.rows for s in summary.segments if s.owner_alive)
        client = Client(settings, name="spool-drain")
    except OtelAmplitudeError as error:
        print(f"otel-amplitude: {error}", file=sys.stderr)
        return 2
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    total = client.stats()["replayed"]
    if live:
        print(
            f"{live:,} events belong to live processes and are left to them",
            file=out,
        )
    try:
        while True:
            stats = client.stats()
            done = stats["accepted"] + stats["rejected"] + stats["dropped"]
            if not quiet:
                _progress(out, done, total, time.monotonic() - started)
            if client.flush(timeout=0.2):
                break
            if deadline is not None and time.monotonic() > deadline:
                break
    finally:
        client.shutdown(timeout=2.0)
    stats = client.stats()
    left = stats["buffered"] + stats["in_flight"]
    seconds = time.monotonic() - started
    if not quiet:
        _progress(out, stats["accepted"] + stats["rejected"] + stats["dropped"], total, seconds)
        print(file=out)
    rate = stats["accepted"] / seconds if seconds > 0 else 0.0
    reasons = ", ".join(f"{k}: {v:,}" for k, v in sorted(stats["dropped_by_reason"].items()))
    print(
        f"drained {total:,} events in {seconds:.1f} s ({rate:,.0f} events/s): accepted"
        f" {stats['accepted']:,}, rejected {stats['rejected']:,}, dropped {stats['dropped']:,}"
        f"{f' ({reasons})' if reasons else ''}; {left:,} left in the spool",
        file=out,
    )
    return 0 if left == 0 else 1


def _progress(out: TextIO, done: int, total: int, seconds: float) -> None:
    filled = _BAR if not total else min(_BAR, _BAR * done // total)
    rate = done / seconds if seconds > 0 else 0.0
    bar = "#" * filled + "." * (_BAR - filled)
    out.write(f"\r  [{bar}] {done:>9,}/{total:,} events  {rate:>9,.0f}/s")
    out.flush()

"""The ``otel-amplitude`` command: ``demo``, ``serve``, ``check`` and ``spool inspect``."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from .exceptions import ConfigError, SpoolError

__all__ = ["main"]


def _check(_args: argparse.Namespace) -> int:
    """Validate the AMPLITUDE_* environment and print the resolved settings, secrets masked."""
    from ._settings import Settings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            settings = Settings.from_env()
        except ConfigError as error:
            print(f"otel-amplitude: configuration error: {error}", file=sys.stderr)
            return 2
    for warning in caught:
        print(f"otel-amplitude: warning: {warning.message}", file=sys.stderr)
    rows = settings.describe()
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if settings.destinations_file is not None:
        from ._destinations import read_destinations

        try:
            table = read_destinations(settings.destinations_file).destinations
        except ConfigError as error:
            print(f"otel-amplitude: configuration error: {error}", file=sys.stderr)
            return 2
        print(f"destinations ({len(table)} tenants):")
        for name, d in sorted(table.items()):
            host = d.ingestion_base(settings.server_url)
            secret = "secret_key set" if d.secret_key else "no secret_key"
            label = f", {d.environment}" if d.environment else ""
            key = f"api_key set ({len(d.api_key)} chars)"
            print(f"  {name}: {d.zone}{label}, {host}, {key}, {secret}")
        print("configuration OK")
        return 0
    if settings.enabled and not settings.api_key:
        print(
            "otel-amplitude: AMPLITUDE_API_KEY is not set: events cannot be sent "
            "(set it, or AMPLITUDE_ENABLED=false)",
            file=sys.stderr,
        )
        return 1
    print("configuration OK")
    return 0


def _serve(args: argparse.Namespace) -> int:
    """Run the local Amplitude-compatible server until interrupted."""
    from .testing import serve

    return serve(args.host, args.port, args.api_key or None)


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(users=args.users, quiet=args.quiet)


def _spool_inspect(args: argparse.Namespace) -> int:
    """Print what a spool directory holds: segments and their owners, counts, ages."""
    from ._spool_inspect import inspect_spool

    try:
        summary = inspect_spool(args.path)
    except SpoolError as error:
        print(f"otel-amplitude: spool error: {error}", file=sys.stderr)
        return 2
    print(
        f"spool {summary.directory}: {summary.rows:,} events, {summary.bytes:,} bytes "
        f"in {len(summary.segments)} segment(s)"
    )
    _table(
        ("segment", "owner", "events", "bytes"),
        [
            (s.name, "alive" if s.owner_alive else "orphaned", f"{s.rows:,}", f"{s.bytes:,}")
            for s in summary.segments
        ],
        left=2,
    )
    for title, counts in (
        ("destination", {name or "(default)": n for name, n in summary.by_destination.items()}),
        ("event type", summary.by_event_type),
        ("age", summary.by_age),
    ):
        print()
        _table((title, "events"), [(name, f"{count:,}") for name, count in counts.items()])
    return 0


def _spool_drain(args: argparse.Namespace) -> int:
    """Deliver the events that dead processes left in a spool directory."""
    from ._spool_drain import drain_spool

    return drain_spool(args.path, timeout=args.timeout, quiet=args.quiet)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> None:
    """Print ``rows`` under ``header``: the first ``left`` columns left-aligned, numbers right."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        cells = [
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="otel-amplitude",
        description="Deliver OpenTelemetry, logging and structlog events to Amplitude.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="run an instrumented workload against a local Amplitude-compatible server"
    )
    demo.add_argument("--users", type=int, default=300, help="distinct users (default 300)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(run=_demo)

    serve = commands.add_parser("serve", help="run the local Amplitude-compatible server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--api-key", action="append", help="accept only this key (repeatable)")
    serve.set_defaults(run=_serve)

    check = commands.add_parser(
        "check", help="validate AMPLITUDE_* variables and print the resolved settings"
    )
    check.set_defaults(run=_check)

    spool = commands.add_parser("spool", help="look into a durable spool (AMPLITUDE_SPOOL_DIR)")
    spool_commands = spool.add_subparsers(dest="spool_command", required=True, metavar="COMMAND")
    inspect = spool_commands.add_parser(
        "inspect", help="count the spooled events by segment, destination, event type and age"
    )
    inspect.add_argument("path", metavar="PATH", help="the spool directory")
    inspect.set_defaults(run=_spool_inspect)
    drain = spool_commands.add_parser(
        "drain",
        help="deliver what dead processes left in a spool, with the AMPLITUDE_* configuration",
    )
    drain.add_argument("path", metavar="PATH", help="the spool directory")
    drain.add_argument("--timeout", type=float, default=None, help="give up after SECONDS")
    drain.add_argument("--quiet", action="store_true", help="no progress bar")
    drain.set_defaults(run=_spool_drain)

    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())

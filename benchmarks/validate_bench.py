"""The caller-thread cost of building an event: ns per make_event and per new_insert_id.

Run: ``python benchmarks/validate_bench.py`` (``--quick`` for a smoke run). Prints figures only.

Measured on the development machine (2 vCPU, CPython 3.11.7), best of 7 x 200,000 calls:
    make_event, typical (event_type, user_id, 3 str/int properties):  ~1,650 ns
    make_event, no properties:                                        ~  930 ns
    new_insert_id():                                                   ~  100 ns
For scale: building the 3-item properties dict literal alone is ~60 ns, a bare loop copying it
~210 ns, Event(...) ~210 ns, and a logger.info() through a NullHandler ~10,000 ns.
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable

from otel_amplitude._insert_id import new_insert_id
from otel_amplitude._validate import make_event


def typical_event() -> object:
    return make_event(
        "Signed Up",
        user_id="user-12345",
        event_properties={"plan": "pro", "seats": 3, "source": "web"},
    )


def bare_event() -> object:
    return make_event("Signed Up", user_id="user-12345")


def ns_per_call(func: Callable[[], object], number: int, repeat: int) -> float:
    best = min(timeit.repeat(func, number=number, repeat=repeat))
    return best / number * 1e9


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    number, repeat = (2_000, 2) if quick else (200_000, 7)
    for label, func in (
        ("make_event, typical (3 properties)", typical_event),
        ("make_event, no properties", bare_event),
        ("new_insert_id()", new_insert_id),
    ):
        print(f"{label:<40} {ns_per_call(func, number, repeat):>8,.0f} ns")


if __name__ == "__main__":
    main(sys.argv[1:])

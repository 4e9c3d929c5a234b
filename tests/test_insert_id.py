"""Insert ids: unique within and across processes, short, and made without a GIL release."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from otel_amplitude import _insert_id
from otel_amplitude._insert_id import new_insert_id

SRC = str(Path(_insert_id.__file__).resolve().parents[1])


def _run_python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": SRC}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    return result.stdout


def test_ids_are_unique_across_100k_calls() -> None:
    ids = [new_insert_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)


def test_ids_are_unique_across_threads() -> None:
    per_thread: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out.extend(new_insert_id() for _ in range(25_000))

    threads = [threading.Thread(target=make, args=(out,)) for out in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [insert_id for out in per_thread for insert_id in out]
    assert len(set(ids)) == 100_000


def test_ids_are_short_url_safe_ascii() -> None:
    insert_id = new_insert_id()
    assert len(insert_id) <= 36
    assert insert_id.isascii()
    assert all(c.isalnum() or c in "-_" for c in insert_id)


def test_ids_stay_within_36_characters_even_for_a_huge_counter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_insert_id, "_counter", itertools.count(2**64 - 1))
    assert len(new_insert_id()) <= 36


def test_a_forked_child_never_repeats_its_parents_ids() -> None:
    # Forked in a fresh interpreter: forking the test runner (possibly threaded) is not safe.
    output = _run_python(
        """
        import os
        from otel_amplitude._insert_id import new_insert_id

        before = [new_insert_id() for _ in range(1000)]
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            ids = "\\n".join(new_insert_id() for _ in range(1000))
            os.write(write_end, ids.encode())
            os._exit(0)
        os.close(write_end)
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
        os.waitpid(pid, 0)
        after = [new_insert_id() for _ in range(1000)]
        print("P", *before, *after)
        print("C", *b"".join(chunks).decode().split())
        """
    )
    parent_line, child_line = output.splitlines()
    parent = parent_line.split()[1:]
    child = child_line.split()[1:]
    assert len(parent) == 2000
    assert len(child) == 1000
    assert len(set(parent) | set(child)) == 3000


def test_separate_processes_make_different_ids() -> None:
    code = "from otel_amplitude._insert_id import new_insert_id; print(new_insert_id())"
    assert _run_python(code) != _run_python(code)


def test_the_after_fork_hook_draws_a_new_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_insert_id, "_prefix", _insert_id._prefix)
    monkeypatch.setattr(_insert_id, "_counter", _insert_id._counter)
    first = new_insert_id()
    _insert_id._reseed()
    second = new_insert_id()
    assert first[:16] != second[:16]
    assert first != second

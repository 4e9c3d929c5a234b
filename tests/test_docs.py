"""The documentation site builds strictly, and says what the code has.

(That every setting is documented is ``tests/test_settings.py``'s job: ``docs/configuration.md``
is generated from ``Settings`` and checked there.)
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from otel_amplitude._metrics import INSTRUMENTS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None,
    reason="mkdocs is not installed (it is in the dev extra: pip install -e '.[dev]')",
)
def test_the_site_builds_with_no_warning(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "index.html").is_file()
    assert (tmp_path / "configuration" / "index.html").is_file()


def test_every_page_is_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in PAGES:
        assert page.relative_to(DOCS).as_posix() in config, f"{page.name} is not in mkdocs.yml nav"


def test_every_metric_is_documented_with_its_unit():
    operations = (DOCS / "operations.md").read_text(encoding="utf-8")
    for instrument in INSTRUMENTS:
        row = next(
            (line for line in operations.splitlines() if line.startswith(f"| `{instrument.name}`")),
            None,
        )
        assert row is not None, f"{instrument.name} has no row in docs/operations.md"
        assert f"`{instrument.unit}`" in row, f"{instrument.name}: unit {instrument.unit} not shown"


_IMPORT = re.compile(r"^\s*from (otel_amplitude[\w.]*) import ([\w, ]+)$", re.MULTILINE)


def test_every_name_the_docs_import_exists():
    missing = []
    for page in PAGES:
        for module_name, names in _IMPORT.findall(page.read_text(encoding="utf-8")):
            module = importlib.import_module(module_name)
            missing += [
                f"{page.name}: {module_name}.{name.strip()}"
                for name in names.split(",")
                if not hasattr(module, name.strip())
            ]
    assert not missing, missing

"""What the compatibility matrix (.ci/matrix) cannot show from inside one environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent


def test_without_an_sdk_the_import_says_how_to_install_one() -> None:
    blocked = "import sys; sys.modules['zohocrmsdk'] = None; from mongo_store import MongoTokenStore"
    result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: zoho-mongo-store needs the Zoho CRM Python SDK")
    assert "zoho-mongo-store[sdk8]" in last


def test_no_sdk_is_a_hard_dependency_and_each_line_has_an_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.lower().startswith("zohocrmsdk")]
    extras = project["optional-dependencies"]
    for line in ("8", "7", "6", "5"):
        [requirement] = extras[f"sdk{line}"]
        assert requirement.startswith(f"zohocrmsdk{line}-0")


def test_help_and_version_answer_without_importing_the_sdk() -> None:
    """``--help`` took 1.4 s, most of it importing the SDK; the commands import it when they run."""
    probe = ("import sys; from mongo_store import cli; sys.argv = ['x', '--version'];\n"
             "try: cli.main()\nexcept SystemExit: pass\n"
             "assert not [m for m in sys.modules if m.startswith(('zohocrmsdk', 'pymongo'))], 'heavy import'")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("zoho-mongo-store ")


def test_the_cli_lists_the_same_statuses_as_the_queries() -> None:
    from mongo_store import cli
    from mongo_store.tools import health, queries

    assert cli.STATUSES == health.STATUSES and cli.HEALTH == health.HEALTH and tuple(queries.SORTS) == cli.SORTS

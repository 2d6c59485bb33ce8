"""The testing kit as a user meets it: the wheel, built from this tree and installed with the SDK
into a fresh virtual environment, runs docs/testing-your-app.md's example in a project folder of
its own (no conftest, no source checkout): the fixtures come from the ``pytest11`` entry point.

pip reaches PyPI for the SDK and pytest: without a network the test is skipped, except in CI (``CI``
set), where that is a failure."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_lifecycle import recipe_code

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "testing-your-app.md"
NOT_COPIED = shutil.ignore_patterns(".git", ".venv", ".matrix", ".wheel-venv", "test-artifacts", ".mongo-data",
                                    "__pycache__", "build", "dist", "*.egg-info", ".pytest_cache")


def example(section: str = "## A complete example") -> str:
    """The guide's example in ``section`` (its one Python block), as it stands: the complete
    example, or "## The README's recipe, tested"."""
    text = GUIDE.read_text().split(section, 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    return code


RECIPE_TEST = "## The README's recipe, tested"


def run(command: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("PYTHONPATH", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_ADDOPTS", "VIRTUAL_ENV")}
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


def test_a_users_project_gets_the_kit_from_the_wheel(tmp_path: Path) -> None:
    venv, project, dist = tmp_path / "venv", tmp_path / "project", tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    what_a_project_has = run([*pip, "zohocrmsdk8-0>=1.0,<8", "pytest>=8"], tmp_path, timeout=900)
    if what_a_project_has.returncode != 0:
        message = f"pip could not install the SDK and pytest (no network?): {what_a_project_has.stderr[-500:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)

    source = tmp_path / "source"  # the build writes into its tree: a copy, never the checkout
    shutil.copytree(ROOT, source, ignore=NOT_COPIED)
    built = run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(source)], tmp_path, timeout=900)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    [wheel] = dist.glob("zoho_mongo_store-*.whl")
    installed = run([*pip, f"{wheel}[sdk8]"], tmp_path, timeout=900)
    assert installed.returncode == 0, installed.stderr[-2000:]

    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_zoho_flows.py").write_text(example())
    (project / "tests" / "portal.py").write_text(recipe_code())  # the README's recipe, as an app has it
    (project / "tests" / "test_portal.py").write_text(example(RECIPE_TEST))
    assert sorted(path.name for path in project.rglob("*") if path.is_file()) == \
        ["portal.py", "test_portal.py", "test_zoho_flows.py"]  # no conftest
    where = run([python, "-c", "import mongo_store.testing.plugin as kit; print(kit.__file__)"], project)
    assert where.returncode == 0 and where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr

    tests = run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", "tests"], project)
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    passed = set(re.findall(r"^PASSED tests/test_\w+.py::(\w+)", tests.stdout, flags=re.MULTILINE))
    assert passed == {"test_a_login_and_a_crm_call", "test_a_second_person_sees_only_their_own",
                      "test_a_reload_of_the_callback_page_exchanges_nothing", "test_a_revoked_refresh_token_is_refused",
                      "test_the_eleventh_refresh_in_ten_minutes_is_refused", "test_a_call_to_the_real_zoho_is_refused",
                      "test_a_login_a_request_and_a_logout",
                      "test_a_relogin_retires_the_old_refresh_token_and_an_hour_later_refreshes"}, tests.stdout[-4000:]
    assert " skipped" not in tests.stdout

    # The fixtures came from the entry point: with that plugin disabled, they are not there.
    without = run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:zoho_mongo_store", "tests"], project)
    assert without.returncode != 0 and "fixture 'fake_zoho' not found" in without.stdout, without.stdout[-2000:]

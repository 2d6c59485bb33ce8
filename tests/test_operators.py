"""Operator accounts for password sign-in (a 0600 file of argon2id hashes, added with
``zoho-mongo-store add-operator``), and a lockout by address that new sessions do not reset."""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DASHBOARD_PASSWORD
from streamlit.testing.v1 import AppTest
from test_security import APP
from test_security import run as run_cli
from tokens import full

from mongo_store import MongoTokenStore
from mongo_store.dashboard import auth
from mongo_store.dashboard.operators import read_operators

OLGA_PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def fresh_lockout(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The lockout lives in the dashboard process: each test starts, and leaves, with none."""
    monkeypatch.setattr(auth, "WRONG_PASSWORD_DELAY", 0.0)
    auth._failures.clear()
    yield
    auth._failures.clear()


def add(path: Path, name: str, password: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))  # not a terminal: read from stdin
    return run_cli("add-operator", name, "--file", str(path))


def sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input[0].input(name)
    at.text_input[1].input(password)
    return at.button[0].click().run()


def test_add_operator_writes_a_private_file_of_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "operators"
    code, out, err = add(path, "olga@example.com", OLGA_PASSWORD, monkeypatch)
    assert (code, err) == (0, "") and out == f"added operator olga@example.com in {path}\n"
    assert add(path, "ivan", "another long password", monkeypatch)[0] == 0
    assert add(path, "ivan", "a changed long password", monkeypatch)[1].startswith("changed the password of operator ivan")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert OLGA_PASSWORD not in text and "long password" not in text
    assert [line.split(":")[0] for line in text.splitlines() if not line.startswith("#")] == ["olga@example.com", "ivan"]
    assert set(read_operators(path)) == {"olga@example.com", "ivan"}
    code, _, err = add(path, "eve", "short", monkeypatch)
    assert code == 1 and "at least 12 characters" in err and "short" not in err.replace("at least", "")
    assert add(path, "a b:c", OLGA_PASSWORD, monkeypatch)[0] == 1
    path.chmod(0o644)
    code, _, err = add(path, "eve", OLGA_PASSWORD, monkeypatch)
    assert code == 1 and "may be read or changed by others (mode 0644)" in err and "eve" not in path.read_text()


def test_the_audit_names_the_signed_in_account(dashboard_env: MongoTokenStore, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "operators"
    add(path, "olga@example.com", OLGA_PASSWORD, monkeypatch)
    monkeypatch.setenv("DASHBOARD_OPERATORS_FILE", str(path))
    token = full("user@example.com:1")
    dashboard_env.save_token(token)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert sign_in(at, "olga@example.com", DASHBOARD_PASSWORD).metric == []  # the shared password is no account
    assert "Wrong account or password." in at.error[0].value
    assert not sign_in(at, "mallory", OLGA_PASSWORD).metric
    at = sign_in(at, "olga@example.com", OLGA_PASSWORD)
    assert at.metric and at.sidebar.caption[0].value == "Signed in as **olga@example\\.com**"
    at = at.sidebar.radio(key="page").set_value("Tokens").run()
    at.button(key="delete_one").click().run()
    at.button(key="confirm_delete").click().run()
    [entry] = dashboard_env.collection.database["dashboard_audit"].find({})
    assert entry["who"] == "olga@example.com" and entry["ids"] == [token.get_id()]
    add(path, "olga@example.com", "a brand new password", monkeypatch)  # a changed password ends the session
    assert not at.run().metric
    path.chmod(0o640)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.text_input and "may be read or changed by others" in at.error[0].value


def test_the_lockout_holds_across_sessions_from_one_address(dashboard_env: MongoTokenStore) -> None:
    for _ in range(auth.MAX_ATTEMPTS):  # each guess in a new browser session
        at = sign_in(AppTest.from_file(APP, default_timeout=30).run(), "Olga", "guess")
        assert not at.metric
    at = AppTest.from_file(APP, default_timeout=30).run()  # a new session, the right password
    assert not at.text_input and "Too many wrong passwords (5) from your address" in at.error[0].value
    auth._failures.clear()  # another address (or 15 minutes later)
    assert sign_in(AppTest.from_file(APP, default_timeout=30).run(), "Olga", DASHBOARD_PASSWORD).metric

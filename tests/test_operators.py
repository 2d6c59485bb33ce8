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
    assert (code, err) == (0, "") and out == f"added operator olga@example.com (operator) in {path}\n"
    assert add(path, "ivan", "another long password", monkeypatch)[0] == 0
    assert add(path, "ivan", "a changed long password", monkeypatch)[1].startswith("changed the password of operator ivan")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert OLGA_PASSWORD not in text and "long password" not in text
    assert [line.split(":")[:2] for line in text.splitlines() if not line.startswith("#")] == \
        [["olga@example.com", "operator"], ["ivan", "operator"]]
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
    assert at.sidebar.caption[1].value.startswith("Role: **operator**")
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


# -- issue 29 F8: counted before the verify, per account too ---------------------------------------


def test_guesses_sent_at_once_are_counted_before_the_verify_and_stop_at_the_limit(tmp_path: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """25 guesses at once at one account: only ``MAX_ATTEMPTS`` reach the argon2 verify; the others
    are refused before it (the attempt is counted first)."""
    import threading

    from mongo_store.dashboard import operators as accounts

    path = tmp_path / "operators"
    add(path, "olga", OLGA_PASSWORD, monkeypatch)
    known = accounts.read_operators(path)
    verified: list[str] = []
    real_verify = accounts.verify

    def slow_verify(operators: dict[str, str], name: str, password: str) -> bool:
        verified.append(password)
        return real_verify(operators, name, password)

    outcomes: list[bool] = []
    start = threading.Barrier(25)

    def guess(n: int) -> None:
        keys = [f"address:10.0.0.{n}", "account:olga"]  # every guess from another address
        start.wait()
        stamp = auth.reserve_attempt(keys)
        if stamp is None:
            outcomes.append(False)
            return
        outcomes.append(slow_verify(known, "olga", f"guess {n}"))

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(verified) == auth.MAX_ATTEMPTS and outcomes.count(False) == 25
    assert auth.reserve_attempt(["address:10.0.1.1", "account:olga"]) is None  # the account is locked, from anywhere
    assert auth.reserve_attempt(["address:10.0.1.1", "account:ivan"]) is not None  # another account is not


def test_the_lockout_is_per_account_as_well_as_per_address(dashboard_env: MongoTokenStore, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "operators"
    add(path, "olga", OLGA_PASSWORD, monkeypatch)
    add(path, "ivan", "another long password", monkeypatch)
    monkeypatch.setenv("DASHBOARD_OPERATORS_FILE", str(path))
    addresses = iter(f"192.0.2.{n}" for n in range(100))
    monkeypatch.setattr(auth, "client_address", lambda: next(addresses))  # each attempt from another address
    for _ in range(auth.MAX_ATTEMPTS):
        assert not sign_in(AppTest.from_file(APP, default_timeout=30).run(), "olga", "a wrong guess").metric
    at = sign_in(AppTest.from_file(APP, default_timeout=30).run(), "olga", OLGA_PASSWORD)  # right, but locked
    assert not at.metric and "Too many wrong passwords (5) for this account" in at.error[0].value
    assert sign_in(AppTest.from_file(APP, default_timeout=30).run(), "ivan", "another long password").metric
    # A right password is not counted: an operator signing in often never locks herself out.
    auth._failures.clear()
    for _ in range(auth.MAX_ATTEMPTS + 2):
        assert sign_in(AppTest.from_file(APP, default_timeout=30).run(), "ivan", "another long password").metric


# -- roles: checked once, in the operator layer --------------------------------------------------


def test_the_operator_layer_refuses_what_a_role_may_not_do_before_touching_anything(
        dashboard_env: MongoTokenStore) -> None:
    from mongo_store.tools import cleanup
    from mongo_store.tools.operations import NotAllowed, Session, allowed

    token = full("user@example.com:1")
    dashboard_env.save_token(token)
    audit = dashboard_env.collection.database["dashboard_audit"]
    viewer = Session(dashboard_env, "vera", role="viewer")
    operator = Session(dashboard_env, "otto", role="operator")
    refusals = {
        "delete": lambda s: s.delete([token.get_id()]), "delete-all": lambda s: s.delete_all(),
        "delete-filtered": lambda s: s.delete([token.get_id()], action="delete-filtered", scope="x"),
        "revoke": lambda s: s.revoke(token.get_id()), "check": lambda s: s.check([token.get_id()]),
        "cleanup": lambda s: s.cleanup(cleanup.Policy(unusable_days=1)), "import": lambda s: s.import_rows([], source="x"),
    }
    for action, act in refusals.items():
        for session in (viewer, operator):
            if allowed(session.role, action):
                continue
            with pytest.raises(NotAllowed) as refused:
                act(session)
            assert str(refused.value).startswith(("a viewer may not ", "an operator may not ")), action
    with pytest.raises(NotAllowed) as refused:
        viewer.delete_all()
    assert str(refused.value) == "a viewer may not delete every token: that needs the admin role"
    assert dashboard_env.collection.count_documents({}) == 1 and audit.count_documents({}) == 0  # nothing happened
    assert operator.delete([token.get_id()]) == 1  # an operator deletes a chosen token, audited with the role
    [entry] = audit.find({})
    assert (entry["who"], entry["role"], entry["action"]) == ("otto", "operator", "delete")
    assert viewer.cleanup_plan(cleanup.Policy(unusable_days=1)).entries == []  # reading is a viewer's


def viewer_and_admin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "operators"
    for name, role in (("vera", "viewer"), ("otto", "operator"), ("ada", "admin")):
        monkeypatch.setattr(sys, "stdin", io.StringIO(f"{name} has a long password\n"))
        assert run_cli("add-operator", name, "--role", role, "--file", str(path))[0] == 0
    monkeypatch.setenv("DASHBOARD_OPERATORS_FILE", str(path))
    return path


def test_a_viewer_reads_everything_and_every_change_is_disabled_with_its_reason(
        dashboard_env: MongoTokenStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    viewer_and_admin(tmp_path, monkeypatch)
    for n in range(3):
        dashboard_env.save_token(full(f"user{n}@example.com:1"))
    at = sign_in(AppTest.from_file(APP, default_timeout=30).run(), "vera", "vera has a long password")
    assert at.metric and at.sidebar.caption[1].value.startswith("Role: **viewer** (reads everything, changes nothing)")
    at = at.sidebar.radio(key="page").set_value("Tokens").run()
    assert len(at.dataframe[0].value) == 3 and at.table  # the grid and Inspect
    for key in ("check_one", "revoke_one", "delete_one", "delete_all", "check_selected", "revoke_selected",
                "delete_selected"):
        assert at.button(key=key).disabled, key
    assert at.button(key="revoke_one").help == "Not for your role: a viewer may not revoke tokens: that needs the " \
                                               "operator role."
    assert at.button(key="delete_all").help.startswith("Not for your role: a viewer may not delete every token")
    assert not at.button(key="export_prepare").disabled
    at = at.sidebar.radio(key="page").set_value("Audit").run()
    assert not at.exception
    assert dashboard_env.collection.count_documents({}) == 3


def test_an_operator_deletes_chosen_tokens_but_not_all_and_an_admin_deletes_all(
        dashboard_env: MongoTokenStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    viewer_and_admin(tmp_path, monkeypatch)
    for n in range(4):
        dashboard_env.save_token(full(f"user{n}@example.com:1"))
    at = sign_in(AppTest.from_file(APP, default_timeout=30).run(), "otto", "otto has a long password")
    at = at.sidebar.radio(key="page").set_value("Tokens").run()
    assert not at.button(key="delete_one").disabled and at.button(key="delete_all").disabled
    assert at.button(key="delete_all").help.startswith("Not for your role: an operator may not delete every token")
    at.button(key="delete_one").click().run()
    at.button(key="confirm_delete").click().run()
    assert dashboard_env.collection.count_documents({}) == 3
    at = sign_in(AppTest.from_file(APP, default_timeout=30).run(), "ada", "ada has a long password")
    at = at.sidebar.radio(key="page").set_value("Tokens").run()
    assert not at.button(key="delete_all").disabled
    at.button(key="delete_all").click().run()
    [box] = [box for box in at.text_input if str(box.key).startswith("typed_name")]
    box.input(f"{dashboard_env.collection.database.name}.oauth_tokens").run()
    at.button(key="confirm_delete").click().run()
    assert dashboard_env.collection.count_documents({}) == 0
    entries = {entry["action"]: (entry["who"], entry["role"])
               for entry in dashboard_env.collection.database["dashboard_audit"].find({})}
    assert entries == {"delete": ("otto", "operator"), "delete-all": ("ada", "admin")}


def test_a_file_written_before_roles_keeps_its_accounts_as_admins(tmp_path: Path) -> None:
    from mongo_store.dashboard.operators import DUMMY_HASH, read_accounts

    path = tmp_path / "operators"
    path.write_text(f"olga:{DUMMY_HASH}\nvera:viewer:{DUMMY_HASH}\n")
    path.chmod(0o600)
    assert {name: account.role for name, account in read_accounts(path).items()} == {"olga": "admin", "vera": "viewer"}
    path.write_text(f"eve:root:{DUMMY_HASH}\n")
    with pytest.raises(Exception, match=r"line 1 of the operators file .* is not name:role:argon2-hash"):
        read_accounts(path)


def test_sso_roles_come_from_the_allow_list_entry_or_the_group(monkeypatch: pytest.MonkeyPatch) -> None:
    from mongo_store.dashboard.settings import SettingError, Settings

    monkeypatch.setenv("DASHBOARD_ALLOWED_EMAILS", "ada@example.com:admin, bob@example.com")
    monkeypatch.setenv("DASHBOARD_ALLOWED_DOMAINS", "@example.com:viewer")
    monkeypatch.setenv("DASHBOARD_ROLE_GROUPS", "zoho-ops:operator")
    settings = Settings.load()

    def role(email: str, groups: list[str] | None = None) -> str | None:
        user = {"email": email, "email_verified": True, "groups": groups or []}
        return auth.sso_role(settings, user) if auth.oidc_refusal(settings, user) is None else None

    assert role("ada@example.com") == "admin" and role("bob@example.com") == "admin"  # no role named: as before roles
    assert role("carl@example.com") == "viewer" and role("carl@example.com", ["Zoho-Ops"]) == "operator"
    assert role("mallory@elsewhere.test") is None and role("mallory@elsewhere.test", ["zoho-ops"]) == "operator"
    monkeypatch.setenv("DASHBOARD_ROLE_GROUPS", "zoho-ops:superuser")
    with pytest.raises(SettingError, match="DASHBOARD_ROLE_GROUPS: an entry's role"):
        Settings.load()


# -- a session that survives a reload --------------------------------------------------------------


def test_a_signed_cookie_keeps_the_session_until_it_expires_or_is_signed_out(
        dashboard_env: MongoTokenStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new browser session (a reload, a new tab) sends the cookie the first one was given: signed
    in, as the same account and role, without the password; a forged, expired, signed-out or
    re-keyed cookie, or one whose account's password changed, is not."""
    import time

    from mongo_store.dashboard.settings import Settings

    path = viewer_and_admin(tmp_path, monkeypatch)
    sent: dict[str, str | None] = {"cookie": None}
    monkeypatch.setattr(auth, "read_cookie", lambda: sent["cookie"])
    at = sign_in(AppTest.from_file(APP, default_timeout=30).run(), "ada", "ada has a long password")
    token = at.session_state["session_token"]
    assert "ada has a long password" not in token and at.metric
    claims = auth.read_token(Settings.load(), token)
    assert claims is not None and claims["n"] == "ada" and claims["exp"] - time.time() == pytest.approx(12 * 3600, abs=60)
    sent["cookie"] = token  # a reload: a new session, the browser sends the cookie
    again = AppTest.from_file(APP, default_timeout=30).run()
    assert again.metric and again.sidebar.caption[0].value == "Signed in as **ada**"
    assert again.sidebar.caption[1].value.startswith("Role: **admin**")
    payload, signature = token.split(".")
    forged = auth._b64(auth._unb64(payload).replace(b'"ada"', b'"otto"')) + "." + signature
    for bad in (forged, token[:-2] + "xx", "nonsense", ""):
        sent["cookie"] = bad
        assert not AppTest.from_file(APP, default_timeout=30).run().metric, bad
    sent["cookie"] = token
    assert auth.read_token(Settings.load(), token, now=time.time() + 13 * 3600) is None  # expired
    again = AppTest.from_file(APP, default_timeout=30).run()
    other = AppTest.from_file(APP, default_timeout=30).run()  # another tab, open when the first signs out
    assert other.metric
    again.sidebar.button(key="sign_out").click().run()  # Sign out ends it everywhere: the cookie is refused
    assert not again.metric and again.text_input
    assert not other.run().metric  # the open tab too, at its next rerun
    assert not AppTest.from_file(APP, default_timeout=30).run().metric
    at = sign_in(AppTest.from_file(APP, default_timeout=30).run(), "ada", "ada has a long password")
    sent["cookie"] = at.session_state["session_token"]
    assert AppTest.from_file(APP, default_timeout=30).run().metric
    add(path, "ada", "ada has a brand new password", monkeypatch)  # a changed password ends the session
    assert not AppTest.from_file(APP, default_timeout=30).run().metric


"""Findings of the adversarial review: each test failed on the code before its fix."""

from __future__ import annotations

import base64
import io
import json
import os
import sqlite3
import stat
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from conftest import DASHBOARD_PASSWORD
from pymongo import MongoClient
from streamlit.testing.v1 import AppTest
from tokens import full, oauth, secret
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from mongo_store import MongoTokenStore, cli
from mongo_store.cli import processes
from mongo_store.core.crypto import PREFIX
from mongo_store.core.rotation import rotate
from mongo_store.dashboard.settings import SettingError, parse_flag
from mongo_store.tools.migrate import FILESTORE_COLUMNS, import_rows, open_source, read_mysql

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
PASSWORD = DASHBOARD_PASSWORD
KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.b64encode(b"B" * 32).decode()


@pytest.fixture(autouse=True)
def no_lockout() -> Any:
    """The password lockout lives in the dashboard process: no test inherits or leaves one."""
    from mongo_store.dashboard import auth

    auth._failures.clear()
    yield
    auth._failures.clear()


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old_err, sys.stderr = sys.stderr, err
    try:
        code = cli.main(list(argv), out=out)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    finally:
        sys.stderr = old_err
    return code, out.getvalue(), err.getvalue()


def sign_in(at: AppTest, password: str = PASSWORD) -> AppTest:
    at.text_input[0].input("Olga")
    at.text_input[1].input(password)
    return at.button[0].click().run()


# -- 1. OIDC: an allow-list, verified e-mails ---------------------------------------------------------

OIDC = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32, "client_id": "id",
        "client_secret": "s", "server_metadata_url": "https://accounts.example.com/.well-known/openid-configuration"}


def oidc_app(user: dict[str, Any]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.secrets["auth"] = OIDC
    at.user = {"is_logged_in": True, **user}
    return at.run()


@pytest.mark.parametrize("user, allowed", [
    ({"email": "olga@example.com", "email_verified": True}, True),
    ({"email": "Olga@Example.com", "email_verified": "true"}, True),  # some providers send a string
    ({"email": "Olga@Example.com"}, False),  # no verification claim: nothing vouches for the address
    *[({"email": "olga@example.com", "email_verified": claim}, False) for claim in ("0", "FALSE", "no", 1, "1", None)],
    ({"email": "mallory@gmail.com", "email_verified": True}, False),
    ({"email": "olga@example.com", "email_verified": False}, False),
    ({"name": "No E-mail"}, False),
    ({"email": "eve@example.com.evil.test", "email_verified": True}, False),
])
def test_oidc_lets_in_only_the_allow_list_with_verified_e_mails(dashboard_env: MongoTokenStore,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                user: dict[str, Any], allowed: bool) -> None:
    dashboard_env.save_token(full("user@example.com:1"))
    monkeypatch.delenv("DASHBOARD_PASSWORD")
    monkeypatch.setenv("DASHBOARD_ALLOWED_DOMAINS", "@example.com")
    at = oidc_app(user)
    assert not at.exception
    assert bool(at.metric) is allowed
    if not allowed:
        assert at.error and not at.dataframe


def test_oidc_without_an_allow_list_shows_nothing_and_says_how(dashboard_env: MongoTokenStore,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASHBOARD_PASSWORD")
    at = oidc_app({"email": "olga@example.com", "email_verified": True})
    assert not at.metric and "DASHBOARD_ALLOWED_EMAILS" in at.error[0].value
    monkeypatch.setenv("DASHBOARD_ALLOWED_EMAILS", "boss@example.org, olga@example.com")
    st.cache_resource.clear()
    at = oidc_app({"email": "olga@example.com", "email_verified": True})
    assert at.metric and at.sidebar.caption[0].value == "Signed in as **olga@example\\.com**"


# -- 2. binding ---------------------------------------------------------------------------------------


def test_the_dashboard_listens_on_loopback_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []

    class Streamlit:  # what the command starts, without starting it
        def __init__(self, command: list[str], env: dict[str, str], **options: Any) -> None:
            started.append(command)

        def wait(self) -> int:
            return 0

        def poll(self) -> int:
            return 0

    monkeypatch.setattr(processes.subprocess, "Popen", Streamlit)
    monkeypatch.delenv("DASHBOARD_AUTH_DISABLED", raising=False)
    assert run("dashboard")[0] == 0
    assert started[-1][started[-1].index("--server.address") + 1] == "127.0.0.1"
    assert started[-1][started[-1].index("--client.toolbarMode") + 1] == "viewer"  # no Deploy button
    assert run("dashboard", "--address", "0.0.0.0")[0] == 0
    monkeypatch.setenv("DASHBOARD_AUTH_DISABLED", "1")
    code, _, err = run("dashboard", "--address", "0.0.0.0")
    assert code == 1 and "127.0.0.1 only" in err and len(started) == 2


def test_with_sign_in_off_the_app_refuses_a_non_loopback_address(dashboard_env: MongoTokenStore,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit import config

    monkeypatch.setenv("DASHBOARD_AUTH_DISABLED", "1")
    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        at = AppTest.from_file(APP, default_timeout=30).run()
    finally:
        config.set_option("server.address", before)
    assert not at.metric and "serves only this machine" in at.error[0].value


@pytest.mark.parametrize("address, expected", [
    ("127.0.0.1", True), ("127.5.6.7", True), ("::1", True), ("[::1]", True), ("localhost", True), ("LocalHost", True),
    ("127.0.0.1.evil.test", False), ("127.evil.test", False), ("localhost.evil.test", False), ("0.0.0.0", False),
    ("::", False), ("10.0.0.1", False), ("", False), (None, False),
])
def test_loopback_means_a_loopback_address_or_localhost(address: str | None, expected: bool,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from mongo_store.dashboard.app import loopback

    assert loopback(address) is expected
    if address and not expected:
        monkeypatch.setenv("DASHBOARD_AUTH_DISABLED", "1")
        code, _, err = run("dashboard", "--address", address)
        assert code == 1 and "127.0.0.1 only" in err


@pytest.mark.parametrize("host, shown", [
    ("evil.test:8501", False), ("127.0.0.1.evil.test:8501", False), ("localhost.evil.test", False),
    ("attacker.example", False), ("localhost:8501", True), ("127.0.0.1:8501", True), ("[::1]:8501", True),
])
def test_with_sign_in_off_a_page_opened_under_another_name_shows_nothing(dashboard_env: MongoTokenStore,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         host: str, shown: bool) -> None:
    """DNS rebinding: a hostile page whose name resolves to 127.0.0.1 reaches the dashboard with its
    own name in the Host header (AppTest cannot send headers: the header is what the app reads)."""
    from streamlit import config

    from mongo_store.dashboard import auth

    dashboard_env.save_token(full("user@example.com:1"))
    monkeypatch.setenv("DASHBOARD_AUTH_DISABLED", "1")
    monkeypatch.setattr(auth, "request_host", lambda: host)
    before = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")  # listening on loopback, as the command starts it
    try:
        at = AppTest.from_file(APP, default_timeout=30).run()
    finally:
        config.set_option("server.address", before)
    assert not at.exception and bool(at.metric) is shown
    if not shown:
        assert "not under another name" in at.error[0].value and not at.dataframe


# -- 3. URIs are never echoed -------------------------------------------------------------------------


@pytest.mark.parametrize("uri, secret_part", [
    ("mongodb://zoho_admin:Kx9/Tq7+SecretTail=@127.0.0.1:27555/", "SecretTail"),
    ("mongodb://zoho_admin:Kx9$Tq7/SecretTail@127.0.0.1:27555/", "SecretTail"),
    ('mongodb://zoho_admin:Kx9"Tq7/SecretTail@127.0.0.1:27555/', "SecretTail"),
    ("mongodb://zoho_admin:Secret%zzTail@127.0.0.1:27555/", "Secret"),
    ("mongodb://admin:hunter2secret@localhost:notaport/", "hunter2"),
])
def test_a_malformed_uri_is_described_never_repeated(uri: str, secret_part: str) -> None:
    code, _, err = run("--uri", uri, "stats")
    assert code == 1 and "invalid MongoDB URI" in err and "percent-encoded" in err
    assert secret_part not in err and "127.0.0.1" not in err and "Kx9" not in err


@pytest.mark.parametrize("url, secret_part", [("mysql://root:1234#x@127.0.0.1:3306/zohooauth", "1234"),
                                              ("mysql://root:pa/ss@127.0.0.1:3306/zohooauth", "pa")])
def test_a_malformed_mysql_url_is_described_never_repeated(url: str, secret_part: str) -> None:
    pytest.importorskip("mysql.connector")
    with pytest.raises(Exception) as refused:
        list(read_mysql(url))
    assert "invalid MySQL URL" in str(refused.value) and "percent-encoded" in str(refused.value)
    assert f"'{secret_part}'" not in str(refused.value) and f"root:{secret_part}" not in str(refused.value)


# -- 4. one bad row is one rejected line --------------------------------------------------------------


def kaizen(path: Path, rows: list[tuple[Any, ...]]) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE oauthtoken (id varchar(10) PRIMARY KEY, user_name varchar(255), client_id varchar(255), "
               "client_secret varchar(255), refresh_token varchar(255), access_token varchar(255), "
               "grant_token varchar(255), expiry_time varchar(20), redirect_url varchar(255), api_domain varchar(255))")
    db.executemany("INSERT INTO oauthtoken VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    db.commit()
    db.close()


def test_sqlite_invalid_utf8_is_one_rejected_row_without_the_value(store: MongoTokenStore, tmp_path: Path) -> None:
    path = tmp_path / "odd ? name # here.db"
    kaizen(path, [("1", "a@x:1", "c", "ok", secret("r"), None, None, None, None, None),
                  ("2", "b@x:1", "c", "placeholder", secret("r"), None, None, None, None, None)])
    db = sqlite3.connect(path)  # invalid UTF-8 stored as TEXT, as another program may have written it
    db.execute("UPDATE oauthtoken SET client_secret = CAST(X'534543524554FF2D434C49454E54' AS TEXT) WHERE id = '2'")
    db.commit()
    db.close()
    (tmp_path / "odd ").mkdir()  # what "file:odd ?..." would have opened instead
    report = import_rows(store, open_source(str(path)))
    assert report.inserted == 1 and report.rejected == [(2, "client_secret is not valid UTF-8 text")]
    assert "SECRET" not in repr(report)


def test_filestore_csv_in_cp1252_long_fields_and_encoding_option(store: MongoTokenStore, tmp_path: Path) -> None:
    path = tmp_path / "sdk_tokens.csv"
    rows = [["1", "jos\u00e9@example.com:1", "c", "s", secret("r"), "", "", "", "", ""],
            ["2", "zo\u00eb@example.com:1", "c", "s", secret("r"), "", "", "", "", ""]]
    text = ",".join(FILESTORE_COLUMNS) + "\n" + "\n".join(",".join(row) for row in rows) + "\n"
    text += "3,long@example.com:1,c," + "s" * 200_000 + "," + secret("r") + ",,,,,\n"
    path.write_bytes(text.encode("cp1252"))
    report = import_rows(store, open_source(str(path)))
    assert report.inserted == 0 and [line for line, _ in report.rejected] == [2, 3, 4]
    assert "pass --encoding" in report.rejected[0][1] and "s" * 100 not in repr(report)
    report = import_rows(store, open_source(str(path), encoding="cp1252"))
    assert report.inserted == 2 and [line for line, _ in report.rejected] == [4]
    assert store.find_token_by_id("1").get_user_signature().get_name() == "jos\u00e9@example.com:1"
    code, _, _ = run("--uri", "mongomock://", "import", str(path), "--encoding", "no-such-codec")
    assert code == 1


def test_export_lines_with_invalid_utf8_or_deep_nesting_are_rejected(store: MongoTokenStore, tmp_path: Path) -> None:
    path = tmp_path / "tokens.jsonl"
    good = json.dumps({"id": "1", "user_name": "a@b:1", "refresh_token": secret("r"), "client_id": "c",
                       "client_secret": "s"})
    path.write_bytes(good.encode() + b'\n{"id": "2", "client_secret": "SECRET\xff"}\n' + b"[" * 100_000 + b"\n")
    report = import_rows(store, open_source(str(path)))
    assert report.inserted == 1
    assert report.rejected == [(2, "not valid UTF-8 text"), (3, "not a token record (nested too deeply)")]


# -- 5, 6, 11. encryption: keyless writers, truncated ciphertexts, moved blind indexes ------------------


def keyed(store: MongoTokenStore, key: str | None, **options: Any) -> MongoTokenStore:
    return MongoTokenStore(client=store.client, database=store.collection.database.name, encryption_key=key,
                           old_encryption_keys=[], **options)


def test_a_store_without_the_key_refuses_to_write_beside_sealed_tokens(store: MongoTokenStore,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZOHO_MONGO_ENCRYPTION_KEY", raising=False)
    sealed = full(None)
    keyed(store, KEY_A).save_token(sealed)
    plain = keyed(store, None)
    with pytest.raises(SDKException, match=r"holds encrypted tokens.*ZOHO_MONGO_ENCRYPTION_KEY"):
        plain.save_token(oauth(None, refresh_token=sealed.get_refresh_token(), access_token="new"))
    assert store.collection.count_documents({}) == 1


def test_rotation_reports_what_it_cannot_reseal_and_goes_on(store: MongoTokenStore) -> None:
    old = keyed(store, KEY_A)
    tokens = [full(f"user{n}@example.com:1") for n in range(3)]
    for token in tokens:
        old.save_token(token)
    # A plaintext copy of token 0's refresh token, as a keyless store used to write (before the
    # collection had its validator: hence the bypass), and a truncated ciphertext in token 1.
    store.collection.insert_one({"_id": "plain-copy", "refresh_token": tokens[0].get_refresh_token()},
                                bypass_document_validation=True)
    document = store.collection.find_one({"_id": tokens[1].get_id()})
    store.collection.update_one({"_id": tokens[1].get_id()},
                                {"$set": {"access_token": document["access_token"][:len(PREFIX) + 14]}})
    with pytest.raises(SDKException, match=f"token {tokens[1].get_id()}"):
        old.find_token_by_id(tokens[1].get_id())
    new = MongoTokenStore(client=store.client, database=store.collection.database.name, encryption_key=KEY_B,
                          old_encryption_keys=[KEY_A])
    report = rotate(new)
    assert report.rotated == 2 and len(report.failed) == 2
    truncated, = (line for line in report.failed if tokens[1].get_id() in line)
    assert "not a valid sealed value" in truncated
    # The duplicate pair: whichever of the two comes second in _id order is the one reported.
    duplicate, = (line for line in report.failed if line != truncated)
    assert duplicate.startswith((f"token {tokens[0].get_id()}: another token already has its",
                                 "token plain-copy: another token already has its"))
    assert new.find_token_by_id(tokens[2].get_id()).get_access_token() == tokens[2].get_access_token()


def test_a_blind_index_moved_to_another_document_is_refused(store: MongoTokenStore) -> None:
    sealed = keyed(store, KEY_A)
    alice, bob = full("alice@example.com:1"), full("bob@example.com:1")
    sealed.save_token(alice)
    sealed.save_token(bob)
    stolen = store.collection.find_one({"_id": alice.get_id()})["refresh_token_hmac"]
    store.collection.update_one({"_id": alice.get_id()}, {"$unset": {"refresh_token_hmac": ""}})
    store.collection.update_one({"_id": bob.get_id()}, {"$set": {"refresh_token_hmac": stolen}})
    with pytest.raises(SDKException, match="does not hold that value"):
        sealed.find_token(oauth(None, refresh_token=alice.get_refresh_token()))


# -- 7. one hand-edited document ----------------------------------------------------------------------


def test_a_malformed_document_is_a_clear_error_and_tools_go_on(store: MongoTokenStore) -> None:
    good, odd = full("good@example.com:1"), full("odd@example.com:1")
    store.save_token(good)
    store.save_token(odd)
    store.collection.update_one({"_id": odd.get_id()}, {"$set": {"expiry_time": "2026-01-01"}})
    with pytest.raises(SDKException, match=f"stored token '{odd.get_id()}' is malformed.*expiry_time is str"):
        store.find_token(oauth("odd@example.com:1", client=False))
    with pytest.raises(SDKException, match="malformed"):
        store.get_tokens()
    assert store.find_token(oauth("good@example.com:1", client=False)) is not None


def test_the_cli_shows_a_malformed_row_and_keeps_working(dashboard_env: MongoTokenStore) -> None:
    good, odd = full("good@example.com:1"), full("odd@example.com:1")
    dashboard_env.save_token(good)
    dashboard_env.save_token(odd)
    dashboard_env.collection.update_one({"_id": odd.get_id()}, {"$set": {"expiry_time": "2026-01-01",
                                                                      "api_domain": None}})
    code, out, err = run("list")
    assert code == 0 and "malformed: expiry_time is str, not a date" in out, err
    code, out, _ = run("show", odd.get_id())
    assert code == 0 and "malformed: expiry_time is str" in out
    code, out, _ = run("export")
    assert code == 0 and len(out.splitlines()) == 2 and "malformed" in out
    assert run("stats")[0] == 0


def test_the_dashboard_shows_a_malformed_row_and_keeps_working(dashboard_env: MongoTokenStore) -> None:
    odd = full(None)
    dashboard_env.save_token(odd)
    dashboard_env.collection.update_one({"_id": odd.get_id()}, {"$set": {"expiry_time": "2026-01-01",
                                                                      "api_domain": None, "user_name": 42}})
    at = sign_in(AppTest.from_file(APP, default_timeout=30).run())
    assert not at.exception and at.metric
    at = at.sidebar.radio(key="page").set_value("Tokens").run()
    assert not at.exception and "malformed" in at.dataframe[0].value.columns
    at.button(key="delete_one").click().run()
    at.button(key="confirm_delete").click().run()
    at = at.sidebar.radio(key="page").set_value("Audit").run()
    assert not at.exception and at.dataframe


def test_a_date_beyond_year_9999_is_malformed_and_every_tool_goes_on(dashboard_env: MongoTokenStore) -> None:
    """A JavaScript writer can store dates Python cannot hold: that token reads as malformed (with
    its id) while lookups of others, list, show, export, get_tokens, rotate-key and the Tokens
    page keep working (no InvalidBSON)."""
    from bson.datetime_ms import DatetimeMS

    good, odd = full("good@example.com:1"), full("odd@example.com:1")
    dashboard_env.save_token(good)
    dashboard_env.save_token(odd)
    dashboard_env.collection.update_one({"_id": odd.get_id()}, {"$set": {"expiry_time": DatetimeMS(2 ** 60)}})
    with pytest.raises(SDKException, match=f"stored token '{odd.get_id()}' is malformed.*expiry_time is DatetimeMS"):
        dashboard_env.find_token_by_id(odd.get_id())
    assert dashboard_env.find_token(oauth("good@example.com:1", client=False)) is not None
    with pytest.raises(SDKException, match="malformed"):
        dashboard_env.get_tokens()
    for argv in (("list",), ("show", odd.get_id()), ("export",), ("stats",)):
        code, out, err = run(*argv)
        assert code == 0 and "unexpected error" not in out + err, (argv, out, err)
    assert "malformed: expiry_time is DatetimeMS, not a date" in run("show", odd.get_id())[1]
    at = sign_in(AppTest.from_file(APP, default_timeout=30).run())
    at = at.sidebar.radio(key="page").set_value("Tokens").run()
    assert not at.exception and "malformed" in at.dataframe[0].value.columns


def test_a_failure_count_stored_as_text_does_not_break_lookups(store: MongoTokenStore) -> None:
    token = full("alice@example.com:1", access_token="old", expires_in="1000")
    store.save_token(token)
    lapsed = datetime.now(timezone.utc) - timedelta(minutes=1)
    store.collection.update_one({"_id": token.get_id()}, {"$set": {"refresh_failures": "3", "refresh_lease": lapsed}})
    found = store.find_token_by_id(token.get_id())  # takes the lapsed lease over, counting the failure
    assert found.get_access_token() == "old" and store.collection.find_one({})["refresh_failures"] == 1


def test_a_lone_surrogate_is_refused_without_quoting_the_value(store: MongoTokenStore) -> None:
    from tokens import exception_texts

    value = secret("access") + "\ud800"
    with pytest.raises(SDKException, match="not valid Unicode") as refused:
        store.save_token(full("alice@example.com:1", access_token=value))
    assert all(value[:-1] not in text for text in exception_texts(refused.value))
    assert store.collection.count_documents({}) == 0


# -- 8. boolean settings ------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [("1", True), (" TRUE ", True), ("yes", True), ("On", True),
                                             ("0", False), ("false", False), ("No", False), ("off", False),
                                             ("", False), (None, False), (True, True)])
def test_boolean_settings_parse_strictly(value: Any, expected: bool) -> None:
    assert parse_flag("DASHBOARD_READ_ONLY", value) is expected


@pytest.mark.parametrize("value", ["True ", "enabled", "y", "2"])
def test_an_unknown_boolean_refuses_to_start(dashboard_env: MongoTokenStore, monkeypatch: pytest.MonkeyPatch,
                                             value: str) -> None:
    if value.strip().lower() == "true":
        value = "enabled"  # "True " is a valid spelling (trimmed, any case)
    with pytest.raises(SettingError):
        parse_flag("DASHBOARD_READ_ONLY", value)
    monkeypatch.setenv("DASHBOARD_READ_ONLY", value)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.text_input and "DASHBOARD_READ_ONLY must be one of" in at.error[0].value
    assert run("dashboard")[0] == 1


# -- 9, 10. files with secrets, stored values shown as plain text ------------------------------------


def test_an_export_with_secrets_is_private_and_never_overwrites(dashboard_env: MongoTokenStore, tmp_path: Path) -> None:
    dashboard_env.save_token(full("alice@example.com:1"))
    target = tmp_path / "backup.jsonl"
    assert run("export", "--include-secrets", "-o", str(target))[0] == 0
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    target.write_text("precious")
    code, _, err = run("export", "--include-secrets", "-o", str(target))
    assert code == 1 and "--force" in err and target.read_text() == "precious"
    target.chmod(0o644)
    assert run("export", "--include-secrets", "-o", str(target), "--force")[0] == 0
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600 and "alice" in target.read_text()


def test_stored_values_cannot_forge_cli_lines_or_render_as_markdown(dashboard_env: MongoTokenStore) -> None:
    forged = "x@example.com:1\nFAKE\tROW\x1b[31m"
    dashboard_env.restore_token(full(forged, id="[click](https://evil.test)"))
    code, out, _ = run("list")
    assert code == 0 and "\x1b" not in out and "\nFAKE" not in out and len(out.splitlines()) == 3
    at = sign_in(AppTest.from_file(APP, default_timeout=30).run())
    at = at.sidebar.radio(key="page").set_value("Tokens").run()
    assert "This token: [click](https://evil.test)" in [text.value for text in at.text]  # plain text
    at.button(key="delete_one").click().run()
    assert not at.markdown or all("](https://evil.test)" not in str(m.value) for m in at.markdown)


# -- 12, 13. a dry run writes nothing; bad names are one line -----------------------------------------


def test_a_dry_run_import_writes_nothing(dashboard_env: MongoTokenStore, real_client: MongoClient,
                                        tmp_path: Path) -> None:
    path = tmp_path / "tokens.jsonl"
    path.write_text(json.dumps({"id": "1", "user_name": "a@b:1", "refresh_token": secret("r"), "client_id": "c",
                                "client_secret": "s"}) + "\n")
    name = dashboard_env.collection.database.name
    code, out, _ = run("import", str(path), "--dry-run")
    assert code == 0 and "would insert 1" in out
    assert name not in real_client.list_database_names()


@pytest.mark.parametrize("option, value", [("--database", "a/b"), ("--collection", "$x"), ("--database", "a b")])
def test_bad_names_are_one_line(option: str, value: str) -> None:
    code, _, err = run("--uri", "mongomock://", option, value, "stats")
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err


# -- 14. sign-in attempts and password changes -------------------------------------------------------


def test_password_attempts_are_limited_and_slowed(dashboard_env: MongoTokenStore,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from mongo_store.dashboard import auth

    monkeypatch.setattr(auth, "WRONG_PASSWORD_DELAY", 0.2)
    at = AppTest.from_file(APP, default_timeout=30).run()
    started = time.monotonic()
    for _ in range(auth.MAX_ATTEMPTS):
        at = sign_in(at, "guess")
        assert not at.metric
    assert time.monotonic() - started >= 0.2 * auth.MAX_ATTEMPTS
    at = at.run()
    assert not at.text_input and "Too many wrong passwords" in at.error[0].value


def test_a_changed_password_ends_the_session(dashboard_env: MongoTokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    at = sign_in(AppTest.from_file(APP, default_timeout=30).run())
    assert at.metric
    monkeypatch.setenv("DASHBOARD_PASSWORD", "a new password")
    at = at.run()
    assert not at.metric and at.text_input  # the sign-in form again



def test_rotate_key_on_a_server_killed_midway_is_one_line(tmp_path: Path) -> None:
    """One line and exit 1, with no traceback from any thread (the review once saw one)."""
    import subprocess
    from datetime import datetime, timezone

    from mongo_store.core.crypto import Cipher
    from mongo_store.tools.embedded import EmbeddedMongod, mongod_binary

    if mongod_binary() is None:
        pytest.skip("needs the embedded mongod")
    server = EmbeddedMongod(tmp_path / "db").start()
    try:
        cipher, now = Cipher(KEY_A), datetime.now(timezone.utc)
        with MongoClient(server.uri) as client:
            client.zoho.oauth_tokens.insert_many([
                cipher.seal({"refresh_token": f"r{n}", "access_token": f"a{n}"}, {"_id": f"id{n}"})
                | {"_id": f"id{n}", "updated_at": now} for n in range(8000)])
        env = dict(os.environ, ZOHO_MONGO_ENCRYPTION_KEY=KEY_B, ZOHO_MONGO_OLD_ENCRYPTION_KEYS=KEY_A,
                   MONGODB_URI=server.uri)
        process = subprocess.Popen([sys.executable, "-m", "mongo_store.cli", "--timeout", "2", "rotate-key"],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        rotated = {"enc_key_id": Cipher(KEY_B).current.id}
        with MongoClient(server.uri) as client:  # kill it once the rotation is under way
            deadline = time.monotonic() + 60
            while not client.zoho.oauth_tokens.find_one(rotated, {"_id": True}):
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.05)
        server.kill()
        _, err = process.communicate(timeout=120)
    finally:
        server.stop()
    assert process.returncode == 1
    assert err.count("\n") == 1 and err.startswith("zoho-mongo-store: error: could not rotate") and "Traceback" not in err


# -- round three (issue 29) ---------------------------------------------------------------------------


def test_a_tz_aware_client_reads_every_date_as_naive_utc(real_client: MongoClient, mongo_uri: str,
                                                       database_name: str) -> None:
    """F4: a client made with ``tz_aware=True`` hands the store aware dates; every lookup in the
    refresh window raised a raw TypeError, and a stale save failed as an unexpected error."""
    from mongo_store.tools.health import health_of

    with MongoClient(mongo_uri, tz_aware=True) as aware:
        store = MongoTokenStore(client=aware, database=database_name)
        now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
        token = full("alice@example.com:1", expires_in=str(now_ms + 2000))  # inside the refresh window
        store.save_token(token)
        found = store.find_token_by_id(token.get_id())  # coordinated: its dates compared with now
        assert found.get_access_token() == token.get_access_token()
        stale = full("alice@example.com:1", refresh_token=token.get_refresh_token(), expires_in=str(now_ms - 60_000))
        store.save_token(stale)  # an older refresh: the stored, newer token stays, and the caller gets it
        assert stale.get_expires_in() == str(now_ms + 2000)
        document = store.collection.find_one({})
        assert document["expiry_time"].tzinfo is None and document["updated_at"].tzinfo is None
        assert health_of(document)[0] in ("healthy", "idle", "failing")
        events = store.collection.database[store.settings.events_collection]
        assert all(event["at"].tzinfo is None for event in events.find({}))


@pytest.mark.parametrize("name", ["x.", ".x", "a..b"])
def test_a_collection_name_mongodb_refuses_is_one_sentence(mongo_uri: str, database_name: str, name: str) -> None:
    """F16: such names passed the check and pymongo's InvalidName escaped raw from the constructor,
    and as a traceback from the CLI (a flag or a setting alike)."""
    import subprocess

    for option in ("collection", "events_collection"):
        with pytest.raises(SDKException, match="collection name"):
            MongoTokenStore(client=MongoClient(mongo_uri, connect=False), database=database_name, **{option: name})
    uses = {"ZOHO_MONGO_COLLECTION": ["stats"], "ZOHO_EVENTS_COLLECTION": ["events", "some-id"],
            "DASHBOARD_AUDIT_COLLECTION": ["audit"],
            "ZOHO_MONGO_ALERTS_COLLECTION": ["alerts", "--webhook", "http://127.0.0.1:9/hook"]}
    runs = [(variable, [*command]) for variable, command in uses.items()] + [("", ["--collection", name, "stats"])]
    for variable, command in runs:
        env = dict(os.environ, MONGODB_URI=mongo_uri, ZOHO_MONGO_DATABASE=database_name, **({variable: name} if variable else {}))
        done = subprocess.run([sys.executable, "-m", "mongo_store.cli", *command], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 1 and "Traceback" not in done.stderr, (command, done.stderr)
        assert done.stderr.count("\n") == 1 and "collection name" in done.stderr, (command, done.stderr)


def test_stored_and_imported_text_reaches_no_cli_output_raw(mongo_uri: str, database_name: str, real_client: MongoClient,
                                                             tmp_path: Path) -> None:
    """F13 (and the suspected bidi overrides): ``list``, ``list --format tsv`` and ``stats`` printed
    an ESC sequence and a forged line from a stored ``api_domain``, ``import`` echoed unknown
    field names raw, and a right-to-left override in a user name reached every output as it is."""
    import subprocess

    try:
        store = MongoTokenStore(client=real_client, database=database_name)
        hostile = full("eve\u202e@example.com:1", api_domain="https://www.zohoapis.com\x1b[2J\nFORGED domain")
        store.save_token(hostile)
        store.collection.insert_one({"_id": "odd\x1b[1m\nFORGED id", "user_name": "x\u202egnp.exe\u2028FORGED sep",
                                     "api_domain": "h\x1b]0;title\x07\tFORGED column", "check_error": "E\x1b[5m\nFORGED",
                                     "refresh_token": secret("refresh")})
        exported = tmp_path / "import.json"
        exported.write_text(json.dumps({"user_name": "new@example.com:1", "refresh_token": secret("refresh"),
                                        "client_id": "c", "client_secret": "s", "weird\x1b[31m\nFORGED field": 1}) + "\n")
        env = dict(os.environ, MONGODB_URI=mongo_uri, ZOHO_MONGO_DATABASE=database_name)
        runs = [["list"], ["list", "--format", "tsv"], ["stats"], ["show", hostile.get_id()], ["show", "--user",
                "x\u202egnp.exe\u2028FORGED sep"], ["check", "--all"], ["check", "odd\x1b[1m\nFORGED id"],
                ["import", str(exported), "--from", "export", "--verbose", "--dry-run"],
                ["import", str(exported), "--from", "export", "--dry-run"]]
        for argv in runs:
            done = subprocess.run([sys.executable, "-m", "mongo_store.cli", *argv], env=env, capture_output=True,
                                  text=True, timeout=120)
            text = done.stdout + done.stderr
            assert "Traceback" not in text, (argv, text)
            assert all(character.isprintable() or character in "\n\t" for character in text), (argv, repr(text))
            assert not any(line.startswith("FORGED") for line in text.splitlines()), (argv, text)
            if argv[-1] == "tsv":  # every row keeps its columns
                widths = {line.count("\t") for line in done.stdout.splitlines() if not line.startswith("#")}
                assert len(widths) == 1, done.stdout
    finally:
        real_client.drop_database(database_name)


def test_list_tsv_keeps_a_formula_from_running_in_a_spreadsheet(mongo_uri: str, database_name: str,
                                                                real_client: MongoClient) -> None:
    """Suspected, real: ``list --format tsv`` (a file a spreadsheet opens) printed a hand-made user
    name ``=HYPERLINK(...)`` as it is, where the dashboard's CSV export puts a ``'`` before it."""
    import subprocess

    try:
        store = MongoTokenStore(client=real_client, database=database_name)
        for name in ('=HYPERLINK("http://evil.example","x")', "+1+cmd", "-2+3", "@SUM(A1)"):
            store.save_token(full(name))
        done = subprocess.run([sys.executable, "-m", "mongo_store.cli", "list", "--format", "tsv"], capture_output=True,
                              text=True, timeout=120,
                              env=dict(os.environ, MONGODB_URI=mongo_uri, ZOHO_MONGO_DATABASE=database_name))
        rows = [line.split("\t") for line in done.stdout.splitlines()[1:] if not line.startswith("#")]
        assert sorted(row[1] for row in rows) == ["'+1+cmd", "'-2+3", "'=HYPERLINK(\"http://evil.example\",\"x\")",
                                                  "'@SUM(A1)"]
        assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    finally:
        real_client.drop_database(database_name)


def test_a_bidi_override_in_a_user_name_is_shown_escaped_in_confirmations() -> None:
    """Suspected, real: a right-to-left override (or an isolate, a zero-width space, a line
    separator) in a user name reached the dashboard's confirmation list as it is, so the name
    read as another (``exe.png`` as ``gnp.exe``)."""
    from mongo_store.core.masking import markdown_plain, printable
    from mongo_store.dashboard.confirm import listed

    for hidden in ("\u202e", "\u2066", "\u200b", "\u2028", "\u00a0", "\ufeff", "\u061c"):
        name = f"admin{hidden}gnp.exe@example.com:1"
        for shown in (listed(["id1"], {"id1": (name, "healthy")}), printable(name), markdown_plain(name)):
            assert hidden not in shown and repr(hidden)[1:-1] in shown.replace("\\\\", "\\")
    assert printable("ordinary café@example.com:1 ✓") == "ordinary café@example.com:1 ✓"  # printable text stays

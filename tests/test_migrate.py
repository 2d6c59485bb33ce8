"""Import from each source the SDK's users have, with malformed rows, idempotently, on every backend."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest
from tokens import full, oauth, secret, snapshot, values
from zohocrmsdk.src.com.zoho.api.authenticator.store.file_store import FileStore

from mongo_store import MongoTokenStore
from mongo_store.core.masking import mask
from mongo_store.tools.migrate import FILESTORE_COLUMNS, SourceError, import_rows, open_source

HEADER_10 = ",".join(FILESTORE_COLUMNS)
HEADER_9 = ",".join(FILESTORE_COLUMNS[:9])


def by_user(store: MongoTokenStore) -> dict[str | None, dict]:
    return {values(token)["user_name"]: values(token) for token in store.get_tokens()}


def test_filestore_written_by_the_sdk_imports_exactly(store: MongoTokenStore, tmp_path: Path) -> None:
    path = tmp_path / "sdk_tokens.txt.csv"
    sdk = FileStore(str(path))
    written = [full("alice@example.com:1"), full("bob@example.com:1", api_domain="https://www.zohoapis.eu"),
               oauth(None, refresh_token=secret("refresh"))]
    for token in written:
        sdk.save_token(token)  # the SDK assigns ids 1, 2, 3 and writes its own CSV
    report = import_rows(store, open_source(str(path)))
    assert (report.inserted, report.updated, report.skipped, report.rejected) == (3, 0, 0, [])
    imported = {values(token)["id"]: values(token) for token in store.get_tokens()}
    assert imported == {values(token)["id"]: values(token) for token in written}


def test_filestore_9_column_layout_and_malformed_rows(store: MongoTokenStore, tmp_path: Path) -> None:
    refresh = secret("refresh")
    path = tmp_path / "old.csv"
    path.write_text("\n".join([
        HEADER_9,
        f"1,alice@example.com:1,1000.C,cs,{refresh},1000.access.x,,1767225600000,https://app/cb",
        "2,bob@example.com:1,1000.C,cs,1000.r2,,,next tuesday,",          # bad expiry
        "3,carol@example.com:1,1000.C",                                    # too few columns
        "",                                                                 # blank: ignored
        "4,dave@example.com:1,1000.C,cs,,,,,",                             # nothing to store
        "5,erin@example.com:1,1000.C,cs," + "r" * 5000 + ",,,,",          # huge value
        f"6,mallory@example.com:1,1000.C,cs,{refresh},,,,",               # refresh token of line 2
    ]) + "\n")
    report = import_rows(store, open_source(str(path)))
    assert report.inserted == 1
    reasons = dict(report.rejected)
    assert sorted(reasons) == [3, 4, 6, 7, 8]
    assert "expires_in" in reasons[3] and reasons[4] == "expected 9 columns, found 3"
    assert "no access, refresh or grant token" in reasons[6]
    assert "4096" in reasons[7] and "rrrr" not in reasons[7]
    assert "already has this" in reasons[8] and refresh not in reasons[8]
    [token] = store.get_tokens()
    assert values(token)["id"] == "1" and values(token)["api_domain"] is None
    assert values(token)["expires_in"] == "1767225600000" and values(token)["redirect_url"] == "https://app/cb"


def test_import_twice_changes_nothing_and_an_edit_is_an_update(store: MongoTokenStore, tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    rows = [["1", "alice@example.com:1", "1000.C", "cs", secret("r"), "a1", "", "1767225600000", "", ""],
            ["2", "bob@example.com:1", "1000.C", "cs", secret("r"), "b1", "", "1767225600000", "", ""]]
    write_csv(path, rows)
    assert import_rows(store, open_source(str(path))).inserted == 2
    before = snapshot(store)
    again = import_rows(store, open_source(str(path)))
    assert (again.inserted, again.updated, again.skipped) == (0, 0, 2)
    assert snapshot(store) == before  # not even updated_at moved
    rows[1][5] = "b2"
    write_csv(path, rows)
    dry = import_rows(store, open_source(str(path)), dry_run=True)
    assert (dry.inserted, dry.updated, dry.skipped) == (0, 1, 1) and snapshot(store) == before
    real = import_rows(store, open_source(str(path)))
    assert (real.inserted, real.updated, real.skipped) == (0, 1, 1)
    assert store.find_token_by_id("2").get_access_token() == "b2"


def write_csv(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FILESTORE_COLUMNS)
        writer.writerows(rows)


def kaizen_database(path: Path) -> sqlite3.Connection:
    """The Kaizen sample's table: id varchar primary key, nothing else indexed."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE oauthtoken (id varchar(10) PRIMARY KEY, user_name varchar(255), client_id varchar(255), "
               "client_secret varchar(255), refresh_token varchar(255), access_token varchar(255), "
               "grant_token varchar(255), expiry_time varchar(20), redirect_url varchar(255), api_domain varchar(255))")
    return db


def test_kaizen_sqlite_with_malformed_rows(store: MongoTokenStore, tmp_path: Path) -> None:
    path = tmp_path / "kaizen.db"
    db = kaizen_database(path)
    good = [("1", "alice@example.com:1", "1000.C", "cs", secret("r"), "a1", None, "1767225600000", "https://cb",
             "https://www.zohoapis.com"),
            (2, "bob@example.com:1", "1000.C", "cs", secret("r"), None, None, 1767225600000, None, None)]
    bad = [("3", "carol@example.com:1", "1000.C", "cs", b"\x00binary", None, None, None, None, None),
           ("4", "dave\x00@example.com:1", "1000.C", "cs", secret("r"), None, None, None, None, None),
           ("5", "erin@example.com:1", "1000.C", "cs", secret("r"), None, None, "1.5e12", None, None)]
    db.executemany("INSERT INTO oauthtoken VALUES (?,?,?,?,?,?,?,?,?,?)", good + bad)
    db.commit()
    db.close()
    report = import_rows(store, open_source(str(path)))
    assert report.inserted == 2
    reasons = dict(report.rejected)
    assert sorted(reasons) == [3, 4, 5]
    assert "binary" in reasons[3] and "NUL" in reasons[4] and "expires_in" in reasons[5]
    bob = store.find_token_by_id("2")  # integer id and expiry came back as text
    assert bob.get_expires_in() == "1767225600000" and bob.get_user_signature().get_name() == "bob@example.com:1"
    assert import_rows(store, open_source(str(path))).skipped == 2


def test_sources_that_cannot_be_read_are_one_clear_error(tmp_path: Path) -> None:
    not_csv = tmp_path / "other.csv"
    not_csv.write_text("name,email\nx,y\n")
    with pytest.raises(SourceError, match="not a FileStore CSV"):
        list(open_source(str(not_csv)))
    empty_db = tmp_path / "empty.db"
    sqlite3.connect(empty_db).close()
    with pytest.raises(SourceError, match="cannot read table oauthtoken"):
        list(open_source(str(empty_db)))
    with pytest.raises(SourceError, match="letters, digits"):
        list(open_source(str(empty_db), table="x; DROP TABLE y"))
    with pytest.raises(SourceError, match="does not exist"):
        open_source(str(tmp_path / "missing.csv"))
    with pytest.raises(SourceError, match="cannot tell"):
        open_source(str(tmp_path / "tokens.bin"))


def test_export_lines_with_bad_json_are_rejected(store: MongoTokenStore, tmp_path: Path) -> None:
    path = tmp_path / "tokens.jsonl"
    path.write_text('{"id": "1", "user_name": "a@b:1", "refresh_token": "1000.r.abc", "client_id": "c", '
                    '"client_secret": "s"}\n{not json\n[1, 2]\n{"id": "2", "colour": "red"}\n'
                    '{"id": {"$ne": null}, "access_token": "x"}\n')
    report = import_rows(store, open_source(str(path)))
    assert report.inserted == 1
    reasons = dict(report.rejected)
    assert "not JSON" in reasons[2] and "not a JSON object" in reasons[3]
    assert "unknown field(s): colour" in reasons[4] and "id must be a string" in reasons[5]


def test_mysql_dbstore_table_written_by_the_sdk(store: MongoTokenStore, mariadb_port: int) -> None:
    import mysql.connector
    from zohocrmsdk.src.com.zoho.api.authenticator.store.db_store import DBStore

    admin = mysql.connector.connect(host="127.0.0.1", port=mariadb_port, user="root", password="")
    cursor = admin.cursor()
    cursor.execute("DROP DATABASE IF EXISTS zohooauth")
    cursor.execute("CREATE DATABASE zohooauth")
    cursor.execute(  # the table from the SDK's README
        "CREATE TABLE zohooauth.oauthtoken (id varchar(10) NOT NULL, user_name varchar(255), client_id varchar(255), "
        "client_secret varchar(255), refresh_token varchar(255), access_token varchar(255), grant_token varchar(255), "
        "expiry_time varchar(20), redirect_url varchar(255), api_domain varchar(255), primary key (id))")
    sdk = DBStore(host="127.0.0.1", database_name="zohooauth", user_name="root", password="", port_number=mariadb_port)
    written = [full("alice@example.com:1"), full("bob@example.com:1", api_domain="https://www.zohoapis.in")]
    for token in written:
        sdk.save_token(token)  # the SDK's own MySQL store writes the rows
    cursor.execute("INSERT INTO zohooauth.oauthtoken (id, user_name, client_id, client_secret, refresh_token, "
                   "expiry_time) VALUES ('90', 'x@example.com:1', 'c', 's', '1000.r.x', 'tomorrow'), "
                   "('91', 'y@example.com:1', 'c', 's', NULL, NULL)")
    admin.commit()

    url = f"mysql://root:@127.0.0.1:{mariadb_port}/zohooauth?table=oauthtoken"
    report = import_rows(store, open_source(url))
    assert (report.inserted, report.skipped) == (2, 0)
    assert sorted(line for line, _ in report.rejected) == [3, 4]
    imported = {values(token)["user_name"]: values(token) for token in store.get_tokens()}
    assert imported == {values(token)["user_name"]: values(token) for token in written}
    assert import_rows(store, open_source(url)).skipped == 2
    with pytest.raises(SourceError, match="cannot connect to MySQL"):
        list(open_source("mysql://root:secretpw@127.0.0.1:1/zohooauth"))
    admin.close()


def test_a_dry_run_predicts_conflicts_like_the_real_run(store: MongoTokenStore, tmp_path: Path) -> None:
    held = full("held@example.com:1")
    store.save_token(held)
    rows = [{"id": "n1", "user_name": "new@example.com:1", "refresh_token": secret("r"), "client_id": "c",
             "client_secret": "s"},
            {"id": "n2", "user_name": "held@example.com:1", "refresh_token": secret("r"), "client_id": "c",
             "client_secret": "s"},  # a stored token has this user name
            {"id": "n3", "user_name": "new@example.com:1", "refresh_token": secret("r"), "client_id": "c",
             "client_secret": "s"}]  # row 1 of this same file takes this user name
    path = tmp_path / "tokens.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    before = snapshot(store)
    dry = import_rows(store, open_source(str(path)), dry_run=True)
    assert snapshot(store) == before
    real = import_rows(store, open_source(str(path)))
    assert (dry.inserted, dry.updated, dry.skipped) == (real.inserted, real.updated, real.skipped) == (1, 0, 0)
    assert dry.rejected == real.rejected == [
        (2, f"could not save the token: another stored token ({held.get_id()}) already has this user_name"),
        (3, "could not save the token: another stored token (n1) already has this user_name")]


def test_the_filestore_file_is_recognised_by_its_content(store: MongoTokenStore, tmp_path: Path) -> None:
    path = tmp_path / "sdk_tokens.txt"  # the SDK's default name: no .csv
    written = full("alice@example.com:1")
    FileStore(str(path)).save_token(written)
    report = import_rows(store, open_source(str(path)))
    assert report.inserted == 1 and store.find_token_by_id(written.get_id()) is not None
    odd = tmp_path / "notes.txt"
    odd.write_text("hello\n")
    with pytest.raises(SourceError, match="cannot tell"):
        open_source(str(odd))


def test_many_rejections_are_summarized_by_reason(store: MongoTokenStore, tmp_path: Path) -> None:
    """A masked export of 295 tokens is one line, with its count and a few example lines and ids;
    each row's own line only when asked (``--verbose``)."""
    path = tmp_path / "masked.jsonl"
    lines = [json.dumps({"id": f"tok{n:03d}", "user_name": f"u{n}@example.com:1", "refresh_token": mask(secret("r")),
                         "client_id": "c", "client_secret": "••••"}) for n in range(295)]
    path.write_text("\n".join([*lines, "{broken", "[1]", "{also broken"]) + "\n")
    report = import_rows(store, open_source(str(path)))
    assert len(report.rejected) == 298 and report.inserted == 0
    masked, broken, not_object = report.reasons()
    assert masked.describe() == ("rejected 295 lines: secrets are masked: export again with --include-secrets "
                                 "(lines 1, 2, 3, …; ids tok000, tok001, tok002, …)")
    assert broken.describe().startswith("rejected 2 lines: not JSON (") and "(lines 296, 298)" in broken.describe()
    assert not_object.describe() == "rejected line 297: not a JSON object"  # alone: as each row was shown
    assert report.reason_counts()[0] == {"reason": "secrets are masked: export again with --include-secrets",
                                         "rows": 295}


def test_conflicts_with_different_tokens_are_one_reason(store: MongoTokenStore, tmp_path: Path) -> None:
    held = [full(f"held{n}@example.com:1") for n in range(4)]
    for token in held:
        store.save_token(token)
    path = tmp_path / "tokens.jsonl"
    path.write_text("".join(json.dumps({"id": f"new{n}", "user_name": f"held{n}@example.com:1",
                                        "refresh_token": secret("r"), "client_id": "c", "client_secret": "s"}) + "\n"
                            for n in range(4)))
    report = import_rows(store, open_source(str(path)))
    [group] = report.reasons()
    assert group.describe() == ("rejected 4 lines: could not save the token: another stored token already has this "
                                "user_name (lines 1, 2, 3, …; ids new0, new1, new2, …)")
    assert report.rejected[0][1].endswith(f"({held[0].get_id()}) already has this user_name")


def test_the_cli_prints_the_summary_and_each_row_only_with_verbose(store: MongoTokenStore, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from mongo_store import cli

    path = tmp_path / "masked.jsonl"
    path.write_text("".join(json.dumps({"id": f"t{n}", "refresh_token": mask(secret("r")), "client_id": "c"}) + "\n"
                            for n in range(40)))
    monkeypatch.setenv("MONGODB_URI", "mongomock://")
    out = io.StringIO()
    assert cli.main(["import", str(path), "--dry-run"], out=out) == 1
    assert out.getvalue().splitlines() == [
        "rejected 40 lines: secrets are masked: export again with --include-secrets (lines 1, 2, 3, …; ids t0, t1, t2, …)",
        "would insert 0, would update 0, skipped 0, rejected 40 (dry run: nothing written)"]
    out = io.StringIO()
    assert cli.main(["import", str(path), "--dry-run", "--verbose"], out=out) == 1
    shown = out.getvalue().splitlines()
    assert len(shown) == 41 and shown[0] == "rejected line 1: secrets are masked: export again with --include-secrets"

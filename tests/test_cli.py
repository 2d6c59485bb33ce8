"""The operators' CLI, on the real server: every command, its exit codes and its output."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from bson.codec_options import CodecOptions, DatetimeConversion
from pymongo import MongoClient
from tokens import full, values

from mongo_store import MongoTokenStore, cli
from mongo_store.core.mapping import SECRET_FIELDS

EU = "https://www.zohoapis.eu"
PLAN_DATES = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)


@pytest.fixture
def env(mongo_uri: str, database_name: str, real_client: MongoClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[MongoTokenStore]:
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("ZOHO_MONGO_DATABASE", database_name)
    yield MongoTokenStore(client=real_client, database=database_name)
    real_client.drop_database(database_name)


def run(*argv: str, stdin: str | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old_err, sys.stderr = sys.stderr, err
    try:
        code = cli.main(list(argv), out=out)
    except SystemExit as exit_:  # argparse usage errors
        code = int(exit_.code or 0)
    finally:
        sys.stderr = old_err
    return code, out.getvalue(), err.getvalue()


def seeded(store: MongoTokenStore) -> list[Any]:
    now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
    tokens = [
        full("alice@example.com:1", expires_in=str(now_ms + 3_000_000)),
        full("albert@example.com:1", expires_in=str(now_ms - 1000), api_domain=EU),
        full("bob@example.com:1", expires_in=str(now_ms + 4500)),
        full(None, expires_in=str(now_ms + 86_400_000)),
    ]
    for token in tokens:
        store.save_token(token)
    return tokens


def no_secrets(text: str, tokens: list[Any]) -> None:
    for token in tokens:
        for field in SECRET_FIELDS:
            assert values(token)[field] not in text


def test_indexes_creates_reports_drift_and_checks(env: MongoTokenStore) -> None:
    assert run("indexes", "--check") == (1, "missing: user_name_unique, refresh_token_unique, access_token, "
                                            "grant_token, client_id, api_domain, expiry_time, refresh_lease, "
                                            "refresh_failures, check_error, last_refreshed_at, updated_at, "
                                            "expiry_time_no_refresh_token, search_keys, user_name_id, expiry_time_id, "
                                            "last_refreshed_at_id, api_domain_id, refresh_token_hmac_unique, "
                                            "access_token_hmac, grant_token_hmac\n", "")
    code, out, _ = run("indexes")
    assert code == 0 and out.startswith("created: user_name_unique")
    assert run("indexes", "--check")[:2] == (0, "indexes: all present\n")
    env.collection.insert_one({"_id": "raw", "user_name": "Raw@Example.com:1"})  # a tool's raw insert: no keys
    assert run("indexes")[:2] == (0, "search keys: written for 1 token(s)\nindexes: all present\n")
    assert env.collection.find_one({"_id": "raw"})["search_keys"]
    env.collection.drop_index("access_token")
    env.collection.create_index("access_token", name="access_token", unique=True)
    code, out, _ = run("indexes", "--check")
    assert code == 1 and "drift: access_token: expected key=[('access_token', 1)] unique=False" in out


def test_stats_counts_by_status_and_domain(env: MongoTokenStore) -> None:
    seeded(env)
    code, out, _ = run("stats", "--json")
    counts = json.loads(out)
    assert code == 0
    assert counts["total"] == 4 and counts["with-user-name"] == 3
    assert counts["expired"] == 1 and counts["refresh-window"] == 1 and counts["valid"] == 2
    assert counts["within-hour"] == 2
    assert counts["per-api-domain"] == {EU: 1, "https://www.zohoapis.com": 3}


def test_list_filters_pages_and_masks(env: MongoTokenStore) -> None:
    tokens = seeded(env)
    code, out, _ = run("list", "--search", "al", "--json")
    assert code == 0
    assert [json.loads(line)["user_name"] for line in out.splitlines()] == ["albert@example.com:1", "alice@example.com:1"]
    no_secrets(out, tokens)
    assert json.loads(out.splitlines()[0])["access_token"].startswith("••••")
    assert [json.loads(line)["api_domain"] for line in run("list", "--domain", EU, "--json")[1].splitlines()] == [EU]
    expired = run("list", "--status", "expired", "--json")[1].splitlines()
    assert [json.loads(line)["user_name"] for line in expired] == ["albert@example.com:1"]
    code, out, _ = run("list", "--page-size", "3", "--page", "2")
    assert code == 0 and "# page 2 of 2, tokens 4-4 of 4" in out.splitlines()
    by_id = run("list", "--search", tokens[3].get_id()[:6], "--json")[1]  # one box: ids too
    assert tokens[3].get_id() in [json.loads(line)["id"] for line in by_id.splitlines()]
    assert run("list", "--search", "x", "--in", "id")[0] == 2  # the old second box is gone
    assert run("list", "--page", "0")[0] == 2  # a usage error, like any bad option value
    assert run("list", "--status", "bogus")[0] == 2  # argparse: a usage error


def test_health_in_stats_list_and_show(env: MongoTokenStore) -> None:
    tokens = seeded(env)  # alice and bob valid, albert lapsed with a refresh token, one unnamed valid
    env.collection.update_one({"_id": tokens[1].get_id()}, {"$set": {"refresh_failures": 3}})
    counts = json.loads(run("stats", "--json")[1])
    assert counts["health"] == {"healthy": 3, "idle": 0, "failing": 1, "unusable": 0}
    code, out, _ = run("stats")
    assert code == 0 and "  failing:  1  a refresh or a check failed since the token was last saved" in out
    failing = [json.loads(line) for line in run("list", "--health", "failing", "--json")[1].splitlines()]
    assert [(t["user_name"], t["health"], t["refresh_failures"]) for t in failing] == [("albert@example.com:1", "failing", 3)]
    assert "3 failed refresh(es)" in failing[0]["health_reason"]
    assert failing[0]["expires_at"].endswith("Z") and "expires_in" not in failing[0]  # ISO 8601 UTC, not epoch ms
    datetime.fromisoformat(failing[0]["expires_at"].replace("Z", "+00:00"))
    by_user = [json.loads(line)["user_name"] for line in run("list", "--sort", "user", "--descending", "--json")[1].splitlines()]
    assert by_user == ["bob@example.com:1", "alice@example.com:1", "albert@example.com:1", None]  # unnamed last
    by_expiry = [json.loads(line)["id"] for line in run("list", "--sort", "expiry", "--json")[1].splitlines()]
    assert by_expiry == [tokens[1].get_id(), tokens[2].get_id(), tokens[0].get_id(), tokens[3].get_id()]
    table = run("list", "--health", "failing", "--format", "tsv")[1].splitlines()
    assert table[0].split("\t")[:4] == ["id", "user_name", "health", "data_center"]
    assert " ago)" in table[1] and "T" in table[1].split("\t")[4]  # 2026-11-23T20:15:00Z (1 min ago)
    assert table[1].split("\t")[3] == "EU" and table[1].split("\t")[-1] == failing[0]["health_reason"]
    code, out, _ = run("show", "--user", "albert@example.com:1")
    assert code == 0 and f"id: {tokens[1].get_id()}" in out and "health: failing" in out and "Z (" in out
    assert run("show", "--user", "nobody@example.com:1")[2] == \
        "zoho-mongo-store: error: no stored token has user name 'nobody@example.com:1'\n"
    assert run("show")[0] == 1 and run("show", "x", "--user", "y")[0] == 1


def test_show_masks_every_secret(env: MongoTokenStore) -> None:
    tokens = seeded(env)
    code, out, _ = run("show", tokens[0].get_id())
    assert code == 0 and f"id: {tokens[0].get_id()}" in out and "user_name: alice@example.com:1" in out
    assert "refresh_token: ••••" in out and "client_secret: ••••" in out
    no_secrets(out, tokens)
    assert run("show", "nope") == (1, "", "zoho-mongo-store: error: no stored token has id 'nope'\n")


def test_delete_and_delete_all_confirmation(env: MongoTokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = seeded(env)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal: `delete` asks like `revoke`, so it refuses
    code, _, err = run("delete", tokens[0].get_id())
    assert code == 1 and err == "zoho-mongo-store: error: delete needs --yes when not run at a terminal\n"
    assert env.collection.count_documents({}) == 4
    assert run("delete", tokens[0].get_id(), "--yes")[:2] == (0, f"deleted {tokens[0].get_id()}\n")
    assert run("delete", tokens[0].get_id(), "--yes")[0] == 1
    code, _, err = run("delete-all")
    assert code == 1 and "needs --yes" in err and env.collection.count_documents({}) == 3
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    asked: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "wrong")
    assert run("delete", tokens[1].get_id())[0] == 1 and env.collection.count_documents({}) == 3
    assert asked == [f"Delete token {tokens[1].get_id()} (albert@example.com:1) for good? Zoho still honours its "
                     "refresh token (revoke ends a connection). Type 'delete' to confirm: "]
    monkeypatch.setattr("builtins.input", lambda prompt: "delete")
    assert run("delete", tokens[1].get_id())[:2] == (0, f"deleted {tokens[1].get_id()}\n")
    assert run("delete", "no-such-token")[0] == 1  # asked about nothing: the id is checked first
    monkeypatch.setattr("builtins.input", lambda prompt: "wrong")
    assert run("delete-all")[0] == 1 and env.collection.count_documents({}) == 2
    monkeypatch.setattr("builtins.input", lambda prompt: env.collection.name)
    assert run("delete-all")[:2] == (0, "deleted all tokens (2)\n")
    assert env.collection.count_documents({}) == 0
    seeded(env)
    assert run("delete-all", "--yes")[0] == 0 and env.collection.count_documents({}) == 0
    assert "user_name_unique" in env.collection.index_information()


def test_export_masks_unless_asked_and_round_trips(env: MongoTokenStore, tmp_path: Any, real_client: MongoClient,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = seeded(env)
    code, out, _ = run("export")
    assert code == 0 and len(out.splitlines()) == 4
    no_secrets(out, tokens)
    target = tmp_path / "tokens.jsonl"
    assert run("export", "--include-secrets", "--output", str(target))[0] == 0
    assert tokens[0].get_refresh_token() in target.read_text()

    masked = tmp_path / "masked.jsonl"
    masked.write_text(out)
    monkeypatch.setenv("ZOHO_MONGO_DATABASE", env.collection.database.name + "_copy")
    try:
        code, report, _ = run("import", str(masked))
        assert code == 1 and report.count("secrets are masked") == 1 and "inserted 0" in report  # one line per reason
        assert report.startswith("rejected 4 lines: secrets are masked: export again with --include-secrets (lines 1, 2, 3, …")
        code, report, _ = run("import", str(target))
        assert code == 0 and report.strip() == "inserted 4, updated 0, skipped 0, rejected 0"
        copy = MongoTokenStore(client=real_client, database=env.collection.database.name + "_copy")
        assert sorted(map(values, copy.get_tokens()), key=str) == sorted(map(values, env.get_tokens()), key=str)
    finally:
        real_client.drop_database(env.collection.database.name + "_copy")


def test_a_dead_server_is_one_line_and_exit_1() -> None:
    code, out, err = run("--uri", "mongodb://127.0.0.1:1/?directConnection=true", "--timeout", "0.2", "stats")
    assert code == 1 and out == ""
    assert err == "zoho-mongo-store: error: could not count the tokens: no MongoDB server reachable within 0.2 s\n"


def test_bad_credentials_are_one_line_and_exit_1(secured_mongod: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URI", secured_mongod.uri("root", "wr0ng-Pa55word"))
    code, out, err = run("stats")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "MongoDB rejected the credentials (AuthenticationFailed)" in err
    assert "wr0ng-Pa55word" not in err


def test_the_console_script_runs(env: MongoTokenStore) -> None:
    seeded(env)
    result = subprocess.run([sys.executable, "-m", "mongo_store.cli", "stats"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "total: 4" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "mongo_store.cli", "show", "x" * 5000], capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and len(bad.stderr.splitlines()) == 1


def test_stats_and_lists_use_indexes(env: MongoTokenStore, mongo_uri: str) -> None:
    """Every query the CLI and the dashboard send for counts and lists, through explain: an index,
    never a collection scan."""
    from test_real_server import Recorder, stages  # the same plan walker as the store's own check

    seeded(env)
    recorder = Recorder()
    client = MongoClient(mongo_uri, event_listeners=[recorder])
    try:
        from mongo_store.tools import health, paging, queries, stats

        collection = client[env.collection.database.name][env.collection.name]
        stats.stats(collection)
        from mongo_store.dashboard import data  # the dashboard's own overview queries too
        from mongo_store.tools.settings import OperatorSettings

        data.overview(data.Connection(MongoTokenStore(client=client, database=collection.database.name),
                                      OperatorSettings.load(), "test"))
        for query in (queries.Query(search="al"), queries.Query(search="EXAMPLE.COM"),
                      queries.Query(search="ab"), queries.Query(status="expired"),
                      queries.Query(api_domain=EU), queries.Query(search="al", status="valid", api_domain=EU),
                      *(queries.Query(health=state) for state in health.HEALTH),
                      *(queries.Query(sort=sort, descending=True) for sort in queries.SORTS),
                      queries.Query(health="healthy", sort="user"), queries.Query(sort="refreshed", api_domain=EU)):
            queries.page(collection, query)
            queries.page(collection, query, 9)  # past the tokens that have the sort field
            for go in ("first", "last"):
                found = paging.page(collection, query, 2, go=go)
                if found.has_next:
                    paging.page(collection, query, 2, go="next", cursor=found.last_cursor, number=2)
                if found.has_previous:
                    paging.page(collection, query, 2, go="previous", cursor=found.first_cursor, number=-2)
        assert len(recorder.commands) >= 15
        for command in recorder.commands:
            if command.get("pipeline") == [{"$match": {}}, {"$group": {"_id": 1, "n": {"$sum": 1}}}]:
                continue
            name = next(iter(command))
            if name == "count" and not command.get("query"):
                continue  # estimated_document_count: collection metadata, no scan
            plan = client[env.collection.database.name].command(
                {"explain": command, "verbosity": "queryPlanner"}, codec_options=PLAN_DATES  # open date bounds
            )
            used = set(stages(plan))
            assert "COLLSCAN" not in used, (command, used)
    finally:
        client.close()


def test_a_large_filtered_count_stops_at_the_cap(env: MongoTokenStore) -> None:
    from datetime import timedelta

    from mongo_store.tools.queries import COUNT_CAP

    past = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=1)
    env.collection.insert_many([{"_id": f"t{n:06d}", "refresh_token": f"1000.r.{n}", "expiry_time": past}
                                for n in range(COUNT_CAP + 50)])
    code, out, _ = run("list", "--status", "expired")
    assert code == 0 and "# page 1 of many, tokens 1-50 of 10,000+" in out.splitlines()
    assert "# page 1 of 201, tokens 1-50 of 10,050" in run("list")[1].splitlines()  # unfiltered: the exact total
    code, out, _ = run("list", "--status", "expired", "--last")  # the last page without counting them all
    assert code == 0 and "# page 1 from the end, of 10,000+ tokens" in out.splitlines()
    rows = [line for line in out.splitlines() if not line.startswith("#")]
    assert rows[-1].split()[0] == f"t{COUNT_CAP + 49:06d}" and len(rows) == 51  # the header, then the last 50


# -- the first hour of an operator ---------------------------------------------------------------


def test_paging_past_the_end_says_so_and_names_the_last_page(env: MongoTokenStore) -> None:
    for n in range(5):
        env.save_token(full(f"user{n}@example.com:1"))
    code, out, err = run("list", "--page", "99", "--page-size", "2")
    assert code == 1 and out == ""
    assert err == ("zoho-mongo-store: error: page 99 is past the end: 5 tokens make 3 page(s) of 2; "
                   "the last page is `zoho-mongo-store list --page-size 2 --last`\n")
    code, out, _ = run("list", "--page", "3", "--page-size", "2")
    assert code == 0 and "# page 3 of 3, tokens 5-5 of 5" in out.splitlines()
    for bad in ("0", "-1", "x"):
        code, _, err = run("list", "--page", bad)
        assert code == 2 and "--page" in err and "unexpected error" not in err


def test_global_options_work_after_the_command_and_version(env: MongoTokenStore, mongo_uri: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    env.save_token(full("alice@example.com:1"))
    database = env.collection.database.name
    monkeypatch.delenv("MONGODB_URI")
    monkeypatch.delenv("ZOHO_MONGO_DATABASE")
    code, out, _ = run("stats", "--uri", mongo_uri, "--database", database, "--json")
    assert code == 0 and json.loads(out)["total"] == 1
    code, out, _ = run("--uri", mongo_uri, "list", "--database", database)
    assert code == 0 and "alice@example.com:1" in out
    code, out, err = run("stats")
    assert code == 1 and err == "zoho-mongo-store: error: no MongoDB URI: set MONGODB_URI or pass --uri\n"
    version = subprocess.run([sys.executable, "-m", "mongo_store.cli", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == f"zoho-mongo-store {cli.__version__}"


def test_an_import_with_rejected_rows_exits_1(env: MongoTokenStore, tmp_path: Any) -> None:
    path = tmp_path / "tokens.jsonl"
    path.write_text(json.dumps({"id": "1", "user_name": "a@b:1", "refresh_token": "1000.r.abc", "client_id": "c",
                                "client_secret": "s"}) + "\n{not json\n")
    code, out, _ = run("import", str(path))
    assert code == 1 and out.splitlines()[-1] == "inserted 1, updated 0, skipped 0, rejected 1"
    code, out, _ = run("import", str(path))
    assert code == 1 and "skipped 1" in out


def test_a_closed_pipe_ends_quietly(env: MongoTokenStore) -> None:
    for n in range(400):
        env.collection.insert_one({"_id": f"id{n:04d}", "user_name": f"user{n}@example.com:1" + "x" * 200})
    for command in ("list --page-size 400", "export"):
        shell = f"{sys.executable} -m mongo_store.cli {command} | head -n 1"
        done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60)
        assert done.stderr == "", command
        assert len(done.stdout.splitlines()) == 1


def test_new_ids_never_look_like_options() -> None:
    from mongo_store.core.store import new_token_id

    assert not any(new_token_id().startswith("-") for _ in range(20_000))


def test_mongomock_duplicates_are_worded_as_real_ones() -> None:
    store = MongoTokenStore("mongomock://")
    store.save_token(full("alice@example.com:1"))
    bob = full("bob@example.com:1")
    store.save_token(bob)
    bob.set_user_signature(full("alice@example.com:1").get_user_signature())
    with pytest.raises(Exception) as conflict:
        store.save_token(bob)
    assert "already has this user_name" in str(conflict.value)  # mongomock names no field: the store finds it
    assert "a unique field" not in str(conflict.value)


def test_an_import_with_a_conflict_prints_no_stray_log_line(env: MongoTokenStore, tmp_path: Any) -> None:
    held = full("held@example.com:1")
    env.save_token(held)
    path = tmp_path / "tokens.jsonl"
    path.write_text(json.dumps({"id": "other", "user_name": "held@example.com:1", "refresh_token": "1000.r.x",
                                "client_id": "c", "client_secret": "s"}) + "\n")
    for dry in ((), ("--dry-run",)):
        code, out, err = run("import", str(path), *dry)
        assert code == 1 and err == ""
        assert f"rejected line 1: could not save the token: another stored token ({held.get_id()})" in out


def test_domain_takes_a_data_center_as_operators_name_it(env: MongoTokenStore) -> None:
    env.save_token(full("eve@example.com:1", api_domain=EU))
    env.save_token(full("carl@example.com:1", api_domain="https://www.zohoapis.com"))
    for spelling in ("eu", "EU", "www.zohoapis.eu", "zohoapis.eu", EU, EU + "/"):
        code, out, _ = run("list", "--domain", spelling)
        assert code == 0 and "eve@example.com" in out and "carl@" not in out, spelling
    code, _, err = run("list", "--domain", "mars")
    assert code == 1 and "'mars' is no Zoho data center; use one of US, EU, IN" in err


def test_cli_deletions_are_audited_like_the_dashboards(env: MongoTokenStore) -> None:
    alice, bob = full("alice@example.com:1"), full("bob@example.com:1")
    env.save_token(alice)
    env.save_token(bob)
    assert run("delete", alice.get_id(), "--yes", "--actor", "Olga")[0] == 0
    assert run("delete-all", "--yes")[0] == 0
    entries = list(env.collection.database["dashboard_audit"].find({}, {"_id": False}).sort("at", 1))
    assert [(e["who"], e["action"], e["deleted"]) for e in entries] == [
        ("Olga", "delete", 1), (f"{__import__('getpass').getuser()} (cli)", "delete-all", 1)]
    assert entries[0]["ids"] == [alice.get_id()] and entries[0]["user_names"] == ["alice@example.com:1"]


def _children_alive(marker: str) -> list[int]:
    """Pids of processes whose command line holds ``marker`` (our demo's data folder or port)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                command = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in command and int(entry) != os.getpid() and "-m pytest" not in command:
                found.append(int(entry))
    return found


def test_sigterm_stops_the_demo_and_its_children_and_a_busy_folder_is_refused(tmp_path: Any) -> None:
    from mongo_store.tools.embedded import free_port, mongod_binary

    if mongod_binary() is None:
        pytest.skip("needs the embedded mongod")
    data, port = tmp_path / "demo-data", free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_URI", "DASHBOARD_", "ZOHO_"))}
    demo = subprocess.Popen([sys.executable, "-m", "mongo_store.cli", "demo", "--port", str(port), "--data-dir",
                             str(data)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while not any(line.startswith("Dashboard:") for line in lines):
            assert demo.poll() is None and time.monotonic() < deadline, "".join(lines)
            lines.append(demo.stdout.readline())
        text = "".join(lines)
        assert "MongoDB: mongodb://127.0.0.1:" in text and "database: zoho_demo" in text
        assert "export MONGODB_URI=" in text and "Seeding 300 fake tokens" in text
        second = subprocess.run([sys.executable, "-m", "mongo_store.cli", "demo", "--port", str(free_port()),
                                 "--data-dir", str(data)], env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and f"the data folder {data} is in use by another mongod" in second.stderr
        time.sleep(2)  # Streamlit is starting
        assert _children_alive(str(data)) and _children_alive(f"--server.port {port}")
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _children_alive(str(data)) or _children_alive(f"--server.port {port}"):
            assert time.monotonic() < deadline, "children left behind"
            time.sleep(0.2)
    finally:
        if demo.poll() is None:
            demo.kill()


@pytest.mark.parametrize("argv, option", [
    (("list", "--page", "99999999999999999999"), "--page"),
    (("list", "--page-size", "1001"), "--page-size"),
    (("list", "--page-size", "0"), "--page-size"),
    (("--timeout", "inf", "list"), "--timeout"),
    (("list", "--timeout", "nan"), "--timeout"),
    (("--timeout", "0", "stats"), "--timeout"),
    (("--timeout", "1e300", "stats"), "--timeout"),
])
def test_absurd_numbers_are_usage_errors_in_one_line(env: MongoTokenStore, argv: tuple[str, ...], option: str) -> None:
    code, out, err = run(*argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and f"argument {option}: must be" in err
    assert "unexpected error" not in err and "URI" not in err


def test_export_force_never_follows_a_symbolic_link(env: MongoTokenStore, tmp_path: Any) -> None:
    env.save_token(full("alice@example.com:1"))
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("precious")
    elsewhere.chmod(0o644)
    link = tmp_path / "backup.jsonl"
    link.symlink_to(elsewhere)
    for extra in ((), ("--force",)):
        code, _, err = run("export", "--include-secrets", "-o", str(link), *extra)
        assert code == 1 and err.count("\n") == 1
        assert elsewhere.read_text() == "precious" and os.stat(elsewhere).st_mode & 0o777 == 0o644
    assert "is a symbolic link: not followed" in err
    dangling = tmp_path / "dangling.jsonl"
    dangling.symlink_to(tmp_path / "created-through-the-link.jsonl")
    assert run("export", "--include-secrets", "-o", str(dangling), "--force")[0] == 1
    assert not (tmp_path / "created-through-the-link.jsonl").exists()


STUBBORN = '''
import os, signal, sys
if os.environ.get("STUBBORN_STREAMLIT") and any("streamlit" in argument for argument in sys.orig_argv):
    # A Streamlit that ignores Ctrl-C and SIGTERM, as one with a browser connected was seen to.
    _set = signal.signal
    _set(signal.SIGTERM, signal.SIG_IGN)
    _set(signal.SIGINT, signal.SIG_IGN)
    signal.signal = lambda sig, handler: signal.SIG_IGN if sig in (signal.SIGTERM, signal.SIGINT) else _set(sig, handler)
'''


def _dashboard(tmp_path: Any, *, stubborn: bool) -> tuple[subprocess.Popen[bytes], int]:
    """``zoho-mongo-store dashboard`` in a session of its own (as at a terminal: a Ctrl-C there
    signals the whole foreground group), once Streamlit answers."""
    import urllib.request

    from mongo_store.tools.embedded import free_port

    (tmp_path / "sitecustomize.py").write_text(STUBBORN)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHBOARD_", "ZOHO_"))}
    env |= {"MONGODB_URI": "mongomock://", "DASHBOARD_PASSWORD": "pw",
            "PYTHONPATH": os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")]),
            **({"STUBBORN_STREAMLIT": "1"} if stubborn else {})}
    process = subprocess.Popen([sys.executable, "-m", "mongo_store.cli", "dashboard", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).status == 200:
                return process, port
        except OSError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.2)


def _gone_within(seconds: float, marker: str) -> float:
    started = time.monotonic()
    while _children_alive(marker):
        assert time.monotonic() - started < seconds, f"still running after {seconds} s: {marker}"
        time.sleep(0.05)
    return time.monotonic() - started


def _stopping_said(process: subprocess.Popen[bytes], seconds: float) -> bool:
    """Whether the command says "stopping…" on stderr within ``seconds`` (Streamlit shares it)."""
    import select

    assert process.stderr is not None
    deadline, said = time.monotonic() + seconds, b""
    while (left := deadline - time.monotonic()) > 0:
        if select.select([process.stderr], [], [], left)[0]:
            said += os.read(process.stderr.fileno(), 65536)
            if "stopping…".encode() in said:
                return True
    return False


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_while_stopping_kills_streamlit_at_once(tmp_path: Any, second: signal.Signals) -> None:
    process, port = _dashboard(tmp_path, stubborn=True)
    marker = f"--server.port {port}"
    try:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
        assert _stopping_said(process, 1.0)
        time.sleep(0.5)
        assert _children_alive(marker), "the stubborn Streamlit should still be running"
        os.kill(process.pid, second)  # a second Ctrl-C, or SIGTERM from a supervisor
        assert _gone_within(1.5, marker) < 1.5
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for pid in _children_alive(marker):
            os.kill(pid, signal.SIGKILL)


def test_a_streamlit_that_ignores_sigterm_is_killed_after_its_grace(tmp_path: Any) -> None:
    from mongo_store.cli.processes import STREAMLIT_GRACE

    process, port = _dashboard(tmp_path, stubborn=True)
    marker = f"--server.port {port}"
    try:
        process.send_signal(signal.SIGTERM)
        assert _stopping_said(process, 1.0)
        assert _gone_within(STREAMLIT_GRACE + 3, marker) > STREAMLIT_GRACE - 1
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for pid in _children_alive(marker):
            os.kill(pid, signal.SIGKILL)


def test_repeated_ctrl_c_never_leaves_streamlit_behind(tmp_path: Any) -> None:
    for attempt in range(3):
        process, port = _dashboard(tmp_path, stubborn=False)
        marker = f"--server.port {port}"
        try:
            os.killpg(process.pid, signal.SIGINT)
            if attempt:  # a second Ctrl-C, soon or at once
                time.sleep(0.3 * (attempt - 1))
                os.killpg(process.pid, signal.SIGINT)
            assert process.wait(timeout=10) == 0
            assert not _children_alive(marker), f"attempt {attempt}: Streamlit outlived the command"
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            for pid in _children_alive(marker):
                os.kill(pid, signal.SIGKILL)


def test_a_malformed_webhook_url_is_refused_without_echoing_it(env: MongoTokenStore) -> None:
    """A webhook's path is its secret: a URL that does not parse is a usage error that quotes nothing."""
    for url in ("https://[hooks.slack.com/services/T0/B0/SECRETPATH", "https://hooks.example.com/SECRET PATH"):
        code, out, err = run("alerts", "--webhook", url)
        assert code == 2 and "SECRET" not in out + err, err


def test_list_pages_by_keyset_and_prints_the_command_for_each_page(env: MongoTokenStore) -> None:
    import shlex

    tokens = [full(f"Femi.{n}@Wayne.Example:70021{n}", api_domain="https://www.zohoapis.uk") for n in range(5)]
    tokens.append(full("ann@acme.example:1"))
    for token in tokens:
        env.save_token(token)
    code, out, _ = run("list", "--search", "wayne.example", "--page-size", "2")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["id", "user_name", "health", "data_center", "expires_at",
                                              "last_refreshed_at", "access_token", "refresh_token", "grant_token",
                                              "reason"]
    assert lines[0].index("user_name") == lines[1].index("Femi.0")  # aligned columns
    assert "UK" in lines[1].split() and "••••" + tokens[0].get_grant_token()[-4:] in lines[1]  # the masked grant
    assert lines[1].endswith("the access token is valid, expires in " + lines[1].split("(in ")[1].split(")")[0])
    no_secrets(out, tokens)
    assert "# page 1 of 3, tokens 1-2 of 5" in lines
    seen = [line.split()[1] for line in lines[1:3]]
    while True:  # follow the printed next command to the end
        following = [line for line in out.splitlines() if line.startswith("# next: ")]
        if not following:
            break
        argv = shlex.split(following[0].removeprefix("# next: "))[1:]
        code, out, _ = run(*argv)
        assert code == 0
        seen += [line.split()[1] for line in out.splitlines()[1:] if not line.startswith("#")]
    assert seen == [f"Femi.{n}@Wayne.Example:70021{n}" for n in range(5)] and "# page 3 of 3, tokens 5-5 of 5" in out
    previous = next(line for line in out.splitlines() if line.startswith("# previous: "))
    code, out, _ = run(*shlex.split(previous.removeprefix("# previous: "))[1:])
    assert "# page 2 of 3, tokens 3-4 of 5" in out.splitlines()
    code, out, _ = run("list", "--search", "WAYNE", "--last", "--page-size", "2", "--format", "tsv")
    assert code == 0 and out.splitlines()[1].split("\t")[1] == "Femi.4@Wayne.Example:700214"
    code, out, err = run("list", "--search", "femi", "--json", "--page-size", "2")
    assert [json.loads(line)["user_name"] for line in out.splitlines()] == ["Femi.0@Wayne.Example:700210",
                                                                          "Femi.1@Wayne.Example:700211"]
    assert "# next: zoho-mongo-store list --search femi --page-size 2 --format json --after " in err
    code, out, _ = run("list", "--search", "nobody@")
    assert code == 0 and "no token's user name has an e-mail, e-mail domain or org id starting with 'nobody@'" in out
    assert run("list", "--after", "not-a-cursor")[2] == \
        "zoho-mongo-store: error: the page cursor is malformed (cut short or edited?): start again from the first page\n"
    code, _, err = run("list", "--page", "-2")
    assert code == 2 and "needs --after or --before" in err


def test_stats_names_health_first_and_says_how_expiry_differs(env: MongoTokenStore) -> None:
    seeded(env)
    code, out, _ = run("stats")
    lines = out.splitlines()
    assert code == 0 and lines[1] == "health (whether the Zoho connection works):"
    heading = [line for line in lines if line.startswith("access-token expiry")]
    assert heading and "not health" in heading[0] and lines.index(heading[0]) > lines.index("  unusable: 0  " +
                                                                                         admin_meaning("unusable"))
    assert "  expired:        1" in lines and "  EU (https://www.zohoapis.eu): 1" in lines
    assert not any(line.startswith("valid:") for line in lines)  # every expiry status under its heading


def admin_meaning(state: str) -> str:
    from mongo_store.tools import health

    return health.HEALTH_MEANING[state]


# -- issue 31: the CLI ------------------------------------------------------------------------------


def test_an_empty_list_names_the_search_and_every_filter(env: MongoTokenStore) -> None:
    env.save_token(full("wayne@wayne.example:1"))  # healthy: the search alone finds it
    code, out, _ = run("list", "--search", "wayne", "--health", "unusable", "--domain", "eu")
    assert code == 0 and out.splitlines() == [
        "# no tokens: no token matches all of: the search 'wayne' (the start of a user name's e-mail, e-mail domain "
        "or org id, any case, or of a token id), health unusable, data center EU (clear a filter to see what the "
        "search alone finds)"]
    assert run("list", "--health", "failing")[1] == "# no tokens: no token matches all of: health failing\n"


def test_a_server_that_refuses_the_connection_is_said_in_a_few_seconds() -> None:
    """Nothing listens on the port (MongoDB is not running): one sentence in about a second, not
    after the whole --timeout (15 s by default), as a subprocess, the way an operator runs it."""
    from mongo_store.tools.embedded import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_URI", "ZOHO_"))}
    env["MONGODB_URI"] = f"mongodb://127.0.0.1:{port}/"
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "mongo_store.cli", "stats"], env=env, capture_output=True,
                            text=True, timeout=60)
    took = time.monotonic() - started
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (f"zoho-mongo-store: error: nothing is listening at 127.0.0.1:{port} (connection refused): "
                             "start MongoDB there, or point MONGODB_URI (or --uri) at a running server\n")
    assert took < 6, took


def test_a_signal_while_a_child_starts_stops_that_child_too() -> None:
    """The start-up race, made certain: the first SIGTERM lands while a child is being started (inside
    ``Shutdown.starting``, as it does inside ``Popen`` on a loaded machine): it is held until the
    child is registered, then that child is stopped too and the command unwinds."""
    from mongo_store.cli.processes import Shutdown, Stop, stop_child

    shutdown = Shutdown()
    child = None
    with pytest.raises(Stop), shutdown.starting():
        shutdown.handle(signal.SIGTERM, None)  # the signal arrives mid-start: nothing raised yet
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        shutdown.children.append(lambda: child)
    assert child is not None
    try:
        assert child.wait(timeout=10) == -signal.SIGTERM  # asked to stop once it was known
    finally:
        stop_child(child, 1.0)

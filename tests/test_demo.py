"""The demo works offline and stays true: its own fake Zoho answers Check and Revoke of the seeded
tokens as Zoho would, a kept database keeps every token's state from one start to the next,
``--reset`` starts over, the data folder is the user's wherever the demo starts, the dashboard's
child process imports this package (not a ``mongo_store`` folder in the working directory), and
the admin commands never import the SDK."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from mongo_store.core.clock import utcnow
from mongo_store.core.indexes import ensure_indexes
from mongo_store.core.store import MongoTokenStore
from mongo_store.dashboard import data, demo, demo_zoho
from mongo_store.dashboard.settings import Settings
from mongo_store.testing import ZohoGuard
from mongo_store.tools import health
from mongo_store.tools.embedded import free_port, mongod_binary, user_data_dir
from mongo_store.tools.zoho import AlreadyRevoked, check, revoke

ROOT = Path(__file__).resolve().parent.parent
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_URI", "DASHBOARD_", "ZOHO_", "XDG_"))}


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every connection this process opens, refused unless it goes to 127.0.0.1 (and the real
    Zoho's names refused at the resolver too)."""
    opened: list[str] = []
    original = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            opened.append(address[0])
            assert address[0] == "127.0.0.1", f"a connection to {address[0]}"
        return original(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    with ZohoGuard() as guard:
        yield opened
    assert not guard.blocked


def taught(store: MongoTokenStore, count: int = 80) -> Any:
    demo.seed(store, count)
    fake = demo_zoho.start()
    demo_zoho.teach(fake, [store.open_document(d) for d in store.collection.find({})])
    return fake


def by_health(store: MongoTokenStore) -> dict[str, list[dict[str, Any]]]:
    now = utcnow()
    states: dict[str, list[dict[str, Any]]] = {}
    for document in store.collection.find({}):
        states.setdefault(health.health_of(document, now)[0], []).append(document)
    return states


def test_the_demos_fake_zoho_answers_check_and_revoke_as_zoho_with_no_network(
        real_store: MongoTokenStore, loopback_only: list[str]) -> None:
    fake = taught(real_store)
    accounts, api = demo_zoho.cli_settings(fake).values()
    try:
        states = by_health(real_store)
        healthy, failing = states["healthy"][0], states["failing"]
        assert check(real_store, healthy["_id"], accounts, api).result == "ok"  # its stored access token works
        idle_with_refresh = next(d for d in states["idle"] if d.get("refresh_token"))
        assert check(real_store, idle_with_refresh["_id"], accounts, api).result == "ok"  # refreshed at the fake
        assert health.health_of(real_store.collection.find_one({"_id": idle_with_refresh["_id"]}))[0] == "healthy"
        refused = [check(real_store, d["_id"], accounts, api).result for d in failing]
        assert refused and all(result in ("invalid_code", "INVALID_TOKEN") for result in refused), refused
        assert check(real_store, states["unusable"][0]["_id"], accounts, api).result.startswith("not checked: unusable")
        assert revoke(real_store, healthy["_id"], accounts) == f"127.0.0.1:{fake.port}"
        assert healthy["refresh_token"] in fake.revoked
        with_refresh = next(d for d in failing if d.get("refresh_token"))
        with pytest.raises(AlreadyRevoked):  # Zoho no longer knows a failing token's refresh token
            revoke(real_store, with_refresh["_id"], accounts)
    finally:
        fake.stop()
    assert Counter(r.name for r in fake.requests)["revoke"] == 1 and set(loopback_only) == {"127.0.0.1"}


def test_the_dashboard_sends_check_and_revoke_to_the_demos_fake(
        dashboard_env: MongoTokenStore, loopback_only: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    fake = taught(dashboard_env, 40)
    for name, value in demo_zoho.settings(fake).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ZOHO_DASHBOARD_DEMO", "1")
    settings = Settings.load()
    connection = data.connect(settings)
    try:
        healthy = by_health(dashboard_env)["healthy"]
        assert data.check(connection, healthy[0]["_id"], "Olga", "operator").result == "ok"
        assert data.revoke(connection, healthy[1]["_id"], "Olga", "operator") == f"127.0.0.1:{fake.port}"
        assert dashboard_env.collection.find_one({"_id": healthy[1]["_id"]}) is None
        note = demo.sidebar_note(settings)
        assert note == f"Check and Revoke go to the demo's local fake Zoho at {fake.url}: no internet needed."
    finally:
        connection.store.close()
        fake.stop()
    assert {r.name for r in fake.requests} == {"users", "revoke"}
    assert demo.sidebar_note(dataclasses.replace(settings, demo=False)) is None
    assert "do not know the demo's fake tokens" in str(demo.sidebar_note(dataclasses.replace(settings, accounts_url=None)))


def test_the_cli_checks_the_demos_tokens_at_its_fake(real_store: MongoTokenStore, mongo_uri: str, database_name: str,
                                                     loopback_only: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from test_cli import run

    fake = taught(real_store, 40)
    accounts, api = demo_zoho.cli_settings(fake).values()
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    states = by_health(real_store)
    try:
        code, out, err = run("--database", database_name, "check", states["healthy"][0]["_id"],
                             states["failing"][0]["_id"], "--accounts-url", accounts, "--api-url", api)
    finally:
        fake.stop()
    assert code == 1 and out.endswith("# checked 2: 1 ok, 1 not\n"), (out, err)
    first, second = (line.split("\t")[-1] for line in out.splitlines()[:2])
    assert first == "ok" and second in ("invalid_code", "INVALID_TOKEN")


def test_a_restart_keeps_every_state_however_long_the_demo_was_stopped(real_store: MongoTokenStore) -> None:
    demo.seed(real_store, 120)
    database = real_store.collection.database
    demo.stamp(database)
    gone = real_store.collection.find_one({})["_id"]
    real_store.collection.delete_one({"_id": gone})  # what the operator did is kept too
    before = {d["_id"]: health.health_of(d)[0] for d in real_store.collection.find({})}
    assert Counter(before.values())["healthy"] > 10
    later = utcnow() + timedelta(hours=5)  # the demo starts again five hours later
    shift = demo.keep_time(database, later)
    assert timedelta(hours=5) <= shift < timedelta(hours=5, minutes=1)
    after = {d["_id"]: health.health_of(d, later)[0] for d in real_store.collection.find({})}
    assert after == before and gone not in after
    # Without keeping the time, the healthy tokens would all have turned idle by then:
    database[demo.CLOCK_COLLECTION].delete_many({})
    assert demo.keep_time(database, later + timedelta(hours=5)) == timedelta(0)
    assert "healthy" not in {health.health_of(d, later + timedelta(hours=5))[0] for d in real_store.collection.find({})}


def test_the_in_memory_demos_fake_knows_the_tokens_the_dashboard_seeds(store: MongoTokenStore,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """mongomock lives in the dashboard's process, which seeds it when its first page opens: the
    fake learns the same tokens, dated from the same moment, from the same plan."""
    started = utcnow() - timedelta(minutes=30)  # the page opened half an hour after the demo started
    monkeypatch.setenv(demo.SEEDED_AT_ENV, started.isoformat())
    demo.seed(store, 50)
    planned = demo.planned_documents(50, now=started)

    def secrets(documents: Any) -> list[str]:
        return sorted(str([d.get(field) for field in ("refresh_token", "access_token", "grant_token", "expiry_time")])
                      for d in documents)

    assert secrets(planned) == secrets(store.collection.find({}))
    fake = demo_zoho.FakeZoho()
    try:
        assert 0 < demo_zoho.teach(fake, planned) < 50  # the failing ones stay unknown
    finally:
        fake.server.server_close()


def test_the_default_data_folder_is_the_users(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert user_data_dir("demo") == tmp_path / "zoho-mongo-store" / "demo"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert user_data_dir("demo") == Path.home() / ".local" / "share" / "zoho-mongo-store" / "demo"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert user_data_dir("demo") == Path.home() / ".local" / "share" / "zoho-mongo-store" / "demo"


def demo_until(moment: str, port: int, env: dict[str, str], *more: str, cwd: Path | None = None,
               own_group: bool = False) -> tuple[subprocess.Popen[str], str]:
    """Start the demo and read its output until a line starts with ``moment``: the running
    process, and its output up to then."""
    process = subprocess.Popen([sys.executable, "-m", "mongo_store.cli", "demo", "--port", str(port), *more],
                               cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=own_group)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while not any(line.startswith(moment) for line in lines):
            assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
            lines.append(process.stdout.readline() if process.stdout else "")
    except BaseException:
        process.kill()
        raise
    return process, "".join(lines)


def stopped_leaving_nothing(process: subprocess.Popen[str], *markers: str) -> None:
    """Stop the demo (SIGTERM) and see that no process whose command line holds a marker is left,
    also on a loaded machine (20 s)."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    deadline = time.monotonic() + 20
    while left := [pid for marker in markers for pid in alive(marker)]:
        assert time.monotonic() < deadline, f"left running: {left} ({markers})"
        time.sleep(0.2)


def start_demo(cwd: Path, env: dict[str, str], *more: str) -> str:
    """Run the demo until the dashboard starts, then stop it and see that no Streamlit of it is left
    running; its output up to then."""
    port = free_port()
    process, output = demo_until("Dashboard:", port, env, *more, cwd=cwd)
    stopped_leaving_nothing(process, f"--server.port {port}")
    return output


def test_the_demo_keeps_its_data_in_the_users_folder_and_reset_starts_over(tmp_path: Path) -> None:
    if mongod_binary() is None:
        pytest.skip("needs the embedded mongod")
    somewhere = tmp_path / "somewhere"
    somewhere.mkdir()
    env = CLEAN_ENV | {"XDG_DATA_HOME": str(tmp_path / "xdg"), "PYTHONPATH": str(ROOT)}
    folder = tmp_path / "xdg" / "zoho-mongo-store" / "demo"
    first = start_demo(somewhere, env)
    assert f"data kept in {folder}; --reset starts over" in first and "Seeding 300 fake tokens" in first
    assert "in a second terminal" in first and "local fake Zoho at http://127.0.0.1:" in first
    assert "sign in with any name" in first and not list(somewhere.iterdir())  # nothing in the working directory
    again = start_demo(tmp_path, env)
    assert "Seeding" not in again and "Kept data: every token is as it was when the demo stopped" in again
    reset = start_demo(tmp_path, env, "--reset")
    assert "Seeding 300 fake tokens" in reset


def test_the_dashboards_child_imports_this_package_not_one_in_the_working_directory(tmp_path: Path) -> None:
    from test_browser import _missing, chromium, wait_for

    if _missing():
        pytest.skip(_missing() or "")
    decoy = tmp_path / "mongo_store"
    decoy.mkdir()
    marker = tmp_path / "decoy-imported"
    (decoy / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\nraise ImportError('decoy')\n")
    port = free_port()
    # As the installed console script runs it: the package from the environment, not the working directory.
    command = [sys.executable, "-c", "import sys; del sys.path[0]; from mongo_store.cli import main; sys.exit(main())",
               "dashboard", "--port", str(port)]
    env = CLEAN_ENV | {"PYTHONPATH": str(ROOT), "MONGODB_URI": "mongomock://", "DASHBOARD_PASSWORD": "pw"}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 90
        while True:
            assert process.poll() is None and time.monotonic() < deadline, \
                process.stdout.read().decode() if process.stdout else ""
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.3)
        with chromium("1280,900") as browser:
            browser.get(url)  # the page runs the dashboard's script: it imports mongo_store
            wait_for(browser, "input[type=password]")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    output = process.stdout.read().decode() if process.stdout else ""
    assert not marker.exists(), output
    assert "No runtime found" not in output and "Traceback" not in output, output


PROBE = """
import sys
from mongo_store.cli import main
code = main(sys.argv[1:])
print(__import__("json").dumps({"code": code, "sdk": sorted(m for m in sys.modules if m.startswith("zohocrmsdk"))[:3]}))
"""


@pytest.mark.parametrize("argv", [("stats",), ("list",), ("show", "--user", "nobody@example.com:1"), ("stats", "--json"),
                                  ("events", "nobody"), ("audit",)])
def test_the_admin_commands_never_import_the_sdk(real_client: MongoClient, mongo_uri: str, database_name: str,
                                                 argv: tuple[str, ...]) -> None:
    with MongoTokenStore(client=real_client, database=database_name) as store:
        demo.seed(store, 20)
    env = CLEAN_ENV | {"PYTHONPATH": str(ROOT), "MONGODB_URI": mongo_uri, "ZOHO_MONGO_DATABASE": database_name}
    try:
        result = subprocess.run([sys.executable, "-c", PROBE, *argv], env=env, capture_output=True, text=True,
                                timeout=60, cwd=ROOT)
    finally:
        real_client.drop_database(database_name)
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["sdk"] == [], outcome
    assert outcome["code"] == (1 if argv[0] == "show" else 0), result.stderr
    if argv[0] == "show":  # an expected failure is still one sentence, through the admin path's own error
        assert result.stderr == "zoho-mongo-store: error: no stored token has user name 'nobody@example.com:1'\n"


def test_an_admin_command_that_cannot_reach_mongodb_fails_in_one_sentence_without_the_sdk() -> None:
    env = CLEAN_ENV | {"PYTHONPATH": str(ROOT), "MONGODB_URI": f"mongodb://127.0.0.1:{free_port()}/"}
    result = subprocess.run([sys.executable, "-c", PROBE, "--timeout", "1", "stats"], env=env, capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"code": 1, "sdk": []}
    assert result.stderr == "zoho-mongo-store: error: could not count the tokens: no MongoDB server reachable within 1 s\n"


def test_without_an_sdk_the_admin_commands_work_and_the_others_name_the_extra(real_client: MongoClient, mongo_uri: str,
                                                                                 database_name: str) -> None:
    blocked = "import sys; sys.modules['zohocrmsdk'] = None\n" + PROBE
    env = CLEAN_ENV | {"PYTHONPATH": str(ROOT), "MONGODB_URI": mongo_uri, "ZOHO_MONGO_DATABASE": database_name}
    try:
        ensure_indexes(real_client[database_name]["oauth_tokens"])  # the counts name them
        real_client[database_name]["oauth_tokens"].insert_one({"_id": "t1", "user_name": "a@example.com:1"})
        stats = subprocess.run([sys.executable, "-c", blocked, "stats", "--json"], env=env, capture_output=True,
                               text=True, timeout=60, cwd=ROOT)
        checked = subprocess.run([sys.executable, "-c", blocked, "check", "t1"], env=env, capture_output=True,
                                 text=True, timeout=60, cwd=ROOT)
    finally:
        real_client.drop_database(database_name)
    assert json.loads(stats.stdout.strip().splitlines()[-1])["code"] == 0 and '"total": 1' in stats.stdout, stats.stderr
    assert checked.stderr == ("zoho-mongo-store: error: check needs the Zoho CRM Python SDK, which is not installed: "
                              "pip install 'zoho-mongo-store[sdk8]' (or [sdk7], [sdk6], [sdk5] for an older API line)\n")


# -- issue 31: the demo and the CLI side by side, a busy port, a stop at any moment ---------------

GUARD = '''
import os, socket
_log, _connect, _resolve = os.environ["GUARD_LOG"], socket.socket.connect, socket.getaddrinfo
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _note(what):
    with open(_log, "a") as out:
        out.write(what + "\\n")


def getaddrinfo(host, *args, **kwargs):
    if host is not None and str(host) not in LOOPBACK:
        _note(f"resolve {host}")
        raise socket.gaierror(socket.EAI_NONAME, f"the test's guard refuses {host}")
    return _resolve(host, *args, **kwargs)


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
        _note(f"connect {address[0]}")
        raise ConnectionRefusedError(f"the test's guard refuses {address[0]}")
    return _connect(self, address)


socket.getaddrinfo, socket.socket.connect = getaddrinfo, connect
'''
"""A ``sitecustomize`` for the CLI's subprocess: every name it resolves and every address it
connects to, other than this machine, is written down and refused (the testing kit's guard does
not reach into a subprocess)."""


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def pasted(output: str) -> dict[str, str]:
    """The variables of the ``export`` line the demo prints for a second terminal."""
    import shlex

    line = next(line for line in output.splitlines() if "export MONGODB_URI=" in line)
    words = shlex.split(line.split("export ", 1)[1])
    return dict(word.split("=", 1) for word in words)


def test_the_pasted_line_points_the_cli_at_the_demos_fake_zoho_and_never_at_zoho(tmp_path: Path) -> None:
    """The README's way: the demo prints one line; pasted into a second terminal, `check --health
    failing` asks the demo's fake Zoho (the failing tokens refused as Zoho would), and not one name
    or address outside this machine is tried (a guard in the CLI's own process writes down every
    attempt). Without the Zoho part of the line, the same command does try Zoho's hosts: the guard
    sees it. The fake keeps its port at the next start, so the pasted line keeps working."""
    if mongod_binary() is None:
        pytest.skip("needs the embedded mongod")
    guard_dir = tmp_path / "guard"
    guard_dir.mkdir()
    (guard_dir / "sitecustomize.py").write_text(GUARD)
    data, log = tmp_path / "demo-data", tmp_path / "attempts.log"
    process, output = demo_until("Dashboard:", free_port(), CLEAN_ENV | {"PYTHONPATH": str(ROOT)}, "--data-dir",
                                 str(data), own_group=True)
    try:
        line = pasted(output)
        assert set(line) == {"MONGODB_URI", "ZOHO_MONGO_DATABASE", "ZOHO_ACCOUNTS_URL", "ZOHO_API_URL"}, line
        assert line["ZOHO_ACCOUNTS_URL"].startswith("http://127.0.0.1:") and line["ZOHO_API_URL"].startswith("http://127.0.0.1:")
        cli_env = CLEAN_ENV | {"PYTHONPATH": f"{guard_dir}{os.pathsep}{ROOT}", "GUARD_LOG": str(log)}

        def cli(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "mongo_store.cli", *argv], env=env, capture_output=True,
                                  text=True, timeout=120, cwd=tmp_path)

        checked = cli("check", "--health", "failing", env=cli_env | line)
        rows = [row.split("\t") for row in checked.stdout.splitlines() if not row.startswith("#")]
        assert checked.returncode == 1 and rows, (checked.stdout, checked.stderr)
        assert all(row[-1] in ("invalid_code", "INVALID_TOKEN") for row in rows), rows  # Zoho's answers, from the fake
        assert not log.exists(), log.read_text()  # no attempt outside this machine
        assert cli("stats", env=cli_env | line).returncode == 0 and not log.exists()
        database_only = {key: line[key] for key in ("MONGODB_URI", "ZOHO_MONGO_DATABASE")}
        listed = cli("list", "--health", "healthy", "--format", "tsv", env=cli_env | database_only)
        healthy = listed.stdout.splitlines()[1].split("\t")[0]
        before = cli("check", healthy, env=cli_env | database_only)  # the line as it was: Zoho's own hosts are tried
        assert "not checked" in before.stdout and "zoho" in log.read_text(), (before.stdout, before.stderr)
    finally:
        stop(process)
    again, output = demo_until("Dashboard:", free_port(), CLEAN_ENV | {"PYTHONPATH": str(ROOT)}, "--data-dir",
                               str(data), own_group=True)
    try:
        assert pasted(output)["ZOHO_ACCOUNTS_URL"] == line["ZOHO_ACCOUNTS_URL"]  # the same port: the pasted line works
    finally:
        stop(again)


def test_a_busy_port_is_refused_before_anything_starts_and_names_the_option(tmp_path: Path) -> None:
    import socket as sockets

    data = tmp_path / "demo-data"
    with sockets.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        started = time.monotonic()
        for command in (["demo", "--data-dir", str(data)], ["dashboard"]):
            result = subprocess.run([sys.executable, "-m", "mongo_store.cli", *command, "--port", str(port)],
                                    env=CLEAN_ENV | {"PYTHONPATH": str(ROOT), "MONGODB_URI": "mongomock://"},
                                    capture_output=True, text=True, timeout=60, cwd=tmp_path)
            assert result.returncode == 1 and result.stdout == "", (result.stdout, result.stderr)
            assert result.stderr.startswith(f"zoho-mongo-store: error: port {port} on 127.0.0.1 is already in use")
            assert "pass a free one with --port, such as --port " in result.stderr and result.stderr.count("\n") == 1
    assert not data.exists() and time.monotonic() - started < 30  # no mongod, no seeding, no Streamlit


def test_the_demo_refuses_the_database_flags_it_would_ignore_and_says_what_port_is() -> None:
    for flags in (["--uri", "mongodb://example.test/"], ["--database", "prod"], ["--collection", "x", "--database", "y"]):
        result = subprocess.run([sys.executable, "-m", "mongo_store.cli", "demo", *flags], capture_output=True,
                                text=True, timeout=60, env=CLEAN_ENV | {"PYTHONPATH": str(ROOT)})
        assert result.returncode == 2 and "the demo runs on its own embedded database" in result.stderr, result.stderr
        assert all(flag in result.stderr for flag in flags if flag.startswith("--"))
    helped = subprocess.run([sys.executable, "-m", "mongo_store.cli", "demo", "--help"], capture_output=True, text=True,
                            timeout=60, env=CLEAN_ENV | {"PYTHONPATH": str(ROOT)})
    assert "the dashboard's port (default 8501)" in " ".join(helped.stdout.split())


def test_the_demos_dates_agree_and_its_history_spreads_over_the_week(real_store: MongoTokenStore) -> None:
    from mongo_store.core.mapping import REFRESHED_FIELD

    demo.seed(real_store, 120)
    now = utcnow()
    for document in real_store.collection.find({}):
        created = document["created_at"]
        assert created <= document["updated_at"], document["_id"]
        if document.get(REFRESHED_FIELD):
            assert created < document[REFRESHED_FIELD] <= now, document["_id"]
    states = Counter(health.health_of(d, now)[0] for d in real_store.collection.find({}))
    later = Counter(health.health_of(d, now + timedelta(minutes=11))[0] for d in real_store.collection.find({}))
    assert states["unusable"] == later["unusable"]  # no grant token turns unusable ten minutes into the demo
    days = Counter(event["at"].date() for event in real_store.events.find({"event": "refreshed"}))
    assert len(days) >= 7 and max(days.values()) < 3 * min(count for day, count in days.items()
                                                            if day not in (min(days), max(days)))


def alive(marker: str) -> list[int]:
    from test_cli import _children_alive

    return _children_alive(marker)


@pytest.mark.parametrize("moment", ["Starting the embedded mongod", "Seeding", "MongoDB:", "Dashboard:"])
def test_a_stop_at_any_moment_of_the_start_leaves_nothing_running(tmp_path: Path, moment: str) -> None:
    """SIGTERM as soon as the demo prints each line of its start (the mongod starting, the seeding,
    Streamlit about to start): the demo ends and no mongod or Streamlit of it is left, checked by
    their command lines."""
    if mongod_binary() is None:
        pytest.skip("needs the embedded mongod")
    data, port = tmp_path / "demo-data", free_port()
    process, _ = demo_until(moment, port, CLEAN_ENV | {"PYTHONPATH": str(ROOT)}, "--data-dir", str(data))
    stopped_leaving_nothing(process, str(data), f"--server.port {port}")

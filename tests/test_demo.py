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
    accounts, api = demo_zoho.settings(fake).values()
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
        assert data.check(connection, healthy[0]["_id"], "Olga").result == "ok"
        assert data.revoke(connection, healthy[1]["_id"], "Olga") == f"127.0.0.1:{fake.port}"
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
    accounts, api = demo_zoho.settings(fake).values()
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


def start_demo(cwd: Path, env: dict[str, str], *more: str) -> str:
    """Run the demo until the dashboard starts, then stop it (SIGTERM); its output up to then."""
    process = subprocess.Popen([sys.executable, "-m", "mongo_store.cli", "demo", "--port", str(free_port()), *more],
                               cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while not any(line.startswith("Dashboard:") for line in lines):
            assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
            lines.append(process.stdout.readline() if process.stdout else "")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return "".join(lines)


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

"""The exporter, the webhook alerts and the cheap health counts, on the real server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from bson.codec_options import CodecOptions, DatetimeConversion
from prometheus_client.parser import text_string_to_metric_families
from pymongo import MongoClient
from tokens import full, oauth, secret, values

from mongo_store import MongoTokenStore, cli
from mongo_store.core.clock import utcnow
from mongo_store.core.indexes import ensure_indexes
from mongo_store.core.mapping import SECRET_FIELDS
from mongo_store.tools import alerts, health, metrics, stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def epoch_ms(when: datetime) -> str:
    return str(int(when.replace(tzinfo=timezone.utc).timestamp() * 1000))


class Hook:
    """A webhook on 127.0.0.1 that records each JSON body and answers with ``statuses`` in turn (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.statuses = list(statuses or [])
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                status = hook.statuses.pop(0) if hook.statuses else 200
                if status == 200:
                    hook.raw.append(data)
                    hook.bodies.append(json.loads(data))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T0/B0/s3cr3t-path"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


def lapsed_token(user: str) -> Any:
    return full(user, expires_in=epoch_ms(utcnow() - timedelta(minutes=5)))


def make_failing(store: MongoTokenStore, token: Any) -> None:
    """A refresh that never saves: the worker takes the lease and dies; once it lapses, failing."""
    store.find_token_by_id(token.get_id())
    time.sleep(0.4)


def fast(hook_url: str) -> alerts.Webhook:
    return alerts.Webhook(hook_url, timeout=5, retries=2, backoff=0.01)


def no_secret(raw: list[bytes], tokens: list[Any]) -> None:
    for token in tokens:
        for name in SECRET_FIELDS:
            value = values(token).get(name)
            if value:
                assert all(value.encode() not in body for body in raw), name


# -- the counts ---------------------------------------------------------------------------------

def test_the_unusable_count_fetches_only_the_tokens_without_a_refresh_token(real_store: MongoTokenStore,
                                                                            mongo_uri: str) -> None:
    """2,000 lapsed idle tokens and 10 unusable: the counts fetch no idle one (the old count fetched them all)."""
    now = utcnow().replace(microsecond=0)
    ensure_indexes(real_store.collection)
    real_store.collection.insert_many(
        [{"_id": f"i{n:05d}", "refresh_token": f"r{n}", "access_token": f"a{n}", "expiry_time": now - timedelta(hours=1)}
         for n in range(2000)]
        + [{"_id": f"u{n:02d}", "access_token": f"x{n}", "expiry_time": now - timedelta(hours=1)} for n in range(10)])
    from test_real_server import Recorder

    recorder = Recorder()
    client = MongoClient(mongo_uri, event_listeners=[recorder])
    try:
        collection = client[real_store.collection.database.name][real_store.collection.name]
        counts = stats.stats(collection, now)
        assert counts["health"] == {"healthy": 0, "idle": 2000, "failing": 0, "unusable": 10}
        fetched = 0
        for command in recorder.commands:
            if next(iter(command)) == "aggregate":
                plan = collection.database.command({"explain": command, "verbosity": "executionStats"},
                                                   codec_options=CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO))
                fetched += plan["stages"][0]["$cursor"]["executionStats"]["totalDocsExamined"]
        assert fetched <= 20, fetched
    finally:
        client.close()


def test_counts_stay_exact_with_a_null_refresh_token_and_without_the_index(real_store: MongoTokenStore) -> None:
    now = utcnow().replace(microsecond=0)
    ensure_indexes(real_store.collection)
    lapsed = now - timedelta(hours=1)
    real_store.collection.insert_many([
        {"_id": "null", "refresh_token": None, "access_token": "a1", "expiry_time": lapsed},  # idle by the rule ($exists)
        {"_id": "gone", "access_token": "a2", "expiry_time": lapsed},
        {"_id": "grant", "grant_token": "g", "updated_at": now - timedelta(hours=1)},
        {"_id": "grant-lapsed", "grant_token": "g2", "updated_at": now - timedelta(hours=1), "expiry_time": lapsed},
        {"_id": "ok", "refresh_token": "r", "access_token": "a3", "expiry_time": now + timedelta(hours=1)},
    ])
    # The filters' own answer ($exists: a null refresh token counts as one; the store never writes null).
    rule = {name: real_store.collection.count_documents(health.health_filter(name, now)) for name in health.HEALTH}
    assert rule == {"healthy": 1, "idle": 1, "failing": 0, "unusable": 3}
    assert stats.stats(real_store.collection, now)["health"] == rule
    real_store.collection.drop_index(health.NO_REFRESH_INDEX)  # a read-only user on an older deployment
    assert stats.stats(real_store.collection, now)["health"] == rule


# -- the exporter -------------------------------------------------------------------------------

def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def health_json(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def serving() -> Iterator[Any]:
    started = []

    def serve(exporter: metrics.Exporter) -> int:
        httpd = metrics.server("127.0.0.1", 0, exporter)
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        started.append(httpd)
        return httpd.server_port

    yield serve
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


def test_the_exporter_reports_what_stats_counts(real_store: MongoTokenStore, serving: Any) -> None:
    tokens = [full("alice@example.com:1", expires_in=epoch_ms(utcnow() + timedelta(hours=1))),
              full("bob@example.com:1", expires_in=epoch_ms(utcnow() - timedelta(hours=1)),
                   api_domain="https://www.zohoapis.eu"),
              full("carol@example.com:1", expires_in=epoch_ms(utcnow() + timedelta(hours=1)),
                   api_domain="https://sandbox.zohoapis.com")]
    for token in tokens:
        real_store.save_token(token)
    real_store.collection.update_one({"_id": tokens[0].get_id()}, {"$set": {"check_error": "INVALID_TOKEN"}})
    exporter = metrics.Exporter(lambda: metrics.count(real_store.collection), 60)
    exporter.refresh()
    found = scrape(serving(exporter))
    assert found["zoho_store_up"] == {(): 1.0}
    counted = stats.stats(real_store.collection)["health"]
    assert {dict(k)["health"]: v for k, v in found["zoho_store_tokens"].items()} == counted == \
        {"healthy": 1, "idle": 1, "failing": 1, "unusable": 0}  # every state, 0 included
    centers = {dict(k)["data_center"]: v for k, v in found["zoho_store_tokens_by_data_center"].items()}
    assert centers == {**dict.fromkeys(metrics.DATA_CENTER_LABELS, 0), "US": 1, "EU": 1, "other": 1}
    assert {dict(k)["reason"]: v for k, v in found["zoho_store_failing_tokens_by_reason"].items()} == \
        {"refresh-failed": 0, "lease-lapsed": 0, "check-failed": 1}
    latest = max(d["last_refreshed_at"] for d in real_store.collection.find())
    assert found["zoho_store_last_refresh_timestamp_seconds"][()] == pytest.approx(metrics.epoch(latest))
    assert abs(found["zoho_store_counts_timestamp_seconds"][()] - time.time()) < 600
    text = urllib.request.urlopen(f"http://127.0.0.1:{serving(exporter)}/metrics", timeout=10).read().decode()
    for token in tokens:  # no id, user name or secret in any label
        assert token.get_id() not in text and "example.com" not in text
        assert all(value not in text for name, value in values(token).items() if name in SECRET_FIELDS and value)


def test_a_scrape_never_waits_for_mongodb_and_a_failed_count_says_why(serving: Any) -> None:
    release, calls = threading.Event(), []

    def counter() -> metrics.Counts:
        calls.append(1)
        if len(calls) == 1:
            release.wait(60)  # a count that hangs
        raise RuntimeError("MongoDB did not answer within 15 s")

    exporter = metrics.Exporter(counter, 60)
    port = serving(exporter)
    threading.Thread(target=exporter.refresh, daemon=True).start()
    while not calls:
        time.sleep(0.01)
    assert scrape(port) == {"zoho_store_up": {(): 0.0}}  # answered while the count hangs
    assert health_json(port) == (503, {"mongodb": "down", "interval_seconds": 60, "error": "not counted yet"})
    release.set()
    exporter.refresh()
    status, body = health_json(port)
    assert status == 503 and body["error"] == "MongoDB did not answer within 15 s"


@pytest.mark.parametrize("text", ["127.0.0.1", "127.0.0.1:99999", "example.com:80", "1.2.3.4:x", "[::1]"])
def test_listen_parses_strictly(text: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.parser().parse_args(["metrics", "--listen", text])
    assert exit_.value.code == 2


def test_the_exporter_listens_on_loopback_by_default() -> None:
    args = cli.parser().parse_args(["metrics"])
    assert args.listen == ("127.0.0.1", 9464) and args.interval == 60
    assert cli.parser().parse_args(["metrics", "--listen", "[::1]:0"]).listen == ("::1", 0)


# -- webhook alerts -----------------------------------------------------------------------------

def test_the_first_pass_is_a_baseline_then_one_alert_per_episode_and_one_recovery(real_store: MongoTokenStore,
                                                                                  hook: Hook) -> None:
    store = MongoTokenStore(client=real_store.client, database=real_store.collection.database.name,
                            refresh_lease=0.3, refresh_wait=0.05)
    old = oauth(None, client=False, access_token=secret("access"), expires_in=epoch_ms(utcnow() - timedelta(hours=1)))
    store.save_token(old)  # unusable before alerts were turned on
    alice = lapsed_token("alice@example.com:1")
    store.save_token(alice)
    state = alerts.alert_state(store.collection)
    first = alerts.run_pass(store.collection, state, fast(hook.url))
    assert first.baseline == 1 and hook.bodies == []

    make_failing(store, alice)
    for _ in range(3):  # the same episode: alerted once
        alerts.run_pass(store.collection, state, fast(hook.url))
    assert [(b["event"], b["token_id"], b["health"], b["data_center"]) for b in hook.bodies] == \
        [("alert", alice.get_id(), "failing", "US")]
    assert hook.bodies[0]["user_name"] == "alice@example.com:1" and "lapsed" in hook.bodies[0]["reason"]
    assert "alice@example.com:1" in hook.bodies[0]["text"]

    store.save_token(full("alice@example.com:1", expires_in=epoch_ms(utcnow() + timedelta(hours=1))))
    for _ in range(2):
        alerts.run_pass(store.collection, state, fast(hook.url))
    assert [(b["event"], b["health"]) for b in hook.bodies] == [("alert", "failing"), ("recovery", "healthy")]
    store.delete_token(old.get_id())  # a baseline token: nobody was told, so no recovery either
    alerts.run_pass(store.collection, state, fast(hook.url))
    assert len(hook.bodies) == 2
    no_secret(hook.raw, [old, alice])


def test_a_failed_delivery_is_retried_with_back_off_then_next_pass(real_store: MongoTokenStore, hook: Hook) -> None:
    store = MongoTokenStore(client=real_store.client, database=real_store.collection.database.name,
                            refresh_lease=0.3, refresh_wait=0.05)
    tokens = [lapsed_token(f"u{n}@example.com:1") for n in range(3)]
    for token in tokens:
        store.save_token(token)
    state = alerts.alert_state(store.collection)
    alerts.run_pass(store.collection, state, fast(hook.url))  # the baseline: none failing
    for token in tokens:
        make_failing(store, token)
    waits: list[float] = []
    hook.statuses = [500, 503, 200]  # the first message gets through on its third attempt
    webhook = alerts.Webhook(hook.url, timeout=5, retries=2, backoff=0.5, sleep=waits.append)
    assert alerts.run_pass(store.collection, state, webhook).alerted == [t.get_id() for t in sorted(tokens, key=lambda t: t.get_id())]
    assert waits == [0.5, 1.0]
    more = [lapsed_token(f"v{n}@example.com:1") for n in range(2)]
    for token in more:
        store.save_token(token)
        make_failing(store, token)
    hook.statuses = [500, 500, 500]
    report = alerts.run_pass(store.collection, state, webhook)
    assert report.undelivered == 2 and report.alerted == []  # the second is not tried once the webhook failed
    assert "HTTP 500, after 3 attempts" in report.summary() and "s3cr3t" not in report.summary()
    assert alerts.run_pass(store.collection, state, webhook).alerted == sorted(t.get_id() for t in more)
    assert len(hook.bodies) == 5


def test_two_passes_at_once_send_each_message_once(real_store: MongoTokenStore, hook: Hook) -> None:
    store = MongoTokenStore(client=real_store.client, database=real_store.collection.database.name,
                            refresh_lease=0.3, refresh_wait=0.05)
    tokens = [lapsed_token(f"u{n}@example.com:1") for n in range(10)]
    for token in tokens:
        store.save_token(token)
    state = alerts.alert_state(store.collection)
    alerts.run_pass(store.collection, state, fast(hook.url))
    for token in tokens:
        store.find_token_by_id(token.get_id())
    time.sleep(0.4)
    passes = [threading.Thread(target=alerts.run_pass, args=(store.collection, state, fast(hook.url))) for _ in range(4)]
    for thread in passes:
        thread.start()
    for thread in passes:
        thread.join()
    assert sorted(b["token_id"] for b in hook.bodies) == sorted(t.get_id() for t in tokens)


def test_a_user_name_cannot_ping_a_slack_channel() -> None:
    problem = alerts.Problem("t1", "<!channel> & co", "failing", "the last check failed: <x>", "eu")
    assert "<!channel>" not in problem.alert()["text"] and "&lt;!channel&gt; &amp; co" in problem.alert()["text"]


def run_cli(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mongo_store.cli", *argv], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=ROOT, timeout=120)


def test_the_alerts_command_exits_1_in_one_line_when_a_message_is_not_delivered(real_store: MongoTokenStore,
                                                                               mongo_uri: str, hook: Hook) -> None:
    env = {"MONGODB_URI": mongo_uri, "ZOHO_MONGO_DATABASE": real_store.collection.database.name}
    store = MongoTokenStore(client=real_store.client, database=real_store.collection.database.name,
                            refresh_lease=0.3, refresh_wait=0.05)
    token = lapsed_token("alice@example.com:1")
    store.save_token(token)
    first = run_cli("alerts", "--webhook", hook.url, env=env)
    assert first.returncode == 0 and "baseline" in first.stdout
    make_failing(store, token)
    hook.statuses = [404]  # not retried: a wrong URL does not fix itself
    failed = run_cli("alerts", env={**env, "ZOHO_MONGO_ALERT_WEBHOOK": hook.url})
    assert failed.returncode == 1 and len(failed.stderr.splitlines()) == 1 and "Traceback" not in failed.stderr
    assert "HTTP 404" in failed.stderr and "s3cr3t" not in failed.stderr + failed.stdout
    again = run_cli("alerts", "--webhook", hook.url, env=env)
    assert again.returncode == 0 and "sent 1 alert(s)" in again.stdout
    assert [b["event"] for b in hook.bodies] == ["alert"]
    missing = run_cli("alerts", env={**env, "ZOHO_MONGO_ALERT_WEBHOOK": ""})
    assert missing.returncode == 1 and "no webhook" in missing.stderr


# -- the command, end to end --------------------------------------------------------------------

class Running:
    """``zoho-mongo-store metrics`` in a child process; always stopped."""

    def __init__(self, *argv: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "mongo_store.cli", "metrics", *argv], cwd=ROOT,
                                        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        line = self.process.stdout.readline() if self.process.stdout else ""
        match = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line)
        if not match:
            self.stop()
            raise AssertionError(f"no address in {line!r}: {self.process.stderr.read() if self.process.stderr else ''}")
        self.port = int(match.group(1))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def wait_for(what: Any, seconds: float = 90) -> Any:
    """Poll until ``what()`` is truthy (a generous bound: the machine is shared)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("not within the bound")


def test_after_a_token_turns_failing_the_gauges_follow_and_the_webhook_hears_once(real_store: MongoTokenStore,
                                                                                  mongo_uri: str, hook: Hook) -> None:
    store = MongoTokenStore(client=real_store.client, database=real_store.collection.database.name,
                            refresh_lease=0.3, refresh_wait=0.05)
    alice = lapsed_token("alice@example.com:1")
    store.save_token(alice)
    env = {"MONGODB_URI": mongo_uri, "ZOHO_MONGO_DATABASE": real_store.collection.database.name}
    running = Running("--listen", "127.0.0.1:0", "--interval", "1", "--webhook", hook.url, env=env)
    try:
        state = alerts.alert_state(store.collection)
        wait_for(lambda: state.find_one({"_id": alerts.BASELINE_ID}))  # the first pass: the baseline
        make_failing(store, alice)
        changed = time.time()

        def counted_after() -> dict[str, Any] | None:
            body = health_json(running.port)[1]
            at = body.get("counted_at")
            return body if at and datetime.fromisoformat(at[:-1]).replace(tzinfo=timezone.utc).timestamp() > changed else None

        body = wait_for(counted_after)  # the first count made after the change already shows it
        assert body["health"]["failing"] == 1 and body["failing_reasons"]["lease-lapsed"] == 1
        assert {dict(k)["health"]: v for k, v in scrape(running.port)["zoho_store_tokens"].items()}["failing"] == 1
        wait_for(lambda: hook.bodies)
        passes_later = wait_for(counted_after)["counted_at"]
        wait_for(lambda: health_json(running.port)[1]["counted_at"] > passes_later)  # more intervals pass
        assert [b["event"] for b in hook.bodies] == ["alert"]

        store.save_token(full("alice@example.com:1", expires_in=epoch_ms(utcnow() + timedelta(hours=1))))
        wait_for(lambda: len(hook.bodies) == 2)
        seen = health_json(running.port)[1]["counted_at"]
        wait_for(lambda: health_json(running.port)[1]["counted_at"] > seen)
        time.sleep(2.5)  # two more passes, at least
        assert [(b["event"], b["health"]) for b in hook.bodies] == [("alert", "failing"), ("recovery", "healthy")]
        no_secret(hook.raw, [alice])
    finally:
        code = running.stop()
    assert code == 0


# -- issue 29 -----------------------------------------------------------------------------------


def test_a_document_with_an_odd_id_is_named_and_skipped_by_the_alert_pass(real_store: MongoTokenStore, mongo_uri: str,
                                                                          hook: Hook) -> None:
    """F6: one document whose ``_id`` is no string stopped every ``alerts`` pass ("unexpected error
    (TypeError)": ids of two types sorted), and the failing token beside it was never alerted."""
    from bson import ObjectId

    env = {"MONGODB_URI": mongo_uri, "ZOHO_MONGO_DATABASE": real_store.collection.database.name}
    store = MongoTokenStore(client=real_store.client, database=real_store.collection.database.name,
                            refresh_lease=0.3, refresh_wait=0.05)
    token = lapsed_token("alice@example.com:1")
    store.save_token(token)
    assert "baseline" in run_cli("alerts", "--webhook", hook.url, env=env).stdout
    make_failing(store, token)
    lapsed = utcnow() - timedelta(days=1)
    odd = ObjectId()
    store.collection.insert_many([{"_id": 42, "access_token": "x", "expiry_time": lapsed},  # unusable, by hand
                                  {"_id": odd, "access_token": "y", "expiry_time": lapsed}])
    for _ in range(2):
        done = run_cli("alerts", "--webhook", hook.url, env=env)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert "skipped 2 document(s) whose id is no string (42, ObjectId" in done.stdout, done.stdout
    assert [(body["event"], body["token_id"]) for body in hook.bodies] == [("alert", token.get_id())]


def test_a_date_beyond_year_9999_never_takes_the_exporter_or_a_page_down(real_store: MongoTokenStore,
                                                                         mongo_uri: str) -> None:
    """F7: one ``last_refreshed_at`` beyond year 9999 (a JavaScript writer's) made ``/metrics`` and
    ``/health`` answer 500, so the target looked down; and the "next:" cursor ``list`` printed past
    it was refused as malformed."""
    from bson.datetime_ms import DatetimeMS

    store = MongoTokenStore(client=real_store.client, database=real_store.collection.database.name)
    good, odd = full("good@example.com:1"), full("odd@example.com:1")
    store.save_token(good)
    store.save_token(odd)
    store.collection.update_one({"_id": odd.get_id()}, {"$set": {"last_refreshed_at": DatetimeMS(2 ** 60)}})
    refreshed = store.collection.find_one({"_id": good.get_id()})["last_refreshed_at"]
    env = {"MONGODB_URI": mongo_uri, "ZOHO_MONGO_DATABASE": real_store.collection.database.name}
    running = Running("--listen", "127.0.0.1:0", "--interval", "1", env=env)
    try:
        status, body = wait_for(lambda: (lambda got: got if got[1].get("counted_at") else None)(health_json(running.port)))
        assert status == 200 and body["mongodb"] == "up" and body["health"]["healthy"] == 2
        assert body["last_refresh_at"] == refreshed.isoformat() + "Z"
        assert body["skipped"] == [f"token {odd.get_id()}: last_refreshed_at is beyond the dates Python holds"]
        scraped = scrape(running.port)
        assert scraped["zoho_store_up"][()] == 1
        assert scraped["zoho_store_last_refresh_timestamp_seconds"][()] == metrics.epoch(refreshed)
    finally:
        assert running.stop() == 0
    first = run_cli("list", "--sort", "refreshed", "--descending", "--page-size", "1", env=env)
    assert first.returncode == 0 and odd.get_id() in first.stdout, first.stdout + first.stderr
    after = re.search(r"# next: zoho-mongo-store (.*)$", first.stdout, re.MULTILINE)
    assert after is not None, first.stdout
    second = run_cli(*after.group(1).split(), env=env)
    assert second.returncode == 0 and good.get_id() in second.stdout, second.stdout + second.stderr


def test_an_alert_carries_bounded_plain_text(real_store: MongoTokenStore, hook: Hook) -> None:
    """Suspected, real: a webhook payload's ``user_name`` and ``reason`` were stored text of any
    length (a 4,000-character user name; a check error written by hand, here 100,000 characters),
    only its ``text`` was bounded."""
    store = MongoTokenStore(client=real_store.client, database=real_store.collection.database.name)
    state = alerts.alert_state(store.collection)
    alerts.run_pass(store.collection, state, fast(hook.url))  # the baseline: nothing yet
    token = full("a" * 4000 + "@example.com:1")
    store.save_token(token)
    store.collection.update_one({}, {"$set": {"check_error": "E\x1b[2J" + "x" * 100_000}})
    alerts.run_pass(store.collection, state, fast(hook.url))
    [body] = hook.bodies
    assert body["health"] == "failing" and body["token_id"] == token.get_id()
    for key in ("user_name", "reason", "text"):
        assert len(body[key]) <= alerts.TEXT_LIMIT * (3 if key == "text" else 1) and body[key].isprintable(), key
    assert body["user_name"].endswith("…") and body["reason"].startswith("the last check failed: E\\x1b[2J")
    assert len(hook.raw[0]) < 2000


def test_the_exporter_drops_a_connection_that_sends_nothing() -> None:
    """Suspected, real: the exporter's server had no socket timeout, so a client that connects and
    sends nothing (or half a request) held a thread of it for ever (here: for its 10 s)."""
    import socket

    exporter = metrics.Exporter(lambda: metrics.Counts(utcnow(), {}, {}, {}, None, 0.0), 60)
    httpd = metrics.server("127.0.0.1", 0, exporter)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", httpd.server_port), timeout=5) as idle:
            idle.sendall(b"GET /metrics HTTP/1.1\r\n")  # and nothing more
            started = time.monotonic()
            idle.settimeout(30)
            assert idle.recv(1024) == b""  # closed by the server
            assert time.monotonic() - started < 20
        assert health_json(httpd.server_port)[0] == 503  # it still serves (not counted yet)
    finally:
        httpd.shutdown()
        httpd.server_close()

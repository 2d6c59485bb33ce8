"""``check`` and ``revoke`` against a fake Zoho on 127.0.0.1, through the SDK's own code paths, with
the requests Zoho receives counted."""

from __future__ import annotations

import io
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta, timezone
from typing import Any

import pytest
from fake_zoho import FakeZoho
from test_cli import env, run  # noqa: F401  (the CLI fixture and runner)
from tokens import CLIENT_ID, oauth, secret

from mongo_store import MongoTokenStore
from mongo_store.core import zoho_http as zoho_calls  # the bounded calls live in the core
from mongo_store.core.clock import utcnow
from mongo_store.core.mapping import CHECK_ERROR_FIELD, CHECK_RESULT_FIELD, CHECKED_AT_FIELD, LEASE_FIELD, REFRESHED_FIELD
from mongo_store.tools.health import health_of
from mongo_store.tools.zoho import Route, ZohoError, route

SECRET = secret("clientsecret")
LOOPBACK = ("127.0.0.1", "localhost")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No test here may reach a real Zoho host: any other name fails to resolve, and is recorded
    (nothing is sent: the connection is never opened)."""
    resolve = socket.getaddrinfo
    asked: list[str] = []

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOOPBACK:
            asked.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "tests stay on 127.0.0.1")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    return asked


@pytest.fixture
def short_bounds(monkeypatch: pytest.MonkeyPatch) -> float:
    """Zoho calls bounded in seconds rather than tens of seconds, for the tests of a hung server."""
    monkeypatch.setattr(zoho_calls, "CONNECT_TIMEOUT", 1.0)
    monkeypatch.setattr(zoho_calls, "READ_TIMEOUT", 1.0)
    monkeypatch.setattr(zoho_calls, "CALL_BOUND", 2.0)
    return 2.0


def within(seconds: float, work: Callable[[], Any]) -> Any:
    """``work()``'s result, failing the test (not hanging it) if it takes longer than ``seconds``."""
    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: outcome.update(value=work()), daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s"
    assert "value" in outcome, "it raised"
    outcome["seconds"] = time.monotonic() - started
    return outcome["value"]


@pytest.fixture
def zoho() -> Iterator[FakeZoho]:
    with FakeZoho(secret("grant"), secret("refresh"), CLIENT_ID, SECRET) as fake:
        yield fake


def ms(delta: timedelta) -> str:
    return str(int((utcnow() + delta).replace(tzinfo=timezone.utc).timestamp() * 1000))


def stored(store: MongoTokenStore, zoho: FakeZoho, user: str, *, refresh: str | None, access: str | None,
           expires: timedelta) -> str:
    token = oauth(user, client_secret=SECRET, refresh_token=refresh, access_token=access, api_domain=zoho.url,
                  expires_in=ms(expires) if access else None)
    store.save_token(token)
    return token.get_id()


def accounts(zoho: FakeZoho) -> list[str]:
    return ["--accounts-url", f"{zoho.url}/oauth/v2/token"]


def health(store: MongoTokenStore, token_id: str) -> str:
    return health_of(store.collection.find_one({"_id": token_id}))[0]


def test_check_a_valid_token_calls_the_api_only(env: MongoTokenStore, zoho: FakeZoho) -> None:  # noqa: F811
    token_id = stored(env, zoho, "alice@example.com:1", refresh=zoho.refresh_token, access=zoho.new_access_token(),
                      expires=timedelta(minutes=40))
    code, out, _ = run("check", token_id, *accounts(zoho), "--actor", "ops")
    assert code == 0 and out.splitlines() == [f"{token_id}\talice@example.com:1\tok", "# checked 1: 1 ok, 0 not"]
    [entry] = env.collection.database["dashboard_audit"].find({})
    assert (entry["action"], entry["who"], entry["ids"], entry["results"]) == ("check", "ops", [token_id], [f"{token_id}: ok"])
    assert zoho.requests == Counter(users=1)
    document = env.collection.find_one({"_id": token_id})
    assert document[CHECK_RESULT_FIELD] == "ok" and abs(document[CHECKED_AT_FIELD] - utcnow()) < timedelta(seconds=5)
    assert health(env, token_id) == "healthy"


def test_check_refreshes_a_lapsed_token_once_through_the_store(env: MongoTokenStore, zoho: FakeZoho) -> None:  # noqa: F811
    old_access = secret("access")
    token_id = stored(env, zoho, "bob@example.com:1", refresh=zoho.refresh_token, access=old_access,
                      expires=timedelta(minutes=-30))
    assert health(env, token_id) == "idle"
    code, out, _ = run("check", token_id, token_id, *accounts(zoho))  # the same id twice: checked once
    assert code == 0 and out.splitlines()[-1] == "# checked 1: 1 ok, 0 not"
    assert zoho.requests == Counter(refresh=1, users=1)
    document = env.collection.find_one({"_id": token_id})
    assert document["access_token"] != old_access and document["access_token"] in zoho.valid_access
    assert abs(document[REFRESHED_FIELD] - utcnow()) < timedelta(seconds=5)
    assert health(env, token_id) == "healthy"


def test_a_refresh_token_zoho_rejects_makes_the_token_failing(env: MongoTokenStore, zoho: FakeZoho) -> None:  # noqa: F811
    token_id = stored(env, zoho, "carol@example.com:1", refresh=secret("refresh"), access=secret("access"),
                      expires=timedelta(minutes=-5))
    code, out, _ = run("check", "--health", "idle", *accounts(zoho))
    assert code == 1 and out.splitlines() == [f"{token_id}\tcarol@example.com:1\tinvalid_code", "# checked 1: 0 ok, 1 not"]
    assert zoho.requests == Counter({"refused refresh": 1})
    document = env.collection.find_one({"_id": token_id})
    assert document[CHECK_ERROR_FIELD] == "invalid_code" and document[CHECK_RESULT_FIELD] == "invalid_code"
    state, why = health_of(document)  # the refused refresh is recorded at once, with its back-off
    assert state == "failing" and why.startswith("1 failed refresh(es) since the last save")
    assert why.endswith("the last check failed: invalid_code") and "until the next attempt in" in why
    # At once again: no second refresh (Zoho's limit of 10 access tokens per 10 minutes).
    code, out, _ = run("check", "--health", "failing", *accounts(zoho))
    assert code == 1 and "a refresh started under a minute ago" in out
    assert zoho.requests == Counter({"refused refresh": 1})


def test_an_access_token_zoho_rejects_is_failing_until_the_next_save(env: MongoTokenStore, zoho: FakeZoho) -> None:  # noqa: F811
    token = oauth("dan@example.com:1", client_secret=SECRET, refresh_token=zoho.refresh_token,
                  access_token=secret("access"), api_domain=zoho.url, expires_in=ms(timedelta(minutes=50)))
    env.save_token(token)
    code, out, _ = run("check", "--all", *accounts(zoho))
    assert code == 1 and out.splitlines()[0].endswith("\tINVALID_TOKEN")
    assert zoho.requests == Counter(users=0) and health(env, token.get_id()) == "failing"
    token.set_access_token(zoho.new_access_token())
    token.set_expires_in(ms(timedelta(minutes=60)))
    env.save_token(token)  # the SDK's next refresh
    assert health(env, token.get_id()) == "healthy"
    assert run("check", token.get_id(), *accounts(zoho))[0] == 0


def test_an_unusable_token_is_not_sent_to_zoho(env: MongoTokenStore, zoho: FakeZoho) -> None:  # noqa: F811
    token_id = stored(env, zoho, "erin@example.com:1", refresh=None, access=secret("access"),
                      expires=timedelta(minutes=-5))
    code, out, _ = run("check", token_id, *accounts(zoho))
    assert code == 1 and "not checked: unusable (no refresh token, and the access token lapsed 5 min ago)" in out
    assert sum(zoho.requests.values()) == 0 and CHECKED_AT_FIELD not in env.collection.find_one({})
    assert run("check", "--all", "--health", "idle")[0] == 1  # one way of choosing only
    assert run("check")[0] == 1


def test_secrets_go_only_to_zoho_hosts_or_the_configured_server() -> None:
    assert route("https://www.zohoapis.eu") == Route("https://accounts.zoho.eu/oauth/v2/token", "https://www.zohoapis.eu")
    assert route("https://sandbox.zohoapis.com.au").accounts == "https://accounts.zoho.com.au/oauth/v2/token"
    assert route(None) == Route("https://accounts.zoho.com/oauth/v2/token", "https://www.zohoapis.com")
    # Not a Zoho API host: nothing may be sent for it (the SDK's own lookup also takes "eu").
    for foreign in ("https://crm.example.com", "http://127.0.0.1:9", "eu", "https://www.zohoapis.eu.attacker.example",
                    "http://www.zohoapis.eu", "https://accounts.zoho.eu/oauth/v2/token"):
        assert route(foreign) == Route(None, None), foreign
    proxy = "http://127.0.0.1:9/oauth/v2/token"
    assert route("https://www.zohoapis.eu", proxy) == Route(proxy, "https://www.zohoapis.eu")
    assert route("http://127.0.0.1:9", proxy) == Route(proxy, "http://127.0.0.1:9")  # the configured server itself
    assert route("https://crm.example.com", proxy) == Route(proxy, None)
    assert route("http://127.0.0.1:10", proxy) == Route(proxy, None)
    with pytest.raises(ZohoError, match="must be an http"):
        route(None, "ftp://127.0.0.1/")


def test_revoke_ends_the_connection_at_zoho_then_deletes(env: MongoTokenStore, zoho: FakeZoho) -> None:  # noqa: F811
    token_id = stored(env, zoho, "fay@example.com:1", refresh=zoho.refresh_token, access=secret("access"),
                      expires=timedelta(minutes=-5))
    code, out, _ = run("revoke", token_id, "--yes", "--actor", "ops", *accounts(zoho))
    assert code == 0 and out.splitlines() == ["revoked the refresh token at 127.0.0.1:" + zoho.url.rsplit(":", 1)[1],
                                              f"deleted {token_id}"]
    assert zoho.requests == Counter(revoke=1) and env.collection.count_documents({}) == 0
    [entry] = env.collection.database["dashboard_audit"].find({})
    assert (entry["action"], entry["who"], entry["ids"], entry["deleted"]) == ("revoke", "ops", [token_id], 1)
    assert zoho.token_response({"client_id": CLIENT_ID, "client_secret": SECRET, "grant_type": "refresh_token",
                                "refresh_token": zoho.refresh_token})[1] == {"error": "invalid_code"}  # revoked


def test_a_revoke_that_fails_at_zoho_keeps_the_token(env: MongoTokenStore, zoho: FakeZoho,  # noqa: F811
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    token_id = stored(env, zoho, "gus@example.com:1", refresh=zoho.refresh_token, access=secret("access"),
                      expires=timedelta(minutes=5))
    zoho.refuse_revoke = True
    code, out, err = run("revoke", token_id, "--yes", *accounts(zoho))
    assert code == 1 and out == "" and err == ("zoho-mongo-store: error: 127.0.0.1:" + zoho.url.rsplit(":", 1)[1]
                                               + " did not revoke the refresh token; the token is left in the store\n")
    assert zoho.requests == Counter(revoke=1) and env.collection.count_documents({"_id": token_id}) == 1
    no_refresh = stored(env, zoho, "hal@example.com:1", refresh=None, access=secret("access"), expires=timedelta(minutes=5))
    code, _, err = run("revoke", no_refresh, "--yes", *accounts(zoho))
    assert code == 1 and "nothing to revoke at Zoho: delete it instead" in err and zoho.requests["revoke"] == 1
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal: needs --yes
    assert run("revoke", token_id, *accounts(zoho))[0] == 1 and zoho.requests["revoke"] == 1


def test_an_unknown_data_center_or_a_dead_accounts_server_is_one_line_each(env: MongoTokenStore,  # noqa: F811
                                                                          zoho: FakeZoho) -> None:
    from mongo_store.tools.embedded import free_port

    token_id = stored(env, zoho, "ivy@example.com:1", refresh=zoho.refresh_token, access=secret("access"),
                      expires=timedelta(minutes=-5))
    code, out, err = run("check", token_id)  # api_domain is the fake's URL: no Zoho host
    assert code == 1 and err == "" and f"not checked: its api_domain '{zoho.url}' is not a Zoho API host, so nothing " \
        "was sent" in out
    dead = f"http://127.0.0.1:{free_port()}"
    env.collection.update_one({"_id": token_id}, {"$set": {"api_domain": dead}})
    code, out, err = run("check", token_id, "--accounts-url", f"{dead}/oauth/v2/token")
    assert code == 1 and f"not checked: cannot reach {dead[7:]} (ConnectionError)" in out and "Traceback" not in out + err
    assert health(env, token_id) == "idle" and LEASE_FIELD not in env.collection.find_one({})  # the lease given back
    env.collection.update_one({"_id": token_id}, {"$set": {"api_domain": zoho.url}, "$unset": {"refresh_started_at": ""}})
    assert CHECKED_AT_FIELD not in env.collection.find_one({}) and sum(zoho.requests.values()) == 0
    env.collection.update_one({"_id": token_id}, {"$set": {"api_domain": {"$gt": ""}}})  # hand-edited
    code, out, _ = run("check", token_id, *accounts(zoho))
    assert code == 1 and "not checked: malformed (api_domain is dict, not a string)" in out
    assert run("check", token_id, "--accounts-url", "accounts.zoho.eu")[0] == 2  # a usage error


def test_check_refreshes_at_the_configured_accounts_server(env: MongoTokenStore, zoho: FakeZoho,  # noqa: F811
                                                          offline: list[str]) -> None:
    # A real data center's token, with a configured accounts server: the refresh token and the
    # client secret go there, not to accounts.zoho.eu (the SDK replaced the configured server).
    token = oauth("jon@example.com:1", client_secret=SECRET, refresh_token=zoho.refresh_token,
                  access_token=secret("access"), api_domain="https://www.zohoapis.eu", expires_in=ms(timedelta(minutes=-5)))
    env.save_token(token)
    code, out, _ = run("check", token.get_id(), *accounts(zoho))
    assert zoho.requests == Counter(refresh=1) and "accounts.zoho.eu" not in offline
    document = env.collection.find_one({"_id": token.get_id()})
    assert document["access_token"] in zoho.valid_access and document["api_domain"] == "https://www.zohoapis.eu"
    # The API call goes to the token's own Zoho host (unreachable in the tests: not checked, not failing).
    assert offline == ["www.zohoapis.eu"]
    assert code == 1 and out.splitlines()[0].endswith("\tnot checked: cannot reach www.zohoapis.eu (ConnectionError)")
    assert health(env, token.get_id()) == "healthy" and CHECK_ERROR_FIELD not in document


def test_a_foreign_api_domain_gets_no_token(env: MongoTokenStore, zoho: FakeZoho) -> None:  # noqa: F811
    # api_domain set by someone who can write to MongoDB: neither the access token nor (for a
    # lapsed token) the refresh goes anywhere, even with an accounts server configured.
    with FakeZoho(secret("grant"), secret("refresh"), CLIENT_ID, SECRET) as attacker:
        valid = stored(env, zoho, "kim@example.com:1", refresh=secret("refresh"), access=zoho.new_access_token(),
                       expires=timedelta(minutes=40))
        lapsed = stored(env, zoho, "lou@example.com:1", refresh=zoho.refresh_token, access=secret("access"),
                        expires=timedelta(minutes=-40))
        env.collection.update_many({}, {"$set": {"api_domain": attacker.url}})
        code, out, _ = run("check", valid, lapsed, *accounts(zoho))
        assert code == 1 and out.count(f"not checked: its api_domain '{attacker.url}' is not a Zoho API host") == 2
        assert attacker.seen_authorization == [] and sum(attacker.requests.values()) == 0
        assert sum(zoho.requests.values()) == 0 and env.collection.count_documents({CHECKED_AT_FIELD: {"$exists": True}}) == 0
        code, _, err = run("revoke", lapsed, "--yes")  # without a configured server: nowhere to send it
        assert code == 1 and "is not a Zoho API host" in err and env.collection.count_documents({}) == 2


@pytest.mark.parametrize(("endpoint", "trouble"), [("token", "hang"), ("token", 503), ("token", 429), ("token", "huge"),
                                                   ("token", "redirect"), ("api", 503), ("api", "hang"), ("api", "redirect")])
def test_no_answer_from_zoho_is_not_checked_and_changes_nothing(env: MongoTokenStore, zoho: FakeZoho,  # noqa: F811
                                                                short_bounds: float, endpoint: str, trouble: str | int) -> None:
    with FakeZoho(secret("grant"), secret("refresh"), CLIENT_ID, SECRET) as elsewhere:
        zoho.trouble[endpoint], zoho.redirect_to = trouble, elsewhere.url
        access = zoho.new_access_token() if endpoint == "api" else secret("access")
        token_id = stored(env, zoho, "max@example.com:1", refresh=zoho.refresh_token, access=access,
                          expires=timedelta(minutes=40 if endpoint == "api" else -40))
        before = health(env, token_id)
        code, out, err = within(short_bounds + 3, lambda: run("check", token_id, *accounts(zoho)))
        [line, summary] = out.splitlines()
        assert code == 1 and err == "" and summary == "# checked 1: 0 ok, 1 not"
        expected = {"hang": "did not answer within 1 s", 503: "answered HTTP 503", 429: "answered HTTP 429",
                    "huge": "answered with more than 1024 KiB",
                    "redirect": "answered with a redirect (HTTP 307), which is not followed"}[trouble]
        assert line == f"{token_id}\tmax@example.com:1\tnot checked: {zoho.url[7:]} {expected}"
        assert zoho.requests[f"{endpoint} {trouble}"] == 1 and sum(elsewhere.requests.values()) == 0
        assert zoho.sent_bytes < 8 * 1024 * 1024  # a huge reply is not read to its end
        document = env.collection.find_one({"_id": token_id})
        assert LEASE_FIELD not in document and CHECKED_AT_FIELD not in document  # the lease was given back
        assert health(env, token_id) == before != "failing"
        [entry] = env.collection.database["dashboard_audit"].find({})
        assert entry["results"] == [f"{token_id}: not checked: {zoho.url[7:]} {expected}"]


@pytest.mark.parametrize("trouble", ["hang", "redirect", 503])
def test_a_hung_or_redirecting_accounts_server_ends_revoke_and_keeps_the_token(env: MongoTokenStore,  # noqa: F811
                                                                               zoho: FakeZoho, short_bounds: float,
                                                                               trouble: str | int) -> None:
    with FakeZoho(secret("grant"), secret("refresh"), CLIENT_ID, SECRET) as elsewhere:
        zoho.trouble["revoke"], zoho.redirect_to = trouble, elsewhere.url
        token_id = stored(env, zoho, "ned@example.com:1", refresh=zoho.refresh_token, access=secret("access"),
                          expires=timedelta(minutes=5))
        code, out, err = within(short_bounds + 3, lambda: run("revoke", token_id, "--yes", *accounts(zoho)))
        expected = {"hang": "did not answer within 1 s",
                    "redirect": "answered with a redirect (HTTP 307), which is not followed",
                    503: "did not revoke the refresh token (HTTP 503)"}[trouble]
        assert (code, out) == (1, "") and err == (f"zoho-mongo-store: error: {zoho.url[7:]} {expected}; the token is "
                                                  "left in the store\n")
        assert sum(elsewhere.requests.values()) == 0  # the refresh token was not posted again to the redirect's target
        assert env.collection.count_documents({"_id": token_id}) == 1 and zoho.refresh_token not in zoho.revoked


def test_an_api_domain_two_url_parsers_read_apart_gets_no_token(env: MongoTokenStore, zoho: FakeZoho) -> None:  # noqa: F811
    """F2: ``http://A\\@B`` is B to ``urlsplit`` (so it passed as the configured server's origin) and
    A to requests, which sent A the access token: the real CLI printed ok. One parser now decides,
    and what it parsed is what the HTTP client is given."""
    import os
    import subprocess

    with FakeZoho(secret("grant"), secret("refresh"), CLIENT_ID, SECRET) as attacker:
        zoho_at, attacker_at = zoho.url.removeprefix("http://"), attacker.url.removeprefix("http://")
        forged = [f"http://{attacker_at}\\@{zoho_at}", f"http://{attacker_at}\\\\@{zoho_at}/",
                  f"http://{zoho_at}@{attacker_at}", f"http://user:pw@{zoho_at}", f"http://{attacker_at}\t\\@{zoho_at}",
                  f"http://{attacker_at}%5C@{zoho_at}", f"http://{zoho_at}#@{attacker_at}"]
        ids = [stored(env, zoho, f"p{n}@example.com:1", refresh=secret("refresh"), access=zoho.new_access_token(),
                      expires=timedelta(minutes=40)) for n in range(len(forged))]
        for token_id, api_domain in zip(ids, forged, strict=True):
            env.collection.update_one({"_id": token_id}, {"$set": {"api_domain": api_domain}})
        done = subprocess.run([sys.executable, "-m", "mongo_store.cli", "check", *ids, *accounts(zoho)],
                              env=dict(os.environ), capture_output=True, text=True, timeout=120)
        assert attacker.seen_authorization == [] and sum(attacker.requests.values()) == 0, done.stdout
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        lines = [line for line in done.stdout.splitlines() if not line.startswith("#")]
        assert len(lines) == len(ids) and all("\tnot checked: " in line for line in lines), lines
        assert sum(zoho.requests.values()) == 0 and env.collection.count_documents({CHECKED_AT_FIELD: {"$exists": True}}) == 0
        # The one parser itself: whatever it accepts, urllib3 (what requests connects with) reads the same.
        for url in forged:
            with pytest.raises(ZohoError):
                route(url, f"{zoho.url}/oauth/v2/token", f"{url}/")
        assert route(zoho.url, f"{zoho.url}/oauth/v2/token").api == zoho.url


def test_check_all_names_and_skips_a_document_whose_id_is_no_string(env: MongoTokenStore, zoho: FakeZoho) -> None:  # noqa: F811
    """One odd document never stops a pass (issue 29, beside F6): ``check --all`` stopped at a
    hand-made document with an int id ("id must be a string, not int"), checking nothing after it."""
    token_id = stored(env, zoho, "ola@example.com:1", refresh=zoho.refresh_token, access=zoho.new_access_token(),
                      expires=timedelta(minutes=40))
    env.collection.insert_one({"_id": 42, "access_token": "x", "api_domain": zoho.url})
    code, out, err = run("check", "--all", *accounts(zoho))
    assert err == "" and code == 1, err
    assert out.splitlines()[:2] == ["42\t\tnot checked: its id is int, not a string (no token the store wrote: fix "
                                    "or delete it)", f"{token_id}\tola@example.com:1\tok"], out

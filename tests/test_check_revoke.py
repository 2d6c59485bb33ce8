"""``check`` and ``revoke`` against a fake Zoho on 127.0.0.1, through the SDK's own code paths, with
the requests Zoho receives counted."""

from __future__ import annotations

import io
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta, timezone

import pytest
from fake_zoho import FakeZoho
from test_cli import env, run  # noqa: F401  (the CLI fixture and runner)
from tokens import CLIENT_ID, oauth, secret

from mongo_store import MongoTokenStore, admin
from mongo_store.lease import utcnow
from mongo_store.mapping import CHECK_ERROR_FIELD, CHECK_RESULT_FIELD, CHECKED_AT_FIELD, REFRESHED_FIELD
from mongo_store.zoho import ZohoError, environment

SECRET = secret("clientsecret")


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
    return admin.health_of(store.collection.find_one({"_id": token_id}))[0]


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
    state, why = admin.health_of(document)  # the refused refresh is recorded at once, with its back-off
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


def test_the_data_center_comes_from_api_domain() -> None:
    assert environment("https://www.zohoapis.eu").accounts_url == "https://accounts.zoho.eu/oauth/v2/token"
    assert environment("https://www.zohoapis.com.au").accounts_url == "https://accounts.zoho.com.au/oauth/v2/token"
    assert environment(None).accounts_url == "https://accounts.zoho.com/oauth/v2/token"
    with pytest.raises(ZohoError, match="no Zoho data center"):
        environment("https://crm.example.com")
    assert environment("https://crm.example.com", "http://127.0.0.1:9/oauth/v2/token").url == "https://crm.example.com"


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
    from mongo_store.embedded import free_port

    token_id = stored(env, zoho, "ivy@example.com:1", refresh=zoho.refresh_token, access=secret("access"),
                      expires=timedelta(minutes=-5))
    code, out, err = run("check", token_id)  # api_domain is the fake's URL: no data center the SDK knows
    assert code == 1 and err == "" and "not checked: 'http://127.0.0.1:" in out and "no Zoho data center" in out
    code, out, err = run("check", token_id, "--accounts-url", f"http://127.0.0.1:{free_port()}/oauth/v2/token")
    assert code == 1 and "not checked: the SDK could not get an access token" in out and "Traceback" not in out + err
    assert CHECKED_AT_FIELD not in env.collection.find_one({}) and sum(zoho.requests.values()) == 0
    env.collection.update_one({"_id": token_id}, {"$set": {"api_domain": {"$gt": ""}}})  # hand-edited
    code, out, _ = run("check", token_id, *accounts(zoho))
    assert code == 1 and "not checked: malformed (api_domain is dict, not a string)" in out

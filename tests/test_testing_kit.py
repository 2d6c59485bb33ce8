"""The testing kit (``mongo_store.testing``): its fixtures, Zoho's rules as the fake keeps them (on
its own clock), the real SDK against it, and the guard that refuses the real Zoho. The fixtures
come from the kit's plugin (tests/conftest.py loads it from the source tree)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from tokens import CLIENT_ID, secret
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zohocrmsdk.src.com.zoho.crm.api.org.org_operations import OrgOperations
from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig
from zohocrmsdk.src.com.zoho.crm.api.util.constants import Constants

from mongo_store import MongoTokenStore
from mongo_store.testing import FakeZoho, RealZohoBlocked, ZohoGuard, is_zoho_host

ROOT = Path(__file__).resolve().parent.parent
SECRET = secret("clientsecret")
ALICE, BOB = "alice@example.com", "bob@example.com"
VERSION = Constants.API_VERSION  # v8, v7, v6 or v5: the installed SDK line's


def token_call(zoho: FakeZoho, base: str | None = None, **form: str) -> tuple[int, dict[str, Any]]:
    """One POST to the fake's token endpoint, as the SDK makes it."""
    form.setdefault("client_id", CLIENT_ID)
    form.setdefault("client_secret", SECRET)
    reply = requests.post(f"{base or zoho.url}/oauth/v2/token", data=form, timeout=10)
    return reply.status_code, reply.json()


def log_in(zoho: FakeZoho, email: str, **client: str) -> dict[str, Any]:
    status, reply = token_call(zoho, grant_type="authorization_code", code=zoho.grant(email), **client)
    assert status == 200 and "access_token" in reply, reply
    return reply


def refresh(zoho: FakeZoho, refresh_token: str, **client: str) -> tuple[int, dict[str, Any]]:
    return token_call(zoho, grant_type="refresh_token", refresh_token=refresh_token, **client)


def api(zoho: FakeZoho, access: str, path: str, method: str = "GET", base: str | None = None, **kwargs: Any) -> requests.Response:
    return requests.request(method, f"{base or zoho.url}/crm/{VERSION}/{path}", timeout=10,
                            headers={"Authorization": f"Zoho-oauthtoken {access}"}, **kwargs)


# -- Zoho's rules --------------------------------------------------------------------------------


def test_a_grant_code_works_once_and_for_three_minutes(fake_zoho: FakeZoho) -> None:
    code = fake_zoho.grant(ALICE)
    assert token_call(fake_zoho, grant_type="authorization_code", code=code)[1]["refresh_token"]
    assert token_call(fake_zoho, grant_type="authorization_code", code=code) == (200, {"error": "invalid_code"})
    late = fake_zoho.grant(ALICE)
    fake_zoho.advance(181)  # no sleeping: the fake's clock moves
    assert token_call(fake_zoho, grant_type="authorization_code", code=late) == (200, {"error": "invalid_code"})
    in_time = fake_zoho.grant(ALICE)
    fake_zoho.advance(170)  # well inside the 3 minutes, however slow the machine
    assert "access_token" in token_call(fake_zoho, grant_type="authorization_code", code=in_time)[1]
    assert fake_zoho.counts == {"grant": 2, "refused grant": 2}


def test_each_grant_has_its_own_refresh_token_bound_to_its_client(fake_zoho: FakeZoho) -> None:
    first, second = log_in(fake_zoho, ALICE), log_in(fake_zoho, ALICE)
    assert first["refresh_token"] != second["refresh_token"]
    other = log_in(fake_zoho, BOB, client_id="1000.OTHERCLIENT", client_secret="other-secret")  # any client is accepted
    assert refresh(fake_zoho, other["refresh_token"], client_id="1000.OTHERCLIENT", client_secret="other-secret")[0] == 200
    assert refresh(fake_zoho, other["refresh_token"]) == (200, {"error": "invalid_client"})  # another client's secret
    assert refresh(fake_zoho, other["refresh_token"], client_id="1000.OTHERCLIENT") == (200, {"error": "invalid_client"})
    assert refresh(fake_zoho, secret("refresh")) == (200, {"error": "invalid_code"})  # never issued
    bound = fake_zoho.grant(BOB, client_id=CLIENT_ID)
    assert token_call(fake_zoho, grant_type="authorization_code", code=bound, client_id="1000.OTHERCLIENT") == \
        (200, {"error": "invalid_client"})


def test_a_revoked_refresh_token_is_refused_with_its_access_tokens(fake_zoho: FakeZoho) -> None:
    login = log_in(fake_zoho, ALICE)
    assert api(fake_zoho, login["access_token"], "org").status_code == 200
    fake_zoho.revoke(login["refresh_token"])
    assert refresh(fake_zoho, login["refresh_token"]) == (200, {"error": "invalid_code"})
    gone = api(fake_zoho, login["access_token"], "org")
    assert gone.status_code == 401 and gone.json()["code"] == "INVALID_TOKEN"
    # Through the accounts server's own revoke endpoint, as an app's logout does it.
    other = log_in(fake_zoho, ALICE)
    reply = requests.post(f"{fake_zoho.url}/oauth/v2/token/revoke", params={"token": other["refresh_token"]}, timeout=10)
    assert reply.json() == {"status": "success"} and other["refresh_token"] in fake_zoho.revoked
    assert refresh(fake_zoho, other["refresh_token"])[1] == {"error": "invalid_code"}


def test_the_eleventh_refresh_in_ten_minutes_is_access_denied(fake_zoho: FakeZoho) -> None:
    login = log_in(fake_zoho, ALICE)
    early = [refresh(fake_zoho, login["refresh_token"])[0] for _ in range(5)]
    fake_zoho.advance(300)  # no sleeping: the fake's clock moves
    late = [refresh(fake_zoho, login["refresh_token"]) for _ in range(6)]
    assert early + [status for status, _ in late] == [200] * 10 + [400]
    assert late[-1][1] == {"error": "Access Denied", "error_description":
                           "You have made too many requests continuously. Please try again after some time."}
    assert [request.outcome for request in fake_zoho.refreshes(ALICE)] == ["ok"] * 10 + ["Access Denied"]
    fake_zoho.advance(299)
    assert refresh(fake_zoho, login["refresh_token"])[0] == 400
    fake_zoho.advance(1)  # ten minutes after the first five: five slots free, the window slides
    assert [refresh(fake_zoho, login["refresh_token"])[0] for _ in range(6)] == [200] * 5 + [400]
    other = log_in(fake_zoho, ALICE)  # the limit is per refresh token
    assert refresh(fake_zoho, other["refresh_token"])[0] == 200


def test_sixteen_live_access_tokens_end_the_oldest(fake_zoho: FakeZoho) -> None:
    refresh_token = fake_zoho.authorize(ALICE, CLIENT_ID, SECRET)
    minted = []
    for _ in range(16):
        minted.append(fake_zoho.access_token(refresh_token))
        fake_zoho.advance(60)  # within the refresh limit: at most 10 in 10 minutes
    assert api(fake_zoho, minted[0], "org").status_code == 401
    assert all(api(fake_zoho, access, "org").status_code == 200 for access in minted[1:])
    assert fake_zoho.valid_access == set(minted[1:])


def test_the_twenty_first_refresh_token_deletes_the_oldest(fake_zoho: FakeZoho) -> None:
    logins = [log_in(fake_zoho, ALICE) for _ in range(21)]
    assert refresh(fake_zoho, logins[0]["refresh_token"]) == (200, {"error": "invalid_code"})
    assert api(fake_zoho, logins[0]["access_token"], "org").status_code == 401
    assert all(refresh(fake_zoho, login["refresh_token"])[0] == 200 for login in logins[1:])
    other_client = log_in(fake_zoho, ALICE, client_id="1000.OTHERCLIENT")  # counted per client: the others stay
    assert refresh(fake_zoho, logins[1]["refresh_token"])[0] == 200 and other_client["refresh_token"]


def test_access_tokens_lapse_on_the_fakes_clock_or_on_demand(fake_zoho: FakeZoho) -> None:
    alice, bob = log_in(fake_zoho, ALICE), log_in(fake_zoho, BOB)
    assert alice["expires_in"] == 3600
    fake_zoho.expire_access_tokens(ALICE)
    assert api(fake_zoho, alice["access_token"], "org").status_code == 401
    assert api(fake_zoho, bob["access_token"], "org").status_code == 200
    fresh = refresh(fake_zoho, alice["refresh_token"])[1]["access_token"]
    assert api(fake_zoho, fresh, "org").status_code == 200
    fake_zoho.advance(3600)
    assert api(fake_zoho, fresh, "org").status_code == 401 and api(fake_zoho, bob["access_token"], "org").status_code == 401


def test_the_next_calls_fail_as_asked(fake_zoho: FakeZoho) -> None:
    login = log_in(fake_zoho, ALICE)
    fake_zoho.fail_next("refresh", error="Access Denied", times=2)
    for _ in range(2):
        assert refresh(fake_zoho, login["refresh_token"]) == (400, {
            "error": "Access Denied", "error_description":
            "You have made too many requests continuously. Please try again after some time."})
    assert refresh(fake_zoho, login["refresh_token"])[0] == 200
    fake_zoho.fail_next("grant", error="invalid_client", status=400)
    assert token_call(fake_zoho, grant_type="authorization_code", code=fake_zoho.grant(BOB)) == \
        (400, {"error": "invalid_client"})
    fake_zoho.fail_next("org", error="INTERNAL_ERROR", status=500, description="Internal Server Error")
    failed = api(fake_zoho, login["access_token"], "org")
    assert failed.status_code == 500 and failed.json()["code"] == "INTERNAL_ERROR"
    assert api(fake_zoho, login["access_token"], "users", params={"type": "CurrentUser"}).status_code == 200
    assert api(fake_zoho, login["access_token"], "org").status_code == 200
    fake_zoho.fail_next("revoke", error="invalid_token", times=None)
    for _ in range(3):
        assert requests.post(f"{fake_zoho.url}/oauth/v2/token/revoke", data={"token": login["refresh_token"]},
                             timeout=10).json() == {"status": "error", "error": "invalid_token"}
    fake_zoho.fail_next("revoke", error="invalid_token", times=0)
    assert requests.post(f"{fake_zoho.url}/oauth/v2/token/revoke", data={"token": login["refresh_token"]},
                         timeout=10).json() == {"status": "success"}


@pytest.mark.parametrize("version", ["v5", "v6", "v7", "v8"])
def test_the_crm_api_answers_as_the_person_whose_token_it_is(fake_zoho: FakeZoho, version: str) -> None:
    alice, bob = log_in(fake_zoho, ALICE)["access_token"], log_in(fake_zoho, BOB)["access_token"]
    base = f"{fake_zoho.url}/crm/{version}"
    auth = {"Authorization": f"Zoho-oauthtoken {alice}"}
    [me] = requests.get(f"{base}/users", params={"type": "CurrentUser"}, headers=auth, timeout=10).json()["users"]
    [org] = requests.get(f"{base}/org", headers=auth, timeout=10).json()["org"]
    person = fake_zoho.person(ALICE)
    assert (me["email"], me["id"], org["zgid"], org["id"]) == (ALICE, person.user_id, person.zgid, person.org_id)
    assert fake_zoho.user_name(ALICE) == f"{ALICE}:{person.zgid}" != fake_zoho.user_name(BOB)
    [bobs] = requests.get(f"{base}/org", headers={"Authorization": f"Zoho-oauthtoken {bob}"}, timeout=10).json()["org"]
    assert bobs["zgid"] == fake_zoho.person(BOB).zgid != org["zgid"]


def test_records_are_each_persons_own(fake_zoho: FakeZoho) -> None:
    alice, bob = log_in(fake_zoho, ALICE)["access_token"], log_in(fake_zoho, BOB)["access_token"]
    created = api(fake_zoho, alice, "Leads", "POST", json={"data": [{"Last_Name": "Lovelace", "Email": "ada@example.com"},
                                                                      {"Email": "no-name@example.com"}]})
    ok, missing = created.json()["data"]
    assert created.status_code == 201 and ok["code"] == "SUCCESS" and ok["details"]["id"]
    assert missing == {"code": "MANDATORY_NOT_FOUND", "details": {"api_name": "Last_Name"},
                       "message": "required field not found", "status": "error"}
    listed = api(fake_zoho, alice, "Leads", params={"fields": "Last_Name,Email"}).json()
    assert listed["data"] == [{"Last_Name": "Lovelace", "Email": "ada@example.com", "id": ok["details"]["id"]}]
    assert listed["info"]["count"] == 1
    assert api(fake_zoho, bob, "Leads", params={"fields": "Last_Name"}).status_code == 204  # not Alice's leads
    assert api(fake_zoho, bob, f"Leads/{ok['details']['id']}").status_code == 204
    assert api(fake_zoho, alice, "Leads").json()["code"] == "REQUIRED_PARAM_MISSING"  # v8 wants fields=
    assert [lead["Last_Name"] for lead in fake_zoho.records(ALICE)] == ["Lovelace"] and fake_zoho.records(BOB) == []
    assert api(fake_zoho, secret("access"), "Leads", params={"fields": "Last_Name"}).status_code == 401


def test_what_it_received_is_recorded_without_secrets(fake_zoho: FakeZoho) -> None:
    login = log_in(fake_zoho, ALICE)
    refresh(fake_zoho, login["refresh_token"])
    api(fake_zoho, login["access_token"], "users", params={"type": "CurrentUser"})
    grant, refreshed, users = fake_zoho.requests
    assert (grant.method, grant.path, grant.name, grant.email, grant.status) == ("POST", "/oauth/v2/token", "grant", ALICE, 200)
    assert grant.form == {"client_id": CLIENT_ID, "grant_type": "authorization_code"}
    assert refreshed.form == {"client_id": CLIENT_ID, "grant_type": "refresh_token"} and refreshed.outcome == "ok"
    assert (users.path, users.query, users.name, users.email) == (f"/crm/{VERSION}/users", {"type": "CurrentUser"}, "users", ALICE)
    everything = repr(fake_zoho.requests)
    for value in (SECRET, login["refresh_token"], login["access_token"]):
        assert value not in everything


def test_every_data_center_is_served_under_its_own_host(fake_zoho: FakeZoho) -> None:
    eu = fake_zoho.environment_for("eu")
    assert eu.accounts_url == f"http://accounts.zoho.eu.localhost:{fake_zoho.port}/oauth/v2/token"
    assert eu.url == f"http://www.zohoapis.eu.localhost:{fake_zoho.port}"
    reply = requests.post(eu.accounts_url, timeout=10, data={"grant_type": "authorization_code", "code": fake_zoho.grant(ALICE),
                                                             "client_id": CLIENT_ID, "client_secret": SECRET}).json()
    assert reply["api_domain"] == eu.url  # a token of that data center
    assert requests.get(f"{eu.url}/crm/v8/org", headers={"Authorization": f"Zoho-oauthtoken {reply['access_token']}"},
                        timeout=10).status_code == 200
    assert [request.data_center for request in fake_zoho.requests] == ["eu", "eu"]
    for name in ("us", "in", "au", "cn", "jp", "ca", "sa", "uk"):
        environment = fake_zoho.environment_for(name)
        assert requests.get(f"{environment.url}/crm/v8/org", timeout=10).status_code == 401  # reached, no token


# -- the real SDK against the kit ------------------------------------------------------------------


def initialize(zoho: FakeZoho, token: OAuthToken, store: MongoTokenStore, resources: Path, environment: Any = None) -> None:
    Initializer.LOCAL.init = None  # releases before zohocrmsdk8-0 3.0.0 keep the previous initializer per thread
    Initializer.initialize(environment or zoho.environment, token, store=store, resource_path=str(resources),
                           sdk_config=SDKConfig(auto_refresh_fields=False, pick_list_validation=False))


def test_two_people_through_the_sdk_each_see_their_own(fake_zoho: FakeZoho, zoho_token_store: MongoTokenStore,
                                                      tmp_path: Path) -> None:
    assert zoho_token_store.collection.count_documents({}) == 0
    ids = {}
    for email in (ALICE, BOB):
        token = OAuthToken(client_id=CLIENT_ID, client_secret=SECRET, grant_token=fake_zoho.grant(email),
                           redirect_url="https://app.example.com/oauth")
        initialize(fake_zoho, token, zoho_token_store, tmp_path)
        ids[email] = token.get_id()
    names = {document.get("user_name") for document in zoho_token_store.collection.find({})}
    assert len(set(ids.values())) == 2
    if VERSION != "v5":  # zohocrmsdk5-0 does not look the user up
        assert names == {fake_zoho.user_name(ALICE), fake_zoho.user_name(BOB)}
    for email in (ALICE, BOB):
        initialize(fake_zoho, OAuthToken(id=ids[email]), zoho_token_store, tmp_path)
        org = OrgOperations().get_organization()
        assert org.get_status_code() == 200
        [answer] = org.get_object().get_org()
        assert answer.get_zgid() == fake_zoho.person(email).zgid
    assert fake_zoho.counts["grant"] == 2 and fake_zoho.counts["org"] == 2 + (2 if VERSION != "v5" else 0)


@pytest.mark.skipif(VERSION != "v8", reason="the records calls below are zohocrmsdk8-0's")
def test_sdk_records_and_an_eu_token(fake_zoho: FakeZoho, zoho_token_store: MongoTokenStore, tmp_path: Path) -> None:
    from zohocrmsdk.src.com.zoho.crm.api import HeaderMap, ParameterMap
    from zohocrmsdk.src.com.zoho.crm.api.record import BodyWrapper, GetRecordsParam, Record, RecordOperations

    token = OAuthToken(client_id=CLIENT_ID, client_secret=SECRET, grant_token=fake_zoho.grant(ALICE),
                       redirect_url="https://app.example.com/oauth")
    initialize(fake_zoho, token, zoho_token_store, tmp_path, fake_zoho.environment_for("eu"))
    [document] = zoho_token_store.collection.find({})
    assert document["api_domain"] == fake_zoho.environment_for("eu").url
    lead = Record()
    lead.add_key_value("Last_Name", "Lovelace")
    body = BodyWrapper()
    body.set_data([lead])
    created = RecordOperations("Leads").create_records(body, HeaderMap())
    assert created.get_status_code() == 201
    [success] = created.get_object().get_data()
    assert success.get_status().get_value() == "success"
    params = ParameterMap()
    params.add(GetRecordsParam.fields, "Last_Name")
    listed = RecordOperations("Leads").get_records(params, HeaderMap())
    assert [record.get_key_value("Last_Name") for record in listed.get_object().get_data()] == ["Lovelace"]
    assert {request.data_center for request in fake_zoho.requests} == {"eu"}


# -- no real Zoho ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "zoho"), [
    ("www.zohoapis.com", True), ("accounts.zoho.eu", True), ("zoho.com", True), ("accounts.zohocloud.ca", True),
    ("sandbox.zohoapis.com.au", True), ("www.zohoapis.eu.attacker.example", True), ("ACCOUNTS.ZOHO.IN.", True),
    ("crm.zoho.jp", True), ("127.0.0.1", False), ("localhost", False), ("www.zohoapis.eu.localhost", False),
    ("zoho-mongo-store.example", False), ("example.com", False), ("::1", False)])
def test_zoho_hosts_are_recognised(host: str, zoho: bool) -> None:
    assert is_zoho_host(host) is zoho


def test_a_call_to_the_real_zoho_is_refused_before_any_lookup(fake_zoho: FakeZoho, no_real_zoho: ZohoGuard) -> None:
    for url in ("https://www.zohoapis.com/crm/v8/org", "https://accounts.zoho.eu/oauth/v2/token"):
        with pytest.raises(RealZohoBlocked, match="refused a connection to the real Zoho host") as refused:
            requests.get(url, timeout=10)
        assert refused.value.host in url
    with pytest.raises(RealZohoBlocked):
        socket.getaddrinfo("accounts.zoho.com", 443)
    with pytest.raises(RealZohoBlocked):
        socket.create_connection(("www.zohoapis.in", 443), timeout=1)
    with pytest.raises(RealZohoBlocked):
        socket.gethostbyname("zoho.com")
    assert no_real_zoho.blocked == ["www.zohoapis.com", "accounts.zoho.eu", "accounts.zoho.com", "www.zohoapis.in", "zoho.com"]
    assert socket.getaddrinfo("www.zohoapis.eu.localhost", 80)[0][4][0] == "127.0.0.1"  # the fake's data centers
    assert requests.get(f"{fake_zoho.url}/crm/v8/org", timeout=10).status_code == 401  # loopback stays allowed


def test_the_sdk_pointed_at_the_real_zoho_is_refused(zoho_token_store: MongoTokenStore, no_real_zoho: ZohoGuard,
                                                    tmp_path: Path) -> None:
    from zohocrmsdk.src.com.zoho.crm.api.dc import USDataCenter
    from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

    token = OAuthToken(client_id=CLIENT_ID, client_secret=SECRET, grant_token=secret("grant"),
                       redirect_url="https://app.example.com/oauth")
    with pytest.raises(SDKException) as refused:
        Initializer.LOCAL.init = None
        Initializer.initialize(USDataCenter.PRODUCTION(), token, store=zoho_token_store, resource_path=str(tmp_path))
    chain, cause = [], refused.value
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__ or getattr(cause, "cause", None)
    assert any(isinstance(error, RealZohoBlocked) for error in chain), chain
    assert no_real_zoho.blocked == ["accounts.zoho.com"]


def test_the_guard_is_gone_after_it_and_nests() -> None:
    original = socket.getaddrinfo
    with ZohoGuard() as outer:
        with ZohoGuard() as inner, pytest.raises(RealZohoBlocked):
            socket.getaddrinfo("zoho.eu", 443)
        with pytest.raises(RealZohoBlocked):  # the outer one still holds
            socket.getaddrinfo("zoho.eu", 443)
    assert socket.getaddrinfo is original
    assert not {"connect", "connect_ex", "send", "sendall"} & set(socket.socket.__dict__)  # inherited again
    assert inner.blocked == ["zoho.eu"] and outer.blocked == ["zoho.eu", "zoho.eu"]


# -- the store fixture ----------------------------------------------------------------------------


def test_each_test_gets_an_empty_store_on_mongomock(zoho_token_store: MongoTokenStore) -> None:
    import mongomock

    assert isinstance(zoho_token_store.collection.database.client, mongomock.MongoClient)
    assert zoho_token_store.collection.count_documents({}) == 0
    zoho_token_store.collection.insert_one({"_id": "left-behind"})  # the next test must not see it


def test_each_test_gets_an_empty_store_on_mongomock_again(zoho_token_store: MongoTokenStore) -> None:
    assert zoho_token_store.collection.count_documents({}) == 0


def test_a_real_mongodb_by_option_or_variable(mongo_uri: str, real_client: Any, tmp_path: Path) -> None:
    """A project's run with ``--zoho-mongodb-uri`` (and one with ``$ZOHO_TEST_MONGODB_URI``): each
    test its own database on that server, dropped afterwards."""
    (tmp_path / "test_store.py").write_text(textwrap.dedent("""
        from pymongo import MongoClient

        def test_one(zoho_token_store):
            assert isinstance(zoho_token_store.collection.database.client, MongoClient)
            assert zoho_token_store.collection.count_documents({}) == 0
            zoho_token_store.collection.insert_one({"_id": "x"})
            print("DATABASE", zoho_token_store.collection.database.name)

        def test_two(zoho_token_store):
            assert zoho_token_store.collection.count_documents({}) == 0
            print("DATABASE", zoho_token_store.collection.database.name)
    """))
    before = set(real_client.list_database_names())
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # the -p plugin only
    environment.pop("ZOHO_TEST_MONGODB_URI", None)
    for extra, variable in (([f"--zoho-mongodb-uri={mongo_uri}"], {}), ([], {"ZOHO_TEST_MONGODB_URI": mongo_uri})):
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-p",
                              "mongo_store.testing.plugin", *extra, "test_store.py"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=120, env={**environment, **variable})
        assert run.returncode == 0, run.stdout + run.stderr
        databases = re.findall(r"DATABASE (\S+)", run.stdout)
        assert len(set(databases)) == 2 and all(name.startswith("zoho_test_") for name in databases)
        assert set(real_client.list_database_names()) - before == set()  # dropped afterwards


# -- the SDK's state between tests, the store's settings, both clocks ----------------------------------


def test_reset_sdk_forgets_the_process_and_every_threads_initializer(fake_zoho: FakeZoho, zoho_token_store: MongoTokenStore,
                                                                     tmp_path: Path) -> None:
    from mongo_store.testing import reset_sdk

    token = OAuthToken(client_id=CLIENT_ID, client_secret=SECRET, grant_token=fake_zoho.grant(ALICE),
                       redirect_url="https://app.example.com/oauth")
    Initializer.initialize(fake_zoho.environment, token, store=zoho_token_store, resource_path=str(tmp_path),
                           sdk_config=SDKConfig(auto_refresh_fields=False, pick_list_validation=False))
    switched = threading.Event()
    release = threading.Event()
    seen: dict[str, Any] = {}

    def worker() -> None:  # a pool thread that served a request, and lives on
        Initializer.switch_user(token=OAuthToken(id=token.get_id()))
        switched.set()
        release.wait(10)
        seen["after"] = getattr(Initializer.LOCAL, "init", None)

    thread = threading.Thread(target=worker)
    thread.start()
    assert switched.wait(10) and Initializer.initializer is not None
    reset_sdk()
    release.set()
    thread.join(10)
    assert Initializer.initializer is None and seen == {"after": None}
    assert Initializer.get_initializer() is None


class TestTheStoresSettingsFromAFixture:
    """``zoho_token_store_settings`` overridden, as a project overrides it (here for one class)."""

    @pytest.fixture
    def zoho_token_store_settings(self) -> dict[str, Any]:
        return {"refresh_backoff": 1.5, "refresh_backoff_max": 3.0, "fail_fast_after": 7.0, "retire_replaced": False}

    def test_the_store_is_built_with_them(self, zoho_token_store: MongoTokenStore) -> None:
        from mongo_store.core.lease import Backoff

        assert zoho_token_store.backoff == Backoff(1.5, 3.0)
        assert zoho_token_store.settings.fail_fast_after == 7.0 and zoho_token_store.retire_replaced is False
        assert zoho_token_store.collection.count_documents({}) == 0


def test_by_default_the_store_has_the_default_settings(zoho_token_store: MongoTokenStore) -> None:
    from mongo_store.core.settings import StoreSettings

    assert zoho_token_store.settings.refresh_backoff == StoreSettings().refresh_backoff == 30.0


def test_an_hour_later_moves_both_clocks(fake_zoho: FakeZoho, zoho_token_store: MongoTokenStore, tmp_path: Path) -> None:
    """Zoho's refresh window and the stored expiries move together: ten refreshes use up the
    window; an hour later the SDK refreshes again (its stored access token lapsed) and Zoho has room."""
    from mongo_store.testing import advance_clocks, lapse_stored_tokens

    token = OAuthToken(client_id=CLIENT_ID, client_secret=SECRET, grant_token=fake_zoho.grant(ALICE),
                       redirect_url="https://app.example.com/oauth")
    initialize(fake_zoho, token, zoho_token_store, tmp_path)
    for _ in range(10):
        lapse_stored_tokens(zoho_token_store, token.get_id())
        initialize(fake_zoho, OAuthToken(id=token.get_id()), zoho_token_store, tmp_path)
    assert fake_zoho.counts["refresh"] == 10
    stored = zoho_token_store.collection.find_one({})
    assert advance_clocks(3600, fake_zoho, zoho_token_store) == 1
    moved = zoho_token_store.collection.find_one({})
    assert stored["expiry_time"] - moved["expiry_time"] == timedelta(hours=1)
    initialize(fake_zoho, OAuthToken(id=token.get_id()), zoho_token_store, tmp_path)  # lapsed: refreshed, and allowed
    assert fake_zoho.counts["refresh"] == 11 and fake_zoho.counts["refused refresh"] == 0
    assert OrgOperations().get_organization().get_status_code() == 200


def test_the_readme_recipe_tested_with_the_kit_passes_in_either_order(tmp_path: Path) -> None:
    """docs/testing-your-app.md's test of the README's recipe, with the recipe as ``portal.py``, run
    in a project of its own (no conftest): its two tests pass whichever runs first. The recipe
    initializes the SDK once and switches the user per request; without the kit's reset, the
    second test would talk to the first one's store and stopped fake Zoho."""
    from test_lifecycle import recipe_code
    from test_testing_kit_wheel import RECIPE_TEST, example

    (tmp_path / "portal.py").write_text(recipe_code())
    (tmp_path / "test_portal.py").write_text(example(RECIPE_TEST))
    (tmp_path / "reverse_order.py").write_text(
        "def pytest_collection_modifyitems(items):\n    items.reverse()\n")
    environment = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    environment.pop("ZOHO_TEST_MONGODB_URI", None)
    orders = []
    for extra in ([], ["-p", "reverse_order"]):
        run = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-p",
                              "mongo_store.testing.plugin", *extra, "test_portal.py"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=300, env=environment)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        ran = re.findall(r"test_portal.py::(\w+) PASSED", run.stdout)
        assert len(ran) == 2, run.stdout[-2000:]
        orders.append(ran)
    assert orders[0] == orders[1][::-1]


class Listener:
    """A TCP server on 127.0.0.1 that records the first bytes of each connection and closes it: a
    proxy (or anything) a test might point a client at."""

    def __init__(self) -> None:
        import threading

        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.received: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(2)
                try:
                    self.received.append(connection.recv(4096))
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()


def test_the_guard_covers_proxies_lookalike_names_and_raw_sockets(no_real_zoho: ZohoGuard) -> None:
    """F12: an explicit ``proxies=`` sent ``CONNECT accounts.zoho.com:443`` to the proxy, a
    fullwidth name passed the check and IDNA made it accounts.zoho.com after it, and a raw
    ``socket.connect`` resolved the name in C, past the patched resolver."""
    import urllib.request

    proxy = Listener()
    try:
        through = f"http://127.0.0.1:{proxy.port}"
        for url in ("https://accounts.zoho.com/oauth/v2/token", "http://www.zohoapis.eu/crm/v8/org"):
            with pytest.raises(RealZohoBlocked):
                requests.get(url, proxies={"https": through, "http": through}, timeout=5)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": through, "https": through}))
        for url in ("http://accounts.zoho.in/oauth/v2/token", "https://www.zohoapis.jp/crm/v8/org"):
            with pytest.raises(RealZohoBlocked):
                opener.open(url, timeout=5)
        # Loopback through the same proxy is another matter: nothing to refuse.
        with pytest.raises(requests.RequestException):
            requests.get("http://www.zohoapis.eu.localhost:9/x", proxies={"http": through}, timeout=5)
        assert not any(b"zoho.com" in data or b"zohoapis.eu/" in data or b"zoho.in" in data or b"zohoapis.jp" in data
                       for data in proxy.received), proxy.received
    finally:
        proxy.close()
    for name in ("accounts.ｚｏｈｏ.com", "ａｃｃｏｕｎｔｓ.ZOHO.ｃｏｍ", "www.ｚｏｈｏａｐｉｓ.eu", "zoho\u3002com"):
        assert is_zoho_host(name), name
        with pytest.raises(RealZohoBlocked):
            socket.getaddrinfo(name, 443)
    for address in (("accounts.zoho.com", 443), ("www.ｚｏｈｏapis.com", 443), (b"zoho.eu", 443)):
        raw = socket.socket()
        try:
            with pytest.raises(RealZohoBlocked):
                raw.connect(address)
            with pytest.raises(RealZohoBlocked):
                raw.connect_ex(address)
        finally:
            raw.close()
    assert len(no_real_zoho.blocked) >= 14

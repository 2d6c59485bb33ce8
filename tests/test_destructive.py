"""Destructive actions leave a true record: a revoke is audited before Zoho is called, and the
entry is updated with what happened (refused, unreachable, revoked, then deleted), from the CLI
and through the operator layer (``operations.Session.revoke``) itself. Against a fake Zoho on 127.0.0.1 and the real mongod."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta, timezone
from typing import Any

import pytest
from fake_zoho import FakeZoho
from pymongo.collection import Collection
from pymongo.errors import OperationFailure
from test_cli import env, run  # noqa: F401  (the CLI fixture and runner)
from tokens import CLIENT_ID, oauth, secret

from mongo_store import MongoTokenStore
from mongo_store.core.clock import utcnow
from mongo_store.tools import operations
from mongo_store.tools import zoho as zoho_calls
from mongo_store.tools.embedded import free_port
from mongo_store.tools.settings import AUDIT_COLLECTION

SECRET = secret("clientsecret")


@pytest.fixture
def zoho() -> Iterator[FakeZoho]:
    with FakeZoho(secret("grant"), secret("refresh"), CLIENT_ID, SECRET) as fake:
        yield fake


def stored(store: MongoTokenStore, zoho: FakeZoho, user: str) -> str:
    expires = str(int((utcnow() + timedelta(minutes=5)).replace(tzinfo=timezone.utc).timestamp() * 1000))
    token = oauth(user, client_secret=SECRET, refresh_token=zoho.refresh_token, access_token=secret("access"),
                  api_domain=zoho.url, expires_in=expires)
    store.save_token(token)
    return token.get_id()


def audit_entries(store: MongoTokenStore) -> list[dict[str, Any]]:
    return list(store.collection.database[AUDIT_COLLECTION].find({}, {"_id": False}).sort("at", 1))


def watch_audit_at_revoke(store: MongoTokenStore, zoho: FakeZoho) -> list[list[dict[str, Any]]]:
    """What the audit log held at the moment Zoho received each revoke."""
    seen: list[list[dict[str, Any]]] = []
    answer = zoho.revoke_response

    def revoke_response(form: dict[str, str]) -> tuple[int, dict]:
        seen.append(audit_entries(store))
        return answer(form)

    zoho.revoke_response = revoke_response  # type: ignore[method-assign]
    return seen


def test_the_cli_audits_a_revoke_before_zoho_is_called_then_its_outcome(env: MongoTokenStore,  # noqa: F811
                                                                        zoho: FakeZoho) -> None:
    token_id = stored(env, zoho, "fay@example.com:1")
    seen = watch_audit_at_revoke(env, zoho)
    code, _, _ = run("revoke", token_id, "--yes", "--actor", "ops", "--accounts-url", f"{zoho.url}/oauth/v2/token")
    assert code == 0 and env.collection.count_documents({}) == 0
    [[attempt]] = seen  # written before Zoho answered
    assert (attempt["action"], attempt["who"], attempt["ids"], attempt["user_names"], attempt["outcome"]) == \
        ("revoke", "ops", [token_id], ["fay@example.com:1"], operations.REVOKE_ATTEMPT)
    [entry] = audit_entries(env)
    assert (entry["outcome"], entry["deleted"], entry["host"]) == ("revoked and deleted", 1, zoho.url.split("/")[2])


def test_a_revoke_zoho_refuses_or_cannot_be_reached_is_audited_with_why(env: MongoTokenStore,  # noqa: F811
                                                                        zoho: FakeZoho) -> None:
    token_id = stored(env, zoho, "gus@example.com:1")
    zoho.refuse_revoke = True
    assert run("revoke", token_id, "--yes", "--accounts-url", f"{zoho.url}/oauth/v2/token")[0] == 1
    dead = f"http://127.0.0.1:{free_port()}/oauth/v2/token"
    code, _, err = run("revoke", token_id, "--yes", "--accounts-url", dead)
    host = dead.split("/")[2]
    assert code == 1 and f"cannot reach {host} (ConnectionError); the token is left in the store" in err
    refused, unreachable = audit_entries(env)
    assert (refused["outcome"], refused["deleted"]) == ("not revoked", None)
    assert refused["reason"] == f"{zoho.url.split('/')[2]} did not revoke the refresh token"
    assert (unreachable["outcome"], unreachable["reason"]) == ("not revoked", f"cannot reach {host} (ConnectionError)")
    assert env.collection.count_documents({"_id": token_id}) == 1


def test_a_revoke_whose_delete_fails_stays_on_record_as_revoked(env: MongoTokenStore,  # noqa: F811
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Zoho revoked it, then the database refused the delete: the entry says so, the error is raised."""

    def delete_many(self: Collection, *args: Any, **kwargs: Any) -> Any:
        raise OperationFailure("not authorized", code=13, details={"codeName": "Unauthorized"})

    env.save_token(oauth("hal@example.com:1", refresh_token=secret("refresh")))
    [document] = env.collection.find({})
    monkeypatch.setattr(zoho_calls, "revoke_stored", lambda store, document, accounts_url=None: "accounts.zoho.eu")
    monkeypatch.setattr(Collection, "delete_many", delete_many)
    with pytest.raises(Exception, match="delete the revoked token"):
        operations.Session(env, "ops").revoke(document["_id"])
    monkeypatch.undo()
    [entry] = audit_entries(env)
    assert (entry["outcome"], entry["host"], entry["deleted"]) == ("revoked, not deleted", "accounts.zoho.eu", None)
    assert entry["reason"].startswith("the delete failed: could not delete the revoked token")
    assert env.collection.count_documents({}) == 1


def test_a_revoke_that_stops_unexpectedly_is_recorded_as_unknown(env: MongoTokenStore,  # noqa: F811
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    env.save_token(oauth("ivy@example.com:1", refresh_token=secret("refresh")))
    [document] = env.collection.find({})

    def hangs_up(*args: Any, **kwargs: Any) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(zoho_calls, "revoke_stored", hangs_up)
    with pytest.raises(KeyboardInterrupt):
        operations.Session(env, "ops").revoke(document["_id"])
    [entry] = audit_entries(env)
    assert entry["outcome"] == "unknown" and "KeyboardInterrupt" in entry["reason"]
    assert env.collection.count_documents({}) == 1


def test_revoking_ticked_rows_audits_each_and_a_refusal_stops_only_its_token(dashboard_env: MongoTokenStore,
                                                                             zoho: FakeZoho,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard's "Revoke ticked…": each token audited before Zoho is called, with its own
    outcome; one Zoho refuses stays stored, the others are revoked and deleted, and the summary says so."""
    from mongo_store.dashboard import data
    from mongo_store.dashboard.settings import Settings

    ids = []
    for name in ("kim", "lou", "max"):
        refresh = zoho.authorize(f"{name}@example.com", CLIENT_ID, SECRET)
        token = oauth(f"{name}@example.com:1", client_secret=SECRET, refresh_token=refresh,
                      access_token=secret("access"), api_domain=zoho.url, expires_in="4102444800000")
        dashboard_env.save_token(token)
        ids.append(token.get_id())
    monkeypatch.setenv("DASHBOARD_ZOHO_ACCOUNTS_URL", f"{zoho.url}/oauth/v2/token")
    conn = data.connect(Settings.load())
    seen = watch_audit_at_revoke(dashboard_env, zoho)
    answer = zoho.revoke_response

    calls: list[int] = []

    def refuses_the_second(form: dict[str, str]) -> tuple[int, dict]:
        calls.append(1)
        reply = answer(form) if len(calls) != 2 else (200, {"status": "error", "error": "access_denied"})
        if len(calls) == 2:
            seen.append(audit_entries(dashboard_env))
        return reply

    zoho.revoke_response = refuses_the_second  # type: ignore[method-assign]
    outcome = data.revoke_many(conn, ids, "ops", "operator")
    assert outcome.done == [ids[0], ids[2]]
    assert outcome.summary().startswith("Revoked 3 tokens: 2 revoked, 1 not (")
    assert [len(entries) for entries in seen] == [1, 2, 3]  # each written before its call to Zoho
    assert seen[1][-1]["outcome"] == operations.REVOKE_ATTEMPT and seen[1][-1]["ids"] == [ids[1]]
    entries = audit_entries(dashboard_env)
    assert [(e["ids"], e["outcome"]) for e in entries] == [
        ([ids[0]], "revoked and deleted"), ([ids[1]], "not revoked"), ([ids[2]], "revoked and deleted")]
    assert [d["_id"] for d in dashboard_env.collection.find({})] == [ids[1]]

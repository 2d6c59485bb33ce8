"""Everything the dashboard reads and writes, in one place, apart from the pages.

Reads run on the server with projections and the store's indexes (``tools/queries.py``,
``tools/paging.py``, ``tools/stats.py``, ``tools/health.py``); the dashboard never calls
``get_tokens()``. Records leave this module with their secrets masked. Every action (check, revoke,
delete, cleanup) is the operator layer's (``tools/operations.py``), the same the CLI runs: this
module only opens a session for the operator signed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.collection import Collection

from ..core import events
from ..core.clock import utcnow
from ..core.errors import store_error
from ..core.indexes import ensure_indexes
from ..core.mapping import check_text
from ..core.store import MongoTokenStore
from ..tools import audit, cleanup, datacenters, paging, queries, stats
from ..tools.health import health_of
from ..tools.operations import Outcome, Session
from ..tools.records import view
from ..tools.settings import OperatorSettings
from ..tools.zoho import Checked
from .settings import Settings


@dataclass
class Connection:
    store: MongoTokenStore
    operator_settings: OperatorSettings
    backend: str
    accounts_url: str | None = None
    """``Settings.accounts_url``: where check and revoke ask Zoho instead of each token's data center."""
    api_url: str | None = None
    """``Settings.api_url``: where a check calls the CRM API instead of each token's api_domain."""

    @property
    def tokens(self) -> Collection:
        return self.store.collection

    @property
    def events(self) -> Collection:
        """The token history (``events.py``): the store's, or where its setting names when it is off."""
        return self.store.events if self.store.events is not None else \
            self.store.collection.database[self.store.settings.events_collection]

    @property
    def audit(self) -> Collection:
        return self.session("").audit

    def session(self, who: str, role: str = "viewer") -> Session:
        """The operator layer, acting as ``who`` under ``role`` (which it checks)."""
        return Session(self.store, who, self.operator_settings, accounts_url=self.accounts_url, api_url=self.api_url,
                       role=role)


def connect(settings: Settings) -> Connection:
    """Open the store and check the server answers; fails with a clear SDKException, fast."""
    # Bounded by the failover wait (DASHBOARD_FAILOVER_WAIT), each attempt too: a frozen server costs a page
    # one wait, not the longer socket timeout.
    store = MongoTokenStore(settings=settings.store.replace(
        server_selection_timeout=min(3.0, settings.store.failover_wait),
        socket_timeout=min(settings.store.socket_timeout, settings.store.failover_wait), create_indexes=False,
        read_cache=False))  # an operator acts on what is stored now, also right after a delete of its own
    with store.guard("connect to MongoDB"):
        info = store.client.server_info()
    connection = Connection(store, settings.operators, "", settings.accounts_url, settings.api_url)
    if not settings.read_only:
        store.call("create the indexes", lambda: ensure_indexes(store.collection, backfill_keys=False))  # bounded:
        connection.session("", "admin").prepare()  # the search keys' walk is `indexes`'s; the audit's and history's indexes
    connection.backend = "mongomock (in-memory, not MongoDB)" if info.get("sysInfo") == "Mock" else \
        f"MongoDB {info['version']}"
    return connection


def overview(connection: Connection, now: datetime | None = None) -> dict[str, Any]:
    """Counts by health, status and data center, all counted on the server; ``as_of`` is when."""
    now = now or utcnow()
    tokens = connection.tokens
    counts = connection.store.call("count the tokens", lambda: stats.stats(tokens, now, extra={
        "refresh-only": ({"refresh_token": {"$exists": True}, "access_token": {"$exists": False}},
                         "refresh_token_unique"),
        "grant-only": ({"grant_token": {"$exists": True}, "refresh_token": {"$exists": False},
                        "access_token": {"$exists": False}}, "grant_token"),
    }))
    counts["as_of"] = now
    return counts


def domains(connection: Connection) -> list[str]:
    """The data centers in use, for the filter, in the order of their names (AU, CA, EU, ..., US)."""
    found = connection.store.call("read the data centers", lambda: stats.stats_domains(connection.tokens))
    return sorted(found, key=lambda domain: (datacenters.name(domain), domain))


def ping(connection: Connection) -> bool:
    """Whether the server answers now: one ``ping``, bounded by the client's server selection (3 s),
    never retried (the reconnecting page's probe, not a page's read)."""
    try:
        connection.store.client.admin.command("ping")
    except Exception:
        return False
    return True


def token_count(connection: Connection) -> int:
    """About how many tokens are stored (the collection's own count: no scan)."""
    return connection.store.call("count the tokens", connection.tokens.estimated_document_count)


def token_page(connection: Connection, query: queries.Query, size: int = 50, *, go: str = "first",
               cursor: str | None = None, number: int = 1) -> tuple[list[dict[str, Any]], paging.Page]:
    """One keyset page (``paging.page``: first, next, previous or last at any depth) as a person
    sees it (``records.view``), and the page itself (count, number, cursors). A malformed cursor
    (an edited URL) raises ValueError with one sentence, before the database is asked."""
    now = utcnow()
    paging.finds(query, go=go, cursor=cursor, now=now)
    found = connection.store.call("list the tokens", lambda: paging.page(connection.tokens, query, size, go=go,
                                                                           cursor=cursor, number=number, now=now))
    return [view(document, now) for document in found.documents], found


def inspect(connection: Connection, token_id: str) -> dict[str, Any] | None:
    """Every field of one token, secrets masked, with its health, refresh record and timestamps."""
    token_id = check_text("id", token_id, required=True)
    document = connection.store.call("read the token", lambda: connection.tokens.find_one({"_id": token_id}))
    return None if document is None else view(document)


def check(connection: Connection, token_id: str, who: str, role: str) -> Checked:
    """Ask Zoho whether the token works (``Session.check``): recorded on the token, in the audit log
    and in its history."""
    found: list[Checked] = []
    connection.session(who, role).check([token_id], progress=found.append)
    return found[0]


def check_many(connection: Connection, ids: list[str], who: str, role: str) -> Outcome:
    """``check`` each ticked token, in one run (one audit entry)."""
    return connection.session(who, role).check(ids)


def revoke(connection: Connection, token_id: str, who: str, role: str) -> str:
    """Revoke the refresh token at Zoho, then delete the token (``Session.revoke``); returns the
    accounts server's host. Zoho's refusal raises ``zoho.ZohoError`` and deletes nothing."""
    return connection.session(who, role).revoke(token_id).host


def revoke_many(connection: Connection, ids: list[str], who: str, role: str) -> Outcome:
    """``revoke`` each ticked token; a refusal leaves that token stored and goes on with the next."""
    return connection.session(who, role).revoke_many(ids)


def cleanup_plan(connection: Connection, policy: cleanup.Policy) -> cleanup.Report:
    """What the lifecycle policy would do now (reads only)."""
    return connection.session("").cleanup_plan(policy)


def cleanup_run(connection: Connection, policy: cleanup.Policy, who: str, role: str, ids: list[str]) -> cleanup.Report:
    """Apply the lifecycle policy to the tokens the operator confirmed (``ids``, the preview), each
    only if it still qualifies when it is acted on, as ``zoho-mongo-store cleanup`` does."""
    return connection.session(who, role).cleanup(policy, ids=ids)


def user_names(connection: Connection, ids: list[str]) -> dict[str, str | None]:
    """The user name of each of these tokens that is still stored (None: stored without one), so a
    confirmation names the people behind the ids."""
    ids = [check_text("id", token_id, required=True) for token_id in ids]
    found = connection.store.call("read the user names", lambda: list(
        connection.tokens.find({"_id": {"$in": ids}}, {"user_name": True})))
    return {document["_id"]: document.get("user_name") for document in found}


def described(connection: Connection, ids: list[str]) -> dict[str, tuple[str | None, str]]:
    """Each of these tokens still stored, as (user name or None, health now): what a confirmation
    names beside each id."""
    ids = [check_text("id", token_id, required=True) for token_id in ids]
    now = utcnow()
    found = connection.store.call("read the chosen tokens", lambda: list(
        connection.tokens.find({"_id": {"$in": ids}}, queries.LIST_FIELDS)))
    return {document["_id"]: (document.get("user_name") if isinstance(document.get("user_name"), str) else None,
                              health_of(document, now)[0]) for document in found}


def in_view(connection: Connection, query: queries.Query, ids: list[str]) -> set[str]:
    """Which of these tokens the filters shown match now (on any page): a tick outside this set
    was made under other filters and is not in the operator's view."""
    ids = [check_text("id", token_id, required=True) for token_id in ids]
    where = {"$and": [query.to_filter(utcnow()) or {}, {"_id": {"$in": ids}}]}
    return set(connection.store.call("find the ticked tokens in this view", lambda: [
        document["_id"] for document in connection.tokens.find(where, {"_id": True})]))


def matching_ids(connection: Connection, query: queries.Query, limit: int = queries.COUNT_CAP) -> list[str]:
    """The ids of the tokens a filter matches now, read once when a filtered "Delete all" is
    confirmed: the delete then hits exactly the tokens the operator was shown, not those that match
    by the time of the click. More than ``limit`` is refused (narrow the filter)."""
    where = query.to_filter(utcnow())
    ids = connection.store.call("find the matching tokens", lambda: [
        document["_id"] for document in connection.tokens.find(where, {"_id": True}).sort("_id").limit(limit + 1)])
    if len(ids) > limit:
        raise store_error(f"more than {limit:,} tokens match the filter: narrow it, or clear every filter to "
                          "delete the whole collection")
    return ids


def confirm_name(connection: Connection, environment: str | None) -> str:
    """What an operator types to delete everything a filter matches, or every token: the
    environment, database and collection, so the same words never work in production and staging."""
    target = f"{connection.tokens.database.name}.{connection.tokens.name}"
    return f"{environment}/{target}" if environment else target


def delete(connection: Connection, ids: list[str], who: str, role: str) -> int:
    """Delete these tokens (``Session.delete``: audited, each in its history)."""
    return connection.session(who, role).delete(ids)


def delete_matching(connection: Connection, ids: list[str], who: str, role: str, typed_name: str, expected: str,
                    scope: str) -> int:
    """Delete the tokens a filter matched (``matching_ids``), only when the operator typed ``expected``."""
    if typed_name != expected:
        raise store_error("the typed name does not match; nothing deleted")
    return connection.session(who, role).delete(ids, action="delete-filtered", scope=scope)


def delete_all(connection: Connection, who: str, role: str, typed_name: str, expected: str) -> int:
    """Delete every token, only when the operator typed ``expected`` (``confirm_name``)."""
    if typed_name != expected:
        raise store_error("the typed name does not match; nothing deleted")
    return connection.session(who, role).delete_all()


# -- the token history and the audit search (events.py, audit.py) --------------------------------

def token_history(connection: Connection, token_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """The token's latest events, newest first (``{at, token_id, user_name, event, detail, who}``;
    never a secret), also after the token was deleted, until they expire."""
    token_id = check_text("id", token_id, required=True)
    if not 1 <= limit <= 10_000:
        raise ValueError("a history holds 1 to 10,000 events")
    return connection.store.call("read the token's history", lambda: events.for_token(connection.events, token_id, limit))


def event_activity(connection: Connection, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per 6 hours over the last 7 days, how many events of each kind (``events.activity``): the
    activity chart, counting every refresh rather than each token's latest."""
    when = now or utcnow()
    return connection.store.call("count the events", lambda: events.activity(connection.events, when))


def audit_search(connection: Connection, actor: str | None = None, token: str | None = None,
                 cursor: str | None = None, go: str = "first", size: int = 50, *, action: str | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 ) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """One page of the audit log, newest first, by actor (a prefix of who, any case), token (an id,
    or a user name prefix), action and time (``since`` <= at < ``until``): (entries without
    ``_id``, next (older) cursor, previous (newer) cursor), as ``audit.audit_page``. A malformed
    cursor or search raises ValueError (one sentence)."""
    audit.check_request(actor, token, size, cursor, go, action=action, since=since, until=until)
    entries, older, newer = connection.store.call("search the audit log", lambda: audit.audit_page(
        connection.audit, actor=actor, token=token, size=size, cursor=cursor, go=go, action=action, since=since,
        until=until))
    return [{key: value for key, value in entry.items() if key != "_id"} for entry in entries], older, newer


def audit_export(connection: Connection, actor: str | None = None, token: str | None = None, *,
                 action: str | None = None, since: datetime | None = None, until: datetime | None = None,
                 limit: int = 10_000) -> list[dict[str, Any]]:
    """Every entry the audit search matches, newest first, up to ``limit`` (for a CSV)."""
    where = audit.check_request(actor, token, 1, None, "first", action=action, since=since, until=until)
    found = connection.store.call("export the audit log", lambda: list(
        connection.audit.find(where, {"_id": False}).sort([("at", -1), ("_id", -1)]).limit(limit)))
    return found

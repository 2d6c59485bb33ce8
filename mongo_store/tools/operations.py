"""The operator actions, written once for every front end: delete, delete all (or what a filter
matched), revoke, check, cleanup and import. The CLI and the dashboard gather input, open a
``Session`` and show what it returns; neither writes an audit entry or reads Zoho's answers itself.

Each action's rules live here and only here: who is recorded (``Session.who``); what is audited
before and after (the audit entry is written before anything changes and updated with each
outcome, so a step that happened stays on record when the next one fails); how Zoho's answers are
read (``invalid_token``, Zoho no longer knowing the refresh token, means already revoked, for
revoke and cleanup alike: the token is deleted and audited as such); and that an action acts only
on the ids it was given, the ones an operator confirmed. A revoke, a check and a cleanup need the
SDK store (``MongoTokenStore``); deleting works on ``AdminStore`` too.

Roles are checked here, once, for every front end (``ROLES``): a viewer reads everything and changes
nothing; an operator also checks, revokes and deletes the tokens chosen; an admin also deletes all
(or everything a filter matched), applies a lifecycle policy, imports and rotates the key. A
refused action raises ``NotAllowed`` (one sentence) before anything is read or written, and every
audit entry records the role it was made under. The CLI acts as an admin: it runs in the
operator's own shell with the database credentials it was given, which allow all of that anyway.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pymongo.collection import Collection

from ..core import events
from ..core.calls import StoreCalls
from ..core.clock import utcnow
from ..core.errors import is_store_error, sentence, store_error
from ..core.mapping import check_text
from . import audit, cleanup
from .settings import OperatorSettings
from .words import plural

if TYPE_CHECKING:  # the SDK store: only the actions that need it import it (deleting runs without the SDK)
    from ..core.store import MongoTokenStore
    from .migrate import Report as ImportReport
    from .migrate import Row
    from .zoho import Checked

ROLES = ("viewer", "operator", "admin")
"""The roles, least first: each may do what the ones before it may."""
NEEDS = {"check": "operator", "revoke": "operator", "delete": "operator", "delete-all": "admin",
         "delete-filtered": "admin", "cleanup": "admin", "import": "admin", "keys": "admin"}
"""The least role each action needs (reading needs none beyond signing in)."""
DOING = {"check": "check tokens with Zoho", "revoke": "revoke tokens", "delete": "delete tokens",
         "delete-all": "delete every token", "delete-filtered": "delete everything a filter matches",
         "cleanup": "apply a lifecycle policy", "import": "import tokens", "keys": "rotate the encryption key"}


class NotAllowed(Exception):
    """The role may not take this action (one sentence, saying which role may)."""


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"a role is one of {', '.join(ROLES)}")
    return role


def allowed(role: str, action: str) -> bool:
    """Whether ``role`` may take ``action`` (a key of ``NEEDS``)."""
    return ROLES.index(check_role(role)) >= ROLES.index(NEEDS[action])


def refusal(role: str, action: str) -> str | None:
    """Why ``role`` may not take ``action`` (one sentence), or None when it may."""
    if allowed(role, action):
        return None
    article = "an" if role[0] in "aeiou" else "a"
    return f"{article} {role} may not {DOING[action]}: that needs the {NEEDS[action]} role"


REVOKE_ATTEMPT = "attempting the revoke at Zoho"
"""An audited revoke's outcome until Zoho answers: an entry left so means the process stopped midway."""
IMPORT_IDS = 1000
"""An import's audit entry names at most this many ids (the history has an event for each)."""


@dataclass(frozen=True)
class Revoked:
    """What a revoke did: the accounts server's host, whether Zoho already did not know the refresh
    token (revoked before, or replaced), how many documents were deleted, and whether the token was
    kept because a new login replaced the revoked refresh token meanwhile."""

    host: str
    already: bool
    deleted: int
    replaced: bool = False


@dataclass
class Outcome:
    """What an action on several tokens did, token by token (``results``: id → ``ok``, ``revoked``
    or why not)."""

    action: str
    results: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> list[str]:
        return [token_id for token_id, result in self.results.items() if result in ("ok", "revoked")]

    def summary(self) -> str:
        """One line: ``Checked 3 tokens: 2 ok, 1 not (INVALID_TOKEN: 1)``."""
        failed: dict[str, int] = {}
        for result in self.results.values():
            if result not in ("ok", "revoked"):
                failed[result] = failed.get(result, 0) + 1
        word = "ok" if self.action == "Checked" else "revoked"
        line = f"{self.action} {plural(len(self.results), 'token')}: {len(self.done)} {word}"
        if failed:
            line += f", {sum(failed.values())} not (" + "; ".join(f"{why}: {n}" for why, n in sorted(failed.items())) + ")"
        return line


class Session:
    """An operator at work: the store, the audit log, the token history, who acts, under which role
    (``ROLES``; the CLI's is admin) and where Zoho is asked (``accounts_url``, ``api_url``: a proxy or
    a local fake; None: the settings' ``ZOHO_ACCOUNTS_URL``/``ZOHO_API_URL``, else each token's data
    center)."""

    def __init__(self, store: StoreCalls, who: str, settings: OperatorSettings | None = None, *,
                 accounts_url: str | None = None, api_url: str | None = None, role: str = "admin") -> None:
        self.store, self.who, self.role = store, who, check_role(role)
        self.settings = settings or OperatorSettings.load()
        self.accounts_url = accounts_url or self.settings.accounts_url
        self.api_url = api_url or self.settings.api_url
        self._kept = False

    def require(self, action: str) -> None:
        """Refuse (``NotAllowed``) an action this session's role may not take, before it starts."""
        refused = refusal(self.role, action)
        if refused:
            raise NotAllowed(refused)

    def entry(self, action: str, **fields: Any) -> dict[str, Any]:
        """An audit entry's common fields: when, who, under which role, what."""
        return {"at": utcnow(), "who": self.who, "role": self.role, "action": action, **fields}

    # -- where the records go ------------------------------------------------------------------------

    @property
    def audit(self) -> Collection:
        """The audit collection, as it is (reading needs no index created)."""
        return self.store.collection.database[self.settings.audit_collection]

    @property
    def events(self) -> Collection | None:
        """The token history's collection, or None when the history is off."""
        return self.store.events

    def prepare(self) -> None:
        """The audit log's and the history's indexes and retentions, in place: once, before the
        first action that writes to them."""
        if self._kept:
            return
        store = self.store
        self.store.call("set the audit log's retention",
                        lambda: audit.keep_audit(self.audit, self.settings.audit_retention_days))
        if store.events is not None:
            store.call("set the token history's retention",
                       lambda: events.keep_events(store.events, store.settings.events_retention_days))
        self._kept = True

    def _event(self, token_id: str, user_name: str | None, kind: str, detail: str) -> None:
        if self.events is not None:
            events.record_quietly(self.events, [events.entry(token_id, user_name, kind, detail, self.who)],
                                  self.store.socket_timeout)

    def _sdk_store(self) -> MongoTokenStore:
        if not hasattr(self.store, "open_document"):
            raise TypeError("this action needs the SDK store (MongoTokenStore), not AdminStore")
        return self.store  # type: ignore[return-value]

    # -- delete ------------------------------------------------------------------------------------

    def delete(self, ids: list[str], *, action: str = "delete", scope: str | None = None) -> int:
        """Delete these tokens (exactly these ids), recording when, who, which ids and user names
        first, and how many were deleted after; each one found gets a "deleted" event. ``action``:
        ``delete-filtered`` for the tokens a filter matched, with ``scope`` naming the filter. Not
        retried: each attempt would write an audit entry."""
        self.require("delete" if action == "delete" else "delete-filtered")
        ids = [check_text("id", token_id, required=True) for token_id in ids]
        if not ids:
            raise store_error("no token selected")
        self.prepare()
        tokens = self.store.collection
        with self.store.guard("delete the tokens" if len(ids) > 1 else "delete the token"):
            found = list(tokens.find({"_id": {"$in": ids}}, {"user_name": True}))
            names = [document.get("user_name") for document in found]
            entry = self.audit.insert_one(self.entry(action, ids=ids, user_names=[name for name in names if name],
                                                     deleted=None, **({"scope": scope} if scope else {}))).inserted_id
            deleted = tokens.delete_many({"_id": {"$in": ids}}).deleted_count
            said = f"deleted by an operator ({action}{': ' + scope if scope else ''})"
            if self.events is not None:
                events.record_quietly(self.events, [events.entry(document["_id"], document.get("user_name"), "deleted",
                                                                 said, self.who) for document in found])
            self.audit.update_one({"_id": entry}, {"$set": {"deleted": deleted}})
        return deleted

    def delete_all(self) -> int:
        """Delete every token (documents only: the indexes stay), audited before and after."""
        self.require("delete-all")
        self.prepare()
        tokens = self.store.collection
        with self.store.guard("delete all tokens"):
            entry = self.audit.insert_one(self.entry("delete-all", ids=[], user_names=[],
                                                     expected=tokens.estimated_document_count(),
                                                     deleted=None)).inserted_id
            deleted = tokens.delete_many({}).deleted_count
            self.audit.update_one({"_id": entry}, {"$set": {"deleted": deleted}})
        return deleted

    # -- revoke ------------------------------------------------------------------------------------

    def revoke(self, token_id: str, *, at_zoho: Callable[[str, bool], None] | None = None) -> Revoked:
        """Revoke the token's refresh token at Zoho, then delete the token. Exactly the refresh token
        read here is revoked, and the token is deleted only while it still holds it: a new login
        meanwhile (another refresh token) lives on, and the audit says it was kept. The audit entry is
        written before Zoho is called and updated with each outcome, so a revoke Zoho honoured stays
        on record even when the delete after it fails. Zoho's ``invalid_token`` (it no longer knows
        the refresh token) counts as revoked: the token is deleted, audited as already revoked.
        ``at_zoho(host, already)`` is told Zoho's answer before the delete (the CLI prints it then).
        Zoho's refusal raises ``zoho.ZohoError`` and deletes nothing; a database failure is the
        store's error."""
        from .zoho import AlreadyRevoked, ZohoError, revoke_stored

        self.require("revoke")
        token_id = check_text("id", token_id, required=True)
        store = self._sdk_store()
        self.prepare()
        document = store.call("read the token", lambda: store.collection.find_one({"_id": token_id}))
        if document is None:
            raise ZohoError(f"no stored token has id {token_id!r}")
        user_name = document.get("user_name") if isinstance(document.get("user_name"), str) else None
        with store.guard("record the revoke in the audit log"):
            entry = self.audit.insert_one(self.entry("revoke", ids=[token_id], user_names=[user_name] if user_name else [],
                                                     outcome=REVOKE_ATTEMPT, deleted=None)).inserted_id

        def record(outcome: str, **more: Any) -> None:
            with store.guard("record the revoke's outcome in the audit log"):
                self.audit.update_one({"_id": entry}, {"$set": {"outcome": outcome, **more}})

        already = False
        try:
            host = revoke_stored(store, document, self.accounts_url)
        except AlreadyRevoked as error:
            host, already = error.host, True
        except BaseException as error:
            known = isinstance(error, ZohoError) or is_store_error(error)
            with contextlib.suppress(Exception):  # Zoho's answer is what the operator must see
                record("not revoked" if known else "unknown",
                       reason=sentence(error) if known else
                       f"the revoke stopped ({type(error).__name__}): ask Zoho whether the token still works")
            raise
        if already:
            record("already revoked", host=host, reason="Zoho no longer knows the refresh token (invalid_token)")
        else:
            record("revoked", host=host)
            self._event(token_id, user_name, "revoked", f"revoked at {host} by an operator")
        if at_zoho is not None:
            at_zoho(host, already)
        revoked = store.open_document(document)["refresh_token"]
        try:
            with store.guard("delete the revoked token"):
                deleted = store.collection.delete_many(
                    {"$and": [{"_id": token_id}, store.holding("refresh_token", revoked)]}).deleted_count
                replaced = not deleted and store.collection.find_one({"_id": token_id}, {"_id": True}) is not None
        except BaseException as error:
            with contextlib.suppress(Exception):  # the server that refused the delete may refuse this too
                record("revoked, not deleted", reason=f"the delete failed: {sentence(error)}")
            raise
        done = "already revoked" if already else "revoked"
        if replaced:
            record(f"{done}; kept: a new login replaced its refresh token meanwhile", deleted=0)
        else:
            record(f"{done} and deleted" if deleted else f"{done}; it was already deleted", deleted=deleted)
        if deleted and already:
            self._event(token_id, user_name, "deleted", f"deleted by an operator: {host} no longer knew its refresh "
                        "token (invalid_token)")
        return Revoked(host, already, deleted, replaced)

    def revoke_many(self, ids: list[str]) -> Outcome:
        """``revoke`` each of these tokens; Zoho's refusal leaves that token stored and goes on with
        the next. A database failure stops the run (the next would fail the same way)."""
        from .zoho import ZohoError

        self.require("revoke")
        outcome = Outcome("Revoked")
        for token_id in ids:
            try:
                done = self.revoke(token_id)
                outcome.results[token_id] = "kept: a new login replaced its refresh token" if done.replaced else "revoked"
            except ZohoError as error:
                outcome.results[token_id] = str(error)
        return outcome

    # -- check -------------------------------------------------------------------------------------

    def check(self, ids: Iterable[str], progress: Callable[[Checked], None] | None = None) -> Outcome:
        """Ask Zoho whether each token works (``zoho.check``: bounded calls, the store's refresh lease),
        each token once; the result is recorded on the token, as a "checked" event and, for the whole
        run, in one audit entry, written even when the run stops midway (a database failure stops it;
        Zoho's trouble with one token is that token's result)."""
        from .zoho import Checked, ZohoError
        from .zoho import check as check_at_zoho

        self.require("check")
        store = self._sdk_store()
        outcome, names = Outcome("Checked"), {}
        try:
            for token_id in dict.fromkeys(ids):  # each token once: never two refreshes in one check
                try:
                    result = check_at_zoho(store, token_id, self.accounts_url, self.api_url)
                except ZohoError as error:
                    result = Checked(token_id, None, f"not checked: {error}")
                outcome.results[result.token_id], names[result.token_id] = result.result, result.user_name
                if progress is not None:
                    progress(result)
        finally:
            if outcome.results:  # what was asked of Zoho is on the Audit page, even if the run stopped midway
                self.prepare()
                store.call("record the check in the audit log", lambda: self._audit_check(outcome.results, names))
        return outcome

    def _audit_check(self, results: dict[str, str], user_names: dict[str, str | None]) -> None:
        ok = sum(result == "ok" for result in results.values())
        self.audit.insert_one(self.entry("check", ids=list(results), outcome=f"{ok} ok, {len(results) - ok} not",
                                         results=[f"{token_id}: {result}" for token_id, result in results.items()]))
        if self.events is not None:
            events.record_quietly(self.events, [
                events.entry(token_id, user_names.get(token_id), "checked", f"Zoho: {result}", self.who)
                for token_id, result in results.items() if result != "not found"])

    # -- cleanup -----------------------------------------------------------------------------------

    def cleanup_plan(self, policy: cleanup.Policy, batch_size: int = 100) -> cleanup.Report:
        """What the policy would do now (reads only: no Zoho call, no audit entry)."""
        return self.store.call("plan the cleanup", lambda: cleanup.plan(self.store.collection, policy, batch_size))

    def cleanup(self, policy: cleanup.Policy, *, batch_size: int = 100, ids: list[str] | None = None,
                progress: Callable[[cleanup.Entry], None] | None = None) -> cleanup.Report:
        """Apply the policy now, each token decided when it is acted on, each action audited and
        in its history. ``ids``: only these tokens (the ones an operator confirmed in a preview),
        and only those that still qualify; None: every token that qualifies now (the CLI, cron),
        and then the refresh tokens new logins replaced whose revoke failed are tried again
        (``core/displaced.py``; each audited, and a failure counts as one)."""
        from ..core.displaced import retry_displaced
        from .zoho import AlreadyRevoked, ZohoError, revoke_stored

        self.require("cleanup")
        store = self._sdk_store()
        self.prepare()
        steps = cleanup.Steps(
            revoke=lambda claimed: revoke_stored(store, claimed, self.accounts_url),
            holding=lambda claimed: store.holding("refresh_token", store.open_document(claimed)["refresh_token"]),
            refused=(ZohoError, _store_error_type()), already=AlreadyRevoked,
            audit=lambda entry: store.call("record the cleanup in the audit log",
                                           lambda: self.audit.insert_one(self.entry(entry["action"], **{
                                               key: value for key, value in entry.items() if key != "action"}))),
            database=lambda action, work: store.call(action, work),
            event=lambda token_id, name, kind, detail: self._event(token_id, name, kind, detail))
        report = cleanup.run(store.collection, policy, steps, batch_size, progress=progress, only=ids)
        if ids is None:
            for retired in retry_displaced(store, self.accounts_url, who=self.who):
                entry = cleanup.Entry(retired.token_id, retired.user_name, cleanup.REVOKE_REPLACED,
                                      "a new login replaced this refresh token", retired.result)
                steps.audit({"action": f"cleanup {entry.action}", "ids": [entry.id],
                             "user_names": [entry.user_name] if entry.user_name else [], "reason": entry.reason,
                             "outcome": entry.result})
                report.entries.append(entry)
                if progress is not None:
                    progress(entry)
        if report.entries:  # one entry with the whole run's counts, beside one per token
            counts = report.summary(dry_run=False)
            said = ", ".join(f"{count} {name}" for name, count in counts.items() if count or name == "done")
            store.call("record the cleanup's summary in the audit log", lambda: self.audit.insert_one(self.entry(
                "cleanup", ids=[entry.id for entry in report.entries][:IMPORT_IDS], policy=policy.describe(),
                summary=counts, outcome=f"{plural(len(report.entries), 'token')} acted on: {said}",
                user_names=[entry.user_name for entry in report.entries if entry.user_name][:IMPORT_IDS])))
        return report

    # -- import ------------------------------------------------------------------------------------

    def import_rows(self, rows: Iterable[Row], *, source: str, dry_run: bool = False) -> ImportReport:
        """Save each row through the store (``migrate.import_rows``: "imported" events), then one
        audit entry naming the source's kind only (a MySQL URL may hold a password)."""
        from .migrate import import_rows

        if not dry_run:
            self.require("import")
        store = self._sdk_store()
        if not dry_run:
            self.prepare()
        report = import_rows(store, rows, dry_run=dry_run, who=self.who, source=source)
        if not dry_run:
            outcome = (f"{plural(len(report.imported), 'token')} imported: {report.inserted} inserted, {report.updated} "
                       f"updated, {report.skipped} skipped, {plural(len(report.rejected), 'row')} rejected")
            entry = self.entry("import", source=source, ids=report.imported[:IMPORT_IDS], imported=len(report.imported),
                               inserted=report.inserted, updated=report.updated, skipped=report.skipped,
                               rejected=len(report.rejected), reasons=report.reason_counts()[:20], outcome=outcome)
            store.call("record the import in the audit log", lambda: self.audit.insert_one(dict(entry)))
        return report


def _store_error_type() -> type[BaseException]:
    """The store's error type where the SDK store runs (its ``SDKException``)."""
    from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

    return SDKException

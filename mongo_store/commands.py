"""What each ``zoho-mongo-store`` command does. Imported by ``cli.main`` only once the arguments
are parsed. The admin commands (``ADMIN_COMMANDS``) run on ``AdminStore``, without the SDK; the
others import the store and the SDK (a second or more) when they run."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .core import events
from .core.admin_store import AdminStore
from .core.errors import sentence, store_error
from .core.indexes import ensure_indexes, index_drift
from .core.mapping import check_text
from .core.masking import ago, iso, masked, printable
from .core.search import backfill as backfill_search_keys
from .tools import admin, datacenters, history, paging
from .tools.embedded import EmbeddedMongod, mongod_binary
from .tools.records import VIEW_DATES, document_to_record, iso_dates, view

if TYPE_CHECKING:
    from .core.store import MongoTokenStore

PROG = "zoho-mongo-store"


class Failure(Exception):
    """An expected failure: printed as one line, exit code 1."""


ADMIN_COMMANDS = frozenset({"indexes", "stats", "list", "show", "events", "audit", "delete", "delete-all", "alerts",
                            "metrics"})
"""Commands that read and write documents only: they run on ``AdminStore`` and never import the SDK."""


def open_store(args: argparse.Namespace) -> MongoTokenStore | AdminStore:
    """Only import, rotate-key and cleanup write tokens and need the indexes; the rest works read-only."""
    if not args.uri and not os.environ.get("MONGODB_URI"):
        raise Failure("no MongoDB URI: set MONGODB_URI or pass --uri")
    if args.command in ADMIN_COMMANDS:
        return AdminStore(args.uri, database=args.database, collection=args.collection,
                          server_selection_timeout=args.timeout, failover_wait=args.timeout)
    if importlib.util.find_spec("zohocrmsdk") is None:  # the admin commands above work without it
        from . import sdk_missing

        raise Failure(sdk_missing(args.command))
    from .core.store import MongoTokenStore

    return MongoTokenStore(args.uri, database=args.database, collection=args.collection,
                           server_selection_timeout=args.timeout, failover_wait=args.timeout,
                           create_indexes=args.command in ("import", "rotate-key", "cleanup")
                           and not getattr(args, "dry_run", False))


def guarded(store: MongoTokenStore, action: str, call: Any) -> Any:
    """Run a direct collection call with the store's failover and error handling (one clear line
    on failure)."""
    return store.call(action, call)


def cmd_indexes(store: MongoTokenStore, args: argparse.Namespace, out: TextIO) -> int:
    missing, drifted = guarded(store, "read the indexes", lambda: index_drift(store.collection))
    for line in drifted:
        print(f"drift: {line}", file=out)
    if missing and not args.check:
        guarded(store, "create the indexes", lambda: ensure_indexes(store.collection, backfill_keys=False))
        print(f"created: {', '.join(missing)}", file=out)
    if not args.check:  # tokens written without search keys (raw inserts, an older version) get them
        written = guarded(store, "write the search keys", lambda: backfill_search_keys(store.collection))
        if written:
            print(f"search keys: written for {written} token(s)", file=out)
    elif missing:
        print(f"missing: {', '.join(missing)}", file=out)
    if not missing and not drifted:
        print("indexes: all present", file=out)
    return 1 if drifted or (missing and args.check) else 0


def cmd_stats(store: MongoTokenStore, args: argparse.Namespace, out: TextIO) -> int:
    counts = guarded(store, "count the tokens", lambda: admin.stats(store.collection))
    if args.json:
        print(json.dumps(counts, indent=2), file=out)
        return 0
    print(f"total: {counts['total']} tokens", file=out)
    print("health (whether the Zoho connection works):", file=out)
    width = max(len(str(value)) for value in counts["health"].values())
    for state, count in counts["health"].items():
        print(f"  {state + ':':<10}{count:>{width}}  {admin.HEALTH_MEANING[state]}", file=out)
    print("access-token expiry (not health: a lapsed access token is renewed on next use, so an expired "
          "token can be idle, and a valid one failing):", file=out)
    width = max(len(str(counts[status])) for status in admin.STATUSES)
    for status in admin.STATUSES:
        print(f"  {status + ':':<16}{counts[status]:>{width}}", file=out)
    print("data centers:", file=out)
    for domain, count in counts["per-api-domain"].items():
        print(f"  {datacenters.label(domain)}: {count}", file=out)
    unnamed = counts["total"] - sum(counts["per-api-domain"].values())
    if unnamed:
        print(f"  none: {unnamed}", file=out)
    print("tokens holding:", file=out)
    for key in ("with-user-name", "with-access-token", "with-refresh-token"):
        print(f"  {key.removeprefix('with-').replace('-', ' ')}: {counts[key]}", file=out)
    return 0


def when(value: Any) -> str:
    """A date for a table cell: ISO 8601 UTC and how long ago (or from now)."""
    return f"{iso(value)} ({ago(value)})" if isinstance(value, datetime) else ""


LIST_COLUMNS = ("id", "user_name", "health", "data_center", "expires_at", "last_refreshed_at", "access_token",
                "refresh_token", "grant_token", "reason")
"""The columns of ``list``'s table: the reason (``health_reason``, the whole sentence) last."""


def list_cells(token: dict[str, Any]) -> list[str]:
    """One token's table cells, as plain text (control characters escaped)."""
    cells = []
    for column in LIST_COLUMNS:
        if column in VIEW_DATES:
            cells.append(when(token.get(column)))
        elif column == "data_center":
            cells.append(datacenters.name(token.get("api_domain")))
        elif column == "reason":
            cells.append(printable(token.get("health_reason") or "")
                         + (f" (malformed: {printable(token['malformed'])})" if "malformed" in token else ""))
        else:
            cells.append(printable(token.get(column) or ""))
    return cells


def list_command(args: argparse.Namespace, *, cursor: tuple[str, str] | None = None, number: int | None = None,
                 last: bool = False) -> str:
    """The exact ``list`` command for another page of the same listing (never the URI: it may hold
    a password)."""
    words = [PROG, "list"]
    for option, value in (("--search", args.search), ("--health", args.health), ("--status", args.status),
                          ("--domain", args.domain), ("--sort", args.sort)):
        if value:
            words += [option, value]
    if args.descending:
        words.append("--descending")
    if args.page_size != 50:
        words += ["--page-size", str(args.page_size)]
    if args.format != "table":
        words += ["--format", args.format]
    if last:
        words.append("--last")
    if cursor is not None:
        words += list(cursor)
    if number is not None:
        words += ["--page", str(number)]
    return shlex.join(words)


def cmd_list(store: MongoTokenStore, args: argparse.Namespace, out: TextIO) -> int:
    try:
        query = admin.Query(search=args.search, status=args.status,
                            api_domain=admin.data_center(args.domain) if args.domain else None,
                            health=args.health, sort=args.sort, descending=args.descending)
        now = admin.utcnow()
        query.to_filter(now), query.sort_key()  # a bad value is one sentence, before the database is asked
        size = args.page_size
        if args.after or args.before or args.last or not args.page or args.page == 1:
            go = "last" if args.last else "next" if args.after else "previous" if args.before else "first"
            number = args.page or (1 if go == "first" else 2 if go == "next" else 1)
            paging.finds(query, go=go, cursor=args.after or args.before, now=now)  # a malformed cursor: one sentence
            found = guarded(store, "list the tokens", lambda: paging.page(
                store.collection, query, size, go=go, cursor=args.after or args.before, number=number, now=now))
        else:  # a jump: skip the pages before (fine near the start; the printed commands walk by keyset)
            documents, total = guarded(store, "list the tokens",
                                       lambda: admin.page(store.collection, query, args.page, size, now))
            found = skipped_page(documents, total, args.page, size, query)
    except ValueError as error:
        raise Failure(str(error)) from None
    shown = [view(document, now) for document in found.documents]
    if not shown and args.page and args.page > 1 and found.total and not (args.after or args.before):
        last = -(-min(found.total, admin.COUNT_CAP) // size)
        raise Failure(f"page {args.page} is past the end: {admin.shown_total(found.total)} tokens make "
                      f"{last}{'+' if found.pages is None else ''} page(s) of {size}; "
                      f"the last page is `{list_command(args, last=True)}`")
    if args.format == "json":
        for token in shown:
            print(json.dumps(iso_dates(token)), file=out)
    else:
        rows = [list_cells(token) for token in shown]
        if args.format == "tsv":
            for row in [list(LIST_COLUMNS), *rows]:
                print("\t".join(row), file=out)
        elif rows:
            widths = [max(len(row[n]) for row in [list(LIST_COLUMNS), *rows]) for n in range(len(LIST_COLUMNS))]
            for row in [list(LIST_COLUMNS), *rows]:
                print("  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False))
                      + "  " + row[-1], file=out)
    notes = out if args.format != "json" else sys.stderr  # JSON lines stay JSON lines
    for line in footer(found, args, shown):
        print(f"# {line}", file=notes)
    return 0


def skipped_page(documents: list[dict[str, Any]], total: int, number: int, size: int,
                 query: admin.Query) -> paging.Page:
    """A page reached by skipping (``--page N`` alone) as a keyset page, so its footer prints the
    keyset commands for the pages either side."""
    field = query.sort_key()
    pages = max(1, -(-total // size)) if total <= admin.COUNT_CAP or not query.to_filter(admin.utcnow()) else None
    return paging.Page(documents, total, number, pages,
                       paging.cursor_of(documents[0], field) if documents else None,
                       paging.cursor_of(documents[-1], field) if documents else None,
                       number > 1, bool(documents) and (pages is None or number < pages))


def footer(found: paging.Page, args: argparse.Namespace, shown: list[dict[str, Any]]) -> list[str]:
    """Where this page is ("page 2 of 7, tokens 51-100 of 320") and the commands for the pages
    either side; for an empty result, what was searched."""
    if not shown:
        said = admin.describe_search(args.search) if args.search else "no token matches these filters"
        return [f"no tokens: {said}" if found.total == 0 else "no tokens on this page"]
    total, size = admin.shown_total(found.total), args.page_size
    if found.number > 0:
        first = (found.number - 1) * size + 1
        where = f"page {found.number} of {found.pages if found.pages is not None else 'many'}, tokens " \
                f"{first}-{first + len(shown) - 1} of {total}"
    else:
        where = f"page {-found.number} from the end, of {total} tokens"
    lines = [where]
    if found.has_next and found.last_cursor:
        lines.append(f"next: {list_command(args, cursor=('--after', found.last_cursor), number=found.number + 1)}")
    if found.has_previous and found.first_cursor:
        lines.append(f"previous: {list_command(args, cursor=('--before', found.first_cursor), number=found.number - 1)}")
    if found.has_next:
        lines.append(f"last: {list_command(args, last=True)}")
    return lines


def cmd_show(store: MongoTokenStore, args: argparse.Namespace, out: TextIO) -> int:
    if (args.id is None) == (args.user is None):
        raise Failure("show needs a token id or --user NAME (one of them)")
    field, value = ("_id", check_text("id", args.id, required=True)) if args.id is not None else \
        ("user_name", check_text("user name", args.user, required=True))
    document = guarded(store, "read the token", lambda: store.collection.find_one({field: value}))
    if document is None:
        what = "id" if field == "_id" else "user name"
        raise Failure(f"no stored token has {what} {value!r}")  # repr: control characters escaped
    shown = view(document)
    if args.json:
        print(json.dumps(iso_dates(shown)), file=out)
        return 0
    for key, value in shown.items():
        if value is not None:
            print(f"{key}: {when(value) if isinstance(value, datetime) else printable(value)}", file=out)
    if store.events is not None:
        found = guarded(store, "read the token's history", lambda: events.for_token(store.events, document["_id"], 20))
        print("history (newest first):" if found else "history: no events (or all expired)", file=out)
        for event in found:
            print("  " + event_line(event), file=out)
    return 0


def event_line(event: dict[str, Any]) -> str:
    """One event for a person: when, what, the sentence, and who."""
    return "  ".join(printable(cell) for cell in (iso(event.get("at")) or "", f"{event.get('event', ''):<14}",
                                                  event.get("detail") or "", f"({event.get('who') or 'unknown'})"))


def cmd_events(store: MongoTokenStore, args: argparse.Namespace, out: TextIO) -> int:
    """A token's history, newest first (also of a deleted token, until its events expire)."""
    token_id = check_text("id", args.id, required=True)
    if store.events is None:
        raise Failure("the token history is off")
    found = guarded(store, "read the token's history", lambda: events.for_token(store.events, token_id, args.limit))
    if args.json:
        for event in found:
            print(json.dumps(iso_dates(event)), file=out)
        return 0
    for event in found:
        print(event_line(event), file=out)
    print(f"# {len(found)} event(s) of {printable(token_id)}, newest first" if found else
          f"# no events of {printable(token_id)} (none recorded, or all expired)", file=out)
    return 0


def cmd_audit(store: MongoTokenStore, args: argparse.Namespace, out: TextIO) -> int:
    """The audit log, newest first, by actor and token, a page at a time (keyset cursors)."""
    go, cursor = ("next", args.after) if args.after else ("previous", args.before) if args.before else \
        ("last", None) if args.last else ("first", None)
    try:
        history.check_request(args.actor, args.token, args.page_size, cursor, go)
    except ValueError as error:
        raise Failure(str(error)) from None
    entries, older, newer = guarded(store, "search the audit log", lambda: history.audit_page(
        audit_collection(store), actor=args.actor, token=args.token, size=args.page_size, cursor=cursor, go=go))
    if args.json:
        for entry in entries:
            print(json.dumps(iso_dates({key: value for key, value in entry.items() if key != "_id"}), default=str),
                  file=out)
    else:
        for entry in entries:
            ids = entry.get("ids") or []
            shown = ", ".join(map(str, ids[:3])) + (f" (+{len(ids) - 3})" if len(ids) > 3 else "")
            outcome = entry.get("outcome") or ("deleted " + str(entry["deleted"]) if entry.get("deleted") is not None
                                               else "; ".join(map(str, (entry.get("results") or [])[:3])))
            print("\t".join(printable(cell) for cell in (iso(entry.get("at")) or "", entry.get("who") or "",
                                                         entry.get("action") or "", shown, outcome or "")), file=out)
        searched = " and ".join(part for part in (f"actor starting with {args.actor!r}" if args.actor else "",
                                                  f"token {args.token!r} (id, or user name start)" if args.token else "")
                                if part) or "every entry"
        print(f"# {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} ({searched}), newest first" +
              (f"; older: --after {older}" if older else "") + (f"; newer: --before {newer}" if newer else ""),
              file=out)
    return 0


def audit_log(store: MongoTokenStore) -> Any:
    """The audit collection the dashboard keeps, so CLI deletions appear on its Audit page too; its
    entries expire after ``ZOHO_AUDIT_RETENTION_DAYS`` (400 by default)."""
    try:
        retention = admin.audit_retention()
    except ValueError as error:  # (an SDKException: it may be raised inside the store's guard)
        raise store_error(str(error)) from None
    audit = audit_collection(store)
    guarded(store, "set the audit log's retention", lambda: admin.keep_audit(audit, retention))
    return audit


def audit_collection(store: MongoTokenStore) -> Any:
    """The audit collection (``DASHBOARD_AUDIT_COLLECTION``), as it is: for reading."""
    return store.collection.database[os.environ.get("DASHBOARD_AUDIT_COLLECTION") or admin.AUDIT_COLLECTION]


def event_log(store: MongoTokenStore) -> Any:
    """The token history's collection, its indexes and retention (``ZOHO_EVENTS_RETENTION_DAYS``)
    in place, for a command that writes events; None when the history is off."""
    if store.events is None:
        return None
    retention = store.settings.events_retention_days
    guarded(store, "set the token history's retention", lambda: events.keep_events(store.events, retention))
    return store.events


def actor(args: argparse.Namespace) -> str:
    """Who deletes, for the audit log: ``--actor``, else the operating-system user."""
    if args.actor:
        return args.actor
    try:
        return f"{getpass.getuser()} (cli)"
    except Exception:  # no user name in this environment
        return "unknown (cli)"


def cmd_delete(store: MongoTokenStore, args: argparse.Namespace, out: TextIO) -> int:
    token_id = check_text("id", args.id, required=True)
    with store.guard("delete the token"):  # not retried: each attempt would write an audit entry
        deleted = admin.audited_delete(store.collection, audit_log(store), [token_id], actor(args),
                                       events=event_log(store))
    if not deleted:
        raise Failure(f"no stored token has id {token_id!r}")
    print(f"deleted {printable(token_id)}", file=out)
    return 0


def cmd_delete_all(store: MongoTokenStore, args: argparse.Namespace, out: TextIO) -> int:
    count = guarded(store, "count the tokens", store.collection.estimated_document_count)
    if not args.yes:
        if not sys.stdin.isatty():
            raise Failure("delete-all needs --yes when not run at a terminal")
        name = store.collection.name
        answer = input(f"Delete all {count} tokens? Type the collection name ({name}) to confirm: ")
        if answer.strip() != name:
            raise Failure("not confirmed; nothing deleted")
    with store.guard("delete all tokens"):
        deleted = admin.audited_delete(store.collection, audit_log(store), None, actor(args))
    print(f"deleted all tokens ({deleted})", file=out)
    return 0


def cmd_check(store: MongoTokenStore, args: argparse.Namespace, out: TextIO) -> int:
    from .tools.zoho import check

    chosen = sum(map(bool, (args.ids, args.health, args.all)))
    if chosen != 1:
        raise Failure("check needs token ids, --health STATE or --all (one of them)")
    if args.ids:
        ids = list(dict.fromkeys(args.ids))  # each token once: never two refreshes in one check
    else:
        where = admin.health_filter(args.health, admin.utcnow()) if args.health else {}
        ids = guarded(store, "list the tokens", lambda: [d["_id"] for d in store.collection.find(where, {"_id": True})
                                                         .sort("_id", 1)])
    failed, results, names = 0, {}, {}
    try:
        for token_id in ids:
            result = check(store, token_id, args.accounts_url, args.api_url)
            failed += not result.ok
            results[result.token_id], names[result.token_id] = result.result, result.user_name
            print(f"{printable(result.token_id)}\t{printable(result.user_name or '')}\t{printable(result.result)}",
                  file=out, flush=True)
    finally:
        if results:  # what was asked of Zoho is on the Audit page, even if the run stopped midway
            guarded(store, "record the check in the audit log",
                    lambda: admin.audited_check(audit_log(store), actor(args), results, event_log(store), names))
    print(f"# checked {len(ids)}: {len(ids) - failed} ok, {failed} not", file=out)
    return 1 if failed else 0


def cmd_cleanup(store: MongoTokenStore, args: argparse.Namespace, out: TextIO) -> int:
    from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

    from .tools import cleanup
    from .tools.zoho import AlreadyRevoked, ZohoError, revoke

    try:
        policy = cleanup.Policy(args.idle_days, args.unusable_days) if args.idle_days or args.unusable_days \
            else cleanup.Policy.from_environment()
    except cleanup.PolicyError as error:
        raise Failure(str(error)) from None
    if not policy:
        raise Failure(f"no cleanup rule: pass --idle-days or --unusable-days, or set {cleanup.IDLE_ENV} or "
                      f"{cleanup.UNUSABLE_ENV}")
    who = actor(args)

    def show(entry: cleanup.Entry) -> None:
        if not args.json:
            print("\t".join(printable(value) for value in (entry.id, entry.user_name or "", entry.action, entry.reason,
                                                         entry.result)), file=out, flush=True)

    if args.dry_run:
        report = guarded(store, "plan the cleanup", lambda: cleanup.plan(store.collection, policy, args.batch_size))
        for entry in report.entries:
            show(entry)
    else:
        audit = audit_log(store)  # (not for a dry run: it writes nothing, not even the audit's index)
        history_of = event_log(store)
        steps = cleanup.Steps(
            revoke=lambda token_id: revoke(store, token_id, args.accounts_url),
            refused=(ZohoError, SDKException), already=AlreadyRevoked,
            audit=lambda entry: guarded(store, "record the cleanup in the audit log",
                                        lambda: audit.insert_one({"at": admin.utcnow(), "who": who, **entry})),
            database=lambda action, work: guarded(store, action, work),
            event=None if history_of is None else lambda token_id, name, kind, detail: events.record_quietly(
                history_of, [events.entry(token_id, name, kind, detail, who)], store.socket_timeout))
        report = cleanup.run(store.collection, policy, steps, args.batch_size, progress=show)
    summary = report.summary(args.dry_run)
    if args.json:
        json.dump({"policy": policy.describe(), "dry_run": args.dry_run, "entries": [e.as_dict() for e in report.entries],
                   "summary": summary}, out, indent=2)
        out.write("\n")
    else:
        said = ", ".join(f"{count} {name}" for name, count in summary.items())
        print(f"# cleanup ({policy.describe()}): {said}" + (" (dry run: nothing changed)" if args.dry_run else ""),
              file=out)
    return 1 if any(entry.failed for entry in report.entries) else 0


def cmd_revoke(store: MongoTokenStore, args: argparse.Namespace, out: TextIO) -> int:
    from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

    from .tools.zoho import ZohoError, revoke

    token_id = check_text("id", args.id, required=True)
    if not args.yes:
        if not sys.stdin.isatty():
            raise Failure("revoke needs --yes when not run at a terminal")
        answer = input(f"Revoke token {printable(token_id)} at Zoho and delete it? Its users will need a new "
                       "grant token. Type 'revoke' to confirm: ")
        if answer.strip() != "revoke":
            raise Failure("not confirmed; nothing revoked")

    def at_zoho() -> str:
        host = revoke(store, token_id, args.accounts_url)
        print(f"revoked the refresh token at {host}", file=out, flush=True)  # seen even if the delete fails
        return host

    try:  # audited before Zoho is called, then with the outcome
        _, deleted = admin.audited_revoke(store.collection, audit_log(store), token_id, actor(args), at_zoho,
                                          (ZohoError, SDKException), store.guard, events=event_log(store))
    except ZohoError as error:
        raise Failure(f"{error}; the token is left in the store") from None
    print(f"deleted {printable(token_id)}" if deleted else f"{printable(token_id)} was already deleted", file=out)
    return 0


def private_file(path: str, force: bool) -> TextIO:
    """A new file only its owner can read (0600): an export with secrets must not be world-readable.
    An existing file is overwritten only with ``force``."""
    # O_NOFOLLOW: --force must not write the secrets through a symbolic link to wherever it points.
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | (os.O_TRUNC if force else os.O_EXCL)
    try:
        descriptor = os.open(path, flags, 0o600)
    except FileExistsError:
        raise Failure(f"{printable(path)} exists; pass --force to overwrite it") from None
    except OSError as error:
        if os.path.islink(path):
            raise Failure(f"{printable(path)} is a symbolic link: not followed; remove it or write elsewhere") from None
        raise Failure(f"cannot write {printable(path)}: {error.strerror}") from None
    os.fchmod(descriptor, 0o600)  # an overwritten file keeps its old mode otherwise
    return os.fdopen(descriptor, "w", encoding="utf-8")


def cmd_export(store: MongoTokenStore, args: argparse.Namespace, out: TextIO) -> int:
    from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

    target = private_file(args.output, args.force) if args.output else out
    count = 0
    try:
        with store.guard("export the tokens"):
            for document in store.collection.find({}).sort("_id", 1):
                try:
                    record = document_to_record(store.open_document(document))
                except SDKException as error:  # malformed, or sealed with a key we do not have
                    record = masked(document_to_record(document)) | {"malformed": sentence(error)}
                if isinstance(document.get("expiry_time"), datetime):
                    record["expires_at"] = iso(document["expiry_time"])  # for people; import reads expires_in
                print(json.dumps(record if args.include_secrets else masked(record)), file=target)
                count += 1
    finally:
        if args.output:
            target.close()
    print(f"exported {count} tokens" + ("" if args.include_secrets else " (secrets masked)"), file=sys.stderr)
    return 0


IMPORT_IDS = 1000
"""An import's audit entry names at most this many ids (the history has an event for each)."""


def cmd_import(store: MongoTokenStore, args: argparse.Namespace, out: TextIO) -> int:
    from .tools.migrate import SourceError, import_rows, open_source, source_kind

    who = actor(args)
    try:
        kind = source_kind(args.source, args.kind)
        rows = open_source(args.source, kind, args.table, args.encoding)
        if not args.dry_run:
            event_log(store)
        from tqdm import tqdm

        report = import_rows(store, tqdm(rows, unit=" rows", disable=None, file=sys.stderr, leave=False),
                             dry_run=args.dry_run, who=who, source=kind)
    except SourceError as error:
        raise Failure(str(error)) from None
    if args.verbose:
        for line, reason in report.rejected:
            print(f"rejected line {line}: {reason}", file=out)
    else:  # one line per reason: a masked export's hundreds of rows are one line
        for group in report.reasons():
            print(group.describe(), file=out)
    if not args.dry_run:  # the source's kind only: a MySQL URL may hold a password
        entry = {"at": admin.utcnow(), "who": who, "action": "import", "source": kind,
                 "ids": report.imported[:IMPORT_IDS], "imported": len(report.imported), "inserted": report.inserted,
                 "updated": report.updated, "skipped": report.skipped, "rejected": len(report.rejected),
                 "reasons": report.reason_counts()[:20]}
        audit = audit_log(store)
        guarded(store, "record the import in the audit log", lambda: audit.insert_one(dict(entry)))
    print(report.summary(args.dry_run) + (" (dry run: nothing written)" if args.dry_run else ""), file=out)
    return 1 if report.rejected else 0  # a migration script can tell that rows were left behind


def cmd_rotate_key(store: MongoTokenStore, args: argparse.Namespace, out: TextIO) -> int:
    from tqdm import tqdm

    from .core.rotation import pending, rotate

    query = pending(store)  # refuses a store without a key
    if store.prepare() is False:
        print("note: this MongoDB user may not install the validator that keeps the collection encrypted "
              "(collMod, in dbAdmin): run rotate-key once as a user who may", file=out)
    total = guarded(store, "count the tokens to rotate", lambda: store.collection.count_documents(query))
    with tqdm(total=total, unit=" tokens", disable=None, file=sys.stderr, leave=False) as bar:
        report = rotate(store, progress=lambda: bar.update(1))
    for reason in report.failed:
        print(f"not rotated: {reason}", file=out)
    print(f"rotated {report.rotated}, saved meanwhile {report.changed_meanwhile} (already on the new key), "
          f"failed {len(report.failed)}", file=out)
    return 1 if report.failed else 0


def cmd_add_operator(args: argparse.Namespace, out: TextIO) -> int:
    """Add an operator to the dashboard's accounts file; the password is never echoed or logged."""
    from .dashboard.operators import OPERATORS_FILE_ENV, OperatorsError, add_operator

    path = args.file or os.environ.get(OPERATORS_FILE_ENV)
    if not path:
        raise Failure(f"no operators file: pass --file PATH or set {OPERATORS_FILE_ENV}")
    if sys.stdin.isatty():
        password = getpass.getpass(f"Password for {printable(args.name)}: ")
        if getpass.getpass("Again: ") != password:
            raise Failure("the passwords differ; nothing changed")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        new = add_operator(path, args.name, password)
    except OperatorsError as error:
        raise Failure(str(error)) from None
    except OSError as error:
        raise Failure(f"cannot write {printable(path)}: {error.strerror}") from None
    print(f"{'added' if new else 'changed the password of'} operator {printable(args.name)} in {printable(path)}", file=out)
    return 0


def cmd_dashboard(args: argparse.Namespace, out: TextIO) -> int:
    """Run the dashboard with the current settings (MONGODB_URI, DASHBOARD_PASSWORD, ...)."""
    with stopped_by_signals() as shutdown:
        return run_streamlit(os.environ.copy(), args.port, args.address, shutdown)
    return 0  # stopped by a signal, Streamlit with it


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    """The dashboard on an embedded database seeded with fake tokens, and a local fake Zoho that
    knows them (Check and Revoke need no internet): nothing to set up. A kept database keeps its
    tokens' states from one start to the next (the demo's clock stands still while it is stopped);
    ``--reset`` starts over."""
    import threading

    from .core.store import MongoTokenStore
    from .dashboard import demo, demo_zoho

    env = os.environ.copy()
    env["ZOHO_DASHBOARD_DEMO"] = "1"
    own_password = bool(env.get("DASHBOARD_PASSWORD"))
    env["DASHBOARD_PASSWORD"] = env.get("DASHBOARD_PASSWORD") or "demo"
    env["ZOHO_MONGO_DATABASE"] = database = env.get("ZOHO_MONGO_DATABASE") or "zoho_demo"
    server = fake = None
    ticking = threading.Event()
    with stopped_by_signals() as shutdown:
        try:
            fake = demo_zoho.start()
            env |= demo_zoho.settings(fake)
            if not args.mock and mongod_binary() is not None:
                folder = Path(args.data_dir) if args.data_dir else demo_data_dir()
                in_use = data_folder_in_use(folder)
                if in_use:
                    raise Failure(f"the data folder {folder} is in use by another mongod (pid {in_use}): "
                                  "stop it, or pass another --data-dir")
                print(f"Starting the embedded mongod (data kept in {folder}; --reset starts over) ...", file=out, flush=True)
                # Known before it starts, so a signal while it starts still stops it.
                server = EmbeddedMongod(data_dir=folder, own_session=True)
                shutdown.children.append(lambda: server.process if server is not None else None)
                server.start()
                env["MONGODB_URI"] = server.uri
                with MongoTokenStore(server.uri, database=database) as store:
                    kept = store.collection.database
                    if args.reset:
                        store.call("reset the demo", lambda: store.client.drop_database(database), write=True)
                    if store.call("count the tokens", store.collection.estimated_document_count) == 0:
                        print(f"Seeding {demo.seed(store)} fake tokens ...", file=out, flush=True)
                    with store.guard("keep the demo's time"):  # once: a retry would shift the dates twice
                        shift = demo.keep_time(kept)
                    if shift:
                        print(f"Kept data: every token is as it was when the demo stopped {ago_text(shift)}.",
                              file=out, flush=True)
                    documents = [store.open_document(document) for document in store.collection.find({})]
                demo_zoho.teach(fake, documents)
                beat = threading.Thread(target=keep_the_clock, args=(server.uri, database, ticking), daemon=True)
                beat.start()
                print(f"MongoDB: {server.uri}  database: {database}\n"
                      f"Point the CLI at it (in a second terminal): export MONGODB_URI='{server.uri}' "
                      f"ZOHO_MONGO_DATABASE={database}", file=out)
            else:
                why = "as asked" if args.mock else "no embedded mongod on this platform"
                print(f"The demo runs on mongomock, in memory ({why}): only the dashboard sees it.", file=out)
                env["MONGODB_URI"] = "mongomock://"
                now = admin.utcnow()  # the dashboard seeds the very same tokens (the same rng, dated from now)
                env[demo.SEEDED_AT_ENV] = now.isoformat()
                demo_zoho.teach(fake, demo.planned_documents(now=now), now)
            from_cli = (f" (from the CLI: check ID --accounts-url {fake.url}{demo_zoho.ACCOUNTS_PATH} --api-url {fake.url})"
                        if server is not None else "")
            print(f"Check and Revoke go to the demo's local fake Zoho at {fake.url}: no internet needed{from_cli}.",
                  file=out)
            password = "the one in DASHBOARD_PASSWORD" if own_password else "demo"  # never echo a real one
            print(f"Dashboard: http://localhost:{args.port}  (sign in with any name, recorded in the audit log, "
                  f"and the password: {password})", file=out, flush=True)
            return run_streamlit(env, args.port, args.address, shutdown)
        finally:
            ticking.set()
            if server is not None:
                with contextlib.suppress(Exception), MongoTokenStore(server.uri, database=database,
                                                                     server_selection_timeout=2.0) as store:
                    demo.stamp(store.collection.database)  # the clock stops here
                server.stop()  # a second Ctrl-C or SIGTERM meanwhile kills it at once
            if fake is not None:
                fake.stop()
    return 0  # stopped by a signal, its children with it


def demo_data_dir() -> Path:
    """The demo's data folder when ``--data-dir`` is not given: this user's, whatever the working directory."""
    from .tools.embedded import user_data_dir

    return user_data_dir("demo")


def keep_the_clock(uri: str, database: str, stop: Any) -> None:
    """While the demo runs, write its clock every ``demo.CLOCK_BEAT`` seconds (a demo killed
    without a chance to stop keeps its states too, to within that)."""
    from pymongo import MongoClient

    from .dashboard.demo import CLOCK_BEAT, stamp

    client: Any = MongoClient(uri, serverSelectionTimeoutMS=2000)
    try:
        while not stop.wait(CLOCK_BEAT):
            with contextlib.suppress(Exception):  # a mongod stopping: the last beat stands
                stamp(client[database])
    finally:
        client.close()


def ago_text(shift: Any) -> str:
    """How long ago something was, ``shift`` before now, in words ("3 hours ago")."""
    now = admin.utcnow()
    return ago(now - shift, now)


WEBHOOK_ENV = "ZOHO_MONGO_ALERT_WEBHOOK"
ALERTS_COLLECTION_ENV = "ZOHO_MONGO_ALERTS_COLLECTION"


def webhook(args: argparse.Namespace, required: bool) -> Any:
    """The webhook from --webhook, else the environment (a URL kept off the command line, where
    ``ps`` shows it); checked as strictly as the option."""
    from .cli import webhook_url
    from .tools.alerts import Webhook

    url = args.webhook or os.environ.get(WEBHOOK_ENV)
    if not url:
        if required:
            raise Failure(f"no webhook: pass --webhook URL or set {WEBHOOK_ENV}")
        return None
    try:
        return Webhook(webhook_url(url))
    except argparse.ArgumentTypeError as error:
        raise Failure(f"{WEBHOOK_ENV} {error}") from None


def alert_state(store: MongoTokenStore) -> Any:
    from .tools.alerts import alert_state as state

    try:
        return state(store.collection, os.environ.get(ALERTS_COLLECTION_ENV))
    except Exception as error:  # InvalidName
        raise Failure(f"{ALERTS_COLLECTION_ENV}: {error}") from None


def cmd_alerts(store: MongoTokenStore, args: argparse.Namespace, out: TextIO) -> int:
    from .tools.alerts import run_pass

    hook, state = webhook(args, required=True), alert_state(store)
    report = guarded(store, "make the alert pass", lambda: run_pass(store.collection, state, hook))
    if report.undelivered:
        raise Failure(report.summary())
    print(report.summary(), file=out)
    return 0


def cmd_metrics(store: MongoTokenStore, args: argparse.Namespace, out: TextIO) -> int:
    """Serve until Ctrl-C or SIGTERM; counting (and alerting) run in threads of their own, so a
    slow webhook never delays the counts and no scrape waits for either."""
    import threading

    from .tools import metrics
    from .tools.alerts import run_pass

    hook, state = webhook(args, required=False), alert_state(store)
    exporter = metrics.Exporter(lambda: store.call("count the tokens", lambda: metrics.count(store.collection)),
                                args.interval, alerting=hook is not None)
    host, port = args.listen
    try:
        httpd = metrics.server(host, port, exporter)
    except OSError as error:
        raise Failure(f"cannot listen on {host}:{port}: {error.strerror or error}") from None

    def alert() -> None:
        try:
            report = store.call("make the alert pass", lambda: run_pass(store.collection, state, hook))
        except Exception as error:
            print(f"{PROG}: the alert pass failed: {' '.join(sentence(error).split())}", file=sys.stderr, flush=True)
            return
        with exporter.lock:
            exporter.undelivered = report.undelivered
        if report.baseline is not None or report.alerted or report.recovered or report.undelivered:
            print(f"alerts: {report.summary()}", file=out, flush=True)

    stop = threading.Event()
    workers = [threading.Thread(target=metrics.every, args=(args.interval, stop, exporter.refresh), daemon=True)]
    if hook is not None:
        workers.append(threading.Thread(target=metrics.every, args=(args.interval, stop, alert), daemon=True))
    shown = f"[{host}]" if ":" in host else host
    print(f"serving http://{shown}:{httpd.server_port}/metrics and /health, counting every {args.interval:g} s"
          + (f", alerting {hook.origin}" if hook else ""), file=out, flush=True)
    with stopped_by_signals():
        try:
            for worker in workers:
                worker.start()
            httpd.serve_forever(poll_interval=0.5)
        finally:
            stop.set()
            httpd.server_close()
            for worker in workers:
                worker.join(timeout=5)
    return 0


STREAMLIT_GRACE = 5.0
"""Seconds Streamlit has to stop after SIGTERM (with a browser connected it can take far longer, or
ignore it): then it is killed."""
STOPPING = "stopping… (press Ctrl-C again to stop at once)\n"


class Stop(Exception):
    """The first Ctrl-C, SIGTERM or SIGHUP: unwind, so the children are stopped on the way out."""


class Shutdown:
    """The children a command runs (Streamlit, a mongod), and how a signal stops them. The first
    signal says "stopping…" at once, asks every child to stop (SIGTERM) and unwinds; any signal
    after that kills every child still running (SIGKILL), so nothing outlives the command."""

    def __init__(self) -> None:
        self.children: list[Callable[[], subprocess.Popen[Any] | None]] = []
        self.stopping = False
        self.signalled = False

    def handle(self, signum: int, frame: Any) -> None:
        self.signalled = True
        if self.stopping:
            self.send(signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
            return
        self.stopping = True
        os.write(2, STOPPING.encode())  # not print: the signal may have landed inside a print
        self.send(signal.SIGTERM)
        raise Stop()

    def send(self, sig: int) -> None:
        """Signal every running child; one in its own session gets it with its whole process group."""
        for get in self.children:
            child = get()
            if child is not None and child.returncode is None:
                signal_child(child, sig)

    def reap(self) -> None:
        """Wait for every child; one still running gets SIGTERM, then ``STREAMLIT_GRACE`` seconds,
        then SIGKILL. A signal meanwhile (``stopping`` is set) kills them at once."""
        self.stopping = True
        for get in self.children:
            child = get()
            if child is not None:
                stop_child(child, STREAMLIT_GRACE)


def signal_child(child: subprocess.Popen[Any], sig: int) -> None:
    try:
        if hasattr(os, "killpg") and getattr(child, "own_session", False):
            os.killpg(child.pid, sig)  # Streamlit and anything it started
        else:
            child.send_signal(sig)
    except (ProcessLookupError, PermissionError):
        pass  # gone already


def stop_child(child: subprocess.Popen[Any], grace: float) -> None:
    """Stop one child within ``grace`` seconds: SIGTERM, then SIGKILL; always reaped."""
    if child.poll() is None:
        signal_child(child, signal.SIGTERM)
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            signal_child(child, signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
    child.wait()


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[Shutdown]:
    """While a command runs children, Ctrl-C, SIGTERM and SIGHUP stop them (``Shutdown``); on the way
    out every child is reaped, whatever happened: none is left running."""
    shutdown = Shutdown()
    signals = [signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    previous = {sig: signal.signal(sig, shutdown.handle) for sig in signals}
    try:
        yield shutdown
    except Stop:
        pass
    finally:
        try:
            shutdown.reap()
        except Stop:  # the first signal arrived just now: reap again, with every child asked to stop
            shutdown.reap()
        finally:
            for sig, handler in previous.items():
                # Asked to stop by a signal: the command ends now, and a late Ctrl-C must not turn
                # that into a KeyboardInterrupt traceback on the way out.
                signal.signal(sig, signal.SIG_IGN if shutdown.signalled else handler)


def data_folder_in_use(folder: Path) -> int | None:
    """The pid of a live mongod that holds ``folder`` (it writes its pid into mongod.lock)."""
    try:
        pid = int((folder / "mongod.lock").read_text().strip() or 0)
        if pid:
            os.kill(pid, 0)
            return pid
    except (OSError, ValueError):
        pass
    return None


def run_streamlit(env: dict[str, str], port: int, address: str, shutdown: Shutdown) -> int:
    """Streamlit on ``address`` only (127.0.0.1 unless asked): a dashboard that anyone on the
    network can reach must have sign-in on."""
    try:
        from .dashboard.auth import is_loopback as loopback  # not app: its caches warn outside Streamlit
        from .dashboard.settings import SettingError, parse_flag
    except ImportError:
        raise Failure("the dashboard needs Streamlit: pip install 'zoho-mongo-store[dashboard]'") from None
    try:
        for name in ("DASHBOARD_AUTH_DISABLED", "DASHBOARD_READ_ONLY"):
            parse_flag(name, env.get(name))
    except SettingError as error:
        raise Failure(str(error)) from None
    if parse_flag("DASHBOARD_AUTH_DISABLED", env.get("DASHBOARD_AUTH_DISABLED")) and not loopback(address):
        raise Failure("sign-in is turned off (DASHBOARD_AUTH_DISABLED): the dashboard may listen on 127.0.0.1 "
                      "only; turn sign-in on to serve other machines")
    package = Path(__file__).resolve().parent
    script = package / "dashboard" / "streamlit_app.py"
    # Not `python -m streamlit`: it puts the working directory first on sys.path, and a mongo_store
    # folder there would be imported instead of this package (launch.py loads this one).
    command = [sys.executable, str(package / "dashboard" / "launch.py"), str(package), "run", str(script), "--server.port", str(port),
               "--server.address", address, "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--client.toolbarMode", "viewer"]  # no "Deploy" button for operators
    # Its own session: a Ctrl-C reaches this command, which stops it (and all it started) in order.
    child = subprocess.Popen(command, env=env, start_new_session=True)
    child.own_session = True  # type: ignore[attr-defined]
    shutdown.children.append(lambda: child)
    try:
        return child.wait()
    finally:
        stop_child(child, STREAMLIT_GRACE)  # stopped by a signal: Streamlit goes too

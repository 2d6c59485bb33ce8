"""Reading the tokens: ``indexes``, ``stats``, ``list``, ``show``, ``events`` and ``export``."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..command import Context, Failure, arg, command, one_of
from ..types import HEALTH, MAX_PAGE_SIZE, SORTS, STATUSES, page_number, whole

if TYPE_CHECKING:
    from ...tools import paging, queries

PROG = "zoho-mongo-store"


@command("indexes", help="create the store's indexes; report any that drifted",
         arguments=[arg("--check", action="store_true", help="only report; exit 1 if any is missing or drifted")])
def indexes(ctx: Context) -> int:
    from ...core.indexes import ensure_indexes, index_drift
    from ...core.search import backfill as backfill_search_keys

    store, args, out = ctx.store, ctx.args, ctx.out
    missing, drifted = store.call("read the indexes", lambda: index_drift(store.collection))
    for line in drifted:
        print(f"drift: {line}", file=out)
    if missing and not args.check:
        store.call("create the indexes", lambda: ensure_indexes(store.collection, backfill_keys=False))
        print(f"created: {', '.join(missing)}", file=out)
    if not args.check:  # tokens written without search keys (raw inserts, an older version) get them
        written = store.call("write the search keys", lambda: backfill_search_keys(store.collection))
        if written:
            print(f"search keys: written for {written} token(s)", file=out)
    elif missing:
        print(f"missing: {', '.join(missing)}", file=out)
    if not missing and not drifted:
        print("indexes: all present", file=out)
    return 1 if drifted or (missing and args.check) else 0


@command("stats", help="counts by health, status and data center", arguments=[arg("--json", action="store_true")])
def stats(ctx: Context) -> int:
    from ...core.masking import printable
    from ...tools import datacenters
    from ...tools.health import HEALTH_MEANING
    from ...tools.health import STATUSES as STATES
    from ...tools.stats import stats as counted

    store, args, out = ctx.store, ctx.args, ctx.out
    counts = store.call("count the tokens", lambda: counted(store.collection))
    if args.json:
        print(json.dumps(counts, indent=2), file=out)
        return 0
    print(f"total: {counts['total']} tokens", file=out)
    print("health (whether the Zoho connection works):", file=out)
    width = max(len(str(value)) for value in counts["health"].values())
    for state, count in counts["health"].items():
        print(f"  {state + ':':<10}{count:>{width}}  {HEALTH_MEANING[state]}", file=out)
    print("access-token expiry (not health: a lapsed access token is renewed on next use, so an expired "
          "token can be idle, and a valid one failing):", file=out)
    width = max(len(str(counts[status])) for status in STATES)
    for status in STATES:
        print(f"  {status + ':':<16}{counts[status]:>{width}}", file=out)
    print("data centers:", file=out)
    for domain, count in counts["per-api-domain"].items():
        print(f"  {printable(datacenters.label(domain))}: {count}", file=out)
    unnamed = counts["total"] - sum(counts["per-api-domain"].values())
    if unnamed:
        print(f"  none: {unnamed}", file=out)
    print("tokens holding:", file=out)
    for key in ("with-user-name", "with-access-token", "with-refresh-token"):
        print(f"  {key.removeprefix('with-').replace('-', ' ')}: {counts[key]}", file=out)
    return 0


def _negative_page_alone(args: argparse.Namespace) -> str | None:
    if (args.page or 1) < 0 and not (args.after or args.before):
        return "argument --page: a page counted from the end (negative) needs --after or --before"
    return None


@command("list", help="list tokens, secrets masked, a page at a time", usage=_negative_page_alone, arguments=[
    arg("--search", metavar="TEXT", help="the start of a user's e-mail, e-mail domain or org id (any case), or of a "
        "token id (as typed); never a secret"),
    arg("--health", choices=HEALTH, help="healthy, idle, failing or unusable (see `stats`)"),
    arg("--status", choices=STATUSES, help="the access token's expiry only"),
    arg("--domain", help="data center: US, EU, IN, AU, JP, CA, CN, SA, UK (or its domain or URL)"),
    arg("--sort", choices=SORTS, help="order by user name, expiry or last refresh, over every match "
        "(tokens without the field come last)"),
    arg("--descending", action="store_true", help="the other way round"),
    one_of(arg("--last", action="store_true", help="the last page (as fast as the first)"),
           arg("--after", metavar="CURSOR", help="the page after this cursor (printed with each page)"),
           arg("--before", metavar="CURSOR", help="the page before this cursor (printed with each page)")),
    arg("--page", type=page_number, help="alone: jump to this page (skipping the pages before, slower the deeper); "
        "with --after/--before: the number of the page shown (negative: counted from the end)"),
    arg("--page-size", type=whole(1, MAX_PAGE_SIZE), default=50),
    arg("--format", choices=("table", "tsv", "json"), default="table",
        help="aligned columns (default), tab-separated, or one JSON object per line"),
    arg("--json", dest="format", action="store_const", const="json", help="the same as --format json"),
])
def list_tokens(ctx: Context) -> int:
    from ...core.clock import utcnow
    from ...tools import paging, queries
    from ...tools.records import iso_dates, view

    store, args, out = ctx.store, ctx.args, ctx.out
    try:
        query = queries.Query(search=args.search, status=args.status,
                              api_domain=queries.data_center(args.domain) if args.domain else None,
                              health=args.health, sort=args.sort, descending=args.descending)
        now = utcnow()
        query.to_filter(now), query.sort_key()  # a bad value is one sentence, before the database is asked
        size = args.page_size
        if args.after or args.before or args.last or not args.page or args.page == 1:
            go = "last" if args.last else "next" if args.after else "previous" if args.before else "first"
            number = args.page or (1 if go == "first" else 2 if go == "next" else 1)
            paging.finds(query, go=go, cursor=args.after or args.before, now=now)  # a malformed cursor: one sentence
            found = store.call("list the tokens", lambda: paging.page(
                store.collection, query, size, go=go, cursor=args.after or args.before, number=number, now=now))
        else:  # a jump: skip the pages before (fine near the start; the printed commands walk by keyset)
            documents, total = store.call("list the tokens",
                                          lambda: queries.page(store.collection, query, args.page, size, now))
            found = skipped_page(documents, total, args.page, size, query)
    except ValueError as error:
        raise Failure(str(error)) from None
    shown = [view(document, now) for document in found.documents]
    if not shown and args.page and args.page > 1 and found.total and not (args.after or args.before):
        last = -(-min(found.total, queries.COUNT_CAP) // size)
        raise Failure(f"page {args.page} is past the end: {queries.shown_total(found.total)} tokens make "
                      f"{last}{'+' if found.pages is None else ''} page(s) of {size}; "
                      f"the last page is `{list_command(args, last=True)}`")
    if args.format == "json":
        for token in shown:
            print(json.dumps(iso_dates(token)), file=out)
    else:
        from ..output import rows

        table = [list_cells(token) for token in shown]
        if args.format == "tsv" or table:
            for line in rows([list(LIST_COLUMNS), *table], tsv=args.format == "tsv"):
                print(line, file=out)
    notes = out if args.format != "json" else sys.stderr  # JSON lines stay JSON lines
    for line in footer(found, args, shown, query):
        print(f"# {line}", file=notes)
    return 0


LIST_COLUMNS = ("id", "user_name", "health", "data_center", "expires_at", "last_refreshed_at", "access_token",
                "refresh_token", "grant_token", "reason")
"""The columns of ``list``'s table: the reason (``health_reason``, the whole sentence) last."""


def list_cells(token: dict[str, Any]) -> list[str]:
    """One token's table cells, as plain text (control characters escaped)."""
    from ...core.masking import printable
    from ...tools import datacenters
    from ...tools.records import VIEW_DATES
    from ..output import when

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


def skipped_page(documents: list[dict[str, Any]], total: int, number: int, size: int,
                 query: queries.Query) -> paging.Page:
    """A page reached by skipping (``--page N`` alone) as a keyset page, so its footer prints the
    keyset commands for the pages either side."""
    from ...core.clock import utcnow
    from ...tools import paging, queries

    field = query.sort_key()
    pages = max(1, -(-total // size)) if total <= queries.COUNT_CAP or not query.to_filter(utcnow()) else None
    return paging.Page(documents, total, number, pages,
                       paging.cursor_of(documents[0], field) if documents else None,
                       paging.cursor_of(documents[-1], field) if documents else None,
                       number > 1, bool(documents) and (pages is None or number < pages))


def footer(found: paging.Page, args: argparse.Namespace, shown: list[dict[str, Any]],
           query: queries.Query | None = None) -> list[str]:
    """Where this page is ("page 2 of 7, tokens 51-100 of 320") and the commands for the pages
    either side; for an empty result, what was searched and every filter beside it."""
    from ...tools import queries

    if not shown:
        said = queries.describe_empty(query or queries.Query(search=args.search))
        return [f"no tokens: {said}" if found.total == 0 else "no tokens on this page"]
    total, size = queries.shown_total(found.total), args.page_size
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


@command("show", help="one token, by id or --user, secrets masked", arguments=[
    arg("id", nargs="?"),
    arg("--user", help="the token's user name (email:org_zgid) instead of its id"),
    arg("--json", action="store_true"),
])
def show(ctx: Context) -> int:
    from ...core import events
    from ...core.mapping import check_text
    from ...core.masking import printable
    from ...tools.records import iso_dates, view
    from ..output import event_line, when

    store, args, out = ctx.store, ctx.args, ctx.out
    if (args.id is None) == (args.user is None):
        raise Failure("show needs a token id or --user NAME (one of them)")
    field, value = ("_id", check_text("id", args.id, required=True)) if args.id is not None else \
        ("user_name", check_text("user name", args.user, required=True))
    document = store.call("read the token", lambda: store.collection.find_one({field: value}))
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
        found = store.call("read the token's history", lambda: events.for_token(store.events, document["_id"], 20))
        print("history (newest first):" if found else "history: no events (or all expired)", file=out)
        for event in found:
            print("  " + event_line(event), file=out)
    return 0


@command("events", help="a token's history (refreshed, refresh-failed, checked, revoked, deleted, imported), newest "
         "first; also of a deleted token", arguments=[
             arg("id"),
             arg("--limit", type=whole(1, 10_000), default=50, help="events to show (default 50)"),
             arg("--json", action="store_true", help="one JSON object per line"),
         ])
def history(ctx: Context) -> int:
    """A token's history, newest first (also of a deleted token, until its events expire)."""
    from ...core import events
    from ...core.mapping import check_text
    from ...core.masking import printable
    from ...tools.records import iso_dates
    from ..output import event_line

    store, args, out = ctx.store, ctx.args, ctx.out
    token_id = check_text("id", args.id, required=True)
    if store.events is None:
        raise Failure("the token history is off")
    found = store.call("read the token's history", lambda: events.for_token(store.events, token_id, args.limit))
    if args.json:
        for event in found:
            print(json.dumps(iso_dates(event)), file=out)
        return 0
    for event in found:
        print(event_line(event), file=out)
    print(f"# {len(found)} event(s) of {printable(token_id)}, newest first" if found else
          f"# no events of {printable(token_id)} (none recorded, or all expired)", file=out)
    return 0


@command("export", help="JSON lines, secrets masked unless --include-secrets", store="sdk", arguments=[
    arg("--output", "-o", help="file to write (default: standard output)"),
    arg("--include-secrets", action="store_true", help="write real secrets: keep the file safe"),
    arg("--force", action="store_true", help="overwrite the output file if it exists"),
])
def export(ctx: Context) -> int:
    from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

    from ...core.errors import sentence
    from ...core.masking import iso, masked
    from ...tools.records import document_to_record
    from ..files import private_file

    store, args, out = ctx.store, ctx.args, ctx.out
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

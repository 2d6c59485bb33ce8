"""The audit log: ``audit``."""

from __future__ import annotations

import json

from ..command import Context, Failure, arg, command, one_of
from ..types import MAX_PAGE_SIZE, moment, whole

AUDIT_ACTIONS = ("delete", "delete-filtered", "delete-all", "revoke", "check", "cleanup", "import")
"""``audit.ACTIONS``, repeated so that parsing imports nothing heavy (tests/test_architecture.py keeps them equal)."""


@command("audit", help="the audit log, newest first: search by actor, token, action and time, page at any depth",
         arguments=[
    arg("--actor", help="entries by an actor whose name starts with this (any case)"),
    arg("--token", help="entries naming this token id, or a user name starting with this (any case)"),
    arg("--action", choices=AUDIT_ACTIONS, help="entries of this action only"),
    arg("--since", type=moment, metavar="WHEN", help="entries from this date (2026-12-01) or time (2026-12-01T14:30, UTC)"),
    arg("--until", type=moment, metavar="WHEN", help="entries before this date or time (UTC)"),
    arg("--page-size", type=whole(1, MAX_PAGE_SIZE), default=50),
    one_of(arg("--after", metavar="CURSOR", help="the older page after the one that printed this cursor"),
           arg("--before", metavar="CURSOR", help="the newer page before the one that printed this cursor"),
           arg("--last", action="store_true", help="the oldest entries")),
    arg("--json", action="store_true", help="one JSON object per line"),
])
def audit_log(ctx: Context) -> int:
    """The audit log, newest first, by actor and token, a page at a time (keyset cursors)."""
    from ...core.masking import iso
    from ...tools import audit
    from ...tools.records import iso_dates
    from ..output import rows

    args, out = ctx.args, ctx.out
    go, cursor = ("next", args.after) if args.after else ("previous", args.before) if args.before else \
        ("last", None) if args.last else ("first", None)
    filters = {"action": args.action, "since": args.since, "until": args.until}
    try:
        audit.check_request(args.actor, args.token, args.page_size, cursor, go, **filters)
    except ValueError as error:
        raise Failure(str(error)) from None
    session = ctx.session()
    entries, older, newer = ctx.store.call("search the audit log", lambda: audit.audit_page(
        session.audit, actor=args.actor, token=args.token, size=args.page_size, cursor=cursor, go=go, **filters))
    if args.json:
        for entry in entries:
            print(json.dumps(iso_dates({key: value for key, value in entry.items() if key != "_id"}), default=str),
                  file=out)
    else:
        for entry in entries:
            ids = entry.get("ids") or []
            shown = ", ".join(map(str, ids[:3])) + (f" (+{len(ids) - 3})" if len(ids) > 3 else "")
            print(rows([[iso(entry.get("at")) or "", audit.who_text(entry), entry.get("action") or "", shown,
                         audit.outcome_text(entry)]], tsv=True)[0], file=out)
        searched = " and ".join(part for part in (
            f"actor starting with {args.actor!r}" if args.actor else "",
            f"token {args.token!r} (id, or user name start)" if args.token else "",
            f"action {args.action}" if args.action else "",
            f"from {iso(args.since)}" if args.since else "", f"before {iso(args.until)}" if args.until else "")
            if part) or "every entry"
        print(f"# {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} ({searched}), newest first" +
              (f"; older: --after {older}" if older else "") + (f"; newer: --before {newer}" if newer else ""),
              file=out)
    return 0

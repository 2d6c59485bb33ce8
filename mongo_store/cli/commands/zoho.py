"""Asking Zoho: ``check``, ``revoke`` and ``cleanup``, through the operator layer (audited, Zoho's
answers read there)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..command import Context, Failure, actor_option, arg, command, confirmed, operator_settings
from ..types import HEALTH, accounts_url, api_url, policy_days, whole

if TYPE_CHECKING:
    from ...tools import cleanup as cleanup_policy
    from ...tools.zoho import Checked


@command("check", help="ask Zoho whether tokens work (refreshing through the store if needed); record the result "
         "on each", store="sdk", arguments=[
             arg("ids", nargs="*", metavar="ID"),
             arg("--health", choices=HEALTH, help="check every token in this state"),
             arg("--all", action="store_true", help="check every token"),
             arg("--accounts-url", type=accounts_url, help="Zoho accounts server to use instead of the token's data "
                 "center's (a proxy or a test server): the refresh goes there"),
             arg("--api-url", type=api_url, help="Zoho CRM API server to call instead of the token's api_domain "
                 "(a proxy, or the demo's local fake Zoho)"),
             actor_option("checks"),
         ])
def check(ctx: Context) -> int:
    from ...core.clock import utcnow
    from ...tools.health import health_filter
    from ..output import rows

    args, store = ctx.args, ctx.sdk_store
    if sum(map(bool, (args.ids, args.health, args.all))) != 1:
        raise Failure("check needs token ids, --health STATE or --all (one of them)")
    if args.ids:
        ids = list(dict.fromkeys(args.ids))
    else:
        where = health_filter(args.health, utcnow()) if args.health else {}
        ids = store.call("list the tokens", lambda: [d["_id"] for d in store.collection.find(where, {"_id": True})
                                                     .sort("_id", 1)])

    def show(result: Checked) -> None:
        print(rows([[result.token_id, result.user_name or "", result.result]], tsv=True)[0], file=ctx.out, flush=True)

    outcome = ctx.session().check(ids, progress=show)
    failed = len(ids) - len(outcome.done)
    print(f"# checked {len(ids)}: {len(ids) - failed} ok, {failed} not", file=ctx.out)
    return 1 if failed else 0


@command("revoke", help="revoke a token's refresh token at Zoho, then delete it (audited)", store="sdk", arguments=[
    arg("id"),
    arg("--yes", action="store_true", help="do not ask (for scripts)"),
    actor_option("revokes"),
    arg("--accounts-url", type=accounts_url, help="Zoho accounts server to use instead of the token's data center's"),
])
def revoke(ctx: Context) -> int:
    from ...core.mapping import check_text
    from ...core.masking import printable
    from ...tools.zoho import ZohoError

    token_id = check_text("id", ctx.args.id, required=True)
    if not ctx.args.yes:
        confirmed(f"Revoke token {printable(token_id)} at Zoho and delete it? Its users will need a new grant token. "
                  "Type 'revoke' to confirm: ", "revoke", "not confirmed; nothing revoked",
                  needs="revoke needs --yes when not run at a terminal")

    def at_zoho(host: str, already: bool) -> None:  # seen even if the delete fails
        print(f"{host} no longer knows the refresh token (already revoked)" if already else
              f"revoked the refresh token at {host}", file=ctx.out, flush=True)

    try:
        done = ctx.session().revoke(token_id, at_zoho=at_zoho)
    except ZohoError as error:
        raise Failure(f"{error}; the token is left in the store") from None
    if done.replaced:
        print(f"kept {printable(token_id)}: a new login replaced its refresh token meanwhile (that one is not revoked)",
              file=ctx.out)
    else:
        print(f"deleted {printable(token_id)}" if done.deleted else f"{printable(token_id)} was already deleted",
              file=ctx.out)
    return 0


@command("cleanup", help="apply the lifecycle policy: revoke and delete idle tokens, delete unusable ones (audited; "
         "without flags, the ZOHO_CLEANUP_* settings)", store="sdk", writes_tokens=True, arguments=[
             arg("--idle-days", type=policy_days("--idle-days"),
                 help="session timeout: revoke at Zoho, then delete, tokens not refreshed for more than N days"),
             arg("--unusable-days", type=policy_days("--unusable-days"), help="delete tokens unusable for more than N days"),
             arg("--dry-run", action="store_true", help="list what would be done; change nothing, ask Zoho nothing"),
             arg("--json", action="store_true", help="the plan or the result as JSON"),
             arg("--batch-size", type=whole(1, 10_000), default=100, help="tokens read at a time (default 100)"),
             arg("--accounts-url", type=accounts_url,
                 help="Zoho accounts server to revoke at instead of each token's data center's"),
             actor_option("cleans up"),
         ])
def cleanup(ctx: Context) -> int:
    import json

    from ...tools import cleanup as lifecycle
    from ..output import rows

    args, out = ctx.args, ctx.out
    policy = lifecycle.Policy(args.idle_days, args.unusable_days) if args.idle_days or args.unusable_days \
        else lifecycle.Policy.of(operator_settings())
    if not policy:
        raise Failure("no cleanup rule: pass --idle-days or --unusable-days, or set ZOHO_CLEANUP_IDLE_DAYS or "
                      "ZOHO_CLEANUP_UNUSABLE_DAYS")

    def show(entry: cleanup_policy.Entry) -> None:
        if not args.json:
            print(rows([[entry.id, entry.user_name or "", entry.action, entry.reason, entry.result]], tsv=True)[0],
                  file=out, flush=True)

    session = ctx.session()
    if args.dry_run:
        report = session.cleanup_plan(policy, args.batch_size)
        for entry in report.entries:
            show(entry)
    else:
        report = session.cleanup(policy, batch_size=args.batch_size, progress=show)
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

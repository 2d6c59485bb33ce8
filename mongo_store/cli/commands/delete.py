"""Deleting tokens: ``delete`` and ``delete-all``, through the operator layer (audited)."""

from __future__ import annotations

from ..command import Context, Failure, actor_option, arg, command, confirmed


@command("delete", help="delete one token for good (asks first; audited); Zoho still honours its refresh token: "
         "revoke ends a connection", arguments=[
             arg("id"), arg("--yes", action="store_true", help="do not ask (for scripts)"), actor_option("deletes")])
def delete(ctx: Context) -> int:
    from ...core.mapping import check_text
    from ...core.masking import printable

    token_id = check_text("id", ctx.args.id, required=True)
    if not ctx.args.yes:
        store = ctx.store
        found = store.call("read the token", lambda: store.collection.find_one({"_id": token_id}, {"user_name": True}))
        if found is None:
            raise Failure(f"no stored token has id {token_id!r}")
        whose = f" ({printable(found['user_name'])})" if isinstance(found.get("user_name"), str) else ""
        confirmed(f"Delete token {printable(token_id)}{whose} for good? Zoho still honours its refresh token (revoke "
                  "ends a connection). Type 'delete' to confirm: ", "delete", "not confirmed; nothing deleted",
                  needs="delete needs --yes when not run at a terminal")
    if not ctx.session().delete([token_id]):
        raise Failure(f"no stored token has id {token_id!r}")
    print(f"deleted {printable(token_id)}", file=ctx.out)
    return 0


@command("delete-all", help="delete every token (asks first)", arguments=[
    arg("--yes", action="store_true", help="do not ask (for scripts)"), actor_option("deletes")])
def delete_all(ctx: Context) -> int:
    store = ctx.store
    count = store.call("count the tokens", store.collection.estimated_document_count)
    if not ctx.args.yes:
        name = store.collection.name
        confirmed(f"Delete all {count} tokens? Type the collection name ({name}) to confirm: ", name,
                  "not confirmed; nothing deleted", needs="delete-all needs --yes when not run at a terminal")
    print(f"deleted all tokens ({ctx.session().delete_all()})", file=ctx.out)
    return 0

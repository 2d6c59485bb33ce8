"""Moving tokens in and under new keys: ``import`` and ``rotate-key``."""

from __future__ import annotations

from ..command import Context, Failure, actor_option, arg, command


@command("import", help="import from a FileStore CSV, SQLite, MySQL or an export", store="sdk", writes_tokens=True,
         arguments=[
             arg("source", help="file path, or mysql://user:pass@host:3306/db?table=oauthtoken"),
             arg("--from", dest="kind", choices=("filestore", "sqlite", "mysql", "export"),
                 help="source kind (default: guessed from the name)"),
             arg("--table", default="oauthtoken", help="SQLite table (default oauthtoken)"),
             arg("--encoding", default="utf-8",
                 help="text encoding of a FileStore CSV (default utf-8; cp1252 for one written on Windows)"),
             arg("--dry-run", action="store_true", help="report what would change; write nothing"),
             arg("--verbose", action="store_true", help="one line per rejected row (default: one per reason)"),
             actor_option("imports"),
         ])
def import_tokens(ctx: Context) -> int:
    import sys

    from tqdm import tqdm

    from ...tools.migrate import SourceError, open_source, source_kind

    args, out = ctx.args, ctx.out
    try:
        kind = source_kind(args.source, args.kind)
        rows = open_source(args.source, kind, args.table, args.encoding)
        report = ctx.session().import_rows(tqdm(rows, unit=" rows", disable=None, file=sys.stderr, leave=False),
                                           source=kind, dry_run=args.dry_run)
    except SourceError as error:
        raise Failure(str(error)) from None
    from ...core.masking import printable

    # A reason can name what the file holds (an unknown field's name): plain text, as stored text is.
    if args.verbose:
        for line, reason in report.rejected:
            print(f"rejected line {line}: {printable(reason)}", file=out)
    else:  # one line per reason: a masked export's hundreds of rows are one line
        for group in report.reasons():
            print(printable(group.describe()), file=out)
    print(report.summary(args.dry_run) + (" (dry run: nothing written)" if args.dry_run else ""), file=out)
    return 1 if report.rejected else 0  # a migration script can tell that rows were left behind


@command("rotate-key", help="re-encrypt every token under ZOHO_MONGO_ENCRYPTION_KEY or ZOHO_MONGO_KMS_KEY",
         store="sdk", writes_tokens=True, arguments=[
             arg("--rewrap", action="store_true",
                 help="only wrap the data key again under ZOHO_MONGO_KMS_KEY (after that key's own rotation): no "
                      "token is touched"),
         ])
def rotate_key(ctx: Context) -> int:
    import sys

    from tqdm import tqdm

    from ...core.rotation import pending, rotate

    ctx.session().require("keys")  # the role, as the operator layer declares it (the CLI's is admin)
    store, out = ctx.sdk_store, ctx.out
    if ctx.args.rewrap:
        from ...core.envelope import rewrap

        print(rewrap(store, store.keys.kms), file=out)
        return 0
    query = pending(store)  # refuses a store without a key
    if store.prepare() is False:
        print("note: this MongoDB user may not install the validator that keeps the collection encrypted "
              "(collMod, in dbAdmin): run rotate-key once as a user who may", file=out)
    total = store.call("count the tokens to rotate", lambda: store.collection.count_documents(query))
    with tqdm(total=total, unit=" tokens", disable=None, file=sys.stderr, leave=False) as bar:
        report = rotate(store, progress=lambda: bar.update(1))
    for reason in report.failed:
        print(f"not rotated: {reason}", file=out)
    print(f"rotated {report.rotated}, saved meanwhile {report.changed_meanwhile} (already on the new key), "
          f"failed {len(report.failed)}" + (f"; replaced refresh tokens awaiting their revoke sealed again: "
                                            f"{report.displaced}" if report.displaced else ""), file=out)
    if report.recorded is not None:
        print(report.recorded, file=out)
    for name in report.retired:
        print(f"no token of this collection needs KMS key {name} any more: remove it from ZOHO_MONGO_OLD_KMS_KEYS; "
              "once nothing else uses it, it can be disabled", file=out)
    return 1 if report.failed else 0

"""``zoho-mongo-store``: the operators' command line. Exit 0 on success; 1 with one line on stderr
for any expected failure (never a traceback); 2 for a usage error.

This module only parses: the commands (``commands.py``) are imported once the arguments are
known, so ``--help`` and ``--version`` answer at once; the admin commands never import the SDK.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO
from urllib.parse import urlsplit

from . import __version__

PROG = "zoho-mongo-store"
STATUSES = ("valid", "refresh-window", "within-hour", "expired")
HEALTH = ("healthy", "idle", "failing", "unusable")
SORTS = ("user", "expiry", "refreshed")
"""``admin.STATUSES``, ``admin.HEALTH`` and ``admin.SORTS``, repeated so that parsing imports nothing
heavy (a test keeps them equal)."""


MAX_PAGE = 1_000_000_000
"""The highest --page: its skip stays far inside MongoDB's 64-bit numbers at any page size."""
MAX_PAGE_SIZE = 1000
MAX_TIMEOUT = 86_400.0


def whole(low: int, high: int) -> Callable[[str], int]:
    """A whole number from ``low`` to ``high``, for argparse (anything else is a usage error, exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high:,}" if value >= low else f"must be {low} or more")
        return value
    return parse


def page_number(text: str) -> int:
    """A page number for --page: not 0 (negative numbers count from the end, with a cursor only)."""
    value = whole(-MAX_PAGE, MAX_PAGE)(text)
    if value == 0:
        raise argparse.ArgumentTypeError("pages are numbered from 1 (or from -1, the last, backwards)")
    return value


def seconds(text: str) -> float:
    """A finite number of seconds above 0 and up to a day, for --timeout (``inf`` or ``nan`` would
    reach the driver as a malformed URI option)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_TIMEOUT:  # also false for nan
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}")
    return value


def http_url(example: str) -> Callable[[str], str]:
    """An http(s) URL with a host, for argparse (anything else is a usage error, exit 2)."""
    def parse(text: str) -> str:
        # Never echoed: a webhook's path is its secret (argparse would quote a value that raised).
        if any(character.isspace() or not character.isprintable() for character in text):
            raise argparse.ArgumentTypeError("the URL holds a space or a control character")
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018  (raises on a port that is not a number)
        except ValueError:
            raise argparse.ArgumentTypeError("is not a valid URL (its host or port does not parse)") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise argparse.ArgumentTypeError(f"must be an http(s) URL such as {example}")
        return text
    return parse


accounts_url = http_url("https://accounts.zoho.eu/oauth/v2/token")
"""--accounts-url."""
api_url = http_url("https://www.zohoapis.eu")
"""--api-url."""
webhook_url = http_url("https://hooks.slack.com/services/...")
"""--webhook."""


def policy_days(name: str) -> Callable[[str], float]:
    """A number of days for a cleanup rule (a usage error otherwise), parsed as the settings are."""
    def parse(text: str) -> float:
        from .tools.cleanup import PolicyError, days

        try:
            value = days(name, text)
        except PolicyError as error:
            raise argparse.ArgumentTypeError(str(error).removeprefix(f"{name} ")) from None
        if value is None:
            raise argparse.ArgumentTypeError("must be a number of days, such as 90")
        return value
    return parse


def listen(text: str) -> tuple[str, int]:
    """HOST:PORT for --listen: an IP address (IPv6 in brackets) or localhost, and a port from 0
    (any free one, printed at start) to 65535."""
    host, colon, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        number = int(port)
        if host != "localhost":
            ipaddress.ip_address(host)
    except ValueError:
        raise argparse.ArgumentTypeError("must be HOST:PORT with an IP address, such as 127.0.0.1:9464 or [::1]:9464") from None
    if not colon or not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError("the port must be from 0 to 65535")
    return host, number


def interval(text: str) -> float:
    """Seconds between counts: from 1 to 3600."""
    value = seconds(text)
    if not 1 <= value <= 3600:
        raise argparse.ArgumentTypeError("must be from 1 to 3600 seconds")
    return value


def global_options(defaults: bool) -> argparse.ArgumentParser:
    """--uri, --database, --collection and --timeout, accepted before or after the command (after
    it, they leave the values given before alone unless given again)."""
    options = argparse.ArgumentParser(add_help=False)
    unset: dict[str, Any] = {} if defaults else {"default": argparse.SUPPRESS}
    options.add_argument("--uri", help="MongoDB URI (default: $MONGODB_URI)", **unset)
    options.add_argument("--database", help="database (default: $ZOHO_MONGO_DATABASE or zoho)", **unset)
    options.add_argument("--collection", help="collection (default: $ZOHO_MONGO_COLLECTION or oauth_tokens)", **unset)
    options.add_argument("--timeout", type=seconds,
                         help="seconds to wait for the server, also through a replica-set election (default 15)",
                         **({"default": 15.0} if defaults else unset))
    return options


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line on stderr (and exit 2), like every other failure; --help has the rest."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    root: argparse.ArgumentParser = OneLineParser(prog=PROG, description="Operate the Zoho CRM SDK's MongoDB token store.",
                                                  parents=[global_options(defaults=True)])
    root.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    after = global_options(defaults=False)
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_parser = commands.add_parser

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return add_parser(name, parents=[after], **kwargs)

    commands.add_parser = command  # type: ignore[method-assign]

    sub = commands.add_parser("indexes", help="create the store's indexes; report any that drifted")
    sub.add_argument("--check", action="store_true", help="only report; exit 1 if any is missing or drifted")
    sub.set_defaults(run="indexes")

    sub = commands.add_parser("stats", help="counts by health, status and data center")
    sub.add_argument("--json", action="store_true")
    sub.set_defaults(run="stats")

    sub = commands.add_parser("list", help="list tokens, secrets masked, a page at a time")
    sub.add_argument("--search", metavar="TEXT", help="the start of a user's e-mail, e-mail domain or org id (any "
                     "case), or of a token id (as typed); never a secret")
    sub.add_argument("--health", choices=HEALTH, help="healthy, idle, failing or unusable (see `stats`)")
    sub.add_argument("--status", choices=STATUSES, help="the access token's expiry only")
    sub.add_argument("--domain", help="data center: US, EU, IN, AU, JP, CA, CN, SA, UK (or its domain or URL)")
    sub.add_argument("--sort", choices=SORTS, help="order by user name, expiry or last refresh, over every match "
                     "(tokens without the field come last)")
    sub.add_argument("--descending", action="store_true", help="the other way round")
    where = sub.add_mutually_exclusive_group()
    where.add_argument("--last", action="store_true", help="the last page (as fast as the first)")
    where.add_argument("--after", metavar="CURSOR", help="the page after this cursor (printed with each page)")
    where.add_argument("--before", metavar="CURSOR", help="the page before this cursor (printed with each page)")
    sub.add_argument("--page", type=page_number, help="alone: jump to this page (skipping the pages before, "
                     "slower the deeper); with --after/--before: the number of the page shown "
                     "(negative: counted from the end)")
    sub.add_argument("--page-size", type=whole(1, MAX_PAGE_SIZE), default=50)
    sub.add_argument("--format", choices=("table", "tsv", "json"), default="table",
                     help="aligned columns (default), tab-separated, or one JSON object per line")
    sub.add_argument("--json", dest="format", action="store_const", const="json", help="the same as --format json")
    sub.set_defaults(run="list")

    sub = commands.add_parser("show", help="one token, by id or --user, secrets masked")
    sub.add_argument("id", nargs="?")
    sub.add_argument("--user", help="the token's user name (email:org_zgid) instead of its id")
    sub.add_argument("--json", action="store_true")
    sub.set_defaults(run="show")

    sub = commands.add_parser("events", help="a token's history (refreshed, refresh-failed, checked, revoked, "
                              "deleted, imported), newest first; also of a deleted token")
    sub.add_argument("id")
    sub.add_argument("--limit", type=whole(1, 10_000), default=50, help="events to show (default 50)")
    sub.add_argument("--json", action="store_true", help="one JSON object per line")
    sub.set_defaults(run="events")

    sub = commands.add_parser("audit", help="the audit log, newest first: search by actor and token, page at any depth")
    sub.add_argument("--actor", help="entries by an actor whose name starts with this (any case)")
    sub.add_argument("--token", help="entries naming this token id, or a user name starting with this (any case)")
    sub.add_argument("--page-size", type=whole(1, MAX_PAGE_SIZE), default=50)
    where = sub.add_mutually_exclusive_group()
    where.add_argument("--after", metavar="CURSOR", help="the older page after the one that printed this cursor")
    where.add_argument("--before", metavar="CURSOR", help="the newer page before the one that printed this cursor")
    where.add_argument("--last", action="store_true", help="the oldest entries")
    sub.add_argument("--json", action="store_true", help="one JSON object per line")
    sub.set_defaults(run="audit")

    sub = commands.add_parser("check", help="ask Zoho whether tokens work (refreshing through the store if "
                              "needed); record the result on each")
    sub.add_argument("ids", nargs="*", metavar="ID")
    sub.add_argument("--health", choices=HEALTH, help="check every token in this state")
    sub.add_argument("--all", action="store_true", help="check every token")
    sub.add_argument("--accounts-url", type=accounts_url, help="Zoho accounts server to use instead of the token's "
                     "data center's (a proxy or a test server): the refresh goes there")
    sub.add_argument("--api-url", type=api_url, help="Zoho CRM API server to call instead of the token's api_domain "
                     "(a proxy, or the demo's local fake Zoho)")
    sub.add_argument("--actor", help="who checks, for the audit log (default: your user name)")
    sub.set_defaults(run="check")

    sub = commands.add_parser("revoke", help="revoke a token's refresh token at Zoho, then delete it (audited)")
    sub.add_argument("id")
    sub.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    sub.add_argument("--actor", help="who revokes, for the audit log (default: your user name)")
    sub.add_argument("--accounts-url", type=accounts_url,
                     help="Zoho accounts server to use instead of the token's data center's")
    sub.set_defaults(run="revoke")

    sub = commands.add_parser("cleanup", help="apply the lifecycle policy: revoke and delete idle tokens, delete "
                              "unusable ones (audited; without flags, the ZOHO_CLEANUP_* settings)")
    sub.add_argument("--idle-days", type=policy_days("--idle-days"),
                     help="session timeout: revoke at Zoho, then delete, tokens not refreshed for more than N days")
    sub.add_argument("--unusable-days", type=policy_days("--unusable-days"),
                     help="delete tokens unusable for more than N days")
    sub.add_argument("--dry-run", action="store_true", help="list what would be done; change nothing, ask Zoho nothing")
    sub.add_argument("--json", action="store_true", help="the plan or the result as JSON")
    sub.add_argument("--batch-size", type=whole(1, 10_000), default=100, help="tokens read at a time (default 100)")
    sub.add_argument("--accounts-url", type=accounts_url,
                     help="Zoho accounts server to revoke at instead of each token's data center's")
    sub.add_argument("--actor", help="who cleans up, for the audit log (default: your user name)")
    sub.set_defaults(run="cleanup")

    sub = commands.add_parser("delete", help="delete one token for good (audited); Zoho still honours its refresh "
                              "token: revoke ends a connection")
    sub.add_argument("id")
    sub.add_argument("--actor", help="who deletes, for the audit log (default: your user name)")
    sub.set_defaults(run="delete")

    sub = commands.add_parser("delete-all", help="delete every token (asks first)")
    sub.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    sub.add_argument("--actor", help="who deletes, for the audit log (default: your user name)")
    sub.set_defaults(run="delete_all")

    sub = commands.add_parser("export", help="JSON lines, secrets masked unless --include-secrets")
    sub.add_argument("--output", "-o", help="file to write (default: standard output)")
    sub.add_argument("--include-secrets", action="store_true", help="write real secrets: keep the file safe")
    sub.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    sub.set_defaults(run="export")

    sub = commands.add_parser("import", help="import from a FileStore CSV, SQLite, MySQL or an export")
    sub.add_argument("source", help="file path, or mysql://user:pass@host:3306/db?table=oauthtoken")
    sub.add_argument("--from", dest="kind", choices=("filestore", "sqlite", "mysql", "export"),
                     help="source kind (default: guessed from the name)")
    sub.add_argument("--table", default="oauthtoken", help="SQLite table (default oauthtoken)")
    sub.add_argument("--encoding", default="utf-8",
                     help="text encoding of a FileStore CSV (default utf-8; cp1252 for one written on Windows)")
    sub.add_argument("--dry-run", action="store_true", help="report what would change; write nothing")
    sub.add_argument("--verbose", action="store_true", help="one line per rejected row (default: one per reason)")
    sub.add_argument("--actor", help="who imports, for the audit log (default: your user name)")
    sub.set_defaults(run="import")

    sub = commands.add_parser("rotate-key", help="re-encrypt every token under ZOHO_MONGO_ENCRYPTION_KEY")
    sub.set_defaults(run="rotate_key")

    sub = commands.add_parser("add-operator", help="add a dashboard operator account (or set its password): "
                              "asks for the password, or reads it from standard input")
    sub.add_argument("name", help="the account name, as the audit log records it (an e-mail works)")
    sub.add_argument("--file", help="the operators file (default: $DASHBOARD_OPERATORS_FILE); created 0600")
    sub.set_defaults(run="add_operator", needs_store=False)

    sub = commands.add_parser("dashboard", help="run the Streamlit dashboard")
    sub.add_argument("--port", type=int, default=8501)
    sub.add_argument("--address", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for all)")
    sub.set_defaults(run="dashboard", needs_store=False)

    sub = commands.add_parser("metrics", help="serve Prometheus metrics (/metrics) and /health, counting in the "
                              "background; with --webhook, alert every interval too")
    sub.add_argument("--listen", type=listen, default=("127.0.0.1", 9464), metavar="HOST:PORT",
                     help="address to serve on (default 127.0.0.1:9464: this machine only; 0.0.0.0:9464 for all)")
    sub.add_argument("--interval", type=interval, default=60.0, help="seconds between counts (default 60)")
    sub.add_argument("--webhook", type=webhook_url, help="POST alerts and recoveries here every interval "
                     "(default: $ZOHO_MONGO_ALERT_WEBHOOK, if set)")
    sub.set_defaults(run="metrics")

    sub = commands.add_parser("alerts", help="one alert pass: POST each token that turned failing or unusable, "
                              "and each recovery, to a webhook (for cron)")
    sub.add_argument("--webhook", type=webhook_url, help="where to POST (default: $ZOHO_MONGO_ALERT_WEBHOOK)")
    sub.set_defaults(run="alerts")

    sub = commands.add_parser("demo", help="the dashboard on an embedded database with fake tokens")
    sub.add_argument("--port", type=int, default=8501)
    sub.add_argument("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sub.add_argument("--data-dir", help="where the embedded mongod keeps its data (default: "
                     "$XDG_DATA_HOME/zoho-mongo-store/demo, else ~/.local/share/zoho-mongo-store/demo)")
    sub.add_argument("--reset", action="store_true", help="start over: delete the demo's data and seed it again")
    sub.add_argument("--mock", action="store_true", help="use mongomock even where mongod is available (in memory)")
    sub.set_defaults(run="demo", needs_store=False)
    return root


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parsing = parser()
    args = parsing.parse_args(argv)
    if args.run == "list" and (args.page or 1) < 0 and not (args.after or args.before):
        parsing.error("argument --page: a page counted from the end (negative) needs --after or --before")
    out = out or sys.stdout
    from . import commands
    from .core.errors import is_store_error, sentence

    run: Callable[..., int] = getattr(commands, f"cmd_{args.run}")
    try:
        if not getattr(args, "needs_store", True):
            return run(args, out)
        store = commands.open_store(args)
        try:
            return run(store, args, out)
        finally:
            store.close()
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`list | head`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's last flush does not complain
        return 141
    except Exception as error:  # the store's SDKException, the admin path's StoreError, or a Failure
        if not (isinstance(error, commands.Failure) or is_store_error(error)):
            raise
        print(f"{PROG}: error: {' '.join(sentence(error).split())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

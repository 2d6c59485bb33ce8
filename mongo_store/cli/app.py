"""The command line's frame: the global options, the parser built from the declared commands,
and the run with its exit codes: 0 on success; 1 with one line on stderr for any expected failure
(never a traceback); 2 for a usage error; 130 when interrupted; 141 when the reader went away."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from .. import __version__
from .command import Command, Context, Failure
from .commands import COMMANDS
from .types import seconds

PROG = "zoho-mongo-store"


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
    """The parser of every declared command (``commands.COMMANDS``)."""
    root: argparse.ArgumentParser = OneLineParser(prog=PROG, description="Operate the Zoho CRM SDK's MongoDB token store.",
                         parents=[global_options(defaults=True)])
    root.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    after = global_options(defaults=False)
    subparsers = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for declared in COMMANDS:
        sub = subparsers.add_parser(declared.name, help=declared.help, parents=[after])
        for argument in declared.arguments:
            argument.add_to(sub)
        sub.set_defaults(declared=declared)
    return root


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    # The driver logs a failure of its background monitor (a server killed mid-command) with a
    # traceback, which Python's last-resort handler would print: the command's one line says it.
    logging.getLogger("pymongo").addHandler(logging.NullHandler())
    parsing = parser()
    args = parsing.parse_args(argv)
    declared: Command = args.declared
    problem = declared.usage(args) if declared.usage is not None else None
    if problem:
        parsing.error(problem)
    context = Context(args, out or sys.stdout, declared)
    from ..core.errors import is_store_error, sentence

    try:
        try:
            if declared.store != "none":
                context.store  # noqa: B018  (opened first: a missing URI is said before anything else)
            return declared.run(context)
        finally:
            context.close()
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`list | head`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's last flush does not complain
        return 141
    except Exception as error:  # the store's SDKException, the admin path's StoreError, or a Failure
        if not (isinstance(error, Failure) or is_store_error(error)):
            raise
        from ..core.masking import printable

        print(f"{PROG}: error: {printable(' '.join(sentence(error).split()))}", file=sys.stderr)
        return 1

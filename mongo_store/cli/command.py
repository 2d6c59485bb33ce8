"""How a command is declared: once, with its name, help, the store it needs, whether it writes
tokens, its arguments and what it runs (``@command``). ``commands/__init__.py`` registers every
declared command of its modules; ``app.py`` builds the parser from them and runs the one asked
for with a ``Context`` (the parsed arguments, the output, and the store and operator session,
opened when first used)."""

from __future__ import annotations

import argparse
import getpass
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TextIO

if TYPE_CHECKING:
    from ..core.admin_store import AdminStore
    from ..core.store import MongoTokenStore
    from ..tools.operations import Session

StoreKind = Literal["none", "admin", "sdk"]
"""What a command runs on: nothing (it opens what it needs itself), ``AdminStore`` (documents only,
no SDK: a fast start) or ``MongoTokenStore`` (the SDK store: tokens opened, refreshed, saved)."""


class Failure(Exception):
    """An expected failure: printed as one line, exit code 1."""


@dataclass(frozen=True)
class Argument:
    """One ``add_argument`` call; ``exclusive`` holds the arguments of a mutually exclusive group instead."""

    names: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    exclusive: tuple[Argument, ...] = ()

    def add_to(self, parser: Any) -> None:
        if self.exclusive:
            group = parser.add_mutually_exclusive_group()
            for argument in self.exclusive:
                argument.add_to(group)
        else:
            parser.add_argument(*self.names, **self.options)


def arg(*names: str, **options: Any) -> Argument:
    """An argument, as ``ArgumentParser.add_argument`` takes it."""
    return Argument(names, options)


def one_of(*arguments: Argument) -> Argument:
    """Arguments of which at most one may be given."""
    return Argument(exclusive=arguments)


def actor_option(verb: str) -> Argument:
    """``--actor``: who acts, for the audit log."""
    return arg("--actor", help=f"who {verb}, for the audit log (default: your user name)")


@dataclass(frozen=True)
class Command:
    """One command of ``zoho-mongo-store``."""

    name: str
    help: str
    run: Callable[[Context], int]
    store: StoreKind = "admin"
    writes_tokens: bool = False
    """It saves tokens: the store creates the indexes first (not on a dry run)."""
    arguments: tuple[Argument, ...] = ()
    usage: Callable[[argparse.Namespace], str | None] | None = None
    """A check of the parsed arguments beyond each one's own: the usage error (exit 2), or None."""


def command(name: str, *, help: str, store: StoreKind = "admin", writes_tokens: bool = False,
            arguments: Sequence[Argument] = (), usage: Callable[[argparse.Namespace], str | None] | None = None,
            ) -> Callable[[Callable[[Context], int]], Command]:
    """Declare a command: the decorated function runs it (0 on success, 1 for an expected failure
    it reports itself; raise ``Failure`` or a store error for one line on stderr)."""
    def declare(run: Callable[[Context], int]) -> Command:
        return Command(name, help, run, store, writes_tokens, tuple(arguments), usage)
    return declare


@dataclass
class Context:
    """What a running command has: its arguments, where it prints, and the store and the operator
    session its declaration asks for, opened on first use and closed by ``close``."""

    args: argparse.Namespace
    out: TextIO
    command: Command
    _store: Any = None
    _session: Any = None

    @property
    def store(self) -> Any:
        """``AdminStore`` or ``MongoTokenStore``, as the command declared (its ``store``)."""
        if self._store is None:
            self._store = open_store(self.args, self.command)
        return self._store

    @property
    def sdk_store(self) -> MongoTokenStore:
        return self.store

    @property
    def admin_store(self) -> AdminStore:
        return self.store

    def session(self) -> Session:
        """The operator layer on this command's store, acting as ``actor`` and asking Zoho where the
        command's ``--accounts-url`` and ``--api-url`` say."""
        if self._session is None:
            from ..tools.operations import Session

            self._session = Session(self.store, actor(self.args), operator_settings(),
                                    accounts_url=getattr(self.args, "accounts_url", None),
                                    api_url=getattr(self.args, "api_url", None))
        return self._session

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def open_store(args: argparse.Namespace, declared: Command) -> Any:
    """The store the command declared, from the global options over the environment. Only commands
    that write tokens create the indexes; the rest work read-only."""
    import os

    from ..core.errors import store_error
    from ..core.settings import SettingError, StoreSettings

    if not args.uri and not os.environ.get("MONGODB_URI"):
        raise Failure("no MongoDB URI: set MONGODB_URI or pass --uri")
    try:
        settings = StoreSettings.load(uri=args.uri, database=args.database, collection=args.collection,
                                      server_selection_timeout=args.timeout, failover_wait=args.timeout,
                                      create_indexes=declared.writes_tokens and not getattr(args, "dry_run", False))
    except SettingError as error:
        raise store_error(str(error)) from None
    if settings.uri and settings.server_selection_timeout > QUICK_REFUSAL:
        nowhere = refused_everywhere(settings.uri)
        if nowhere:
            raise Failure(f"nothing is listening at {nowhere} (connection refused): start MongoDB there, or point "
                          "MONGODB_URI (or --uri) at a running server")
    if declared.store == "admin":
        from ..core.admin_store import AdminStore

        return AdminStore(settings=settings)
    if importlib.util.find_spec("zohocrmsdk") is None:  # the admin commands work without it
        from .. import sdk_missing

        raise Failure(sdk_missing(declared.name))
    from ..core.store import MongoTokenStore

    # An operator acts on what is stored now: no read cache (nor its change stream) in a command.
    return MongoTokenStore(settings=settings.replace(read_cache=False))


QUICK_REFUSAL = 3.0
"""With a longer --timeout, a server whose every host refuses the connection (nothing listens:
MongoDB is not running there) is said at once, not after the whole timeout (an election or a
server under load refuses nothing: they still get the whole wait)."""


def refused_everywhere(uri: str) -> str | None:
    """``host:port, ...`` when every host of a ``mongodb://`` URI refuses a TCP connection, twice one
    second apart (a server restarting); None when any host answers or cannot be told (SRV, a socket
    file, a name that does not resolve: the driver says those)."""
    import socket
    import time

    if not uri.startswith("mongodb://"):
        return None
    try:
        from pymongo.uri_parser import parse_uri

        nodes = [(str(host), int(port)) for host, port in parse_uri(uri, validate=False)["nodelist"]]
    except Exception:
        return None
    if not nodes or any(host.endswith(".sock") or "/" in host for host, _ in nodes):
        return None
    for attempt in range(2):
        for host, port in nodes:
            try:
                socket.create_connection((host, port), timeout=2.0).close()
                return None
            except ConnectionRefusedError:
                continue
            except OSError:
                return None
        if attempt == 0:
            time.sleep(1.0)
    return ", ".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in nodes)


def operator_settings() -> Any:
    """The operator tools' settings from the environment (``tools/settings.py``); a bad one is one line."""
    from ..core.settings import SettingError
    from ..tools.settings import OperatorSettings

    try:
        return OperatorSettings.load()
    except SettingError as error:
        raise Failure(str(error)) from None


def actor(args: argparse.Namespace) -> str:
    """Who acts, for the audit log: ``--actor``, else the operating-system user."""
    if getattr(args, "actor", None):
        return str(args.actor)
    try:
        return f"{getpass.getuser()} (cli)"
    except Exception:  # no user name in this environment
        return "unknown (cli)"


def confirmed(question: str, answer: str, refusal: str, *, needs: str) -> None:
    """Ask at a terminal and require ``answer`` typed; without a terminal, refuse (``needs``: what
    makes it run unasked, ``--yes``)."""
    import sys

    if not sys.stdin.isatty():
        raise Failure(needs)
    if input(question).strip() != answer:
        raise Failure(refusal)

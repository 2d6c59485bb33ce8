"""The dashboard: ``add-operator``, ``dashboard`` and ``demo`` (the dashboard on an embedded database
with fake tokens and a local fake Zoho)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ..command import Context, Failure, arg, command


@command("add-operator", help="add a dashboard operator account (or set its password and role): asks for the "
         "password, or reads it from standard input", store="none", arguments=[
             arg("name", help="the account name, as the audit log records it (an e-mail works)"),
             arg("--role", choices=("viewer", "operator", "admin"),
                 help="viewer: reads only; operator: also checks, revokes and deletes chosen tokens; admin: also "
                      "deletes all, applies a policy, imports (default: operator for a new account, else unchanged)"),
             arg("--file", help="the operators file (default: $DASHBOARD_OPERATORS_FILE); created 0600"),
         ])
def add_operator(ctx: Context) -> int:
    """Add an operator to the dashboard's accounts file; the password is never echoed or logged."""
    import getpass
    import os
    import sys

    from ...core.masking import printable

    args, out = ctx.args, ctx.out
    from ...dashboard.operators import OPERATORS_FILE_ENV, OperatorsError, add_operator

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
        new = add_operator(path, args.name, password, args.role)
    except OperatorsError as error:
        raise Failure(str(error)) from None
    except OSError as error:
        raise Failure(f"cannot write {printable(path)}: {error.strerror}") from None
    from ...dashboard.operators import read_accounts

    role = read_accounts(path)[args.name].role
    print(f"{'added' if new else 'changed the password of'} operator {printable(args.name)} ({role}) in {printable(path)}",
          file=out)
    return 0


@command("dashboard", help="run the Streamlit dashboard", store="none", arguments=[
    arg("--port", type=int, default=8501, help="the port to serve on (default 8501); a port in use is refused before "
        "anything starts"),
    arg("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 "
        "for all)"),
])
def dashboard(ctx: Context) -> int:
    """Run the dashboard with the current settings (MONGODB_URI, DASHBOARD_PASSWORD, ...)."""
    import os

    from ..processes import check_start, run_streamlit, stopped_by_signals

    check_start(os.environ.copy(), ctx.args.address, ctx.args.port)  # before anything starts
    with stopped_by_signals() as shutdown:
        return run_streamlit(os.environ.copy(), ctx.args.port, ctx.args.address, shutdown)
    return 0  # stopped by a signal, Streamlit with it


def _demo_database_flags(args: Any) -> str | None:
    given = [flag for flag, value in (("--uri", args.uri), ("--database", args.database),
                                      ("--collection", args.collection)) if value]
    if given:
        return (f"the demo runs on its own embedded database, so {', '.join(given)} would be ignored: leave "
                f"{'it' if len(given) == 1 else 'them'} out, or run `zoho-mongo-store dashboard` on your database")
    return None


@command("demo", help="the dashboard on an embedded database with fake tokens", store="none",
         usage=_demo_database_flags, arguments=[
    arg("--port", type=int, default=8501, help="the dashboard's port (default 8501); a port in use is refused before "
        "anything starts"),
    arg("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"),
    arg("--data-dir", help="where the embedded mongod keeps its data (default: $XDG_DATA_HOME/zoho-mongo-store/demo, "
        "else ~/.local/share/zoho-mongo-store/demo)"),
    arg("--reset", action="store_true", help="start over: delete the demo's data and seed it again"),
    arg("--mock", action="store_true", help="use mongomock even where mongod is available (in memory)"),
])
def demo(ctx: Context) -> int:
    """The dashboard on an embedded database seeded with fake tokens, and a local fake Zoho that
    knows them (Check and Revoke need no internet): nothing to set up. A kept database keeps its
    tokens' states from one start to the next (the demo's clock stands still while it is stopped);
    ``--reset`` starts over."""
    import os
    import threading

    from ...core.clock import utcnow
    from ...core.store import MongoTokenStore
    from ...dashboard import demo, demo_zoho
    from ...tools.embedded import EmbeddedMongod, mongod_binary
    from ..processes import check_start, data_folder_in_use, run_streamlit, stopped_by_signals

    args, out = ctx.args, ctx.out
    check_start(os.environ.copy(), args.address, args.port)  # before a mongod starts or a token is seeded

    env = os.environ.copy()
    env["ZOHO_DASHBOARD_DEMO"] = "1"
    own_password = bool(env.get("DASHBOARD_PASSWORD"))
    env["DASHBOARD_PASSWORD"] = env.get("DASHBOARD_PASSWORD") or "demo"
    env["ZOHO_MONGO_DATABASE"] = database = env.get("ZOHO_MONGO_DATABASE") or "zoho_demo"
    server = fake = None
    ticking = threading.Event()
    with stopped_by_signals() as shutdown:
        try:
            folder = Path(args.data_dir) if args.data_dir else demo_data_dir()
            embedded = not args.mock and mongod_binary() is not None
            in_use = data_folder_in_use(folder) if embedded else None
            if in_use:
                raise Failure(f"the data folder {folder} is in use by another mongod (pid {in_use}): "
                              "stop it, or pass another --data-dir")
            fake, kept_port = demo_zoho.start_kept(folder)
            env |= demo_zoho.settings(fake)
            if not kept_port:
                print(f"The fake Zoho's usual port is taken: it listens on {fake.port} now (paste the new line below).",
                      file=out, flush=True)
            if embedded:
                print(f"Starting the embedded mongod (data kept in {folder}; --reset starts over) ...", file=out, flush=True)
                server = EmbeddedMongod(data_dir=folder, own_session=True)
                with shutdown.starting():  # known before a signal can stop the command: a signal now stops it too
                    server.launch()
                    shutdown.children.append(lambda: server.process if server is not None else None)
                server.ready()
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
                pointed = " ".join(f"{name}={value}" for name, value in demo_zoho.cli_settings(fake).items())
                print(f"MongoDB: {server.uri}  database: {database}\n"
                      f"Point the CLI at it and at the demo's fake Zoho (in a second terminal): export "
                      f"MONGODB_URI='{server.uri}' ZOHO_MONGO_DATABASE={database} {pointed}", file=out)
            else:
                why = "as asked" if args.mock else "no embedded mongod on this platform"
                print(f"The demo runs on mongomock, in memory ({why}): only the dashboard sees it.", file=out)
                env["MONGODB_URI"] = "mongomock://"
                now = utcnow()  # the dashboard seeds the very same tokens (the same rng, dated from now)
                env[demo.SEEDED_AT_ENV] = now.isoformat()
                demo_zoho.teach(fake, demo.planned_documents(now=now), now)
            from_cli = " (and the CLI's, with the line above)" if server is not None else ""
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
    from ...tools.embedded import user_data_dir

    return user_data_dir("demo")


def keep_the_clock(uri: str, database: str, stop: Any) -> None:
    """While the demo runs, write its clock every ``demo.CLOCK_BEAT`` seconds (a demo killed
    without a chance to stop keeps its states too, to within that)."""
    from pymongo import MongoClient

    from ...dashboard.demo import CLOCK_BEAT, stamp

    client: Any = MongoClient(uri, serverSelectionTimeoutMS=2000)
    try:
        while not stop.wait(CLOCK_BEAT):
            with contextlib.suppress(Exception):  # a mongod stopping: the last beat stands
                stamp(client[database])
    finally:
        client.close()


def ago_text(shift: Any) -> str:
    """How long ago something was, ``shift`` before now, in words ("3 hours ago")."""
    from ...core.clock import utcnow
    from ...core.masking import ago

    now = utcnow()
    return ago(now - shift, now)

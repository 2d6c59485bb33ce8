"""Process supervision for the commands that run children (``dashboard``, ``demo``, ``metrics``):
a signal stops every child, also one being started, and nothing outlives the command."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .command import Failure

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
        self.deferring = False
        self.pending = False

    def handle(self, signum: int, frame: Any) -> None:
        self.signalled = True
        if self.stopping:
            self.send(signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
            return
        self.stopping = True
        os.write(2, STOPPING.encode())  # not print: the signal may have landed inside a print
        self.send(signal.SIGTERM)
        if self.deferring:  # a child is being started: raised once it is known (``starting``)
            self.pending = True
            return
        raise Stop()

    @contextlib.contextmanager
    def starting(self) -> Iterator[None]:
        """Start a child and register it inside this block: a signal meanwhile is held until the
        block ends, then stops the new child too. (Raised inside ``Popen``, it would leave a child
        started but known to nobody, running on after the command.)"""
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.pending:
            self.pending = False
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


def port_taken(address: str, port: int) -> bool:
    """Whether something already listens on ``address:port`` (a port another app holds): bound
    with SO_REUSEADDR, as Streamlit binds it, so a port only in TIME_WAIT counts as free. Another
    failure (an address that is not this machine's) is left to Streamlit to report."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False


def check_start(env: dict[str, str], address: str, port: int) -> None:
    """Everything that would stop the dashboard, checked before anything starts (a mongod, the
    seeding, Streamlit): the switches, sign-in off beyond this machine, and a busy port (naming ``--port``)."""
    preflight(env, address)
    if not 1 <= port <= 65535:
        raise Failure("--port must be from 1 to 65535")
    if port_taken(address, port):
        from ..tools.embedded import free_port

        raise Failure(f"port {port} on {address} is already in use (another program listens there, perhaps another "
                      f"dashboard): pass a free one with --port, such as --port {free_port()}")


def preflight(env: dict[str, str], address: str) -> None:
    """The dashboard's switches parse, and sign-in off means this machine only."""
    try:
        from ..dashboard.auth import is_loopback as loopback  # not app: its caches warn outside Streamlit
        from ..dashboard.settings import SettingError, parse_flag
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


def run_streamlit(env: dict[str, str], port: int, address: str, shutdown: Shutdown) -> int:
    """Streamlit on ``address`` only (127.0.0.1 unless asked): a dashboard that anyone on the
    network can reach must have sign-in on."""
    preflight(env, address)
    package = Path(__file__).resolve().parent.parent
    script = package / "dashboard" / "streamlit_app.py"
    # Not `python -m streamlit`: it puts the working directory first on sys.path, and a mongo_store
    # folder there would be imported instead of this package (launch.py loads this one).
    command = [sys.executable, str(package / "dashboard" / "launch.py"), str(package), "run", str(script), "--server.port", str(port),
               "--server.address", address, "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--client.toolbarMode", "viewer"]  # no "Deploy" button for operators
    # Its own session: a Ctrl-C reaches this command, which stops it (and all it started) in order.
    with shutdown.starting():
        child = subprocess.Popen(command, env=env, start_new_session=True)
        child.own_session = True  # type: ignore[attr-defined]
        shutdown.children.append(lambda: child)
    try:
        return child.wait()
    finally:
        stop_child(child, STREAMLIT_GRACE)  # stopped by a signal: Streamlit goes too

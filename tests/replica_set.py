"""A real 3-member replica set on 127.0.0.1, built from the embedded mongod, with its faults.

Each member is its own mongod process on its own port and data folder. Test commands are on, so a
test can also make the server fail a command on purpose (``failCommand``).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from mongo_store.tools.embedded import EmbeddedMongod

NAME = "rsfailover"


class ReplicaSet:
    def __init__(self, size: int = 3) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="zoho-replset-"))
        self.members = [
            EmbeddedMongod(self.root / f"member{n}", replica_set=NAME, initiate=False,
                           parameters={"enableTestCommands": "1"})
            for n in range(size)
        ]
        hosts = ",".join(f"127.0.0.1:{member.port}" for member in self.members)
        self.uri = f"mongodb://{hosts}/?replicaSet={NAME}"

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> ReplicaSet:
        for member in self.members:
            member.start()
        with self.direct(0) as first:
            first.admin.command("replSetInitiate", {
                "_id": NAME,
                "members": [{"_id": n, "host": f"127.0.0.1:{m.port}"} for n, m in enumerate(self.members)],
            })
        self.wait_healthy()
        return self

    def stop(self) -> None:
        for number in range(len(self.members)):
            self.resume(number)
            self.members[number].kill()  # the data is thrown away: no clean shutdown to wait for
        shutil.rmtree(self.root, ignore_errors=True)

    def direct(self, number: int, timeout: float = 2.0) -> MongoClient:
        """A client to one member only, whatever its state."""
        port = self.members[number].port
        return MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true",
                           serverSelectionTimeoutMS=int(timeout * 1000), socketTimeoutMS=int(timeout * 1000))

    # -- state --------------------------------------------------------------------------------

    def states(self) -> list[str]:
        """Each member's own view of itself (PRIMARY, SECONDARY, ..., or DOWN)."""
        found = []
        for number, member in enumerate(self.members):
            if member.process is None:
                found.append("DOWN")
                continue
            try:
                with self.direct(number, timeout=1.0) as client:
                    hello = client.admin.command("hello")
                found.append("PRIMARY" if hello.get("isWritablePrimary") else
                             "SECONDARY" if hello.get("secondary") else "OTHER")
            except PyMongoError:
                found.append("DOWN")
        return found

    def primary(self, timeout: float = 60.0, other_than: int | None = None) -> int:
        """The member that is primary, waiting for one (other than ``other_than``) to be elected."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.states()
            for number, state in enumerate(states):
                if state == "PRIMARY" and number != other_than:
                    return number
            if time.monotonic() > deadline:
                raise AssertionError(f"no primary within {timeout} s: {states}")
            time.sleep(0.1)

    def wait_healthy(self, timeout: float = 90.0) -> None:
        """One primary, every other member a secondary that has caught up with it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                number = self.primary(timeout=max(deadline - time.monotonic(), 1.0))
                with self.direct(number) as client:
                    status = client.admin.command("replSetGetStatus")
                members = status["members"]
                newest = max(m["optimeDate"] for m in members)
                # Caught up: within two seconds of the newest write (saves may go on meanwhile).
                if all(m["stateStr"] in ("PRIMARY", "SECONDARY") for m in members) and \
                        all((newest - m["optimeDate"]).total_seconds() <= 2 for m in members):
                    return
            except (PyMongoError, AssertionError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"replica set not healthy within {timeout} s: {self.states()}")
            time.sleep(0.2)

    # -- faults -------------------------------------------------------------------------------

    def kill(self, number: int) -> None:
        self.members[number].kill()

    def restart(self, number: int) -> None:
        self.members[number].start()

    def pause(self, number: int) -> None:
        process = self.members[number].process
        assert process is not None
        os.kill(process.pid, signal.SIGSTOP)

    def resume(self, number: int) -> None:
        process = self.members[number].process
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)

    def step_down(self, number: int, seconds: int = 10) -> None:
        with self.direct(number, timeout=5.0) as client:
            try:
                client.admin.command("replSetStepDown", seconds, secondaryCatchUpPeriodSecs=5)
            except PyMongoError:
                pass  # the step-down closes this connection

    def fail_command(self, number: int, mode: Any, **data: Any) -> None:
        """Turn MongoDB's ``failCommand`` fail point on (or ``mode="off"``) on one member."""
        with self.direct(number) as client:
            client.admin.command("configureFailPoint", "failCommand", mode=mode, data=data)

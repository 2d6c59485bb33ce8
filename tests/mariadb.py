"""A throwaway MariaDB server (Debian's mariadb-server) for the MySQL DBStore import tests."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from mongo_store.tools.embedded import free_port


class EmbeddedMariaDB:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="zoho-mariadb-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return bool(shutil.which("mariadbd") and shutil.which("mariadb-install-db"))

    def start(self) -> EmbeddedMariaDB:
        import mysql.connector

        data = self.folder / "data"
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True)
        log = open(self.folder / "mariadb.log", "ab")
        self.process = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={data}", f"--socket={self.folder / 'sock'}",
             f"--port={self.port}", "--bind-address=127.0.0.1", "--user=root", "--skip-log-bin",
             f"--pid-file={self.folder / 'pid'}"], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                mysql.connector.connect(host="127.0.0.1", port=self.port, user="root", password="").close()
                return self
            except mysql.connector.Error:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"MariaDB did not start; see {self.folder / 'mariadb.log'}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)

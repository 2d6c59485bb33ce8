"""CPU time of one CLI admin command against a bare pymongo ping process, side by side.

    python bench/cli.py                      # 1,000 tokens on the embedded mongod, 15 runs of each
    python bench/cli.py --runs 31 --size 10000
    MONGODB_URI=mongodb://... python bench/cli.py   # another server (its zoho_cli_bench database is dropped)

Each run is a fresh process (``python -m mongo_store.cli ...``, as the ``zoho-mongo-store`` script
runs it), and the processes are interleaved so both see the same machine. CPU time is the child's
own user + system time (``os.wait4``), which a busy machine disturbs far less than wall time;
wall time is shown beside it. Prints a Markdown table (medians). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pymongo import MongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from mongo_store.core.indexes import ensure_indexes  # noqa: E402
from mongo_store.tools.embedded import EmbeddedMongod  # noqa: E402

DATABASE = "zoho_cli_bench"
PING = "import sys, pymongo; pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=5000).admin.command('ping')"


def seed(uri: str, size: int) -> None:
    """``size`` tokens written directly: a mix of valid, lapsed and refresh-only ones."""
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    client.drop_database(DATABASE)
    now, rng = datetime.now(timezone.utc), random.Random(7)
    documents = []
    for number in range(size):
        document: dict[str, Any] = {"_id": f"bench{number:011d}", "user_name": f"user{number}@example.com:{700000 + number}",
                                    "client_id": "1000.CLIENT", "client_secret": "s" * 42,
                                    "refresh_token": f"1000.{number:032d}.r", "api_domain": "https://www.zohoapis.com",
                                    "updated_at": now}
        if rng.random() < 0.9:
            document |= {"access_token": f"1000.{number:032d}.a",
                         "expiry_time": now + timedelta(minutes=rng.randint(-600, 60))}
        documents.append(document)
    client[DATABASE]["oauth_tokens"].insert_many(documents)
    ensure_indexes(client[DATABASE]["oauth_tokens"])  # the commands' queries name them
    client.close()


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one process running ``command``; it must succeed."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {child.stderr.read().decode() if child.stderr else ''}")
    return usage.ru_utime + usage.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--size", type=int, default=1000)
    options = parser.parse_args()
    server = None if os.environ.get("MONGODB_URI") else EmbeddedMongod().start()
    uri = os.environ.get("MONGODB_URI") or (server.uri if server else "")
    try:
        seed(uri, options.size)
        env = {**os.environ, "MONGODB_URI": uri, "ZOHO_MONGO_DATABASE": DATABASE,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        subjects = {
            "bare pymongo ping": [sys.executable, "-c", PING, uri],
            "`stats`": [sys.executable, "-m", "mongo_store.cli", "stats"],
            "`list`": [sys.executable, "-m", "mongo_store.cli", "list"],
            "`show ID`": [sys.executable, "-m", "mongo_store.cli", "show", "bench00000000001"],
            "`--version` (no database)": [sys.executable, "-m", "mongo_store.cli", "--version"],
        }
        for command in subjects.values():  # warm the page cache and the server
            measure(command, env)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in subjects}
        for _ in range(options.runs):
            for name, command in subjects.items():
                results[name].append(measure(command, env))
    finally:
        if server is not None:
            server.stop()
    floor = statistics.median(cpu for cpu, _ in results["bare pymongo ping"])
    print(f"{options.size:,} tokens, {options.runs} runs each, medians (Python {sys.version.split()[0]})\n")
    print("| process | CPU time | × ping | wall time |")
    print("| --- | ---: | ---: | ---: |")
    for name, samples in results.items():
        cpu = statistics.median(sample[0] for sample in samples)
        wall = statistics.median(sample[1] for sample in samples)
        print(f"| {name} | {cpu * 1000:.0f} ms | {cpu / floor:.2f}× | {wall * 1000:.0f} ms |")


if __name__ == "__main__":
    main()

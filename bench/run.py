"""Benchmark MongoTokenStore against its floor (the bare pymongo call), the SDK's FileStore and a
SQLite store built like the SDK's Kaizen sample, at growing numbers of stored tokens; and a
logged-in person's request (the SDK's two lookups: ``switch_user``, then the API call's
``get_token``) on the store as it ships (read cache on), with the cache off, and on FileStore.

    python bench/run.py                      # 1k, 10k, 100k and 1M tokens on the embedded mongod
    python bench/run.py --sizes 1000,10000   # a quick run
    MONGODB_URI=mongodb://... python bench/run.py   # another server (the database is dropped!)

Writes a Markdown report (default bench/results.md). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import mongomock
from pymongo import MongoClient
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import subjects
from subjects import RoundTrips

from mongo_store import MongoTokenStore
from mongo_store.tools.embedded import EmbeddedMongod

STORE, FLOOR, QUIET = "MongoTokenStore", "pymongo floor", "no history"
"""``MongoTokenStore`` with its read cache off (``read_cache=False``): every operation goes to
MongoDB, and its history is on (written off the caller's thread). ``no history``: the same with
``record_events=False``."""
CACHED = "MongoTokenStore (as shipped)"
"""The store as it ships: the read cache on."""
FILE, KAIZEN, KAIZEN_IDX, MOCK = "SDK FileStore", "SQLite (Kaizen)", "SQLite + indexes", "mongomock store*"
REQUESTS = ["first request", "request"]
"""A logged-in person's first request (the cache fills), and the next ones."""


@dataclass
class Result:
    times_us: list[float]
    round_trips: float | None

    @property
    def median(self) -> float:
        return statistics.median(self.times_us)

    @property
    def p95(self) -> float:
        ordered = sorted(self.times_us)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


@dataclass
class Run:
    results: dict[tuple[int, str, str], Result] = field(default_factory=dict)


def measure(group: dict[str, tuple[subjects.Ops, RoundTrips | None]], sample: list[int], reps: int,
            budget: float, progress: tqdm, ops: list[str] | None = None) -> dict[tuple[str, str], Result]:
    """Time each op over the sample, in OPS order (delete removes what save_insert added).

    The stores of a group run interleaved key by key, in alternating order, so drift in the
    machine's load affects them alike and their ratio stays honest.
    """
    out: dict[tuple[str, str], Result] = {}
    inserted: list[int] = []
    first: list[int] = []
    for op in ops or subjects.OPS:
        keys = inserted if op == "delete" else first if op == "request" else sample[:reps]
        times: dict[str, list[float]] = {name: [] for name in group}
        commands = dict.fromkeys(group, 0)
        started, done = time.monotonic(), []
        for index, k in enumerate(keys):
            order = list(group) if index % 2 == 0 else list(reversed(group))
            for name in order:
                ops, trips = group[name]
                before = trips.count if trips else 0
                t0 = time.perf_counter_ns()
                ops[op](k)
                times[name].append((time.perf_counter_ns() - t0) / 1000)
                commands[name] += (trips.count - before) if trips else 0
            done.append(k)
            if time.monotonic() - started > budget * len(group) and len(done) >= 5:
                break
        if op == "save_insert":
            inserted = done
        if op == "first request":
            first = done
        for name, (_, trips) in group.items():
            out[(name, op)] = Result(times[name], commands[name] / len(done) if trips else None)
        progress.update(len(group))
    return out


def paired_ratio(store: Result, floor: Result) -> float:
    """Median of per-token ratios: both timed on the same token, back to back, so drift and the
    two-mode latency of acknowledged writes cancel out (a ratio of medians jumps between modes)."""
    return statistics.median(s / f for s, f in zip(store.times_us, floor.times_us, strict=False))


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else "?"
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def report(run: Run, sizes: list[int], server: str, names: list[str], requested: list[str]) -> str:
    lines = [
        "| machine | versions |", "| --- | --- |",
        f"| {machine()} | Python {platform.python_version()}, pymongo {version('pymongo')}, MongoDB {server}, "
        f"zohocrmsdk8-0 {version('zohocrmsdk8_0')}, SQLite {sqlite3.sqlite_version}, mongomock {version('mongomock')} |",
        "",
        "Median and p95 per operation in microseconds; `rt` = MongoDB round trips per operation; "
        "`×floor` = median, over the sampled tokens, of MongoTokenStore's time / the bare pymongo call's "
        "time on the same token (the two run interleaved). `*` mongomock is in-process and scans: "
        "not representative of MongoDB.",
    ]
    for size in sizes:
        present = [n for n in names if any((size, n, op) in run.results for op in subjects.OPS)]
        lines += ["", f"**{size:,} stored tokens**", "",
                  "| operation | " + " | ".join(present) + " | rt | ×floor |",
                  "| --- |" + " ---: |" * (len(present) + 2)]
        for op in subjects.OPS:
            cells = []
            for name in present:
                result = run.results.get((size, name, op))
                cells.append(f"{result.median:,.0f} / {result.p95:,.0f}" if result else "–")
            store, floor = run.results.get((size, STORE, op)), run.results.get((size, FLOOR, op))
            rt = f"{store.round_trips:g}" if store and store.round_trips is not None else "–"
            ratio = f"{paired_ratio(store, floor):.2f}" if store and floor else "–"
            lines.append(f"| {op} | " + " | ".join(cells) + f" | {rt} | {ratio} |")
        present = [n for n in requested if any((size, n, op) in run.results for op in REQUESTS)]
        if present:
            lines += ["", f"A logged-in person's request (`switch_user` + `get_token`: the SDK's two lookups), "
                      f"{size:,} stored tokens", "",
                      "| request | " + " | ".join(present) + " | rt (as shipped) | rt (cache off) |",
                      "| --- |" + " ---: |" * (len(present) + 2)]
            for op in REQUESTS:
                cells = []
                for name in present:
                    result = run.results.get((size, name, op))
                    cells.append(f"{result.median:,.0f} / {result.p95:,.0f}" if result else "–")
                trips = [run.results.get((size, name, op)) for name in (CACHED, STORE)]
                rts = [f"{t.round_trips:g}" if t and t.round_trips is not None else "–" for t in trips]
                lines.append(f"| {op} | " + " | ".join(cells) + f" | {rts[0]} | {rts[1]} |")
    lines += ["", "Growth: median find_by_user (µs) by stored tokens", "",
              "| store | " + " | ".join(f"{s:,}" for s in sizes) + " |", "| --- |" + " ---: |" * len(sizes)]
    for name in names:
        cells = [run.results.get((s, name, "find_by_user")) for s in sizes]
        if any(cells):
            lines.append(f"| {name} | " + " | ".join(f"{c.median:,.0f}" if c else "–" for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000,1000000", help="stored-token counts, comma-separated")
    parser.add_argument("--reps", type=int, default=300, help="operations timed per op and store (at most)")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per op and store before stopping early")
    parser.add_argument("--slow-limit", type=int, default=100_000,
                        help="largest size for the stores that scan (FileStore, Kaizen SQLite)")
    parser.add_argument("--mock-limit", type=int, default=10_000, help="largest size for mongomock")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results.md")))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    with ExitStack() as stack:
        uri = os.environ.get("MONGODB_URI") or stack.enter_context(EmbeddedMongod()).uri
        trips = RoundTrips()
        # The settings of the client MongoTokenStore(uri) creates (the README's way), so a store
        # call's first attempt needs no client-side timeout; the floor shares the client.
        client = MongoClient(uri, event_listeners=[trips], serverSelectionTimeoutMS=5000, connectTimeoutMS=5000,
                             socketTimeoutMS=10_000, retryReads=False)
        stack.callback(client.close)
        server = client.server_info()["version"]
        database = client["zoho_store_bench"]
        stack.callback(client.drop_database, "zoho_store_bench")
        store = MongoTokenStore(client=client, database="zoho_store_bench", collection="tokens", read_cache=False)
        # Its own collection: its inserts and deletes would meet the store's in the shared one.
        quiet = MongoTokenStore(client=client, database="zoho_store_bench", collection="tokens_quiet",
                                record_events=False, read_cache=False)
        # The store as it ships (the read cache on), on the same tokens as ``store``.
        cached = MongoTokenStore(client=client, database="zoho_store_bench", collection="tokens")
        folder = subjects.scratch_folder()
        stack.callback(store.close)
        stack.callback(quiet.close)
        stack.callback(cached.close)

        per_size = {size: 3 + 2 * (size <= args.slow_limit) + (size <= args.mock_limit) for size in sizes}
        requests = {size: 2 + (size <= args.slow_limit) for size in sizes}
        run = Run()
        rng = random.Random(7)
        total = sum(per_size.values()) * len(subjects.OPS) + sum(requests.values()) * len(REQUESTS)
        with tqdm(total=total, unit="op", disable=None) as progress:
            for size in sizes:
                sample = rng.sample(range(size), min(size, args.reps))
                progress.set_description(f"seeding {size:,}")
                subjects.seed_mongo(store, size)
                subjects.seed_mongo(quiet, size)
                groups: list[dict[str, Callable[[], tuple[subjects.Ops, RoundTrips | None]]]] = [
                    {STORE: lambda: (subjects.mongo_store_ops(store, sample), trips),
                     FLOOR: lambda: (subjects.mongo_floor_ops(database["tokens"], sample), trips)},
                    {QUIET: lambda: (subjects.mongo_store_ops(quiet, sample), trips)},
                    {KAIZEN_IDX: lambda: (sqlite_subject(folder, size, sample, indexed=True), None)},
                ]
                if size <= args.slow_limit:
                    groups += [{FILE: lambda: (subjects.file_store_ops(subjects.file_store(size, folder), sample), None)},
                               {KAIZEN: lambda: (sqlite_subject(folder, size, sample, indexed=False), None)}]
                if size <= args.mock_limit:
                    groups.append({MOCK: lambda: (mock_subject(size, sample), None)})
                for group in groups:
                    progress.set_description(f"{' vs '.join(group)} @ {size:,}")
                    built = {name: make() for name, make in group.items()}
                    for (name, op), result in measure(built, sample, args.reps, args.budget, progress).items():
                        run.results[(size, name, op)] = result
                # The SDK's own two lookups of a request, through its Initializer, side by side.
                progress.set_description(f"requests @ {size:,}")
                subjects.seed_mongo(store, size)  # the saves and deletes above changed some tokens
                people = subjects.request_ops(
                    {CACHED: (cached, lambda k: subjects.row(k)["id"]), STORE: (store, lambda k: subjects.row(k)["id"])}
                    | ({FILE: (subjects.file_store(size, folder), lambda k: str(k + 1))} if size <= args.slow_limit else {}),
                    sample, tempfile.mkdtemp(prefix="zoho-bench-sdk-"))
                group = {name: (ops, trips if name != FILE else None) for name, ops in people.items()}
                for (name, op), result in measure(group, sample, args.reps, args.budget, progress, REQUESTS).items():
                    run.results[(size, name, op)] = result
        text = report(run, sizes, server, [STORE, QUIET, FLOOR, FILE, KAIZEN, KAIZEN_IDX, MOCK], [CACHED, STORE, FILE])
    Path(args.out).write_text(text)
    print(text)


def sqlite_subject(folder: str, size: int, sample: list[int], indexed: bool) -> subjects.Ops:
    store = subjects.KaizenSQLite(os.path.join(folder, f"kaizen-{size}-{indexed}.db"), indexed)
    store.seed(size)
    return subjects.sqlite_ops(store, sample)


def mock_subject(size: int, sample: list[int]) -> subjects.Ops:
    store = MongoTokenStore(client=mongomock.MongoClient(), collection="tokens")
    subjects.seed_mongo(store, size)
    return subjects.mongo_store_ops(store, sample)


if __name__ == "__main__":
    main()

"""Time the operators' health queries at scale: the overview's counts, a page of each health state
and each sort, on the embedded mongod (or MONGODB_URI: its database is dropped!).

    python bench/health.py                   # 1,000,000 tokens
    python bench/health.py --size 100000

The tokens are a deployment's mix, written directly: 55 % valid, 30 % lapsed with a refresh token
(idle), 5 % refresh-only, 4 % failing (counted failures, a lapsed lease or a failed check), 3 %
lapsed with no refresh token and 3 % grant-only (half of them old): unusable. Prints a Markdown
table. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pymongo import MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mongo_store.core.indexes import ensure_indexes
from mongo_store.tools import health, metrics, queries, stats
from mongo_store.tools.embedded import EmbeddedMongod

DATABASE = "zoho_bench_health"


def document(number: int, now: datetime, rng: random.Random) -> dict[str, Any]:
    kind = rng.choices(["valid", "idle", "refresh-only", "failing", "lapsed", "grant"], [55, 30, 5, 4, 3, 3])[0]
    doc: dict[str, Any] = {"_id": f"t{number:08d}", "client_id": "1000.CLIENT", "api_domain": "https://www.zohoapis.com",
                           "updated_at": now - timedelta(minutes=rng.randint(0, 10_000))}
    if number % 10:
        doc["user_name"] = f"user{number:08d}@example.com:700001"
    if kind != "grant" and kind != "lapsed":
        doc["refresh_token"] = f"1000.refresh.{number:08d}.{rng.getrandbits(64):016x}"
    if kind in ("valid", "idle", "failing", "lapsed"):
        offset = rng.randint(10, 3600) if kind == "valid" else -rng.randint(60, 6 * 86_400)
        expiry = now + timedelta(seconds=offset)
        doc |= {"access_token": f"1000.access.{number:08d}.{rng.getrandbits(64):016x}", "expiry_time": expiry,
                "last_refreshed_at": expiry - timedelta(hours=1)}
    if kind == "grant":
        doc["grant_token"] = f"1000.grant.{number:08d}"
        doc["updated_at"] = now - timedelta(minutes=rng.choice([1, 600]))
    if kind == "failing":
        doc |= rng.choice([{"refresh_failures": 3, "last_refresh_failure_at": now - timedelta(hours=1)},
                           {"refresh_lease": now - timedelta(minutes=5)}, {"check_error": "invalid_code"}])
    return doc


def timed(call: Callable[[], Any], reps: int = 5) -> float:
    """The median of ``reps`` runs, in milliseconds."""
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


@contextmanager
def scratch_tokens(database: str = DATABASE) -> Iterator[Any]:
    """An empty token collection in a dropped-after database: on ``MONGODB_URI``'s server, else on
    an embedded mongod started (and stopped) for the run."""
    server = None
    uri = os.environ.get("MONGODB_URI")
    if not uri:
        server = EmbeddedMongod().start()
        uri = server.uri
    client = MongoClient(uri)
    try:
        client.drop_database(database)
        yield client[database]["oauth_tokens"]
    finally:
        client.drop_database(database)
        client.close()
        if server is not None:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000)
    args = parser.parse_args()
    with scratch_tokens() as tokens:
        ensure_indexes(tokens)
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        rng = random.Random(12)
        for start in range(0, args.size, 10_000):
            tokens.insert_many([document(n, now, rng) for n in range(start, min(start + 10_000, args.size))],
                               ordered=False)
        counts = stats.stats(tokens, now)
        print(f"{args.size:,} tokens: {counts['health']}\n")
        print("| query | median ms |\n| --- | ---: |")
        print(f"| overview counts (`stats.stats`, every count) | {timed(lambda: stats.stats(tokens, now), 3):,.0f} |")
        print(f"| the health counts (`stats.stats(overview=False)`: the four states, the total, per data center) | "
              f"{timed(lambda: stats.stats(tokens, now, overview=False), 5):,.0f} |")
        for state in health.HEALTH:
            print(f"| page 1 of `--health {state}` (50 tokens and the capped count) | "
                  f"{timed(lambda s=state: queries.page(tokens, queries.Query(health=s), 1, 50, now)):,.1f} |")
        for sort in queries.SORTS:
            for number in (1, 200):
                print(f"| page {number} of `--sort {sort} --descending` | "
                      f"{timed(lambda s=sort, n=number: queries.page(tokens, queries.Query(sort=s, descending=True), n, 50, now)):,.1f} |")
        print(f"| page 1 of `--health healthy --sort user` | "
              f"{timed(lambda: queries.page(tokens, queries.Query(health='healthy', sort='user'), 1, 50, now)):,.1f} |")
        print(f"| the exporter's count (`metrics.count`: the health counts, per reason, the latest refresh) | "
              f"{timed(lambda: metrics.count(tokens, now), 3):,.0f} |")
        tokens.drop_index(health.NO_REFRESH_INDEX)  # as before it: the unusable filter fetches every lapsed token
        assert stats.stats(tokens, now)["health"] == counts["health"]
        print(f"| overview counts without `{health.NO_REFRESH_INDEX}` (the old unusable count) | "
              f"{timed(lambda: stats.stats(tokens, now), 3):,.0f} |")


if __name__ == "__main__":
    main()

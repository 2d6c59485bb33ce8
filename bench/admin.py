"""Time the operators' list, search and overview at scale, keyset paging beside the old skip and
limit, on the embedded mongod (or MONGODB_URI: its database is dropped!).

    python bench/admin.py                    # 1,000,000 tokens
    python bench/admin.py --size 100000

The tokens are bench/health.py's mix, with people's names in mixed case over a few domains and the
nine data centers. Each row is run side by side in one process: page 1 and the last page of every
order by keyset (``paging.page``) and by skip/limit (``queries.page``), searches, and the overview
(``stats.stats``). Also times the one-off search-key backfill of documents written without keys.
Prints a Markdown table (median ms). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from health import document as health_document
from health import scratch_tokens, timed

from mongo_store.core import search
from mongo_store.core.indexes import INDEXES
from mongo_store.tools import datacenters, paging, queries, stats

DATABASE = "zoho_bench_admin"
DOMAINS = ("Wayne.Example", "acme.example", "Globex.example", "initech.example")
CENTERS = list(datacenters.DOMAINS.values())


def document(number: int, now: datetime, rng: random.Random) -> dict[str, Any]:
    doc = health_document(number, now, rng)
    doc["api_domain"] = CENTERS[number % 7 % len(CENTERS)] if number % 7 else CENTERS[0]
    if "user_name" in doc:
        first = rng.choice(("Femi", "ann", "Bob", "carla", "Dev"))
        doc["user_name"] = f"{first}.{number}@{DOMAINS[number % len(DOMAINS)]}:{700000 + number % 5000}"
    return doc


def last_skip_page(tokens: Any, query: queries.Query, size: int, now: datetime) -> int:
    """The number of the last page for skip/limit, from an exact (untimed) count."""
    where = query.to_filter(now)
    total = tokens.count_documents(where) if where else tokens.estimated_document_count()
    return max(1, -(-total // size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000)
    args = parser.parse_args()
    with scratch_tokens(DATABASE) as tokens:
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        rng = random.Random(20)
        started = time.perf_counter()
        for start in range(0, args.size, 10_000):
            tokens.insert_many([document(n, now, rng) for n in range(start, min(start + 10_000, args.size))],
                               ordered=False)
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        tokens.create_indexes(INDEXES)
        indexed = time.perf_counter() - started
        started = time.perf_counter()
        backfilled = search.backfill(tokens)
        backfill = time.perf_counter() - started
        print(f"{args.size:,} tokens loaded in {loaded:,.0f} s, indexed in {indexed:,.0f} s; search keys backfilled "
              f"for {backfilled:,} in {backfill:,.1f} s (server-side update_manys of 5,000)\n")
        size = 50
        print("| query | pages of 50 | page 1, keyset | last page, keyset | page 1, skip/limit | last page, skip/limit |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        shapes = [("`list` (by id)", queries.Query()),
                  *((f"`list --sort {sort} --descending`", queries.Query(sort=sort, descending=True)) for sort in queries.SORTS),
                  ("`list --sort expiry`", queries.Query(sort="expiry")),
                  ("`list --health healthy`", queries.Query(health="healthy")),
                  ("`list --health failing`", queries.Query(health="failing")),
                  ("`list --domain EU --sort refreshed`", queries.Query(api_domain=datacenters.DOMAINS["EU"], sort="refreshed")),
                  ("`list --search wayne.example` (a quarter of the people)", queries.Query(search="wayne.example")),
                  ("`list --search FEMI.12` (a prefix of an e-mail, any case)", queries.Query(search="FEMI.12")),
                  ("`list --search 700210` (an org id)", queries.Query(search="700210")),
                  ("`list --search t0012` (a token id's start)", queries.Query(search="t0012"))]
        for name, query in shapes:
            last = last_skip_page(tokens, query, size, now)
            cells = [timed(lambda q=query: paging.page(tokens, q, size, now=now)),
                     timed(lambda q=query: paging.page(tokens, q, size, go="last", now=now)),
                     timed(lambda q=query: queries.page(tokens, q, 1, size, now), 5),
                     timed(lambda q=query, n=last: queries.page(tokens, q, n, size, now), 3)]
            print(f"| {name} | {last:,} | " + " | ".join(f"{cell:,.1f}" for cell in cells) + " |", flush=True)
        query = queries.Query(sort="expiry", descending=True)
        deep = paging.page(tokens, query, size, go="last", now=now)
        print("\n| more | median ms |\n| --- | ---: |")
        print(f"| the page before the last, by its cursor (`--before`) | "
              f"{timed(lambda: paging.page(tokens, query, size, go='previous', cursor=deep.first_cursor, number=-2, now=now)):,.1f} |")
        print(f"| the overview (`stats.stats`, every count) | {timed(lambda: stats.stats(tokens, now), 3):,.0f} |")


if __name__ == "__main__":
    main()

"""The store's own counts for Prometheus, from inside the application that runs it.

``zoho-mongo-store metrics`` is a process of its own: it counts the tokens in MongoDB, and cannot
see what a store does in an application's memory. The read cache's hits and misses and the history
writer's queue live there, so an application that already serves Prometheus metrics registers
``StoreCollector(store)`` with its registry and gets them on its own ``/metrics``:

    from prometheus_client import REGISTRY
    from mongo_store.core.app_metrics import StoreCollector
    REGISTRY.register(StoreCollector(STORE))

Each scrape reads ``MongoTokenStore.cache_stats()``: counters in memory, no database call. No label
carries a token id, a user name or a secret. prometheus_client is imported here only, when an
application imports this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

COUNTERS = {
    "hits": ("zoho_store_cache_hits", "Lookups the read cache answered from memory"),
    "misses": ("zoho_store_cache_misses", "Cacheable lookups that read MongoDB (not cached, or not provably current)"),
    "events_written": ("zoho_store_events_written", "Token history events written"),
    "events_dropped": ("zoho_store_events_dropped", "Token history events dropped because the queue was full"),
    "events_failed": ("zoho_store_events_failed", "Token history events whose write failed"),
}
GAUGES = {
    "entries": ("zoho_store_cache_entries", "Tokens the read cache holds"),
    "live": ("zoho_store_cache_live", "1 while the read cache's change stream is live (hits are possible)"),
    "events_pending": ("zoho_store_events_pending", "Token history events waiting to be written"),
}


class StoreCollector:
    """A prometheus_client collector for one store (``MongoTokenStore``)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        stats = self.store.cache_stats()
        for key, (name, text) in COUNTERS.items():
            counter = CounterMetricFamily(name, text)
            counter.add_metric([], float(stats[key]))
            yield counter
        for key, (name, text) in GAUGES.items():
            gauge = GaugeMetricFamily(name, text)
            gauge.add_metric([], float(stats[key]))
            yield gauge

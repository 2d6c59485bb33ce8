"""The Prometheus exporter: ``/metrics`` and ``/health`` from counts made in the background.

A scrape never waits for MongoDB: a thread counts every interval (``stats.stats``, the same counts
as ``stats`` and the dashboard) and the collector reports the last result. One process, one
registry of its own: none of ``prometheus_client``'s multiprocess pitfalls. No label carries a
token id, user name or secret; every label has a fixed set of values.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from pymongo.collection import Collection

from ..core.clock import utcnow
from ..core.errors import sentence
from ..core.mapping import REFRESHED_FIELD
from ..core.masking import printable
from . import datacenters, health
from .alerts import data_center_name
from .stats import stats

DATA_CENTER_LABELS = (*datacenters.DOMAINS, "other")
"""``data_center`` label values: Zoho's data centers by their one name (``US``, ``EU``, ``UK``...:
``datacenters.py``), and ``other`` for any other api_domain or none."""
ODD_DATES = 10
"""At most this many dates beyond year 9999 are passed over looking for the latest refresh."""
FAILING_REASONS = tuple(reason.key for reason in health.FAILING)
"""``reason`` label values, spelled as everywhere else (``health.REASONS``); a failing token with
several reasons counts under each."""


def epoch(when: datetime) -> float:
    """Unix seconds of a stored (naive UTC) date."""
    return when.replace(tzinfo=timezone.utc).timestamp()


@dataclass(frozen=True)
class Counts:
    """One background count: what ``/metrics`` and ``/health`` report until the next."""

    at: datetime
    health: dict[str, int]
    data_centers: dict[str, int]
    failing_reasons: dict[str, int]
    last_refresh: datetime | None
    seconds: float
    skipped: list[str] = field(default_factory=list)
    """Documents the count left out, each named in a sentence (a date Python cannot hold)."""

    def as_json(self) -> dict[str, Any]:
        return {"counted_at": self.at.isoformat() + "Z", "health": self.health, "data_centers": self.data_centers,
                "failing_reasons": self.failing_reasons,
                "last_refresh_at": self.last_refresh.isoformat() + "Z" if self.last_refresh else None,
                "count_seconds": round(self.seconds, 3)} | ({"skipped": self.skipped} if self.skipped else {})


def count(tokens: Collection, now: datetime | None = None) -> Counts:
    """Every count the exporter reports, each an index count or an index walk of one key."""
    now = now or utcnow()
    started = time.monotonic()
    found = stats(tokens, now, extra=health.reason_counts(now), overview=False)
    centers = dict.fromkeys(DATA_CENTER_LABELS, 0)
    for domain, number in found["per-api-domain"].items():
        centers[data_center_name(domain)] += number
    centers["other"] += found["total"] - sum(found["per-api-domain"].values())  # no api_domain (or not a string)
    latest, skipped = _latest_refresh(tokens)
    return Counts(now, found["health"], centers, {reason: found[f"reason:{reason}"] for reason in FAILING_REASONS},
                  latest, time.monotonic() - started, skipped)


def _latest_refresh(tokens: Collection) -> tuple[datetime | None, list[str]]:
    """The latest ``last_refreshed_at`` (the sparse index's last keys), and the documents passed
    over on the way: a date beyond year 9999 (a JavaScript writer's) reads as a ``DatetimeMS``,
    which no gauge can report; it is named and skipped, never a failed scrape."""
    skipped: list[str] = []
    found = tokens.find({REFRESHED_FIELD: {"$type": "date"}}, {"_id": True, REFRESHED_FIELD: True})
    for document in found.sort(REFRESHED_FIELD, -1).limit(ODD_DATES + 1):
        if isinstance(document[REFRESHED_FIELD], datetime):
            return document[REFRESHED_FIELD], skipped
        skipped.append(f"token {printable(document['_id'])}: {REFRESHED_FIELD} is beyond the dates Python holds")
    return None, skipped


@dataclass
class Exporter:
    """The last count (kept while MongoDB does not answer: its timestamp says how old it is), whether
    the last attempt worked, and the last alert pass's undelivered messages (with ``--webhook``)."""

    counter: Callable[[], Counts]
    interval: float
    alerting: bool = False
    counts: Counts | None = None
    up: bool = False
    error: str | None = "not counted yet"
    undelivered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self) -> None:
        """Count once; a failure keeps the previous counts and says why (one sentence)."""
        try:
            counts = self.counter()
        except Exception as error:  # any failure of the database is reported, never raised
            with self.lock:
                self.up, self.error = False, sentence(error)
            print(f"zoho-mongo-store metrics: the count failed: {' '.join(self.error.split())}", file=sys.stderr, flush=True)
            return
        with self.lock:
            self.counts, self.up, self.error = counts, True, None

    def collect(self) -> Iterable[Metric]:
        with self.lock:
            counts, up, undelivered = self.counts, self.up, self.undelivered
        yield GaugeMetricFamily("zoho_store_up", "1 when the last count of the tokens succeeded", value=int(up))
        if self.alerting:
            yield GaugeMetricFamily("zoho_store_webhook_undelivered_messages",
                                    "alert messages the last pass did not deliver (tried again next pass)", value=undelivered)
        if counts is None:
            return
        tokens = GaugeMetricFamily("zoho_store_tokens", "stored tokens by health (as `stats --json`)", labels=["health"])
        for state in health.HEALTH:
            tokens.add_metric([state], counts.health[state])
        yield tokens
        centers = GaugeMetricFamily("zoho_store_tokens_by_data_center", "stored tokens by Zoho data center",
                                    labels=["data_center"])
        for name in DATA_CENTER_LABELS:
            centers.add_metric([name], counts.data_centers[name])
        yield centers
        reasons = GaugeMetricFamily("zoho_store_failing_tokens_by_reason",
                                    "failing tokens by reason (a token with several counts under each)", labels=["reason"])
        for reason in FAILING_REASONS:
            reasons.add_metric([reason], counts.failing_reasons[reason])
        yield reasons
        yield GaugeMetricFamily("zoho_store_counts_timestamp_seconds", "when the reported counts were made",
                                value=epoch(counts.at))
        yield GaugeMetricFamily("zoho_store_count_duration_seconds", "how long the reported counts took",
                                value=counts.seconds)
        if counts.last_refresh is not None:
            yield GaugeMetricFamily("zoho_store_last_refresh_timestamp_seconds",
                                    "the latest successful refresh recorded (last_refreshed_at)",
                                    value=epoch(counts.last_refresh))

    def health(self) -> tuple[str, dict[str, Any]]:
        """``/health``: 200 with the counts while MongoDB answers, else 503 with the last ones."""
        with self.lock:
            body: dict[str, Any] = {"mongodb": "up" if self.up else "down", "interval_seconds": self.interval}
            if self.error:
                body["error"] = self.error
            body |= self.counts.as_json() if self.counts else {}
            if self.alerting:
                body["webhook_undelivered_messages"] = self.undelivered
            return ("200 OK" if self.up else "503 Service Unavailable"), body


def every(interval: float, stop: threading.Event, work: Callable[[], None]) -> None:
    """Run ``work`` now and then every ``interval`` seconds from its last start, until ``stop``."""
    while not stop.is_set():
        started = time.monotonic()
        work()
        stop.wait(max(0.0, interval - (time.monotonic() - started)))


REQUEST_TIMEOUT = 10.0
"""Seconds a connection may stay silent: a client that connects and sends nothing (or half a
request) would otherwise hold one of the server's threads for ever."""


class QuietHandler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT  # the connection's socket timeout (StreamRequestHandler.setup)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: a scrape every few seconds is noise."""


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class IPv6Server(ThreadingServer):
    address_family = socket.AF_INET6


def application(exporter: Exporter) -> Callable[..., Iterable[bytes]]:
    """The WSGI app: ``/metrics`` (prometheus_client's, from our registry) and ``/health``."""
    registry = CollectorRegistry(auto_describe=True)

    class Collector:
        def collect(self) -> Iterator[Metric]:
            yield from exporter.collect()

    registry.register(Collector())
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain"), ("Allow", "GET, HEAD")])
            return [b"only GET\n"]
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/health":
            status, body = exporter.health()
            start_response(status, [("Content-Type", "application/json"), ("Cache-Control", "no-store")])
            return [json.dumps(body).encode() + b"\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"/metrics or /health\n"]

    return app


def server(host: str, port: int, exporter: Exporter) -> WSGIServer:
    """A threaded HTTP server on ``host:port`` (raises OSError when it cannot listen)."""
    kind = IPv6Server if ":" in host else ThreadingServer
    return make_server(host, port, application(exporter), server_class=kind, handler_class=QuietHandler)

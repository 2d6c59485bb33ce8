"""The shipped alert rules under promtool, and a real Prometheus scraping the exporter.

Debian's ``prometheus`` package brings both binaries; in CI (``CI`` set) a missing one fails the
run, elsewhere the tests skip (as a missing mongod or MariaDB does)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from test_metrics import Running, epoch_ms, run_cli, wait_for
from tokens import full

from mongo_store import MongoTokenStore
from mongo_store.core.clock import utcnow

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        message = f"no {name}: apt-get install prometheus (the CI script does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_the_shipped_rules_check_and_their_unit_tests_pass() -> None:
    promtool = binary("promtool")
    checked = subprocess.run([promtool, "check", "rules", "alerts.yml"], cwd=RULES, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "SUCCESS: 4 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=RULES, capture_output=True, text=True,
                            timeout=60)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    tests = (RULES / "alerts_test.yml").read_text()
    for alert in ("ZohoConnectionsFailing", "ZohoUnusableRising", "ZohoStoreDown", "ZohoStoreCountsStale"):
        assert f"alertname: {alert}\n        exp_alerts:\n          - exp_labels" in tests, alert  # shown firing


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_real_prometheus_scrapes_the_counts_stats_reports(real_store: MongoTokenStore, mongo_uri: str,
                                                            tmp_path: Path) -> None:
    prometheus = binary("prometheus")
    now = utcnow()
    for number, offset in enumerate((3600, -3600, 7200)):
        real_store.save_token(full(f"u{number}@example.com:1", expires_in=epoch_ms(now + timedelta(seconds=offset))))
    real_store.collection.update_one({"user_name": "u2@example.com:1"}, {"$set": {"check_error": "invalid_code"}})
    env = {"MONGODB_URI": mongo_uri, "ZOHO_MONGO_DATABASE": real_store.collection.database.name}
    stats = json.loads(run_cli("stats", "--json", env=env).stdout)["health"]
    exporter = Running("--listen", "127.0.0.1:0", "--interval", "1", env=env)
    server = None
    try:
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {RULES / 'alerts.yml'}\n"
            f"scrape_configs:\n  - job_name: zoho-mongo-store\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{exporter.port}']\n")
        port = free_port()
        server = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                  stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"))

        def query() -> dict[str, float] | None:
            url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": "zoho_store_tokens"})
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    result: list[dict[str, Any]] = json.loads(response.read())["data"]["result"]
            except OSError:
                return None  # not listening yet
            return {row["metric"]["health"]: float(row["value"][1]) for row in result} or None

        found = wait_for(query, 120)
        assert stats == {"healthy": 1, "idle": 1, "failing": 1, "unusable": 0}
        assert found == {state: float(count) for state, count in stats.items()}
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        assert exporter.stop() == 0

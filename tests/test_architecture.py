"""The structure holds: a store alone loads only the core; each command, health reason and setting
is declared once and everything that names one takes it from there (docs/architecture.md).
(The layers themselves are import-linter's: `lint-imports` in .ci/run.)"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mongo_store import cli
from mongo_store.cli.commands import COMMANDS, MODULES
from mongo_store.core.settings import StoreSettings, declared
from mongo_store.tools import health, metrics
from mongo_store.tools.settings import OperatorSettings

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.real
def test_a_store_alone_loads_only_the_core(mongo_uri: str) -> None:
    """An application that builds a store and uses it (save, lookups, a delete, the history) loads
    ``mongo_store`` and ``mongo_store.core`` only: no operator tool, dashboard, CLI or testing kit, and
    no boto3 (only a store configured with an ``aws-kms:`` key imports it)."""
    probe = f"""
import sys
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature
from mongo_store import MongoTokenStore

with MongoTokenStore({mongo_uri!r}, database="zms_layers") as store:
    token = OAuthToken(client_id="1000.CLIENT", client_secret="s" * 20, refresh_token="1000.r" + "x" * 30,
                       redirect_url="https://example.com/back")
    token.set_user_signature(UserSignature("alice@example.com:1"))
    token.set_access_token("1000.a" + "y" * 30)
    token.set_expires_in("4102444800000")
    store.save_token(token)
    assert store.find_token_by_id(token.get_id()).get_refresh_token() == token.get_refresh_token()
    assert len(store.get_tokens()) == 1
    store.delete_token(token.get_id())
    store.client.drop_database("zms_layers")
assert not any(name.split(".")[0] in ("boto3", "botocore") for name in sys.modules), "boto3 loaded without a KMS key"
print(sorted(name for name in sys.modules if name.startswith("mongo_store")))
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1].replace("'", '"'))
    assert "mongo_store.core.store" in loaded and "mongo_store.core.aws_kms" not in loaded
    assert [name for name in loaded if name != "mongo_store" and not name.startswith("mongo_store.core")] == []


def test_every_command_is_declared_once_and_registered() -> None:
    names = [command.name for command in COMMANDS]
    assert len(names) == len(set(names)) == 19
    subparsers = next(action for action in cli.parser()._actions if isinstance(action, argparse._SubParsersAction))
    assert list(subparsers.choices) == names
    for module in MODULES:  # every command a module declares is in the one list, in order
        assert [value for value in vars(module).values() if value in COMMANDS] == \
            [command for command in COMMANDS if command in vars(module).values()]
    admin = {command.name for command in COMMANDS if command.store == "admin"}
    assert admin == {"indexes", "stats", "list", "show", "events", "audit", "delete", "delete-all", "alerts", "metrics"}
    assert {command.name for command in COMMANDS if command.writes_tokens} == {"import", "rotate-key", "cleanup"}


def test_the_cli_lists_the_states_the_health_table_declares() -> None:
    from mongo_store.tools import queries

    assert cli.STATUSES == health.STATUSES and cli.HEALTH == health.HEALTH and tuple(queries.SORTS) == cli.SORTS
    from mongo_store.cli.commands.audit import AUDIT_ACTIONS
    from mongo_store.tools.audit import ACTIONS

    assert tuple(ACTIONS) == AUDIT_ACTIONS


def test_each_health_reason_is_spelled_once_everywhere() -> None:
    """The exporter's labels, the Overview's categories, the URL's ``reason``, the docs and the
    Grafana panel all take a reason's key from ``health.REASONS``; the alert rules name states of
    ``health.HEALTH`` only."""
    keys = [reason.key for reason in health.REASONS]
    assert len(set(keys)) == len(keys) and all(re.fullmatch(r"[a-z]+(-[a-z]+)*", key) for key in keys)
    assert tuple(reason.key for reason in health.REASONS if reason.health == "failing") == metrics.FAILING_REASONS
    assert {reason.health for reason in health.REASONS} == set(health.NEEDS_ATTENTION)
    monitoring = (ROOT / "docs" / "monitoring.md").read_text()
    row = next(line for line in monitoring.splitlines() if line.startswith("| `zoho_store_failing_tokens_by_reason`"))
    assert all(key in row for key in metrics.FAILING_REASONS) and "_failed" not in row and "_lapsed" not in row
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    named = {state for rule in rules["groups"][0]["rules"] for state in re.findall(r'health="([^"]+)"', rule["expr"])}
    assert named and named <= set(health.HEALTH)
    assert not re.search(r"refresh_failed|lease_lapsed|check_failed", (ROOT / "deploy").joinpath(
        "grafana", "zoho-mongo-store.json").read_text() + monitoring)


def test_every_setting_with_a_variable_is_documented() -> None:
    """A setting is one declaration; the README's Configuration table and docs name its variable."""
    readme = (ROOT / "README.md").read_text()
    documented = readme + "".join(page.read_text() for page in (ROOT / "docs").glob("*.md"))
    for cls in (StoreSettings, OperatorSettings):
        for name, setting in declared(cls).items():
            if setting.env is not None:
                assert f"`{setting.env}`" in documented, f"{cls.__name__}.{name}: {setting.env} is not in the docs"
    for name in declared(StoreSettings):  # the store's own: in the README's table
        if name not in ("uri", "username", "password"):
            assert f"| `{name}`" in readme, f"StoreSettings.{name} is not in the README's Configuration table"


def test_a_bad_setting_is_one_sentence_naming_it_never_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    from mongo_store.core.settings import SettingError

    monkeypatch.setenv("ZOHO_AUDIT_RETENTION_DAYS", "forever-and-hunter2")
    with pytest.raises(SettingError) as refused:
        OperatorSettings.load()
    assert str(refused.value) == "ZOHO_AUDIT_RETENTION_DAYS must be a number of days, such as 90"
    with pytest.raises(SettingError, match="socket_timeout must be a positive number of seconds"):
        StoreSettings.load(socket_timeout="5")  # a keyword's string is no number (the environment's is)
    monkeypatch.setenv("ZOHO_MONGO_ENCRYPTION_KEY", "k" * 44)
    assert "kkkk" not in repr(StoreSettings.load(uri="mongodb://u:hunter2@localhost/"))
    assert "hunter2" not in repr(StoreSettings.load(uri="mongodb://u:hunter2@localhost/"))


def test_every_history_event_has_its_colour_on_the_overview() -> None:
    from mongo_store.core import events
    from mongo_store.dashboard.pages_overview import EVENT_COLOURS

    assert set(EVENT_COLOURS) == set(events.EVENTS)

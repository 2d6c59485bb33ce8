"""Dashboard settings: environment variables first, then Streamlit secrets (``[dashboard]``)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from ..tools.admin import AUDIT_COLLECTION, AUDIT_RETENTION_DAYS, AUDIT_RETENTION_ENV
from ..tools.cleanup import IDLE_ENV, UNUSABLE_ENV, Policy, PolicyError, days

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


class SettingError(ValueError):
    """A setting with a value the dashboard does not understand: it refuses to start."""


def parse_flag(name: str, value: Any) -> bool:
    """A boolean setting, strictly: 1/0, true/false, yes/no, on/off in any case (trimmed), or
    absent. Anything else is refused, so a typo can never leave delete controls on."""
    if isinstance(value, bool):  # TOML secrets
        return value
    text = "" if value is None else str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise SettingError(f"{name} must be one of 1/0, true/false, yes/no, on/off; its value is not one of them")


def parse_seconds(name: str, value: Any, default: float) -> float:
    """A positive number of seconds, or the default when unset; anything else is refused."""
    if value is None or str(value).strip() == "":
        return default
    try:
        seconds = float(str(value).strip())
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 3600:
        raise SettingError(f"{name} must be a number of seconds, more than 0 and less than 3600")
    return seconds


def parse_list(value: Any) -> tuple[str, ...]:
    """A comma-separated string (environment) or a list (secrets), lowercased, blanks dropped."""
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    return tuple(str(item).strip().lower() for item in items if str(item).strip())


def parse_url(name: str, value: Any) -> str | None:
    """An http(s) URL with a host, or None when unset; anything else is refused (never echoed)."""
    text = str(value or "").strip()
    if not text:
        return None
    scheme, _, rest = text.partition("://")
    if scheme not in ("https", "http") or not rest.split("/")[0] or any(c.isspace() for c in text):
        raise SettingError(f"{name} must be an http(s) URL such as https://accounts.zoho.eu/oauth/v2/token")
    return text


ENVIRONMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")


def parse_environment(name: str, value: Any) -> str | None:
    """A short name for where this dashboard runs (``production``, ``staging-eu``), shown where a
    deletion is confirmed and typed to confirm "Delete all"; None when unset. Anything else is
    refused (never echoed): the name must read the same wherever it is shown."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    if not ENVIRONMENT_NAME.fullmatch(text):
        raise SettingError(f"{name} must be 1 to 40 letters, digits, '.', '_' or '-', starting with a letter or "
                           "digit, such as production")
    return text


def _secrets_exist() -> bool:
    """Whether there are secrets to read. Streamlit 1.42-1.43 put an error on the page when
    ``st.secrets`` is touched with no secrets file, so it is asked first."""
    try:
        return bool(st.secrets.load_if_toml_exists())
    except Exception:
        return False


def _secret(section: str, key: str) -> Any:
    if not _secrets_exist():
        return None
    try:
        return st.secrets.get(section, {}).get(key)
    except Exception:  # an unreadable secrets file
        return None


def parse_days(name: str, value: Any) -> float | None:
    """A number of days (a policy or a retention), strictly, or None when unset."""
    try:
        return days(name, None if value is None else str(value))
    except PolicyError as error:
        raise SettingError(str(error)) from None


def setting(name: str, key: str, default: Any = None) -> Any:
    """``name`` from the environment, else ``[dashboard] key`` from secrets, else ``default``."""
    value = os.environ.get(name)
    if value not in (None, ""):
        return value
    secret = _secret("dashboard", key)
    return default if secret is None else secret


def oidc_configured() -> bool:
    if not _secrets_exist():
        return False
    try:
        return "auth" in st.secrets
    except Exception:
        return False


@dataclass(frozen=True)
class Settings:
    uri: str | None
    database: str | None
    collection: str | None
    audit_collection: str
    password: str | None
    auth_disabled: bool
    read_only: bool
    demo: bool
    allowed_emails: tuple[str, ...] = ()
    allowed_domains: tuple[str, ...] = ()
    failover_wait: float = 15.0
    accounts_url: str | None = None
    """Zoho accounts server for check and revoke instead of each token's data center's (a proxy)."""
    api_url: str | None = None
    """Zoho CRM API server for check instead of each token's api_domain (a proxy, or the demo's local fake Zoho)."""
    environment: str | None = None
    """Where this dashboard runs (``DASHBOARD_ENVIRONMENT``), named in the confirmation of a deletion."""
    audit_retention_days: float = AUDIT_RETENTION_DAYS
    """``ZOHO_AUDIT_RETENTION_DAYS``: audit entries older than this expire (a TTL index)."""
    policy: Policy = field(default_factory=Policy)
    """The lifecycle policy (``ZOHO_CLEANUP_IDLE_DAYS``, ``ZOHO_CLEANUP_UNUSABLE_DAYS``), as ``cleanup`` applies it."""

    @classmethod
    def load(cls) -> Settings:
        return cls(
            uri=setting("MONGODB_URI", "mongodb_uri"),
            database=setting("ZOHO_MONGO_DATABASE", "database"),
            collection=setting("ZOHO_MONGO_COLLECTION", "collection"),
            audit_collection=setting("DASHBOARD_AUDIT_COLLECTION", "audit_collection", AUDIT_COLLECTION),
            password=setting("DASHBOARD_PASSWORD", "password"),
            auth_disabled=parse_flag("DASHBOARD_AUTH_DISABLED", setting("DASHBOARD_AUTH_DISABLED", "auth_disabled")),
            read_only=parse_flag("DASHBOARD_READ_ONLY", setting("DASHBOARD_READ_ONLY", "read_only")),
            demo=parse_flag("ZOHO_DASHBOARD_DEMO", setting("ZOHO_DASHBOARD_DEMO", "demo")),
            allowed_emails=parse_list(setting("DASHBOARD_ALLOWED_EMAILS", "allowed_emails")),
            allowed_domains=tuple(d.lstrip("@") for d in parse_list(setting("DASHBOARD_ALLOWED_DOMAINS",
                                                                            "allowed_domains"))),
            failover_wait=parse_seconds("DASHBOARD_FAILOVER_WAIT", setting("DASHBOARD_FAILOVER_WAIT", "failover_wait"),
                                        15.0),
            accounts_url=parse_url("DASHBOARD_ZOHO_ACCOUNTS_URL",
                                   setting("DASHBOARD_ZOHO_ACCOUNTS_URL", "zoho_accounts_url")),
            api_url=parse_url("DASHBOARD_ZOHO_API_URL", setting("DASHBOARD_ZOHO_API_URL", "zoho_api_url")),
            environment=parse_environment("DASHBOARD_ENVIRONMENT", setting("DASHBOARD_ENVIRONMENT", "environment")),
            audit_retention_days=parse_days(AUDIT_RETENTION_ENV, setting(AUDIT_RETENTION_ENV, "audit_retention_days"))
            or AUDIT_RETENTION_DAYS,
            policy=Policy(parse_days(IDLE_ENV, setting(IDLE_ENV, "cleanup_idle_days")),
                          parse_days(UNUSABLE_ENV, setting(UNUSABLE_ENV, "cleanup_unusable_days"))),
        )

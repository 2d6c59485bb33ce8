"""Dashboard settings: environment variables first, then Streamlit secrets (``[dashboard]``). The
store's and the operator tools' settings are the ones they declare (``core/settings.py``,
``tools/settings.py``), read here from either place; the rest are the dashboard's own."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from ..core.settings import SettingError as CoreSettingError
from ..core.settings import StoreSettings, Text, declared, flag, seconds
from ..tools.cleanup import Policy
from ..tools.operations import ROLES
from ..tools.settings import OperatorSettings

SettingError = CoreSettingError
"""A setting with a value the dashboard does not understand: it refuses to start."""


def parse_flag(name: str, value: Any) -> bool:
    """A boolean setting, strictly (``core.settings.flag``): a typo can never leave delete controls on."""
    return flag(name, value)


def parse_seconds(name: str, value: Any, default: float) -> float:
    """A positive number of seconds under an hour, or the default when unset; anything else is refused."""
    if value is None or str(value).strip() == "":
        return default
    try:
        return seconds(name, Text(str(value)), most=3599.999)
    except CoreSettingError:
        raise SettingError(f"{name} must be a number of seconds, more than 0 and less than 3600") from None


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


def parse_roles(name: str, value: Any, *, strip: str = "") -> tuple[tuple[str, str], ...]:
    """Entries of a list, each with an optional role after a colon (``olga@example.com:admin``,
    ``example.com:viewer``): ``((entry, role), ...)``; an entry without one is an admin, as every
    entry was before roles. A role that is not one of ``ROLES`` is refused."""
    entries = []
    for item in parse_list(value):
        entry, _, role = item.rpartition(":") if ":" in item else (item, "", "admin")
        role = role.strip() or "admin"
        if role not in ROLES:
            raise SettingError(f"{name}: an entry's role (after the colon) is one of {', '.join(ROLES)}")
        entries.append((entry.strip().lstrip(strip), role))
    return tuple(entries)


def parse_hours(name: str, value: Any, default: float) -> float:
    """A number of hours from a minute to 30 days, or the default when unset."""
    if value is None or str(value).strip() == "":
        return default
    try:
        return seconds(name, Text(str(value)), most=720.0)
    except CoreSettingError:
        raise SettingError(f"{name} must be a number of hours, more than 0 and at most 720") from None


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


def _source(*classes: type) -> dict[str, Any]:
    """The store's and the operator tools' settings as the dashboard reads them: each from its
    environment variable, else its key under ``[dashboard]`` in secrets (``secret_key``)."""
    found: dict[str, Any] = {}
    for cls in classes:
        for name, declaration in declared(cls).items():
            if declaration.env is not None:
                found[declaration.env] = setting(declaration.env, declaration.secret_key or name)
    return {key: value for key, value in found.items() if value is not None}


@dataclass(frozen=True)
class Settings:
    store: StoreSettings
    """The store's own settings (``MONGODB_URI``, ``ZOHO_MONGO_DATABASE``...), as every store reads them;
    ``failover_wait`` is ``DASHBOARD_FAILOVER_WAIT``'s."""
    operators: OperatorSettings
    """The audit log, the lifecycle policy and the alerts (``tools/settings.py``), as the CLI reads them."""
    password: str | None
    auth_disabled: bool
    read_only: bool
    demo: bool
    allowed_emails: tuple[str, ...] = ()
    allowed_domains: tuple[str, ...] = ()
    sso_roles: tuple[tuple[str, str], ...] = ()
    """The role of each allow-list entry (an e-mail, a domain), and ``group:NAME`` entries for the
    identity provider's groups (``DASHBOARD_ROLE_GROUPS``): the highest role that applies wins."""
    session_hours: float = 12.0
    """How long a sign-in lasts, reloads and new tabs included (``DASHBOARD_SESSION_HOURS``)."""
    session_secret: str | None = field(default=None, repr=False)
    """The key that signs session cookies (``DASHBOARD_SESSION_SECRET``); unset: a new one per
    dashboard process, so a restart signs everyone out."""
    accounts_url: str | None = None
    """Zoho accounts server for check and revoke instead of each token's data center's (a proxy)."""
    api_url: str | None = None
    """Zoho CRM API server for check instead of each token's api_domain (a proxy, or the demo's local fake Zoho)."""
    environment: str | None = None
    """Where this dashboard runs (``DASHBOARD_ENVIRONMENT``), named in the confirmation of a deletion."""

    @property
    def policy(self) -> Policy:
        """The lifecycle policy, as ``cleanup`` applies it."""
        return Policy.of(self.operators)

    @property
    def audit_retention_days(self) -> float:
        return self.operators.audit_retention_days

    @classmethod
    def load(cls) -> Settings:
        try:
            source = _source(StoreSettings, OperatorSettings)
            wait = parse_seconds("DASHBOARD_FAILOVER_WAIT", setting("DASHBOARD_FAILOVER_WAIT", "failover_wait"), 15.0)
            store = StoreSettings.load(source, failover_wait=wait)
            operators = OperatorSettings.load(source)
        except CoreSettingError as error:
            raise SettingError(str(error)) from None
        emails = parse_roles("DASHBOARD_ALLOWED_EMAILS", setting("DASHBOARD_ALLOWED_EMAILS", "allowed_emails"))
        domains = parse_roles("DASHBOARD_ALLOWED_DOMAINS", setting("DASHBOARD_ALLOWED_DOMAINS", "allowed_domains"),
                              strip="@")
        groups = parse_roles("DASHBOARD_ROLE_GROUPS", setting("DASHBOARD_ROLE_GROUPS", "role_groups"))
        secret = setting("DASHBOARD_SESSION_SECRET", "session_secret")
        if secret is not None and len(str(secret)) < 32:
            raise SettingError("DASHBOARD_SESSION_SECRET must have at least 32 characters")
        return cls(
            store=store,
            operators=operators,
            password=setting("DASHBOARD_PASSWORD", "password"),
            auth_disabled=parse_flag("DASHBOARD_AUTH_DISABLED", setting("DASHBOARD_AUTH_DISABLED", "auth_disabled")),
            read_only=parse_flag("DASHBOARD_READ_ONLY", setting("DASHBOARD_READ_ONLY", "read_only")),
            demo=parse_flag("ZOHO_DASHBOARD_DEMO", setting("ZOHO_DASHBOARD_DEMO", "demo")),
            allowed_emails=tuple(entry for entry, _ in emails),
            allowed_domains=tuple(entry for entry, _ in domains),
            sso_roles=emails + domains + tuple((f"group:{group}", role) for group, role in groups),
            session_hours=parse_hours("DASHBOARD_SESSION_HOURS", setting("DASHBOARD_SESSION_HOURS", "session_hours"),
                                      12.0),
            session_secret=None if secret is None else str(secret),
            accounts_url=parse_url("DASHBOARD_ZOHO_ACCOUNTS_URL",
                                   setting("DASHBOARD_ZOHO_ACCOUNTS_URL", "zoho_accounts_url")),
            api_url=parse_url("DASHBOARD_ZOHO_API_URL", setting("DASHBOARD_ZOHO_API_URL", "zoho_api_url")),
            environment=parse_environment("DASHBOARD_ENVIRONMENT", setting("DASHBOARD_ENVIRONMENT", "environment")),
        )

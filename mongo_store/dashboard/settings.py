"""Dashboard settings: environment variables first, then Streamlit secrets (``[dashboard]``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import streamlit as st

TRUE = {"1", "true", "yes", "on"}


def _secret(section: str, key: str) -> Any:
    try:
        return st.secrets.get(section, {}).get(key)
    except Exception:  # no secrets.toml at all
        return None


def setting(name: str, key: str, default: Any = None) -> Any:
    """``name`` from the environment, else ``[dashboard] key`` from secrets, else ``default``."""
    value = os.environ.get(name)
    if value not in (None, ""):
        return value
    secret = _secret("dashboard", key)
    return default if secret is None else secret


def oidc_configured() -> bool:
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

    @classmethod
    def load(cls) -> Settings:
        return cls(
            uri=setting("MONGODB_URI", "mongodb_uri"),
            database=setting("ZOHO_MONGO_DATABASE", "database"),
            collection=setting("ZOHO_MONGO_COLLECTION", "collection"),
            audit_collection=setting("DASHBOARD_AUDIT_COLLECTION", "audit_collection", "dashboard_audit"),
            password=setting("DASHBOARD_PASSWORD", "password"),
            auth_disabled=str(setting("DASHBOARD_AUTH_DISABLED", "auth_disabled", "")).lower() in TRUE,
            read_only=str(setting("DASHBOARD_READ_ONLY", "read_only", "")).lower() in TRUE,
            demo=str(setting("ZOHO_DASHBOARD_DEMO", "demo", "")).lower() in TRUE,
        )

"""The operator tools' settings, each declared once as the store's are (``core/settings.py``): the
audit log, the lifecycle policy and the alerts. The CLI reads them from the environment, the
dashboard from the environment or its secrets file (``[dashboard]``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.settings import SettingError, collection_name, days, load, setting, text

AUDIT_COLLECTION = "dashboard_audit"
AUDIT_RETENTION_DAYS = 400.0
ALERTS_COLLECTION = "token_alerts"


def http_url(name: str, value: Any) -> str | None:
    """An http(s) URL as the one parser that decides where a token goes reads it (``core/urls.py``:
    nothing two parsers could read apart); None when blank. Refused without echoing it."""
    from ..core.urls import UrlError
    from ..core.urls import http_url as read

    found = text(name, value)
    if found is None:
        return None
    try:
        return read(found).text
    except UrlError as error:
        raise SettingError(f"{name} must be an http(s) URL such as https://accounts.zoho.eu/oauth/v2/token ({error})") \
            from None


@dataclass(frozen=True)
class OperatorSettings:
    """What the operator actions are configured with."""

    audit_collection: str = setting(AUDIT_COLLECTION, env="DASHBOARD_AUDIT_COLLECTION", parse=collection_name,
                                    secret_key="audit_collection",
                                    doc="where operator actions are recorded, by the dashboard and the CLI")
    audit_retention_days: float = setting(AUDIT_RETENTION_DAYS, env="ZOHO_AUDIT_RETENTION_DAYS", parse=days,
                                          secret_key="audit_retention_days",
                                          doc="audit entries older than this expire (a TTL index)")
    cleanup_idle_days: float | None = setting(None, env="ZOHO_CLEANUP_IDLE_DAYS", parse=days,
                                              secret_key="cleanup_idle_days",
                                              doc="session timeout: revoke and delete tokens idle for longer")
    cleanup_unusable_days: float | None = setting(None, env="ZOHO_CLEANUP_UNUSABLE_DAYS", parse=days,
                                                  secret_key="cleanup_unusable_days",
                                                  doc="delete tokens unusable for longer")
    accounts_url: str | None = setting(None, env="ZOHO_ACCOUNTS_URL", parse=http_url,
                                       doc="the Zoho accounts server (token URL) check, revoke and cleanup ask instead "
                                           "of each token's data center's: a proxy, or the demo's local fake Zoho")
    api_url: str | None = setting(None, env="ZOHO_API_URL", parse=http_url,
                                  doc="the Zoho CRM API server check calls instead of each token's api_domain")
    alerts_collection: str = setting(ALERTS_COLLECTION, env="ZOHO_MONGO_ALERTS_COLLECTION", parse=collection_name,
                                     doc="where alert episodes are recorded")
    alert_webhook: str | None = setting(None, env="ZOHO_MONGO_ALERT_WEBHOOK", parse=text, hidden=True,
                                        doc="where alerts are POSTed (its path is a secret)")

    @classmethod
    def load(cls, environ: Mapping[str, Any] | None = None, **given: Any) -> OperatorSettings:
        """From keywords (None: unset), else the environment, else the defaults."""
        return load(cls, given, environ)

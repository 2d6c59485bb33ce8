"""Tokens as plain records (the export format, and what the CLI prints): the SDK's field names."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..core.mapping import (
    CHECK_RESULT_FIELD,
    CHECKED_AT_FIELD,
    FAILED_AT_FIELD,
    FAILING_SINCE_FIELD,
    FAILURES_FIELD,
    ISSUED_FIELD,
    REASON_FIELD,
    REFRESHED_FIELD,
    RETRY_FIELD,
    STARTED_FIELD,
    date_to_expiry,
    document_to_token,
    malformed,
)
from ..core.masking import iso, masked
from .health import health_of

if TYPE_CHECKING:  # the admin path (list, show, export) never builds a token, nor imports the SDK
    from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken

RECORD_FIELDS = ("id", "user_name", "client_id", "client_secret", "refresh_token", "access_token", "grant_token",
                 "expires_in", "redirect_url", "api_domain")


def document_to_record(document: dict[str, Any]) -> dict[str, Any]:
    """A stored document as a record; absent values are left out. A malformed document (a field of
    the wrong type, edited by hand) keeps its well-formed fields and gets ``malformed``: the reason,
    so tools show it and go on."""
    problem = malformed(document)
    record: dict[str, Any] = {"id": document["_id"] if isinstance(document.get("_id"), str) else str(document.get("_id"))}
    for field in RECORD_FIELDS[1:]:
        if field == "expires_in":
            if isinstance(document.get("expiry_time"), datetime):
                record["expires_in"] = date_to_expiry(document["expiry_time"])
        elif isinstance(document.get(field), str):
            record[field] = document[field]
    if problem:
        record["malformed"] = problem
    return record


def record_to_token(record: dict[str, Any]) -> OAuthToken:
    """An OAuthToken from a record; values are checked later, by the store, like any token's."""
    record = dict(record)
    expires_at = record.pop("expires_at", None)  # exports carry it beside expires_in, for people
    if record.get("expires_in") in (None, "") and isinstance(expires_at, str) and expires_at:
        try:
            record["expires_in"] = date_to_expiry(datetime.fromisoformat(expires_at.replace("Z", "+00:00")))
        except ValueError:
            raise ValueError("expires_at is not an ISO 8601 date") from None
    unknown = set(record) - set(RECORD_FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    document = {("_id" if key == "id" else key): value for key, value in record.items() if value not in (None, "")}
    expires_in = document.pop("expires_in", None)
    token = document_to_token(document)
    token.set_expires_in(expires_in)
    return token


VIEW_DATES = {"expires_at": "expiry_time", "last_refreshed_at": REFRESHED_FIELD, "refresh_started_at": STARTED_FIELD,
              "last_refresh_failure_at": FAILED_AT_FIELD, "refresh_failing_since": FAILING_SINCE_FIELD,
              "refresh_retry_at": RETRY_FIELD, "last_check_at": CHECKED_AT_FIELD,
              "created_at": "created_at", "updated_at": "updated_at"}
"""Dates a person sees, by their shown name and stored field."""


def view(document: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """What a person sees of one stored token (CLI and dashboard alike): secrets masked, its health
    and why, dates as UTC datetimes (``iso_dates`` for text), bookkeeping included when present."""
    record = masked(document_to_record(document))
    record.pop("expires_in", None)  # epoch milliseconds: shown as expires_at
    state, why = health_of(document, now)
    shown: dict[str, Any] = {"id": record.pop("id"), "user_name": record.pop("user_name", None),
                             "health": state, "health_reason": why}
    shown |= record
    shown |= {name: document[field] for name, field in VIEW_DATES.items() if isinstance(document.get(field), datetime)}
    if isinstance(document.get(FAILURES_FIELD), int):
        shown["refresh_failures"] = document[FAILURES_FIELD]
    if isinstance(document.get(REASON_FIELD), str):  # revoked, throttled, unreachable or refused (core/reasons.py)
        shown["refresh_failure_reason"] = document[REASON_FIELD]
    if isinstance(document.get(ISSUED_FIELD), list):  # Zoho keeps 20 per user and client
        shown["refresh_tokens_issued"] = len(document[ISSUED_FIELD])
    if isinstance(document.get(CHECK_RESULT_FIELD), str):
        shown["check_result"] = document[CHECK_RESULT_FIELD]
    return shown


def iso_dates(shown: dict[str, Any]) -> dict[str, Any]:
    """A view with its dates as ISO 8601 UTC text (for JSON)."""
    return {key: iso(value) if isinstance(value, datetime) else value for key, value in shown.items()}

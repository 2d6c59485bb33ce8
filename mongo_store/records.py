"""Tokens as plain records (the export format, and what the CLI prints): the SDK's field names."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken

from .mapping import date_to_expiry, document_to_token, malformed

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
    unknown = set(record) - set(RECORD_FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    document = {("_id" if key == "id" else key): value for key, value in record.items() if value not in (None, "")}
    expires_in = document.pop("expires_in", None)
    token = document_to_token(document)
    token.set_expires_in(expires_in)
    return token

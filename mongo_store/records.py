"""Tokens as plain records (the export format, and what the CLI prints): the SDK's field names."""

from __future__ import annotations

from typing import Any

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken

from .mapping import date_to_expiry, document_to_token

RECORD_FIELDS = ("id", "user_name", "client_id", "client_secret", "refresh_token", "access_token", "grant_token",
                 "expires_in", "redirect_url", "api_domain")


def document_to_record(document: dict[str, Any]) -> dict[str, Any]:
    """A stored document as a record; absent values are left out."""
    record = {"id": document["_id"]}
    for field in RECORD_FIELDS[1:]:
        if field == "expires_in":
            if document.get("expiry_time") is not None:
                record["expires_in"] = date_to_expiry(document["expiry_time"])
        elif document.get(field) is not None:
            record[field] = document[field]
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

"""The matching rules: which stored document a token refers to, shared by find_token and save_token.

They follow the SDK's FileStore, in this order: the id; else the user name; else the access token
when the token carries no client credentials; else the grant or the refresh token (either one
matching counts) when it carries both client credentials. A token that fits none matches nothing.
Every filter is an equality on an indexed field, so each lookup is one index probe.
"""

from __future__ import annotations

from typing import Any


def match_filter(fields: dict[str, Any]) -> dict[str, Any] | None:
    """The MongoDB filter for a token's checked fields (see ``mapping.token_fields``), or None."""
    if "_id" in fields:
        return {"_id": fields["_id"]}
    if "user_name" in fields:
        return {"user_name": fields["user_name"]}
    has_client = "client_id" in fields, "client_secret" in fields
    if "access_token" in fields and not any(has_client):
        return {"access_token": fields["access_token"]}
    if all(has_client):
        either: list[dict[str, Any]] = [{key: fields[key]} for key in ("grant_token", "refresh_token") if key in fields]
        if len(either) == 1:
            return either[0]
        if either:
            return {"$or": either}
    return None


UNIQUE_KEYS = {"_id", "user_name", "refresh_token"}


def save_filter(match: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """``match`` plus the no-stale-overwrite guard, for the save's single atomic update.

    A save that carries an access token and its expiry may only replace a stored token that
    expires no later, so a slow worker finishing an old refresh cannot overwrite a newer access
    token. The guard applies when the match is on a unique key: there, a stored newer token
    makes the upsert's insert fail on that key, and nothing is written. (Saves matched by an
    access or grant token alone come from tokens that cannot be refreshed, so they need none.)
    """
    expiry = fields.get("expiry_time")
    if expiry is None or "access_token" not in fields or not set(match) <= UNIQUE_KEYS:
        return match
    return {**match, "$or": [{"expiry_time": {"$lte": expiry}}, {"expiry_time": {"$exists": False}}]}


def is_newer(document: dict[str, Any], fields: dict[str, Any]) -> bool:
    """Whether the stored token expires later than the one being saved."""
    stored, saving = document.get("expiry_time"), fields.get("expiry_time")
    return stored is not None and saving is not None and stored > saving

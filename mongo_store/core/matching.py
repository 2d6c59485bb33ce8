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


def save_guards(match: dict[str, Any], fields: dict[str, Any], holds_refresh: dict[str, Any] | None, *,
                by_id: bool, new_login: bool) -> list[dict[str, Any]]:
    """The conditions a save's single atomic update adds to ``match``, so that newer values win.

    - The newest authorization wins: a save by id (the SDK's save after a refresh) carrying a
      refresh token may only update a document that holds that refresh token, or none. After a
      new login stored another one, a refresh that was still in flight cannot write the old one back.
    - No stale overwrites: a save that carries an access token and its expiry may only replace a
      stored token that expires no later, so a slow worker finishing an old refresh cannot overwrite
      a newer access token. It applies when the match is on a unique key: there, a stored newer
      token makes the upsert's insert fail on that key, and nothing is written. A ``new_login`` (a
      save without an id, carrying another refresh token than the stored one) replaces whatever
      access token is stored. (Saves matched by an access or grant token alone come from tokens
      that cannot be refreshed, so they need neither.)

    ``holds_refresh`` is the filter for documents holding the save's refresh token.
    """
    guards: list[dict[str, Any]] = []
    if by_id and holds_refresh is not None:
        guards.append({"$or": [holds_refresh, {"refresh_token": {"$exists": False}}]})
    expiry = fields.get("expiry_time")
    if expiry is not None and "access_token" in fields and set(match) <= UNIQUE_KEYS:
        fresh: list[dict[str, Any]] = [{"expiry_time": {"$lte": expiry}}, {"expiry_time": {"$exists": False}}]
        if new_login and holds_refresh is not None:
            fresh.append({"$nor": [holds_refresh]})
        guards.append({"$or": fresh})
    return guards


def stored_wins(stored: dict[str, Any], fields: dict[str, Any], *, by_id: bool, new_login: bool) -> bool:
    """Whether an opened stored document beat this save by the rules of ``save_guards``: then it
    stays as it is, and the caller is given its values."""
    saving, holding = fields.get("refresh_token"), stored.get("refresh_token")
    other_authorization = saving is not None and holding is not None and saving != holding
    if by_id and other_authorization:
        return True
    return not (new_login and other_authorization) and is_newer(stored, fields)


def is_newer(document: dict[str, Any], fields: dict[str, Any]) -> bool:
    """Whether the stored token expires later than the one being saved."""
    stored, saving = document.get("expiry_time"), fields.get("expiry_time")
    return stored is not None and saving is not None and stored > saving

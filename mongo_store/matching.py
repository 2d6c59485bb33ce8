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
        either = [{key: fields[key]} for key in ("grant_token", "refresh_token") if key in fields]
        if len(either) == 1:
            return either[0]
        if either:
            return {"$or": either}
    return None

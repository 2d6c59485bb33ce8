"""A testing kit for applications that use the Zoho CRM SDK with this store: a fake Zoho that keeps
Zoho's rules (``FakeZoho``), a guard that refuses any connection to the real Zoho (``ZohoGuard``),
pytest fixtures (``zoho_token_store`` with ``zoho_token_store_settings``, ``fake_zoho``,
``no_real_zoho``, ``fresh_zoho_sdk``) that installing the package registers as a pytest plugin, and
helpers: ``advance_clocks`` ("an hour later" for Zoho and the store at once), ``reset_sdk`` (the
SDK's initializer forgotten). The store never imports this package. See docs/testing-your-app.md."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .fake_zoho import DATA_CENTERS, Authorization, FakeZoho, Person, ZohoRequest
from .guard import RealZohoBlocked, ZohoGuard, is_zoho_host
from .sdk import advance_clocks, reset_sdk

if TYPE_CHECKING:
    from mongo_store.core.store import MongoTokenStore

__all__ = ["DATA_CENTERS", "Authorization", "FakeZoho", "Person", "RealZohoBlocked", "ZohoGuard", "ZohoRequest",
           "advance_clocks", "is_zoho_host", "lapse_stored_tokens", "reset_sdk"]


def lapse_stored_tokens(store: MongoTokenStore, *token_ids: str) -> int:
    """The stored access tokens (these, or every one) reach their expiry now, so the SDK's next call
    refreshes them, as it would an hour after a login; returns how many. (The fake's own
    ``expire_access_tokens`` is the other side: Zoho refusing a token the SDK still thinks valid.)"""
    query = {"_id": {"$in": list(token_ids)}} if token_ids else {}
    return store.collection.update_many(query, {"$set": {"expiry_time": datetime.now(timezone.utc)}}).modified_count

"""The SDK's process-wide state, reset between tests, and the clocks a test moves ("an hour later").

The SDK keeps its initializer in two places that outlive a test: ``Initializer.initializer`` (the
process's, set by ``initialize``) and ``Initializer.LOCAL.init`` (each thread's, set by
``switch_user``). A test that initialized the SDK, or switched the user, leaves them behind, and the
next test talks to the previous one's store and fake Zoho (stopped by then): failures that depend
on the order the tests run in. ``reset_sdk`` forgets both, for every thread at once (a new
thread-local object). The kit's fixtures call it before and after each test.

A stored token ages on two clocks: Zoho's (the fake's, which ``FakeZoho.advance`` moves) and the
store's dates (an access token's expiry, a back-off window), which the SDK compares with the
machine's clock. ``advance_clocks`` moves both by the same time, so "an hour later" is one call.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mongo_store.core.store import MongoTokenStore

    from .fake_zoho import FakeZoho


def reset_sdk() -> None:
    """Forget the SDK's initializer: the process's and every thread's. Loads nothing when the SDK
    was never imported (a test run that does not use it stays light)."""
    import sys

    module = sys.modules.get("zohocrmsdk.src.com.zoho.crm.api.initializer")
    initializer = getattr(module, "Initializer", None)
    if initializer is None:
        return
    initializer.initializer = None
    initializer.LOCAL = threading.local()  # every thread's switch_user forgotten, not only this one's
    initializer.LOCAL.init = None


def advance_clocks(seconds: float, zoho: FakeZoho | None = None, *stores: MongoTokenStore) -> int:
    """``seconds`` pass for Zoho and for the stored tokens: the fake's clock moves on (grant codes,
    the 10-minute refresh window, access tokens age), and every date in these stores' tokens moves
    that much into the past (expiries, back-off windows, leases, last refreshes), as if the machine's
    clock had moved. ``advance_clocks(3600, fake_zoho, zoho_token_store)`` is "an hour later": the
    SDK refreshes on its next call, and Zoho's refresh limits have room again. Returns how many
    stored tokens moved."""
    if zoho is not None:
        zoho.advance(seconds)
    moved = 0
    shift = timedelta(seconds=seconds)
    for store in stores:
        tokens = store.collection
        for document in list(tokens.find({})):
            dates: dict[str, Any] = {key: value - shift for key, value in document.items() if isinstance(value, datetime)}
            if dates:
                tokens.update_one({"_id": document["_id"]}, {"$set": dates})
                moved += 1
    return moved

"""The token collection for the command line's admin commands, without the Zoho SDK.

``stats``, ``list``, ``show``, ``events``, ``audit``, ``indexes``, ``delete``, ``delete-all``,
``alerts`` and ``metrics`` read and write documents; none of them builds a token. Importing any
module of the SDK imports all of it (about 2,000 modules: a second or more of CPU), so these
commands open ``AdminStore`` instead of ``MongoTokenStore``: the same settings object, connection,
durable writes, read preferences and election handling (``calls.py``), with pymongo only. A failure
is a ``StoreError`` (or the SDK's ``SDKException`` if something else loaded the SDK), one redacted
sentence, as the store's are.
"""

from __future__ import annotations

from typing import Any

from .calls import StoreCalls, settings_of
from .settings import StoreSettings


class AdminStore(StoreCalls):
    """``MongoTokenStore``'s collections and its ``call``/``guard``, for tools that never touch a
    token object (one instance per command). It always has the token history's collection, where
    an operator's delete records its events."""

    def __init__(self, uri: str | None = None, *, settings: StoreSettings | None = None, **options: Any) -> None:
        """Connect by ``uri`` (else ``MONGODB_URI``); ``settings`` and ``options`` as the store's."""
        self.connect(settings_of(settings, {"uri": uri, **options}))

    def __enter__(self) -> AdminStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

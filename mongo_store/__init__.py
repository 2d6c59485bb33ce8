"""A MongoDB token store for the Zoho CRM Python SDK (zohocrmsdk8-0, 7-0, 6-0 or 5-0)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

__all__ = ["MongoTokenStore"]
__version__ = "0.1.0"

# A library logs to its own logger and leaves output to the application: without this, Python's
# last-resort handler would print the store's warnings on a CLI user's stderr.
logging.getLogger("mongo_store").addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from .core.store import MongoTokenStore


def sdk_missing(who: str) -> str:
    """The sentence for a missing SDK, naming the extra that installs one."""
    return (f"{who} needs the Zoho CRM Python SDK, which is not installed: "
            "pip install 'zoho-mongo-store[sdk8]' (or [sdk7], [sdk6], [sdk5] for an older API line)")


def __getattr__(name: str) -> Any:
    """``MongoTokenStore`` is imported on first use: the SDK under it takes a second to import,
    which the command line's ``--help`` and admin commands (declared ``store="admin"``, ``cli/commands/``) never need;
    without an SDK, the import fails with a message naming the extra (the CLI: one line, for the
    commands that need it)."""
    if name != "MongoTokenStore":
        raise AttributeError(f"module 'mongo_store' has no attribute {name!r}")
    try:
        import zohocrmsdk  # noqa: F401  (every SDK line installs this package)
    except ImportError:
        raise ImportError(sdk_missing("zoho-mongo-store")) from None
    from .core.store import MongoTokenStore

    return MongoTokenStore

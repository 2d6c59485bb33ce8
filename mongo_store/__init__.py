"""A MongoDB token store for the Zoho CRM Python SDK (zohocrmsdk8-0, 7-0, 6-0 or 5-0)."""

try:
    import zohocrmsdk  # noqa: F401  (every SDK line installs this package)
except ImportError:  # pragma: no cover - shown by tests/test_compatibility.py in a subprocess
    raise ImportError(
        "zoho-mongo-store needs the Zoho CRM Python SDK, which is not installed: "
        "pip install 'zoho-mongo-store[sdk8]' (or [sdk7], [sdk6], [sdk5] for an older API line)"
    ) from None

import logging

from .store import MongoTokenStore

# A library logs to its own logger and leaves output to the application: without this, Python's
# last-resort handler would print the store's warnings on a CLI user's stderr.
logging.getLogger("mongo_store").addHandler(logging.NullHandler())

__all__ = ["MongoTokenStore"]
__version__ = "0.1.0"

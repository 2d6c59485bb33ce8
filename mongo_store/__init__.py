"""A MongoDB token store for the Zoho CRM Python SDK (zohocrmsdk8-0)."""

from .store import MongoTokenStore

__all__ = ["MongoTokenStore"]
__version__ = "0.1.0"

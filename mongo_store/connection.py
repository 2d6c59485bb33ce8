"""Where the MongoDB client comes from: a URI, a client the caller owns, or ``MONGODB_URI``."""

from __future__ import annotations

import os
from typing import Any

from pymongo import MongoClient

from .errors import store_error

MOCK_URI = "mongomock://"


def resolve_uri(uri: str | None) -> str:
    """The URI to use: the argument, else ``MONGODB_URI``; a clear error when there is neither."""
    uri = uri if uri is not None else os.environ.get("MONGODB_URI")
    if not uri:
        raise store_error("no MongoDB URI: pass one to MongoTokenStore or set MONGODB_URI")
    if not isinstance(uri, str):
        raise store_error(f"the MongoDB URI must be a string, not {type(uri).__name__}")
    return uri


def open_client(uri: str, server_selection_timeout: float, socket_timeout: float) -> Any:
    """A new client for ``uri``, with bounded timeouts so a dead server fails fast and clearly.

    ``mongomock://`` gives an in-process mongomock client, for demos and tests.
    """
    if uri.startswith(MOCK_URI):
        import mongomock

        return mongomock.MongoClient()
    try:
        return MongoClient(
            uri,
            appname="zoho-mongo-store",
            serverSelectionTimeoutMS=int(server_selection_timeout * 1000),
            connectTimeoutMS=int(min(server_selection_timeout, socket_timeout) * 1000),
            socketTimeoutMS=int(socket_timeout * 1000),
        )
    except Exception as error:  # InvalidURI, ConfigurationError
        raise store_error(f"invalid MongoDB URI: {_without_credentials(str(error), uri)}") from None


def _without_credentials(text: str, uri: str) -> str:
    """``text`` with the URI's user:password part masked, for messages that echo the URI."""
    userinfo = uri.partition("://")[2].rpartition("@")[0]
    return text.replace(userinfo, "***") if userinfo else text

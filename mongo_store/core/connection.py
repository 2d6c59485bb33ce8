"""Where the MongoDB client comes from: a URI, a client the caller owns, or ``MONGODB_URI``."""

from __future__ import annotations

import re
from typing import Any

from pymongo import MongoClient

from .errors import store_error
from .mapping import check_text
from .settings import collection_problem, database_problem

MOCK_URI = "mongomock://"


def check_names(database: Any, collection: Any) -> tuple[str, str]:
    """Database and collection names MongoDB accepts, checked before any driver call (which would
    raise from deep inside pymongo): one sentence each (``settings.database_problem``,
    ``collection_problem``), the settings' own parsers' rules."""
    database = check_text("database", database, required=True)
    collection = check_text("collection", collection, required=True)
    for problem in (database_problem(database), collection_problem(collection)):
        if problem is not None:
            raise store_error(problem)
    return database, collection


def resolve_uri(uri: str | None) -> str:
    """The URI to use (the settings': the argument, else ``MONGODB_URI``); a clear error when there is none."""
    if not uri:
        raise store_error("no MongoDB URI: pass one to MongoTokenStore or set MONGODB_URI")
    if not isinstance(uri, str):
        raise store_error(f"the MongoDB URI must be a string, not {type(uri).__name__}")
    return uri


def open_client(uri: str, server_selection_timeout: float, socket_timeout: float, username: str | None = None,
                password: str | None = None) -> Any:
    """A new client for ``uri``, with bounded timeouts so a dead server fails fast and clearly.

    ``mongomock://`` gives an in-process mongomock client, for demos and tests. ``username`` and
    ``password`` (``MONGODB_USERNAME``, ``MONGODB_PASSWORD``), when set, are the credentials, taken
    as they are (no percent-encoding).
    """
    if uri.startswith(MOCK_URI):
        import mongomock

        return mongomock.MongoClient()
    credentials: dict[str, Any] = {key: value for key, value in (("username", username), ("password", password)) if value}
    try:
        return MongoClient(
            uri,
            **credentials,  # apart from the URI: no percent-encoding to get wrong
            appname="zoho-mongo-store",
            serverSelectionTimeoutMS=int(server_selection_timeout * 1000),
            connectTimeoutMS=int(min(server_selection_timeout, socket_timeout) * 1000),
            socketTimeoutMS=int(socket_timeout * 1000),
            retryReads=False,  # the store retries reads itself, on a secondary if need be (failover.py)
        )
    except Exception:  # InvalidURI, ConfigurationError: their text quotes parts of the URI
        raise store_error(f"invalid MongoDB URI: {uri_problem(uri, ('mongodb', 'mongodb+srv'))}") from None


def uri_problem(uri: str, schemes: tuple[str, ...]) -> str:
    """Which part of a connection URI is malformed, without repeating any of it: a driver's own
    message quotes pieces of the URI, and a piece of a password is as good as the password."""
    encode = "special characters in a user name or password (such as / ? # @ : %) must be percent-encoded"
    scheme, separator, rest = uri.partition("://")
    if not separator or scheme.lower() not in schemes:
        return "it must start with " + " or ".join(f"{name}://" for name in schemes)
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo, _, hosts = authority.rpartition("@")
    if "@" in rest[len(authority):] or userinfo.count(":") > 1 or "@" in userinfo or \
            re.search(r"%(?![0-9A-Fa-f]{2})", userinfo):
        return f"the user name or password is malformed: {encode}"
    if not hosts:
        return "it names no host"
    return f"the host list, a port, the database name or an option is malformed ({encode})"

"""The token collection for the command line's admin commands, without the Zoho SDK.

``stats``, ``list``, ``show``, ``events``, ``audit``, ``indexes``, ``delete``, ``delete-all``, ``alerts`` and ``metrics``
read and write documents; none of them builds a token. Importing any module of the SDK imports
all of it (about 2,000 modules: a second or more of CPU), so these commands open ``AdminStore``
instead of ``MongoTokenStore``: the same names, timeouts, durable writes, read preferences and
election handling (``failover.py``), with pymongo only. A failure is a ``StoreError`` (or the SDK's
``SDKException`` if something else loaded the SDK), one redacted sentence, as the store's are.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

from bson.codec_options import DatetimeConversion
from pymongo import MongoClient, ReadPreference, WriteConcern
from pymongo.errors import ServerSelectionTimeoutError

from .connection import check_names, open_client, resolve_uri
from .errors import is_store_error, raise_store_error
from .events import collection_name as events_collection_name
from .failover import Outage, attempt, bounds_itself, no_primary, retrying

DEFAULT_DATABASE = "zoho"
DEFAULT_COLLECTION = "oauth_tokens"
DURABLE = WriteConcern(w="majority", j=True)
"""Acknowledged only once a majority has it in its journal: an election cannot roll it back."""
TRY_AGAIN = "trying again is safe"
T = TypeVar("T")


class StoreCalls:
    """``call`` and ``guard``: the failover and the one-sentence errors that ``MongoTokenStore`` and
    ``AdminStore`` share. Needs ``client``, ``failover_wait``, ``socket_timeout``,
    ``_selection_timeout`` and ``_client_bounds_first``."""

    client: Any
    failover_wait: float
    socket_timeout: float
    _selection_timeout: float | None
    _client_bounds_first: bool

    def call(self, action: str, work: Callable[[], T], *, write: bool = False, bounded: bool = True,
             unknown_outcome: str = TRY_AGAIN) -> T:
        """``work()`` tried again through an election for up to ``failover_wait`` seconds; any
        failure becomes one redacted store error (the SDK's ``SDKException`` in the store) naming
        ``action``. ``work`` must be safe to run again. ``bounded=False`` leaves an attempt to the
        client's own timeouts (a long read)."""
        try:
            return attempt(work, self.failover_wait, self.socket_timeout if bounded else None, write=write,
                           client_bounds_first=self._client_bounds_first)
        except Outage as outage:
            self._fail(action, outage.error, outage.seconds, unknown_outcome if outage.maybe_applied else None)
        except Exception as error:
            if is_store_error(error):
                raise
            self._fail(action, error, self.failover_wait)

    @contextmanager
    def guard(self, action: str) -> Iterator[None]:
        """The error handling without the retries, for work that cannot simply run again."""
        try:
            yield
        except OSError:  # writing the output (a closed pipe), not MongoDB
            raise
        except Exception as error:
            if is_store_error(error):
                raise
            self._fail(action, error, self._selection_timeout)

    def _fail(self, action: str, error: BaseException, seconds: float | None,
              unknown_outcome: str | None = None) -> NoReturn:
        waited = isinstance(error, ServerSelectionTimeoutError) and no_primary(self.client)
        raise_store_error(action, error, seconds, no_primary=waited, unknown_outcome=unknown_outcome)


class AdminStore(StoreCalls):
    """``MongoTokenStore``'s collection and its ``call``/``guard``, for tools that never touch a
    token object (one instance per command)."""

    def __init__(self, uri: str | None = None, *, database: str | None = None, collection: str | None = None,
                 server_selection_timeout: float = 5.0, socket_timeout: float = 10.0,
                 failover_wait: float = 30.0) -> None:
        """Connect by ``uri`` (else ``MONGODB_URI``); names default as the store's do
        (``ZOHO_MONGO_DATABASE``, ``ZOHO_MONGO_COLLECTION``)."""
        database, collection = check_names(database or os.environ.get("ZOHO_MONGO_DATABASE") or DEFAULT_DATABASE,
                                           collection or os.environ.get("ZOHO_MONGO_COLLECTION") or DEFAULT_COLLECTION)
        self.failover_wait, self.socket_timeout = float(failover_wait), float(socket_timeout)
        client = open_client(resolve_uri(uri), server_selection_timeout, socket_timeout)
        self.client = client
        self._selection_timeout: float | None = (
            client.options.server_selection_timeout if isinstance(client, MongoClient) else None)
        tokens = client[database][collection]
        if isinstance(client, MongoClient):  # a date outside Python's range reads as a DatetimeMS (malformed)
            tokens = tokens.with_options(codec_options=tokens.codec_options.with_options(
                datetime_conversion=DatetimeConversion.DATETIME_AUTO))
        self._collection = tokens.with_options(write_concern=DURABLE, read_preference=ReadPreference.PRIMARY_PREFERRED)
        self._after_failure = self._collection.with_options(read_preference=ReadPreference.SECONDARY_PREFERRED)
        self._client_bounds_first = bounds_itself(client, self.socket_timeout, self.failover_wait)
        name = check_names(database, events_collection_name())[1]
        self.events: Any = client[database][name].with_options(write_concern=DURABLE)
        """The token history (``events.py``), where a delete from the CLI records its events."""

    @property
    def collection(self) -> Any:
        """The token collection with durable writes; in an attempt ``call`` retries, reads go to a secondary first."""
        return self._after_failure if retrying() else self._collection

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> AdminStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

"""What ``MongoTokenStore`` and ``AdminStore`` share: the connection made from one ``StoreSettings``
(the client, the token collection with durable writes and its read preferences, the token
history's and the data keys' collections) and ``call``/``guard``, the failover and the one-sentence errors.

Reads go to the primary, or to a secondary while there is none; writes wait for a primary and are
acknowledged by a majority, journaled, whatever client is passed in (``failover.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import pymongo
from bson.codec_options import CodecOptions, DatetimeConversion
from pymongo import MongoClient, ReadPreference, WriteConcern
from pymongo.errors import ServerSelectionTimeoutError
from pymongo.server_type import SERVER_TYPE

from .connection import check_names, open_client, resolve_uri
from .errors import is_store_error, raise_store_error, store_error
from .failover import Outage, attempt, bounds_itself, no_primary, retrying
from .mapping import DISPLACED_SUFFIX, KEYS_SUFFIX
from .outage import PROBE_TIMEOUT, Down, OutageWatch
from .settings import SettingError, StoreSettings

DURABLE = WriteConcern(w="majority", j=True)
"""Acknowledged only once a majority has it in its journal: an election cannot roll it back."""
TRY_AGAIN = "trying again is safe"
T = TypeVar("T")


def settings_of(settings: StoreSettings | None, options: dict[str, Any]) -> StoreSettings:
    """The settings a store is built with: ``settings`` with ``options`` over it, else ``options``
    over the environment; a bad value is the store's one-sentence error."""
    try:
        if settings is None:
            return StoreSettings.load(**options)
        return settings.replace(**{key: value for key, value in options.items() if value is not None})
    except (SettingError, TypeError) as error:
        raise store_error(str(error)) from None


def naive_dates(client: Any) -> CodecOptions:
    """The client's codec options with dates read as naive UTC (``clock.py``'s one form): a client
    passed in with ``tz_aware=True`` would hand out aware dates, which no stored date or ``utcnow()``
    can be compared with (a raw TypeError in every lookup of a token in its refresh window)."""
    return client.codec_options.with_options(tz_aware=False, tzinfo=None)


class StoreCalls:
    """The connection both stores hold (``connect``), and ``call`` and ``guard`` on it."""

    settings: StoreSettings
    client: Any
    events: Any
    """The token history's collection (``events.py``), or None with ``record_events=False``."""
    failover_wait: float
    socket_timeout: float
    _owns_client: bool
    _selection_timeout: float | None
    _client_bounds_first: bool
    outage: OutageWatch

    def connect(self, settings: StoreSettings, client: Any = None, *, history: bool = True) -> None:
        """Open (or adopt) the client and the collections ``settings`` name. ``history=False``: no
        token history (``record_events=False``)."""
        database, collection = check_names(settings.database, settings.collection)
        self.settings = settings
        self.failover_wait, self.socket_timeout = settings.failover_wait, settings.socket_timeout
        self._owns_client = client is None
        if client is None:
            client = open_client(resolve_uri(settings.uri), settings.server_selection_timeout, settings.socket_timeout,
                                 settings.username, settings.password)
        self.client = client
        real = isinstance(client, MongoClient)  # mongomock has no such options, nor such dates
        self._selection_timeout = client.options.server_selection_timeout if real else None
        writes = settings.write_concern or DURABLE
        dates = naive_dates(client)
        # Every collection the store and the tools reach (tokens, history, audit, alerts) comes from
        # this database, so every date they read is naive UTC whatever the client's own options.
        db = client.get_database(database, codec_options=dates) if real else client[database]
        tokens = db[collection]
        if real:
            # A date outside Python's range (written by a JavaScript client, say) reads as a DatetimeMS:
            # that token is shown as malformed, instead of every read of it failing with InvalidBSON.
            tokens = tokens.with_options(codec_options=dates.with_options(
                datetime_conversion=DatetimeConversion.DATETIME_AUTO))
        else:
            tokens = tokens.with_options(codec_options=dates)  # mongomock's databases keep the client's
        # Reads go to the primary, or to a secondary while there is none; writes wait for a primary.
        self._collection = tokens.with_options(write_concern=writes, read_preference=ReadPreference.PRIMARY_PREFERRED)
        # After a failed attempt the primary may be paused: a retried read asks a secondary first.
        self._after_failure = self._collection.with_options(read_preference=ReadPreference.SECONDARY_PREFERRED)
        # What a save reads before or after it writes must be the primary's latest; a lookup reads
        # there too while a primary is known (a primary read is the cheapest).
        self._primary = self._collection.with_options(read_preference=ReadPreference.PRIMARY)
        self._client_bounds_first = bounds_itself(client, self.socket_timeout, self.failover_wait)
        self.outage = OutageWatch(settings.fail_fast_after if real else 0.0, self._ping, self._answering)
        """Whether MongoDB counts as down, and since when (``outage.py``: fail fast in a long outage)."""
        self.displaced = db[collection + DISPLACED_SUFFIX].with_options(codec_options=dates,
            write_concern=writes, read_preference=ReadPreference.PRIMARY)
        """The refresh tokens new logins replaced, until they are revoked (``displaced.py``)."""
        self.data_keys = db[collection + KEYS_SUFFIX].with_options(write_concern=writes,
                                                                   read_preference=ReadPreference.PRIMARY)
        """The collection's data keys, each wrapped by a KMS key (``envelope.py``)."""
        self.events = None
        if history:
            name = check_names(database, settings.events_collection)[1]
            self.events = db[name].with_options(codec_options=dates, write_concern=writes)

    @property
    def collection(self) -> Any:
        """The token collection with durable writes; in an attempt ``call`` retries, reads go to a secondary first."""
        return self._after_failure if retrying() else self._collection

    def call(self, action: str, work: Callable[[], T], *, write: bool = False, bounded: bool = True,
             unknown_outcome: str = TRY_AGAIN) -> T:
        """``work()`` tried again through an election for up to ``failover_wait`` seconds; any
        failure becomes one redacted store error (the SDK's ``SDKException`` in the store) naming
        ``action``. ``work`` must be safe to run again. ``bounded=False`` leaves an attempt to the
        client's own timeouts (a long read)."""
        watch = self.outage
        if watch.suspect:  # a call is failing: MongoDB may have been down for too long
            try:
                watch.check()
            except Down as down:
                raise store_error(f"could not {action}: {down}") from None
        try:
            return attempt(work, self.failover_wait, self.socket_timeout if bounded else None, write=write,
                           client_bounds_first=self._client_bounds_first, watch=watch)
        except Outage as outage:
            if outage.down is not None:
                unknown = f". The outcome is unknown (it may have been applied): {unknown_outcome}" if outage.maybe_applied else ""
                raise store_error(f"could not {action}: {outage.down}{unknown}") from None
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

    def _answering(self) -> bool:
        """Whether the client's monitor sees any server answer (an election has its secondaries):
        then a call that keeps failing waits on, as through an election."""
        servers = self.client.topology_description.server_descriptions().values()
        return any(server.server_type != SERVER_TYPE.Unknown for server in servers)

    def _ping(self) -> None:
        """The outage's probe: any member answering a ping, within ``outage.PROBE_TIMEOUT``."""
        with pymongo.timeout(PROBE_TIMEOUT):
            self.client.admin.command("ping", read_preference=ReadPreference.PRIMARY_PREFERRED)

    def close(self) -> None:
        """Close the client, if the store created it."""
        self.outage.close()
        if self._owns_client:
            self.client.close()

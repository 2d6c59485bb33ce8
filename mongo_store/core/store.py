"""``MongoTokenStore``: the SDK's TokenStore on MongoDB, one document per token.

Every save is a single ``find_one_and_update`` (an upsert, except by id: a deleted token stays
deleted), so concurrent processes never create duplicates or lose an update between a read and a
write. (With encryption on, a save first reads
the matching document to learn the id its ciphertexts are bound to.) Writes are acknowledged by a
majority, journaled, whatever client is passed in; reads go to a secondary while there is no
primary, and every call rides out an election (``failover.py``). Every failure is an
``SDKException`` with code ``TOKEN_STORE``; ``find_token`` of a token that matches nothing returns
``None``, ``find_token_by_id`` of an unknown id raises (``errors.UnknownToken``), as the SDK's own
stores do.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from pymongo import MongoClient, ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.errors import ConfigurationError, DuplicateKeyError, OperationFailure, PyMongoError
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.api.authenticator.store.token_store import TokenStore
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from . import cold_start, reasons
from . import events as token_events
from .cache import ReadCache, Ticket, cache_key
from .calls import StoreCalls, settings_of
from .crypto import BLIND_FIELDS, IDENTITY_FIELDS, KEY_ID_FIELD, Cipher, check_found, identity_of, is_sealed, open_or_refuse
from .displaced import Displaced, exchanged_at, note_exchange
from .envelope import configured, open_cipher
from .errors import PLAIN_BESIDE_SEALED, RefreshFailing, UnknownToken, conflict_field, redact, sentence, store_error
from .event_writer import EventWriter
from .failover import answered_by_primary, no_primary, primary_known, retrying
from .indexes import ensure_indexes
from .lease import REFRESH_WINDOW, Backoff, coordinate, needs_refresh, record_failure, utcnow, watch
from .mapping import (
    CLEARED_BY_SAVE,
    ISSUED_FIELD,
    REFRESH_STATE,
    REFRESHED_FIELD,
    SECRET_FIELDS,
    STARTED_FIELD,
    TOKEN_FIELDS,
    adopt,
    check_text,
    date_to_expiry,
    document_to_token,
    fill_token,
    refuse_malformed,
    token_fields,
)
from .masking import iso
from .matching import match_filter, save_guards, stored_wins
from .search import SEARCH_KEYS
from .search import keys as search_keys
from .settings import StoreSettings
from .validation import require_sealed, validator_of

log = logging.getLogger("mongo_store")

# The lease and the back-off come with every lookup: coordinating a refresh needs no extra read.
_PROJECTION = {field: True for field in (*TOKEN_FIELDS, KEY_ID_FIELD, *REFRESH_STATE, STARTED_FIELD)}
_TOKEN_VALUES = ("access_token", "refresh_token", "grant_token")
_REFRESHED = {"access_token", "expiry_time"}
NO_SEALED_TRUSTED = 60.0
"""Seconds a store without a key trusts a probe that found no sealed token in the collection."""
_SAVE_AGAIN = "saving the same token again is safe"
_TRY_AGAIN = "trying again is safe"
T = TypeVar("T")


def new_token_id() -> str:
    """A short random id (96 bits): unique without a counter, unlike the SQL samples' max(id)+1.
    Never starting with ``-``, which a command line would take for an option."""
    while True:
        token_id = secrets.token_urlsafe(12)
        if not token_id.startswith("-"):
            return token_id


class MongoTokenStore(TokenStore, StoreCalls):
    """Stores the Zoho CRM SDK's OAuth tokens in MongoDB. One instance serves every thread."""

    def __init__(self, uri: str | None = None, *, client: Any = None, settings: StoreSettings | None = None,
                 **options: Any) -> None:
        """Connect by ``uri`` (else ``MONGODB_URI``) or use ``client``, which the store never closes.

        ``options`` are the store's settings by name (``settings.StoreSettings``, each declared
        there once with its environment variable and default); ``settings`` gives them all at once
        (options then change some). Times are in seconds. ``create_indexes=False`` is for users
        without the createIndex privilege. ``server_selection_timeout`` applies to a client the
        store creates. Each attempt of a store call waits at most ``socket_timeout``, and a call
        that fails because there is no primary (an election) or its connection broke is tried again
        for up to ``failover_wait``; once one has waited ``fail_fast_after``, new calls fail at once
        until MongoDB answers again (``outage.py``). Writes use ``write_concern`` (default: majority, journaled),
        also on a client passed in. ``refresh_lease`` (0 turns coordination off) is how long one
        worker may take to refresh a token the others wait for; ``refresh_wait`` bounds how long
        they wait. After a failed refresh, callers fail at once and one is let through per back-off
        window: ``refresh_backoff`` seconds, doubling after each failure up to
        ``refresh_backoff_max``. ``encryption_key`` turns on encryption at rest;
        ``old_encryption_keys`` still open during a rotation. ``kms_key`` turns it on with a data key
        a KMS key wraps (``envelope.py``: read and unwrapped here, once); ``old_kms_keys`` unwrap
        theirs during a rotation. ``record_events`` writes each token's
        history (``events.py``: a refresh, a failed refresh, a delete) to ``events_collection``,
        off the caller's thread (``event_writer.py``, at most ``events_queue`` waiting); a failed
        insert is a warning, never a failed save. ``read_cache`` answers lookups from memory while
        a change stream proves the token unchanged (``cache.py``, ``read_cache_size`` tokens);
        ``refresh_margin`` is how much earlier than the SDK the store decides a refresh.
        ``retire_replaced`` revokes at Zoho the refresh token a new login replaced (``displaced.py``).
        """
        if client is not None and uri is not None:
            raise store_error("pass either a URI or a client, not both")
        settings = settings_of(settings, {"uri": uri, **options} if client is None else options)
        self.refresh_lease, self.refresh_wait = settings.refresh_lease, settings.refresh_wait
        self.backoff = Backoff(settings.refresh_backoff, settings.refresh_backoff_max)
        self.refresh_margin = timedelta(seconds=settings.refresh_margin)
        self.keys = configured(settings)  # a bad key, an unknown provider: refused before connecting
        """The configured keys (``envelope.Keys``): ``keys.kms`` wraps the data key that seals."""
        self.connect(settings, client, history=settings.record_events)
        try:
            self.cipher: Cipher | None = open_cipher(self, self.keys)
        except BaseException:
            StoreCalls.close(self)
            raise
        self.history = EventWriter(settings.events_queue, settings.socket_timeout, settings.failover_wait)
        """The token history's writer (``event_writer.py``): ``flush_events`` waits for it."""
        self.cache = ReadCache(self._primary, settings.read_cache_size) if settings.read_cache else None
        """The read cache (``cache.py``), or None with ``read_cache=False``."""
        self.cold_starts = cold_start.ColdStarts(cold_start.collection_for(self._primary),
                                                 run=lambda work: self.call("coordinate the first refresh", work, write=True),
                                                 keep_index=settings.create_indexes)
        self._indexes_ready = not settings.create_indexes
        self._server_validates = isinstance(self.client, MongoClient)  # mongomock has no validators
        self.retire_replaced = settings.retire_replaced
        self.retirements = Displaced(self)
        """The refresh tokens new logins replaced, revoked in the background (``displaced.py``)."""
        self._validator_in_place: bool | None = None
        """Whether the collection held this package's validator when this store first could insert
        without a key (then such an insert is the server's to refuse); None: not read yet."""
        self._no_sealed_until = 0.0
        """Until when (``time.monotonic``) a probe that found no sealed token is trusted."""
        self.validated: bool | None = None
        """With a key on a real server: whether the collection has the validator (``prepare``)."""
        self._lock = threading.Lock()

    # -- TokenStore -------------------------------------------------------------------------

    def find_token(self, token: OAuthToken) -> OAuthToken | None:
        """Fill ``token``'s missing values from the stored token it matches, and return it."""
        fields = token_fields(token)
        query = match_filter(fields)
        cached = self._cached(query)
        if cached is not None:
            return fill_token(token, cached)
        document, ticket = self._find_raw(query)
        if document is None and query is not None and self._cold(fields, query):
            # Nothing holds this refresh token yet: one caller refreshes, the others wait for its save.
            digest = self._blind(fields["refresh_token"])
            where = query
            document, holds = self.cold_starts.begin(digest, lambda: self._find_primary(where), self.refresh_lease,
                                                     self.refresh_wait)
            if holds:
                watch(token, lambda error: self._first_refresh_failed(digest, error))
            ticket = None
        # A token with an id reaches find_token only outside a request (the SDK's get_token asks
        # find_token_by_id for those; its revoke() asks here): it is read as it is, never leased.
        document, lease = (document, None) if query is not None and "_id" in query else self._coordinated(document)
        if document is None:
            if self.retire_replaced and token.get_grant_token() and not token.get_refresh_token():
                note_exchange(token)  # the SDK exchanges it next: where, for retiring what the login replaces
            return None
        opened = self.open_document(document, found_by=query)
        self._remember(ticket, opened)
        return self._watched(fill_token(token, opened), document, lease)

    def save_token(self, token: OAuthToken) -> None:
        """Insert or update the matching document in one atomic ``find_one_and_update``, then complete ``token``.

        A token with nothing to match by is inserted under a new id. A token with an id only updates
        the stored token of that id: a token deleted meanwhile (a logout while its refresh was in
        flight) stays deleted, and the save is refused. Newer values win (``matching.save_guards``):
        the caller's token is then given the stored ones. A token that carries no access, refresh or
        grant token only updates a stored one; with none stored it is refused.
        """
        self._save(token, restore=False)

    def restore_token(self, token: OAuthToken) -> None:
        """``save_token`` for tools that put tokens back from elsewhere (an import, a backup): a token
        with an id is inserted under it when no stored token has it, and its refresh token replaces
        the stored one."""
        self._save(token, restore=True)

    def _save(self, token: OAuthToken, *, restore: bool) -> None:
        fields = token_fields(token)
        match = match_filter(fields)
        insertable = any(key in fields for key in _TOKEN_VALUES)
        if not insertable and match is None:
            raise store_error("cannot save a token that has no id, user name, access, refresh or grant token")
        by_id = "_id" in fields and not restore
        new_login = not by_id and "refresh_token" in fields and "refresh_token" not in (match or {})
        # A new login's save reads what it replaces in its own update, to retire it (``displaced.py``).
        rules = _Rules(by_id=by_id, new_login=new_login, displacing=new_login and not restore and self.retire_replaced)
        new_id = fields.get("_id") or new_token_id()  # drawn once: a retried save reuses it
        ticket = self.cache.ticket() if self.cache is not None else None
        document, stored_won, before, written_at = self.call(
            "save the token", lambda: self._upsert(fields, match, insertable and not by_id, new_id, rules, ticket),
            write=True, unknown_outcome=_SAVE_AGAIN)
        if self.cache is not None:
            if document is not None:
                self._remember(ticket, document, None if stored_won else written_at)
            elif "_id" in fields:
                self.cache.evict(fields["_id"])
        if document is not None and "refresh_token" in fields and self.cold_starts.held:
            self.cold_starts.release(self._blind(fields["refresh_token"]))  # this caller's first refresh is saved
        if document is None:
            if by_id:
                raise UnknownToken(f"no stored token has id {fields['_id']!r} (deleted, or never stored): the token "
                                   "must be authorized again (a new grant token)")
            raise store_error(
                "no stored token matches this one, and it has no access, refresh or grant token to store"
            )
        if stored_won:  # newer values were stored meanwhile: they stay, and the caller goes on with them
            adopt(token, document)
        else:
            fill_token(token, document)
            if not restore and fields.keys() >= _REFRESHED:  # a new access token: a refresh or a grant exchange
                self.record_event(document, "refreshed", _refreshed_detail(document, rules.new_login))
            replaced = (before or {}).get("refresh_token")
            if isinstance(replaced, str) and replaced != fields["refresh_token"]:
                self.retirements.keep(before or {}, replaced, exchanged_at(token))
        log.debug("saved token %s", document["_id"])

    def find_token_by_id(self, id: str) -> OAuthToken:
        """The stored token with this id, as a complete OAuthToken. An unknown (or deleted) id
        raises, as in the SDK's own stores: the SDK then asks Zoho nothing."""
        token_id = check_text("id", id, required=True)
        query = {"_id": token_id}
        cached = self._cached(query)
        if cached is not None:
            return document_to_token(cached)
        document, ticket = self._find_raw(query, action="find the token by id")
        if document is None:
            raise UnknownToken(f"no stored token has id {token_id!r}: it was deleted, or never stored")
        document, lease = self._coordinated(document)
        if document is None:
            raise UnknownToken(f"no stored token has id {token_id!r}: it was deleted meanwhile")
        opened = self.open_document(document)
        self._remember(ticket, opened)
        return self._watched(document_to_token(opened), document, lease)

    def get_tokens(self) -> list[OAuthToken]:
        """Every stored token. Reads the whole collection: for tools, not for request paths."""
        # Reading every document may take longer than one attempt's bound: each batch has the
        # client's socket timeout instead.
        documents = self.call("list the tokens", lambda: list(self._tokens(reading=True).find({}, projection=_PROJECTION)),
                              bounded=False)
        return [document_to_token(self.open_document(document)) for document in documents]

    def delete_token(self, id: str) -> None:
        """Delete one token; an unknown id is an error, as in the SDK's FileStore."""
        token_id = check_text("id", id, required=True)
        attempts = 0

        def delete() -> dict[str, Any] | None:
            nonlocal attempts
            attempts += 1
            # One round trip that also names the person, for the history.
            gone = self._tokens().find_one_and_delete({"_id": token_id}, projection={"user_name": True})
            # Nothing to delete on a later attempt: an earlier one whose answer was lost did it.
            return gone if gone is not None or attempts == 1 else {"_id": token_id}

        try:
            deleted = self.call("delete the token", delete, write=True, unknown_outcome=_TRY_AGAIN)
        finally:
            if self.cache is not None:
                self.cache.evict(token_id)  # whatever the outcome: this process never serves it again
        if not deleted:
            raise store_error(f"no stored token has id {token_id!r}")
        self.record_event(deleted, "deleted", "deleted by the application (the SDK's delete_token: a logout)")
        log.debug("deleted token %s", token_id)

    def delete_tokens(self) -> None:
        """Delete every token. Deletes documents, never the collection, so the indexes stay."""
        try:
            self.call("delete all tokens", lambda: self._tokens().delete_many({}), write=True, unknown_outcome=_TRY_AGAIN)
        finally:
            if self.cache is not None:
                self.cache.clear()

    # -- for tools ---------------------------------------------------------------------------

    def find_document(self, token: OAuthToken) -> dict[str, Any] | None:
        """The stored document ``token`` matches (same rules as find_token), opened, or None."""
        query = match_filter(token_fields(token))
        document, _ = self._find_raw(query)
        return None if document is None else self.open_document(document, found_by=query)

    def holding(self, field: str, value: str) -> dict[str, Any]:
        """The filter for the stored token that holds ``value`` in ``field`` (a refresh token, say):
        through its blind index with encryption on. An operator's delete compares what it checked."""
        return self._lookup({field: check_text(field, value, required=True)})

    def open_document(self, document: dict[str, Any], found_by: dict[str, Any] | None = None) -> dict[str, Any]:
        """A stored document with its secrets in the clear; refuses clearly what it cannot open, a
        malformed document, and one found through a blind index that is not its own."""
        opened = refuse_malformed(open_or_refuse(self.cipher, document))
        if self.cipher is not None and found_by is not None:
            check_found(opened, found_by)
        return opened

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> MongoTokenStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop revoking replaced refresh tokens (those not yet sent wait for ``retry_displaced``;
        one in flight ends first, within ``failover_wait``, so its event is kept), write the
        pending history events (bounded by ``failover_wait``), leave the change stream, then close
        the client if the store created it."""
        self.retirements.close()
        self.retirements.wait(self.failover_wait)
        self.history.close(self.failover_wait)
        if self.cache is not None:
            self.cache.close()
        super().close()

    def wait_for_retirements(self, timeout: float = 30.0) -> bool:
        """Wait until every revoke of a refresh token a new login replaced has ended (revoked, or
        left for cleanup) and its history event is written; whether they did within ``timeout``
        seconds. For tests and shutdowns."""
        deadline = time.monotonic() + timeout
        ended = self.retirements.wait(timeout)
        return self.history.flush(max(deadline - time.monotonic(), 0.001)) and ended

    def flush_events(self, timeout: float | None = None) -> bool:
        """Wait until the history events recorded so far are written (or failed, with a warning);
        True when that happened within ``timeout`` seconds."""
        return self.history.flush(timeout)

    def cache_stats(self) -> dict[str, Any]:
        """What the read cache and the history writer did: ``hits``, ``misses``, ``entries``,
        ``live`` (the change stream answers now), ``enabled``; ``events_pending``,
        ``events_written``, ``events_dropped``, ``events_failed``. Counts since the store was made."""
        cache = self.cache.stats() if self.cache is not None else \
            {"hits": 0, "misses": 0, "entries": 0, "live": False, "enabled": False}
        return cache | {"events_pending": self.history.pending, "events_written": self.history.written,
                        "events_dropped": self.history.dropped, "events_failed": self.history.failed}

    def __repr__(self) -> str:
        return f"MongoTokenStore(database={self.collection.database.name!r}, collection={self.collection.name!r})"

    # -- internals --------------------------------------------------------------------------

    def _tokens(self, *, reading: bool = False) -> Any:
        """The collection, with the indexes created once per store on first use. A read does not
        wait through an election to create them (the client sees secondaries but no primary): it
        goes on, and a later call creates them."""
        if not self._indexes_ready and not (reading and no_primary(self.client)):
            with self._lock:
                if not self._indexes_ready:
                    ensure_indexes(self.collection, backfill_keys=False)  # never a long walk on the SDK's path
                    if self.events is not None:
                        self._keep_events()
                    if self.cipher is not None and self._server_validates:
                        self.validated = self._require_sealed()
                    self._indexes_ready = True
        return self._reads() if reading else self.collection

    def _reads(self) -> Any:
        """Where a lookup reads. A client that leaves retrying reads to the store reads the primary
        while one is known, else a secondary; any other client reads with primaryPreferred (its
        own retry of a failed read must not wait for a new primary)."""
        if retrying():
            return self._after_failure
        if not self._client_bounds_first:
            return self._collection
        return self._primary if primary_known(self.client) else self._after_failure

    def _find_raw(self, query: dict[str, Any] | None,
                  action: str = "find the token") -> tuple[dict[str, Any] | None, Ticket | None]:
        """(the stored document, or None; the ticket that lets it fill the cache, or None when it
        may not: not cacheable, the change stream not live, or not read from the primary)."""
        if query is None:
            return None, None
        ticket = self.cache.ticket() if self.cache is not None and cache_key(query) is not None else None
        primary = [False]

        def read() -> dict[str, Any] | None:
            tokens = self._tokens(reading=True)
            # A secondary may lack a change the stream already showed: only a primary's read fills.
            if ticket is None or tokens is self._after_failure or tokens is self._primary:
                found = tokens.find_one(self._lookup(query), projection=_PROJECTION)
                # Read with PRIMARY: any other member refuses it.
                primary[0] = tokens is self._primary and not retrying() and primary_known(self.client)
                return found
            # primaryPreferred (a client that retries its own reads): judge the server that answered.
            before = self.client.topology_description
            cursor = tokens.find(self._lookup(query), projection=_PROJECTION).limit(-1)
            found = next(cursor, None)
            primary[0] = not retrying() and answered_by_primary(cursor.address, before, self.client.topology_description)
            return found

        document = self.call(action, read)
        return document, ticket if primary[0] else None

    def _find_primary(self, query: dict[str, Any]) -> dict[str, Any] | None:
        return self.call("find the token", lambda: self._primary.find_one(self._lookup(query), projection=_PROJECTION))

    def _cached(self, query: dict[str, Any] | None) -> dict[str, Any] | None:
        """The opened document the cache proves current for this lookup, or None (a miss)."""
        key = cache_key(query) if self.cache is not None else None
        return None if key is None or self.cache is None else self.cache.get(key, self._servable)

    def _servable(self, document: dict[str, Any]) -> bool:
        """Whether a cached token may be handed out without asking MongoDB: not inside the refresh
        window (its lease must run) and not leased or failing (the back-off must run)."""
        return all(document.get(field) is None for field in REFRESH_STATE) and \
            not needs_refresh(document, utcnow(), self.refresh_margin)

    def _remember(self, ticket: Ticket | None, document: dict[str, Any], written_at: Any = None) -> None:
        """Fill the cache with an opened document read (or, with ``written_at``, written) after
        ``ticket``; any older entry of that token goes when this one may not stay."""
        if self.cache is None:
            return
        kept = ticket is not None and self._servable(document) and self.cache.put(ticket, document, written_at)
        if not kept and "_id" in document:
            self.cache.evict(document["_id"])

    def _cold(self, fields: dict[str, Any], query: dict[str, Any] | None) -> bool:
        """Whether a lookup that found nothing is a first refresh to coordinate: the SDK will
        refresh this token (it has a refresh token and no access token), found by that refresh token."""
        refresh = fields.get("refresh_token")
        return bool(self.refresh_lease) and refresh is not None and query == {"refresh_token": refresh} and \
            "access_token" not in fields

    def _first_refresh_failed(self, digest: str, error: BaseException) -> BaseException | None:
        """A cold start's refresh failed: back the waiters off by its reason (``cold_start.py``)."""
        code = refresh_code(error)
        reason = reasons.of_error(error, code)
        return self.cold_starts.failed(digest, self.backoff, reason, reasons.why(reason, code or cause_of(error)))

    def _blind(self, refresh: str) -> str:
        """The refresh token's digest, a cold-start lease's key: keyed with encryption on."""
        if self.cipher is not None:
            return self.cipher.blind("refresh_token", refresh)
        return hashlib.sha256(refresh.encode()).hexdigest()

    def _lookup(self, match: dict[str, Any]) -> dict[str, Any]:
        """With encryption on, token values are found through their blind indexes."""
        return match if self.cipher is None else self.cipher.lookup(match)

    def _upsert(self, fields: dict[str, Any], found_by: dict[str, Any] | None, upsert: bool,
                new_id: str, rules: _Rules, ticket: Ticket | None = None
                ) -> tuple[dict[str, Any] | None, bool, dict[str, Any] | None, Any]:
        """One find_one_and_update: (the document, opened; whether it is the stored one, which won
        against this save; with ``rules.displacing``, the document as it was before this save,
        opened, or None; the write's cluster time when it may fill the cache, else None). A guard
        that held shows as nothing updated (a save by id) or as a duplicate-key error (an upsert):
        the stored document is read then. Any other duplicate is a race the server did not retry
        (retried once)."""
        self._tokens()
        self._refuse_plain_beside_sealed(upsert)
        tokens = self._primary
        refresh = fields.get("refresh_token")
        for round_ in (1, 2):
            absent: list[str] = []
            holds_refresh = None if refresh is None else {"refresh_token": refresh}
            if self.cipher is None:
                match = found_by or {"_id": new_id}
                # The matched key is left out of $set: an upsert copies it from the filter.
                values = {key: value for key, value in fields.items() if key not in match}
                sealed_guard = {KEY_ID_FIELD: {"$exists": False}}  # never overwrite what we cannot open
            else:
                match, values, absent, plain = self._sealed(fields, found_by, new_id)
                sealed_guard = {}
                if refresh is not None and not plain:  # the guard names the blind index, never the value
                    holds_refresh = self.cipher.blind_match("refresh_token", refresh)
            update: dict[str, Any] = {
                # A save carrying an access token is the SDK's save after a refresh (or a grant exchange).
                "$currentDate": {"updated_at": True} | ({REFRESHED_FIELD: True} if fields.keys() >= _REFRESHED else {}),
                "$setOnInsert": {"created_at": datetime.now(timezone.utc)},
                # A save ends any refresh lease on the token, and its failures: it works again.
                "$unset": dict.fromkeys([*CLEARED_BY_SAVE, *absent], ""),
            }
            # The user name's search keys ride on the same write (search.py), in both paths.
            name = values.get("user_name", fields.get("user_name"))
            if isinstance(name, str):
                values = values | {SEARCH_KEYS: search_keys(name)}
            elif "user_name" in absent:
                update["$unset"][SEARCH_KEYS] = ""
            if values:
                update["$set"] = values
            if refresh is not None:  # Zoho keeps 20 refresh tokens per user and client: count those seen
                update["$addToSet"] = {ISSUED_FIELD: self._digest(refresh)}
            if "_id" not in match:
                update["$setOnInsert"]["_id"] = new_id
            guards = save_guards(match, fields, holds_refresh, by_id=rules.by_id, new_login=rules.new_login)
            where = match | sealed_guard | ({"$and": guards} if guards else {})
            # With the cache on, a session gives the write's cluster time: the change stream's event
            # of this very write then leaves the filled entry in place (cache.py).
            session = self._write_session() if ticket is not None else None
            try:
                document, session = self._find_and_modify(tokens, where, update, upsert, match, session, rules.displacing)
            except DuplicateKeyError as error:
                # Handled below, outside this block: an error raised in here would carry the
                # server's message, which quotes the duplicate value, as its context.
                conflict: BaseException | None = redact(error)
            else:
                if rules.displacing:  # upserted: None is an insert
                    before = None if document is None else self.open_document(document)
                    # (What it made, from what it replaced and its values: ``_after``; as the cache's too.)
                    return _after(before, fields, absent, match.get("_id") or new_id), False, before, \
                        getattr(session, "operation_time", None)
                if document is not None:
                    return self.open_document(document), False, None, getattr(session, "operation_time", None)
                if not guards:
                    return None, False, None, None
                conflict = None
            stored = tokens.find_one(self._lookup(match), projection=_PROJECTION)
            if stored is not None:
                opened = self.open_document(stored)  # a sealed token this store cannot open: refused
                if stored_wins(opened, fields, by_id=rules.by_id, new_login=rules.new_login):
                    log.info("kept the newer values stored for %s", stored["_id"])
                    return opened, True, None, None
            if conflict is None:  # nothing updated: the token is gone (or changed, and is tried again)
                if stored is None:
                    return None, False, None, None
            elif round_ == 1:
                log.info("save hit a duplicate %s; retrying once", conflict_field(conflict))
        if conflict is None:  # it exists, yet neither round's guards held nor did it win: it keeps changing
            raise store_error(f"could not save the token: the stored token {match.get('_id')!r} changed while it was "
                              f"being saved; {_SAVE_AGAIN}")
        # Name the token in the way (mongomock's error names no field; ours names the plain one).
        holder = self.conflict(fields, (stored or {}).get("_id"))
        where_, field = (f" ({holder[0]})", holder[1]) if holder is not None else ("", conflict_field(conflict))
        raise store_error(f"could not save the token: another stored token{where_} already has this {field}", conflict)

    def _find_and_modify(self, tokens: Any, where: dict[str, Any], update: dict[str, Any], upsert: bool,
                         match: dict[str, Any], session: ClientSession | None,
                         displacing: bool) -> tuple[dict[str, Any] | None, Any]:
        """The save's one command (and the session it ran in, or none). A session the client can
        no longer use (every server lost in an election) is refused before anything is sent: then
        the command runs without it, as any other store call."""
        options: dict[str, Any] = {
            "upsert": upsert, "projection": _PROJECTION,
            # A new login reads what it replaces in the same atomic update: no other save can come
            # between (the document after it is the one before, with this save's values).
            "return_document": ReturnDocument.BEFORE if displacing else ReturnDocument.AFTER,
            # The guards make the filter more than an _id lookup: name the index, so the server
            # does not weigh other plans (the _id index always exists).
            "hint": [("_id", 1)] if set(match) == {"_id"} else None,
        }
        if session is not None:
            try:
                with session:
                    return tokens.find_one_and_update(where, update, session=session, **options), session
            except ConfigurationError:  # "Sessions are not supported": raised before sending
                pass
        return tokens.find_one_and_update(where, update, **options), None

    def _write_session(self) -> ClientSession | None:
        """An explicit session for a save (its ``operation_time`` is the write's cluster time), or
        none when the client knows of no server that has sessions (in an election, say): starting
        one would wait for a server, or fail, and the save must not. Without it, the save's entry
        is only not kept (``cache.put``)."""
        try:
            if self.client.topology_description.logical_session_timeout_minutes is None:
                return None
            return self.client.start_session(causal_consistency=False)
        except PyMongoError:
            return None

    def _digest(self, refresh: str) -> str:
        """A short name for a refresh token, to count the distinct ones a person was given (never the
        token: a hash, keyed with encryption on)."""
        if self.cipher is not None:
            return self.cipher.blind("refresh_token", refresh)[:16]
        return hashlib.sha256(refresh.encode()).hexdigest()[:16]

    def conflict(self, fields: dict[str, Any], own_id: str | None) -> tuple[str, str] | None:
        """(id, field) of another stored token that holds this token's user name or refresh token,
        which a save of it would collide with; None when there is none. Names, never values."""
        clauses: list[dict[str, Any]] = [{key: fields[key]} for key in ("user_name", "refresh_token") if key in fields]
        if not clauses:
            return None
        query = self._lookup({"$or": clauses} if len(clauses) > 1 else clauses[0])
        if own_id is not None:
            query = {"$and": [query, {"_id": {"$ne": own_id}}]}
        holder = self._primary.find_one(query, {"_id": True, "user_name": True})
        if holder is None:
            return None
        same_name = "user_name" in fields and holder.get("user_name") == fields["user_name"]
        return holder["_id"], "user_name" if same_name else "refresh_token"

    def prepare(self) -> bool | None:
        """Create the indexes now rather than on first use, and with a key the validator that keeps
        the collection encrypted: whether it is in place (None: no key, or mongomock)."""
        self.call("prepare the collection", lambda: self._tokens(), write=True)
        return self.validated

    def _require_sealed(self) -> bool:
        """With a key, the collection gets the validator that keeps it encrypted (``validation.py``),
        unless it has this package's already; the formats it records are the ones this store opens."""
        found = validator_of(self.collection)
        if found.formats is not None:  # ours: left as it is (a record of an upgrade is never undone)
            assert self.cipher is not None
            self.cipher.accept(found.formats)
            return True
        try:
            require_sealed(self.collection)
        except OperationFailure as error:
            if error.code != 13:  # Unauthorized: the user lacks collMod; anything else is a failure
                raise
            log.warning("this MongoDB user may not install the validator that keeps the collection encrypted "
                        "(collMod, in dbAdmin): run `zoho-mongo-store rotate-key` once as a user who may")
            return False
        return True

    def _refuse_plain_beside_sealed(self, may_insert: bool) -> None:
        """A store without the key must not write into a collection of encrypted tokens: its
        plaintext values cannot match the sealed ones, so it would insert plaintext copies beside
        them (and a rotation could never finish). An update never touches a sealed token (the
        save's filter); an insert is refused by the server where this package's validator is in
        place (read once per store), else here, by a read before the write (an index probe): on
        mongomock, which has no validators, and where the user could not install it. A probe that
        finds none is trusted for ``NO_SEALED_TRUSTED`` seconds, so a login stays one round trip:
        sealed tokens appear only when encryption is turned on, and a store started without the key
        beside them is refused at its first login."""
        if self.cipher is not None or not may_insert:
            return
        if self._validator_in_place is None:
            self._validator_in_place = self._server_validates and validator_of(self.collection).in_place
        if self._validator_in_place or time.monotonic() < self._no_sealed_until:
            return
        sealed = self._primary.find_one({"$or": [{field: {"$exists": True}} for field in BLIND_FIELDS.values()]},
                                        {"_id": True})
        if sealed is not None:
            raise store_error(PLAIN_BESIDE_SEALED)
        self._no_sealed_until = time.monotonic() + NO_SEALED_TRUSTED

    def _sealed(self, fields: dict[str, Any], found_by: dict[str, Any] | None,
                new_id: str) -> tuple[dict[str, Any], dict[str, Any], list[str], bool]:
        """(match by id, values to set, identity fields to unset, whether the stored document holds
        its refresh token in plain text: stored before encryption). Ciphertexts are bound to the
        token's id and identity, so the matching document is read first. Its secrets the token lacks
        are resealed too, and the identity they are bound to is written whole, so the document comes
        out consistent (wholly sealed with the current key) whatever a concurrent save changed."""
        assert self.cipher is not None
        stored = self._primary.find_one(self._lookup(found_by), projection=_PROJECTION) if found_by else None
        kept: dict[str, Any] = {}
        identity: dict[str, Any] = {}
        if stored is not None:
            opened = self.open_document(stored)  # refuses before anything is written
            kept = {key: opened[key] for key in SECRET_FIELDS if key not in fields and opened.get(key) is not None}
            identity = identity_of(opened)
        document_id = stored["_id"] if stored is not None else new_id
        identity = identity | identity_of(fields) | {"_id": document_id}
        values = {key: value for key, value in fields.items() if key not in SECRET_FIELDS} | identity
        values |= self.cipher.seal(kept | fields, identity, stored)  # at the version after the stored one
        values.pop("_id")
        plain = stored is not None and isinstance(stored.get("refresh_token"), str) and not is_sealed(stored["refresh_token"])
        return {"_id": document_id}, values, [name for name in IDENTITY_FIELDS[1:] if name not in identity], plain

    def _coordinated(self, document: dict[str, Any] | None) -> tuple[dict[str, Any] | None, datetime | None]:
        """(the document to hand the SDK, the refresh lease this caller holds or None): only a token
        in its refresh window is coordinated, so the common lookup stays one round trip."""
        if document is not None:
            refuse_malformed(document)  # before its dates are compared
        if document is None or not self.refresh_lease or not needs_refresh(document, utcnow(), self.refresh_margin):
            return document, None
        return coordinate(self._tokens(), document, _PROJECTION, self.refresh_lease, self.refresh_wait, self.backoff,
                          run=lambda work: self.call("coordinate the token refresh", work, write=True),
                          lapsed=lambda document: self.record_event(
                              document, "refresh-failed", "the refresh never finished: its lease lapsed (the worker "
                              f"stopped or hung): {reasons.UNREACHABLE}"), margin=self.refresh_margin)

    def _watched(self, token: OAuthToken, document: dict[str, Any], lease: datetime | None) -> OAuthToken:
        """The token handed to the SDK; when this caller holds the refresh lease, a refresh that
        fails is recorded at once (``lease.record_failure``), so nobody waits for the lease to lapse,
        and this caller gets ``RefreshFailing`` with its reason, as the others will. The store
        decides a refresh up to ``refresh_margin`` early: a token it leased that the SDK would not
        yet refresh by ``expires_in - now < 5000`` ms is handed out with its expiry that much
        earlier, so the SDK, deciding a moment later, refreshes it as the lease holder must."""
        if lease is not None:
            watch(token, lambda error: self._record_failure(document, lease, error))
            expiry = document.get("expiry_time")
            if isinstance(expiry, datetime) and expiry - utcnow() >= REFRESH_WINDOW:
                token.set_expires_in(date_to_expiry(expiry - self.refresh_margin))
        return token

    def _record_failure(self, document: dict[str, Any], lease: datetime,
                        error: BaseException | None = None) -> BaseException | None:
        """Record the failed refresh with its reason; the ``RefreshFailing`` its caller gets, or None
        when a save came in between (a new login, say): that failure is no longer the token's, and
        the SDK's own error goes on."""
        code = refresh_code(error)
        reason = reasons.of_error(error, code)
        retry: datetime | None = None
        try:
            retry = self.call("record the failed refresh",
                              lambda: record_failure(self._tokens(), document, lease, self.backoff, reason), write=True)
        except SDKException as failure:  # the lease lapses by itself, and then counts as failed
            log.warning("could not record the failed refresh of %s: %s", document["_id"], sentence(failure))
        else:
            if retry is None:
                return None
            log.info("the refresh of token %s failed (%s); callers back off", document["_id"], reason)
            self.record_event(document, "refresh-failed", failed_refresh_detail(error, reason))
        until = f"; callers fail at once until {iso(retry)}, then one tries again" if retry is not None else ""
        return RefreshFailing(f"the refresh of token {document['_id']!r} failed: {reasons.why(reason, code or cause_of(error))}"
                              f"{until}", reason, retry)

    def _keep_events(self) -> None:
        """The history's indexes; a failure is a warning, never a failed store call (events are
        written without them, and kept until a later store creates them)."""
        try:
            token_events.keep_events(self.events, self.settings.events_retention_days)
        except Exception as error:
            log.warning("could not create the token history's indexes in %s: %s", self.events.name,
                        token_events.describe(error))

    def record_event(self, document: dict[str, Any], event: str, detail: str, who: str | None = None) -> bool:
        """Add an event to the token's history (``events.py``; ``document`` gives its id and user
        name): queued for the history's writer thread (``event_writer.py``), never raising; a failed
        write is one warning. ``who`` defaults to this process (``events.sdk_actor``). False when it
        was dropped (the queue is full) or events are off."""
        if self.events is None:
            return False
        name = document.get("user_name")
        item = token_events.entry(document["_id"], name if isinstance(name, str) else None, event, detail,
                                  who or token_events.sdk_actor())
        return self.history.add(self.events, item)


@dataclass(frozen=True)
class _Rules:
    """How a save relates to what is stored (see ``matching.save_guards``); ``displacing``: a new
    login whose save reads the refresh token it replaces, to retire it (``displaced.py``)."""

    by_id: bool
    new_login: bool
    displacing: bool = False


def _after(before: dict[str, Any] | None, fields: dict[str, Any], absent: list[str], new_id: str) -> dict[str, Any]:
    """The document a save made, from the one before it and the save's values: what the update
    sets, without what it unsets (``CLEARED_BY_SAVE``; identity fields neither side holds)."""
    if before is None:
        return fields | {"_id": new_id}
    kept = {key: value for key, value in before.items() if key not in CLEARED_BY_SAVE and key not in absent}
    return kept | fields | {"_id": before["_id"]}


def _refreshed_detail(document: dict[str, Any], new_login: bool) -> str:
    """What a refreshing save stored, in words (dates only, never a value)."""
    expiry = document.get("expiry_time")
    until = f", valid until {expiry.strftime('%Y-%m-%dT%H:%M:%SZ')}" if isinstance(expiry, datetime) else ""
    return ("new login (a new refresh token)" if new_login else "new access token") + until


def refresh_code(error: BaseException | None) -> str | None:
    """Zoho's error code in a failed refresh (the SDK's ``INVALID TOKEN ERROR`` carries it as its
    message), or None when Zoho gave none."""
    if isinstance(error, SDKException) and getattr(error, "code", None) == "INVALID TOKEN ERROR":
        return token_events.zoho_code(getattr(error, "error_message", None))
    return None


def cause_of(error: BaseException | None) -> str | None:
    """The kind of a failure without Zoho's answer (``ConnectionError``...): a type name, never text."""
    cause = getattr(error, "cause", None) if isinstance(error, SDKException) else None
    return type(cause or error).__name__ if error is not None else None


def failed_refresh_detail(error: BaseException | None, reason: str | None = None) -> str:
    """Why a refresh failed, for the history: Zoho's error code when it answered with one, else the
    kind of failure; then its reason (``reasons.py``)."""
    code = refresh_code(error)
    if error is None:
        detail = "the refresh failed"
    elif code is not None:
        detail = f"Zoho refused the refresh ({code})"
    elif isinstance(error, SDKException) and getattr(error, "cause", None) is not None:
        detail = f"the call to Zoho failed ({cause_of(error)})"
    else:
        detail = f"the refresh failed ({type(error).__name__})"
    return detail + (f": {reason}" if reason else "")

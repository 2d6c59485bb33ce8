"""A re-login retires what it replaced: the refresh token a new login displaced is revoked at Zoho,
never while it is still stored anywhere.

A person who logs in again gets a new refresh token; the store keeps it (the newest login wins,
``matching.py``), and the one it replaced would stay live at Zoho: it still works, and counts toward
Zoho's 20 refresh tokens per user and client (the 21st login deletes the oldest, which may be the
one in use elsewhere). So a save that replaces a stored refresh token by a new login hands the one
it replaced, read in the same atomic update, to this module (``retire_replaced``, on by default):

1. It is kept at once in the store's own collection ``<collection>_displaced`` (sealed like any
   secret when encryption is on), so a process that stops before revoking it leaves it for cleanup.
2. A thread of the store revokes it (one bounded call, ``zoho_http.py``) at the accounts server the
   SDK used for that login, after the save and off the request's thread, once a refresh that was in
   flight with it (its lease, seen by the save) has had its time.
3. Just before revoking, the tokens are searched for it (an index probe): a refresh token stored
   again anywhere (an import, a backup restored) is never revoked; its entry is dropped.
4. Revoked, or unknown to Zoho (``invalid_token``): the entry goes, and the token's history gets a
   ``revoked`` event. Not revoked (Zoho unreachable, or it refused): the history gets
   ``revoke-failed``, and the entry stays with its error and when to try next, for
   ``retry_displaced`` (the operators' cleanup calls it).

A save that was no SDK login (an app storing a token it obtained itself) names no accounts server:
the store never sends a secret where the SDK did not, so that entry waits for ``retry_displaced``,
which sends it to the accounts server the operator names or to Zoho's own for the token's data
center, never elsewhere. With encryption on, the accounts server an entry names is bound to its
sealed refresh token (the associated data): an entry edited to send it elsewhere cannot be opened.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from pymongo import ASCENDING, IndexModel

from .clock import utc_naive, utcnow
from .crypto import KEY_ID_FIELD, Cipher, DecryptError, is_sealed
from .errors import is_store_error, sentence
from .settings import StoreSettings
from .urls import UrlError, http_url
from .zoho_http import AlreadyRevoked, ZohoError, revoke_refresh_token, zoho_accounts_url

T = TypeVar("T")


class MongoTokenStore(Protocol):
    """What this module uses of ``store.MongoTokenStore`` (which imports this module)."""

    settings: StoreSettings
    cipher: Cipher | None
    displaced: Any
    _primary: Any

    def call(self, action: str, work: Callable[[], T], *, write: bool = False, bounded: bool = True,
             unknown_outcome: str = ...) -> T: ...

    def holding(self, field: str, value: str) -> dict[str, Any]: ...

    def record_event(self, document: dict[str, Any], event: str, detail: str, who: str | None = None) -> bool: ...

    def flush_events(self, timeout: float | None = None) -> bool: ...

    def _digest(self, refresh: str) -> str: ...

log = logging.getLogger("mongo_store")

FIELD = "displaced_refresh_token"
"""The name a sealed displaced refresh token is bound to (with its entry's identity and accounts server)."""
EXCHANGED_AT = "_mongo_store_exchanged_at"
"""Set on an OAuthToken the SDK exchanged a grant token for: the accounts server it used."""
IDENTITY = ("user_name", "client_id", "api_domain", "redirect_url")
RETRY_FIRST, RETRY_LONGEST = timedelta(minutes=1), timedelta(days=1)
"""After a failed revoke, the next try of an entry waits this long, doubling, at most the longest."""
INDEXES = [
    IndexModel([("digest", ASCENDING)], name="digest_unique", unique=True),  # one entry per refresh token
    IndexModel([("next_try_at", ASCENDING)], name="next_try_at"),  # retry_displaced: the due ones
    IndexModel([("token_id", ASCENDING)], name="token_id"),  # a token's pending ones
]


@dataclass
class Retired:
    """What became of one displaced refresh token."""

    entry_id: str
    token_id: str
    user_name: str | None
    result: str
    """``revoked at <host>``; ``already revoked (...)``; ``kept: ...`` (stored again: never revoked);
    ``not revoked: <why>`` (left for the next retry)."""

    @property
    def done(self) -> bool:
        """Whether nothing is left to do for it (revoked, already revoked, or stored again)."""
        return not self.result.startswith("not revoked")


def note_exchange(token: Any) -> None:
    """Remember, on this token object, the accounts server the SDK exchanges its grant token at:
    every SDK line exchanges through the token object it looked up (``generate_access_token(token,
    url)`` in ``get_token``). The wrapper removes itself after that one call."""
    generate = type(token).generate_access_token

    def generate_access_token(oauth_token: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        token.__dict__.pop("generate_access_token", None)
        result = generate(token, oauth_token, url, *args, **kwargs)
        if isinstance(url, str):
            setattr(oauth_token, EXCHANGED_AT, url)
        return result

    token.generate_access_token = generate_access_token


def exchanged_at(token: Any) -> str | None:
    """The accounts server the SDK exchanged this token's grant at (``note_exchange``), or None."""
    url = getattr(token, "__dict__", {}).get(EXCHANGED_AT)
    return url if isinstance(url, str) else None


def _accounts_url_problem(url: str) -> str | None:
    """Why a refresh token may not be sent to ``url``, as the one parser that decides where a
    secret goes reads it (``urls.py``: the call to Zoho reads it the same), or None."""
    try:
        http_url(url)
    except UrlError as error:
        return str(error)
    return None


class Displaced:
    """One store's displaced refresh tokens: kept, then revoked by one background thread (started on
    first use, a daemon: a process that exits leaves its entries for ``retry_displaced``)."""

    def __init__(self, store: MongoTokenStore) -> None:
        self.store = store
        self._indexed = not store.settings.create_indexes
        self._cond = threading.Condition()
        self._queue: list[tuple[dict[str, Any], str]] = []
        self._busy = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def collection(self) -> Any:
        return self.store.displaced

    def keep(self, document: dict[str, Any], refresh: str, accounts_url: str | None) -> None:
        """A save by a new login replaced ``refresh``, stored in ``document`` (opened, as it was
        before that save): keep it, and revoke it soon if ``accounts_url`` (the SDK's) is known.
        Never raises: the save it follows succeeded."""
        try:
            entry = self._entry(document, refresh, accounts_url)
        except Exception as error:  # a sealing failure: nothing is kept, nothing sent
            log.warning("could not keep the refresh token a new login replaced on token %s: %s", document.get("_id"),
                        type(error).__name__)
            return
        try:
            self._ensure_indexes()
            self.store.call("keep the replaced refresh token", lambda: self.collection.update_one(
                {"digest": entry["digest"]}, {"$setOnInsert": entry}, upsert=True), write=True)
        except Exception as error:  # it is still revoked below, if it can be: only a retry would be lost
            log.warning("could not keep the refresh token a new login replaced on token %s for a retry: %s",
                        entry["token_id"], sentence(error) if is_store_error(error) else type(error).__name__)
        if accounts_url is None:
            log.info("token %s: the refresh token a new login replaced waits for cleanup (no SDK login named its "
                     "accounts server)", entry["token_id"])
            return
        with self._cond:
            self._queue.append((entry, refresh))
            self._busy += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mongo-store-retire", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait until every revoke this store started has ended (done, or left for a retry); whether
        they all did within ``timeout`` seconds. For tests, and a graceful shutdown."""
        with self._cond:
            return self._cond.wait_for(lambda: self._busy == 0, timeout)

    def close(self) -> None:
        """Stop the thread (entries not yet revoked stay for ``retry_displaced``)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    # -- internals ----------------------------------------------------------------------------------

    def _entry(self, document: dict[str, Any], refresh: str, accounts_url: str | None) -> dict[str, Any]:
        now = utcnow()
        lease = utc_naive(document.get("refresh_lease"))
        # A refresh in flight with this refresh token (its lease, as the save found it) is given its
        # time before it is revoked, so it is not refused by Zoho midway.
        not_before = lease if isinstance(lease, datetime) and lease > now else now
        entry: dict[str, Any] = {"_id": secrets.token_urlsafe(12), "token_id": document["_id"],
                                 **{name: document[name] for name in IDENTITY if isinstance(document.get(name), str)},
                                 "digest": self.store._digest(refresh), "accounts_url": accounts_url,
                                 "displaced_at": now, "next_try_at": not_before, "attempts": 0}
        cipher = self.store.cipher
        if cipher is None:
            entry["refresh_token"] = refresh
        else:
            entry["refresh_token"] = cipher.encrypt(refresh, entry, _bound(accounts_url))
            entry[KEY_ID_FIELD] = cipher.current.id
        return entry

    def _ensure_indexes(self) -> None:
        if not self._indexed:
            self.store.call("create the displaced refresh tokens' indexes",
                            lambda: self.collection.create_indexes(INDEXES), write=True)
            self._indexed = True

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._stop.is_set())
                if self._stop.is_set():
                    self._busy -= len(self._queue)
                    self._queue.clear()
                    self._cond.notify_all()
                    return
                entry, refresh = self._queue.pop(0)
            try:
                delay = (entry["next_try_at"] - utcnow()).total_seconds()
                if delay <= 0 or not self._stop.wait(delay):
                    retire(self.store, entry, refresh)
            except Exception as error:  # never the thread's end: the entry stays for a retry
                log.warning("could not retire the refresh token a new login replaced on token %s: %s",
                            entry["token_id"], sentence(error) if is_store_error(error) else type(error).__name__)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()


def _bound(accounts_url: str | None) -> str:
    """What a sealed displaced refresh token is bound to besides its entry's identity."""
    return f"{FIELD}\x00{accounts_url or ''}"


def open_entry(store: MongoTokenStore, entry: dict[str, Any]) -> str:
    """An entry's refresh token in the clear; refuses (``DecryptError``) a sealed one this store
    cannot open (no key, another key, edited: its accounts server, identity or value). A plain one
    (kept before encryption was turned on) reads as it is, as a plain token does."""
    value = entry.get("refresh_token")
    if not isinstance(value, str) or not value:
        raise DecryptError(f"displaced refresh token {entry.get('_id')} holds no refresh token")
    sealed = entry.get(KEY_ID_FIELD) is not None
    if store.cipher is None:
        if sealed or is_sealed(value):
            raise DecryptError(f"displaced refresh token {entry.get('_id')} is encrypted: configure its key in "
                               "ZOHO_MONGO_ENCRYPTION_KEY (or ZOHO_MONGO_KMS_KEY)")
        return value
    if not sealed and not is_sealed(value):  # kept before encryption was turned on (rotate-key seals it)
        return value
    if not sealed or not is_sealed(value):
        raise DecryptError(f"displaced refresh token {entry.get('_id')} mixes sealed and plain values: the entry was "
                           "altered")
    accounts_url = entry.get("accounts_url")
    return store.cipher.decrypt(value, entry, _bound(accounts_url if isinstance(accounts_url, str) else None))


def retire(store: MongoTokenStore, entry: dict[str, Any], refresh: str, *, accounts_url: str | None = None,
           who: str | None = None) -> Retired:
    """Revoke one displaced refresh token unless a stored token holds it, and record the outcome
    (the entry removed, or updated for the next retry; the token's history). ``accounts_url``: where
    to send it when the entry names no accounts server (the operator's); else Zoho's own server for
    its data center. Raises only a store error (its entry is then left as it was)."""
    token = {"_id": entry["token_id"], "user_name": entry.get("user_name")}
    outcome = Retired(entry["_id"], entry["token_id"], entry.get("user_name"), "")

    def forget() -> None:
        store.call("forget the replaced refresh token", lambda: store.displaced.delete_one({"_id": entry["_id"]}),
                   write=True)

    holder = store.call("look for the replaced refresh token among the tokens", lambda: store._primary.find_one(
        store.holding("refresh_token", refresh), {"_id": True}))
    if holder is not None:
        forget()
        outcome.result = f"kept: token {holder['_id']!r} holds it again, so it was not revoked"
        log.info("token %s: the refresh token a new login replaced is stored again (token %s): not revoked",
                 entry["token_id"], holder["_id"])
        return outcome
    recorded = entry.get("accounts_url")
    target = recorded if isinstance(recorded, str) else accounts_url or zoho_accounts_url(entry.get("api_domain"))
    problem = _accounts_url_problem(target) if target else "no accounts server is known for it (pass the accounts URL)"
    if problem is not None:
        outcome.result = f"not revoked: {problem}"
        return outcome
    assert target is not None
    try:
        host = revoke_refresh_token(target, refresh)
    except AlreadyRevoked as already:
        forget()
        outcome.result = f"already revoked ({already})"
        store.record_event(token, "revoked", f"the refresh token a new login replaced: {already}", who)
        return outcome
    except ZohoError as error:
        why = str(error)
        earlier = entry.get("attempts")
        attempts = (earlier if isinstance(earlier, int) and not isinstance(earlier, bool) else 0) + 1
        wait = min(RETRY_FIRST * 2 ** min(attempts - 1, 20), RETRY_LONGEST)
        store.call("record the failed revoke", lambda: store.displaced.update_one({"_id": entry["_id"]}, {"$set": {
            "attempts": attempts, "last_error": why, "last_try_at": utcnow(), "next_try_at": utcnow() + wait}}),
            write=True)
        outcome.result = f"not revoked: {why}"
        store.record_event(token, "revoke-failed", f"the refresh token a new login replaced was not revoked: {why}; "
                           "left for cleanup to retry", who)
        return outcome
    forget()
    outcome.result = f"revoked at {host}"
    store.record_event(token, "revoked", f"the refresh token a new login replaced: revoked at {host}", who)
    return outcome


def retry_displaced(store: MongoTokenStore, accounts_url: str | None = None, *, limit: int = 100,
                    who: str | None = None, now: datetime | None = None) -> list[Retired]:
    """Retry the displaced refresh tokens whose next try is due (at most ``limit``, oldest first):
    what the operators' ``cleanup`` calls, with its accounts URL and actor. An entry that cannot be
    opened is reported and left as it is."""
    due = utc_naive(now) or utcnow()
    entries = store.call("list the replaced refresh tokens to revoke", lambda: list(
        store.displaced.find({"next_try_at": {"$lte": due}}).sort("next_try_at", ASCENDING).limit(limit)))
    done = []
    for entry in entries:
        try:
            refresh = open_entry(store, entry)
        except DecryptError as error:
            done.append(Retired(entry["_id"], entry.get("token_id", "?"), entry.get("user_name"), f"not revoked: {error}"))
            continue
        done.append(retire(store, entry, refresh, accounts_url=accounts_url, who=who))
    if done:  # an operator reads the history next: its events are written before the answer
        store.flush_events(store.settings.failover_wait)
    return done


def pending(store: MongoTokenStore, token_id: str | None = None) -> int:
    """How many displaced refresh tokens wait to be revoked (of one token, or in all)."""
    query = {} if token_id is None else {"token_id": token_id}
    return int(store.call("count the replaced refresh tokens", lambda: store.displaced.count_documents(query)))


def reseal(store: MongoTokenStore) -> tuple[int, list[str]]:
    """Seal every entry not sealed by the current key (an older key, or plaintext kept before
    encryption was turned on) with it: ``rotate-key``'s part (``rotation.py``). (entries resealed,
    why others could not be)."""
    cipher = store.cipher
    assert cipher is not None
    resealed, failed = 0, []
    for entry in store.displaced.find({KEY_ID_FIELD: {"$ne": cipher.current.id}}):
        value = entry.get("refresh_token")
        try:
            refresh = open_entry(store, entry)
        except DecryptError as error:
            failed.append(str(error))
            continue
        accounts_url = entry.get("accounts_url")
        sealed = cipher.encrypt(refresh, entry, _bound(accounts_url if isinstance(accounts_url, str) else None))
        resealed += store.displaced.update_one({"_id": entry["_id"], "refresh_token": value},
                                               {"$set": {"refresh_token": sealed, KEY_ID_FIELD: cipher.current.id}}
                                               ).modified_count
    return resealed, failed

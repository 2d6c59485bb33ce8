"""Envelope encryption: the tokens are sealed with a data key that a KMS key wraps.

With ``kms_key`` set (``ZOHO_MONGO_KMS_KEY=aws-kms:alias/zoho-tokens``), the key that seals the
tokens is the collection's **data key**: 32 random bytes the KMS generates. It is stored only
wrapped, in ``<collection>_data_keys`` beside the tokens, one document per KMS key::

    {_id: "aws-kms:alias/zoho-tokens", data_key_id: "3fa1c2d9e0b7", wrapped: <bytes>, created_at: ...}

and unwrapped once, when the store starts (one KMS call), then kept in memory as the cipher's
derived keys: no KMS call per lookup or save, and a store keeps working through a KMS outage. The
sealed format, the blind indexes, the binding of a token's identity and the validator are those of
a local key (``crypto.py``, ``validation.py``); ``data_key_id`` is the key id its values carry.

The wrapped key is bound to an encryption context naming the database and collection, which the
KMS checks: a wrapped key copied beside another collection does not open there. Two processes
starting on an empty collection agree on one data key: each inserts its own under the KMS key's
name, one insert wins, and the loser reads the winner's and unwraps it.

Old KMS keys (``old_kms_keys``) unwrap their own data keys during a rotation, as old local keys
open their values; ``rotate-key`` reseals every token with the current key (``rotation.py``), and
``rewrap`` wraps the current data key again under its KMS key (after the KMS key's own rotation)
without touching a token. A KMS that refuses, or cannot be reached, is one sentence naming KMS and
the key (``KmsError`` from the provider, ``kms.py``), never a secret or the wrapped key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol, TypeVar

from bson import Binary
from pymongo.errors import DuplicateKeyError

from .crypto import KMS_ENV, Cipher, Key, parse_key
from .errors import store_error
from .kms import DATA_KEY_BYTES, KeyProvider, KmsError, LocalKey, unlogged
from .settings import StoreSettings

log = logging.getLogger("mongo_store")
T = TypeVar("T")

KMS_EXTRA = "an aws-kms: key needs boto3, which is not installed: pip install 'zoho-mongo-store[kms]'"


def _aws(key: str) -> KeyProvider:
    try:
        from .aws_kms import AwsKms
    except ImportError as error:
        if (error.name or "").split(".")[0] in ("boto3", "botocore"):
            raise store_error(KMS_EXTRA) from None
        raise
    return AwsKms(key)


PROVIDERS: dict[str, Callable[[str], KeyProvider]] = {"aws-kms": _aws, "local": LocalKey}
"""Each ``<scheme>:`` a KMS key's text may start with, and what makes its provider from the rest."""


def register_provider(scheme: str, factory: Callable[[str], KeyProvider]) -> None:
    """Let ``ZOHO_MONGO_KMS_KEY=<scheme>:<key>`` name a provider of yours (``factory(key)`` makes it)."""
    PROVIDERS[scheme] = factory


def provider_for(value: str | KeyProvider) -> KeyProvider:
    """The provider a KMS key setting names (the setting's parser checked its form)."""
    if isinstance(value, KeyProvider):
        return value
    scheme, _, key = value.partition(":")
    factory = PROVIDERS.get(scheme)
    if factory is None:
        raise store_error(f"the KMS key names the unknown key provider {scheme!r}: this store knows "
                          f"{', '.join(sorted(PROVIDERS))} (envelope.register_provider adds one)")
    try:
        return factory(key)
    except KmsError as error:
        raise store_error(f"the KMS key cannot be used: {error}") from None


class Store(Protocol):
    """What this module uses of a store (``store.MongoTokenStore``)."""

    settings: StoreSettings
    collection: Any
    data_keys: Any

    def call(self, action: str, work: Callable[[], T], *, write: bool = False, bounded: bool = True,
             unknown_outcome: str = ...) -> T: ...


def context_of(tokens: Any) -> dict[str, str]:
    """The encryption context of the data key of the collection ``tokens``: the KMS binds the wrapped
    key to it (and logs it in CloudTrail)."""
    return {"purpose": "zoho-mongo-store data key", "database": tokens.database.name, "collection": tokens.name}


@dataclass(frozen=True)
class Keys:
    """The keys a store is configured with, checked before it connects (no KMS call, no read)."""

    kms: KeyProvider | None
    """The KMS key that wraps the data key sealing the tokens, or None."""
    old_kms: tuple[KeyProvider, ...]
    local: Key | None
    """The local key sealing the tokens (``encryption_key``), or None."""
    old_local: tuple[Key, ...]

    @property
    def enveloped(self) -> bool:
        """Whether a KMS key is configured (current or old): the data keys must be read."""
        return self.kms is not None or bool(self.old_kms)


def configured(settings: StoreSettings) -> Keys:
    """The settings' keys: local ones parsed, KMS keys' providers made (an unknown provider, or the
    ``kms`` extra missing, is refused here)."""
    local = None if settings.encryption_key is None else parse_key(settings.encryption_key)
    return Keys(None if settings.kms_key is None else provider_for(settings.kms_key),
                tuple(provider_for(value) for value in settings.old_kms_keys),
                local, tuple(parse_key(key) for key in settings.old_encryption_keys))


def open_cipher(store: Store, keys: Keys) -> Cipher | None:
    """The store's cipher: the local keys as they are; with KMS keys, the data keys recorded beside
    the collection, unwrapped (the current one created if there is none). One read of the data
    keys' collection and one KMS call per KMS key configured; None without any key."""
    if not keys.enveloped:
        return None if keys.local is None else Cipher(keys.local, keys.old_local)
    records = {record["_id"]: record for record in _call(store, "read the data keys", lambda: list(store.data_keys.find({})))}
    context = context_of(store.collection)
    if keys.kms is not None:
        sealing = _current(store, keys.kms, records.get(keys.kms.name), context)
    else:
        assert keys.local is not None  # the settings refuse old keys without a current one
        sealing = keys.local
    opening = list(keys.old_local)
    for provider in keys.old_kms:
        record = records.get(provider.name)
        if record is None:
            log.warning("the old KMS key %s wraps no data key of %s: nothing to read with it", provider.name,
                        _where(store.collection))
            continue
        opening.append(_unwrap(store, provider, record, context))
    cipher = Cipher(sealing, opening)
    cipher.wrapped_by = {record.get("data_key_id"): name for name, record in records.items()
                         if isinstance(record.get("data_key_id"), str) and record["data_key_id"] not in cipher.keys}
    return cipher


def _current(store: Store, provider: KeyProvider, record: Mapping[str, Any] | None, context: dict[str, str]) -> Key:
    """The data key ``provider`` wraps: unwrapped, or made now (an insert that may lose a race to
    another process: then the winner's)."""
    if record is not None:
        return _unwrap(store, provider, record, context)
    data_key, wrapped = _ask(store, provider, "generate", lambda: provider.generate(context))
    key = _parse(store, provider, data_key)
    document = {"_id": provider.name, "data_key_id": key.id, "wrapped": Binary(bytes(wrapped)),
                "created_at": datetime.now(timezone.utc)}

    def insert() -> bool:
        try:
            store.data_keys.insert_one(document)
        except DuplicateKeyError:  # another process stored one first: theirs is the collection's
            return False
        return True

    if _call(store, "store the data key", insert, write=True):
        log.info("made the data key %s of %s, wrapped by KMS key %s", key.id, _where(store.collection), provider.name)
        return key
    winner = _call(store, "read the data key", lambda: store.data_keys.find_one({"_id": provider.name}))
    if winner is None:
        raise store_error(f"the data key of {_where(store.collection)} wrapped by KMS key {provider.name} was deleted "
                          "while this store started; start it again")
    log.info("another process stored the data key of %s first: using it", _where(store.collection))
    return _unwrap(store, provider, winner, context)


def _unwrap(store: Store, provider: KeyProvider, record: Mapping[str, Any], context: dict[str, str]) -> Key:
    wrapped = record.get("wrapped")
    if not isinstance(wrapped, bytes) or not wrapped:
        raise store_error(f"the data key of {_where(store.collection)} wrapped by KMS key {provider.name} is malformed "
                          "(its wrapped key is not bytes)")
    key = _parse(store, provider, _ask(store, provider, "unwrap", lambda: provider.unwrap(wrapped, context)))
    if record.get("data_key_id") != key.id:
        raise store_error(f"the data key of {_where(store.collection)} wrapped by KMS key {provider.name} is not the one "
                          "its record names: the record was altered")
    log.debug("opened the data key %s of %s with KMS key %s", key.id, _where(store.collection), provider.name)
    return key


def _parse(store: Store, provider: KeyProvider, data_key: bytes) -> Key:
    if not isinstance(data_key, bytes) or len(data_key) != DATA_KEY_BYTES:
        raise store_error(f"KMS key {provider.name} gave a data key of {_where(store.collection)} that is not "
                          f"{DATA_KEY_BYTES} bytes")
    return parse_key(data_key)


def _ask(store: Store, provider: KeyProvider, verb: str, work: Callable[[], T]) -> T:
    """A provider's call; its refusal, or any failure of a provider of yours, is the store's one
    sentence naming KMS, the key and the collection."""
    try:
        return work()
    except KmsError as error:
        reason = str(error)
    except Exception as error:  # a provider's own exception may quote what it was given
        reason = f"the provider failed ({type(error).__name__})"
    raise store_error(f"KMS key {provider.name} could not {verb} the data key of {_where(store.collection)}: {reason}")


def _call(store: Store, action: str, work: Callable[[], T], *, write: bool = False) -> T:
    """A store call on the data keys' collection, kept out of pymongo's DEBUG command log (which
    quotes what it sends and reads: here, the wrapped key)."""
    with unlogged("pymongo.command"):
        return store.call(action, work, write=write)


def _where(tokens: Any) -> str:
    return f"{tokens.database.name}.{tokens.name}"


def rewrap(store: Store, provider: KeyProvider | None) -> str:
    """Wrap the current data key again under its KMS key (after the KMS key's own rotation, its new
    material wraps it) and store it in place of the old wrapped form: no token changes. The
    sentence that says what happened."""
    if provider is None:
        raise store_error(f"re-wrapping needs the KMS key that wraps the data key in {KMS_ENV}")
    record = _call(store, "read the data key", lambda: store.data_keys.find_one({"_id": provider.name}))
    if record is None:
        raise store_error(f"KMS key {provider.name} wraps no data key of {_where(store.collection)}: nothing to re-wrap")
    context = context_of(store.collection)
    key_bytes = _ask(store, provider, "unwrap", lambda: provider.unwrap(record["wrapped"], context))
    key = _parse(store, provider, key_bytes)
    if record.get("data_key_id") != key.id:
        raise store_error(f"the data key of {_where(store.collection)} wrapped by KMS key {provider.name} is not the one "
                          "its record names: the record was altered")
    wrapped = _ask(store, provider, "re-wrap", lambda: provider.wrap(key_bytes, context))
    changed = _call(store, "store the re-wrapped data key", lambda: store.data_keys.update_one(
        {"_id": provider.name, "wrapped": record["wrapped"]},
        {"$set": {"wrapped": Binary(bytes(wrapped)), "rewrapped_at": datetime.now(timezone.utc)}}).modified_count,
        write=True)
    if not changed:
        return f"the data key {key.id} was re-wrapped by another run meanwhile; no token was touched"
    return f"re-wrapped the data key {key.id} of {_where(store.collection)} under KMS key {provider.name}; no token was touched"

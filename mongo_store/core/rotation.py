"""Re-sealing every token under the current key and format: resumable, and safe beside running workers.

Each document is opened with whichever configured key sealed it (or read as plaintext), sealed
with the current key, in the current format at its next version, and written back only if nobody
saved it meanwhile: the write's filter holds every secret and identity field exactly as read (each
save seals with fresh nonces, so any save since changes them), not only ``updated_at``, which two
saves within one millisecond share. A document that cannot be opened is reported and left as it
is. Interrupted, a second run picks up the documents still to do.

The current key may be a local key or a data key a KMS key wraps (``envelope.py``): moving from a
local key to a KMS key, back, or to another KMS key is the same pass (the old key, local or KMS,
configured beside the new one). Re-wrapping the data key under its own KMS key needs no pass
(``envelope.rewrap``).

A run that leaves nothing to do records the upgrade in the collection's validator
(``validation.py``): from then on the server and the store refuse the older formats, so values
written back from a backup made before cannot be served. That takes ``collMod``; a user without it
is told so, and the older formats stay accepted until a run by a user who may.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError, OperationFailure

from .crypto import FORMATS, IDENTITY_FIELDS, KEY_ID_FIELD, DecryptError, identity_of
from .displaced import reseal
from .errors import conflict_field, redact, store_error
from .mapping import SECRET_FIELDS, malformed
from .store import MongoTokenStore
from .validation import require_sealed


@dataclass
class Rotation:
    rotated: int = 0
    changed_meanwhile: int = 0
    failed: list[str] = field(default_factory=list)
    displaced: int = 0
    """Replaced refresh tokens waiting to be revoked (``displaced.py``), sealed again."""
    recorded: str | None = None
    """What became of the record that the older formats are refused: one sentence, or None when
    the run left tokens to do (nothing recorded)."""
    retired: list[str] = field(default_factory=list)
    """The old KMS keys configured whose data keys no token needs any more (a run that left nothing
    to do): the collection no longer needs them."""


def pending(store: MongoTokenStore) -> dict:
    """Documents not yet sealed by the current key (plaintext ones included)."""
    if store.cipher is None:
        raise store_error("rotation needs the new key in ZOHO_MONGO_ENCRYPTION_KEY or ZOHO_MONGO_KMS_KEY (and the old "
                          "ones in ZOHO_MONGO_OLD_ENCRYPTION_KEYS or ZOHO_MONGO_OLD_KMS_KEYS)")
    return {KEY_ID_FIELD: {"$ne": store.cipher.current.id}}


def rotate(store: MongoTokenStore, progress: Callable[[], None] | None = None) -> Rotation:
    query = pending(store)  # refuses a store without a key
    cipher, report = store.cipher, Rotation()
    assert cipher is not None
    with store.guard("rotate the encryption key"):
        for document in store.collection.find(query).sort("_id", 1):
            try:
                malformed_reason = malformed(document)
                if malformed_reason:
                    raise DecryptError(f"token {document['_id']!r} is malformed ({malformed_reason})")
                opened = cipher.open(document)
                secrets = {key: opened[key] for key in SECRET_FIELDS if opened.get(key) is not None}
                sealed = cipher.seal(secrets, identity_of(document), document)
                written = store.collection.update_one(unchanged(document), {"$set": sealed}).modified_count
            except DecryptError as error:
                report.failed.append(str(error))
            except DuplicateKeyError as error:  # e.g. a plaintext copy written by a store without the key
                report.failed.append(f"token {document['_id']}: another token already has its "
                                     f"{conflict_field(redact(error))}; resolve the duplicate, then run again")
            else:
                if written:
                    report.rotated += 1
                else:
                    report.changed_meanwhile += 1
            if progress is not None:
                progress()
        # The refresh tokens new logins replaced, still waiting to be revoked, are secrets too.
        report.displaced, failed = reseal(store)
        report.failed += failed
        if not report.failed and store.collection.find_one(query, {"_id": True}) is None:
            report.recorded = record_upgrade(store)
            report.retired = [provider.name for provider in store.keys.old_kms]
    return report


def unchanged(document: dict[str, Any]) -> dict[str, Any]:
    """The filter of ``document`` as it was read: its id, every secret and identity field as they
    were (``$eq``: a value read is never an operator; None matches absent or null), and
    ``updated_at``."""
    names = ("updated_at", *SECRET_FIELDS, *IDENTITY_FIELDS[1:], KEY_ID_FIELD)
    return {"_id": document["_id"]} | {name: {"$eq": document.get(name)} for name in names}


def record_upgrade(store: MongoTokenStore) -> str:
    """Record in the collection's validator that it accepts the current format only; the sentence
    that says what happened."""
    current = FORMATS[0]
    if not isinstance(store.client, MongoClient):
        return "mongomock has no validators: the older formats stay accepted there"
    try:
        require_sealed(store.collection, (current,))
    except OperationFailure as error:
        if error.code != 13:
            raise
        return (f"every token is in format {current}, but this MongoDB user may not record it (collMod, in "
                "dbAdmin): older formats stay accepted until rotate-key runs as a user who may")
    assert store.cipher is not None
    store.cipher.accept((current,))
    return f"recorded: this collection accepts format {current} only from now on (older values are refused)"


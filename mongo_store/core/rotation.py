"""Re-sealing every token under the current key: resumable, and safe beside running workers.

Each document is opened with whichever configured key sealed it (or read as plaintext), sealed
with the current key and written back only if nobody saved it meanwhile (its ``updated_at`` is
unchanged: a save since then already used the current key). A document that cannot be opened is
reported and left as it is. Interrupted, a second run picks up the documents still to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pymongo.errors import DuplicateKeyError

from .crypto import KEY_ID_FIELD, DecryptError, identity_of
from .displaced import reseal
from .errors import conflict_field, redact, store_error
from .mapping import SECRET_FIELDS, malformed
from .store import MongoTokenStore


@dataclass
class Rotation:
    rotated: int = 0
    changed_meanwhile: int = 0
    failed: list[str] = field(default_factory=list)
    displaced: int = 0
    """Replaced refresh tokens waiting to be revoked (``displaced.py``), sealed again."""


def pending(store: MongoTokenStore) -> dict:
    """Documents not yet sealed by the current key (plaintext ones included)."""
    if store.cipher is None:
        raise store_error("rotation needs the new key in ZOHO_MONGO_ENCRYPTION_KEY (and the old ones in "
                          "ZOHO_MONGO_OLD_ENCRYPTION_KEYS)")
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
                sealed = cipher.seal(secrets, identity_of(document))
                written = store.collection.update_one(
                    {"_id": document["_id"], "updated_at": document.get("updated_at")}, {"$set": sealed}
                ).modified_count
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
    return report

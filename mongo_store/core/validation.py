"""The server keeps an encrypted collection encrypted: a collection validator (``$jsonSchema``'s
query form) that MongoDB checks on every insert and on every update of a document that meets it.

A document must either hold sealed secrets only, with the id of the key that sealed them, or hold
no secret at all. So a store without the key (a worker started before encryption was turned on, a
script) can insert no plaintext token and cannot turn a sealed one into plaintext, on every save,
at no round trip of its own: the server refuses with ``DocumentValidationFailure`` (121).
Documents stored before encryption (plaintext, so not meeting it) stay writable until they are
sealed (``validationLevel: moderate``), so turning encryption on and rotating stay resumable.
mongomock has no validators: there the store checks before it writes (``store.py``).
"""

from __future__ import annotations

from typing import Any

from pymongo.collection import Collection

from .crypto import KEY_ID_FIELD, LEGACY_PREFIX, PREFIX
from .mapping import SECRET_FIELDS

VALIDATION_FAILED = 121
"""MongoDB's DocumentValidationFailure."""


def sealed_shape() -> dict[str, Any]:
    """The validator: every secret sealed and a key id beside them, or no secret at all."""
    sealed = {"$regex": f"^({PREFIX}|{LEGACY_PREFIX})"}
    return {"$or": [
        {"$and": [{KEY_ID_FIELD: {"$type": "string"}},
                  *({"$or": [{field: {"$exists": False}}, {field: sealed}]} for field in SECRET_FIELDS)]},
        {"$and": [{field: {"$exists": False}} for field in SECRET_FIELDS]},
    ]}


def require_sealed(collection: Collection) -> None:
    """Install the validator on the collection (it must exist; the store's indexes create it).
    Needs the collMod privilege (``dbAdmin``): readWrite alone is refused with Unauthorized."""
    collection.database.command("collMod", collection.name, validator=sealed_shape(),
                                validationLevel="moderate", validationAction="error")


def requires_sealed(collection: Collection) -> bool:
    """Whether the collection already has the validator."""
    found = collection.database.list_collections(filter={"name": collection.name})
    options = next(iter(found), {}).get("options", {})
    return options.get("validator") == sealed_shape()

"""The server keeps an encrypted collection encrypted: a collection validator (``$jsonSchema``) that
MongoDB checks on every insert and on every update of a document that meets it.

A document must either hold sealed secrets only (strings in one of the formats the collection
accepts, not an array or anything else holding one), with the id of the key that sealed them, or
hold no secret at all. So a store without the key (a worker started before encryption was turned
on, a script) can insert no plaintext token and cannot turn a sealed one into plaintext, on every
save, at no round trip of its own: the server refuses with ``DocumentValidationFailure`` (121).
Documents stored before encryption (plaintext, so not meeting it) stay writable until they are
sealed (``validationLevel: moderate``), so turning encryption on and rotating stay resumable.

The validator is also the collection's record of which sealed formats it accepts
(``crypto.FORMATS``): every one until ``rotate-key`` has upgraded every token, then the current
one only (``rotation.py``). A writer with readWrite cannot change a validator (that takes
``collMod``), so it cannot take that record back, and the server refuses the old formats it would
write back from a backup; the keyed store reads the record and refuses them too. mongomock has no
validators: there the store checks before it writes (``store.py``), and nothing is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymongo.collection import Collection

from .crypto import FORMATS, KEY_ID_FIELD
from .mapping import SECRET_FIELDS

VALIDATION_FAILED = 121
"""MongoDB's DocumentValidationFailure."""
TITLE = "zoho-mongo-store: sealed tokens"
"""Names the validator as this package's, whatever formats a later version records in it."""
_FORMATS_SAID = "accepted formats: "


def sealed_shape(formats: Sequence[str] = FORMATS) -> dict[str, Any]:
    """The validator: every secret a string sealed in one of ``formats``, and a key id beside them;
    or no secret at all. ``$jsonSchema``'s ``bsonType``, unlike the query form's ``$regex`` and
    ``$type``, does not match an array holding such a string."""
    secret = {"bsonType": "string", "pattern": "^(" + "|".join(f"{name}:" for name in formats) + ")"}
    return {"$jsonSchema": {
        "title": TITLE,
        "description": _FORMATS_SAID + " ".join(formats),
        "anyOf": [
            {"required": [KEY_ID_FIELD],
             "properties": {KEY_ID_FIELD: {"bsonType": "string"}, **dict.fromkeys(SECRET_FIELDS, secret)}},
            {"not": {"anyOf": [{"required": [field]} for field in SECRET_FIELDS]}},
        ],
    }}


def _query_shape() -> dict[str, Any]:
    """0.2's validator (the query form), which let an array holding a sealed string through: a
    keyed store with ``collMod`` replaces it."""
    sealed = {"$regex": "^(zms2:|zms1:)"}
    return {"$or": [
        {"$and": [{KEY_ID_FIELD: {"$type": "string"}},
                  *({"$or": [{field: {"$exists": False}}, {field: sealed}]} for field in SECRET_FIELDS)]},
        {"$and": [{field: {"$exists": False}} for field in SECRET_FIELDS]},
    ]}


@dataclass(frozen=True)
class Validator:
    """What the collection's validator says: whether one of this package's is in place (any
    version: each refuses plaintext), and the sealed formats it accepts (None for 0.2's, which
    does not say and is replaced)."""

    in_place: bool
    formats: tuple[str, ...] | None

    @property
    def upgraded(self) -> bool:
        """Whether ``rotate-key`` recorded that no older format is accepted any more."""
        return self.formats is not None and FORMATS[0] in self.formats and len(self.formats) < len(FORMATS)


def validator_of(collection: Collection) -> Validator:
    """The collection's validator as this package reads it (``listCollections``: readable with the
    ``read`` role)."""
    found = collection.database.list_collections(filter={"name": collection.name})
    validator = next(iter(found), {}).get("options", {}).get("validator")
    schema = validator.get("$jsonSchema") if isinstance(validator, dict) else None
    if isinstance(schema, dict) and schema.get("title") == TITLE:
        said = str(schema.get("description", ""))
        formats = tuple(said.removeprefix(_FORMATS_SAID).split()) if said.startswith(_FORMATS_SAID) else ()
        return Validator(True, formats)
    return Validator(validator == _query_shape(), None)


def require_sealed(collection: Collection, formats: Sequence[str] = FORMATS) -> None:
    """Install the validator accepting ``formats`` (the collection must exist; the store's indexes
    create it). Needs the collMod privilege (``dbAdmin``): readWrite alone is refused with
    Unauthorized (13)."""
    collection.database.command("collMod", collection.name, validator=sealed_shape(formats),
                                validationLevel="moderate", validationAction="error")


def requires_sealed(collection: Collection) -> bool:
    """Whether the collection has this package's validator (any version of it)."""
    return validator_of(collection).in_place

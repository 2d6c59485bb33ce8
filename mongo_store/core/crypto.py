"""Encryption at rest, opt-in: configure a key and the secrets are stored sealed.

client_secret, refresh, access and grant tokens are sealed with AES-256-GCM (``cryptography``),
each value with a fresh 96-bit nonce. A sealed value names its format, its key and its version
(``zms3:<key id>:<version>:<base64 nonce+ciphertext>``), and all of them are bound (the associated
data) together with its field name and the token's identity: its id, user name, client id,
api_domain and redirect URL. So a value copied to another document or field fails authentication,
and so does every secret of a token whose user name, client id, data center or redirect URL was
changed without the key, and a value relabelled as another format or version; a plaintext secret
in a sealed token is refused too (``open``). The version counts the token's saves: every save
reseals all of its values under the next one, so every value of a document comes from one save,
and a value of an older save written back beside newer ones is refused.

Older formats (``FORMATS``): ``zms2:`` (0.2: bound to the field and identity, no version) and
``zms1:`` (0.1: bound to the id and field only) still open until ``rotate-key`` has upgraded a
collection and recorded it in the collection's validator (``validation.py``); the store then
refuses them (``Cipher.accept``). Lookups by access, refresh or grant token use a keyed HMAC of the
value (a blind index, ``<field>_hmac``) whose key is derived separately from the encryption key.
Documents carry the id of the key that sealed them (an id per format: a document in an older
format counts as not yet rotated), so a store without that key refuses them with a clear error
instead of returning garbage.

Keys: 32 random bytes, base64-encoded, in ``ZOHO_MONGO_ENCRYPTION_KEY`` (or ``encryption_key=``);
during a rotation the previous ones go in ``ZOHO_MONGO_OLD_ENCRYPTION_KEYS`` (comma-separated). With
envelope encryption (``ZOHO_MONGO_KMS_KEY``, ``envelope.py``) the key is the collection's data key,
unwrapped by a KMS when the store starts: the same 32 bytes, sealing in the same format.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import store_error
from .mapping import SECRET_FIELDS

FORMATS = ("zms3", "zms2", "zms1")
"""Every sealed format this version opens, newest (the one it seals in) first."""
PREFIX = "zms3:"
V2_PREFIX = "zms2:"
"""0.2's values: bound to the field and the token's identity, without a version."""
LEGACY_PREFIX = "zms1:"
"""0.1's values: bound to the document id and field only."""
MAX_VERSION = 2 ** 62
IDENTITY_FIELDS = ("_id", "user_name", "client_id", "api_domain", "redirect_url")
"""What every sealed secret of a token is bound to, besides its field name."""
KEY_ENV, OLD_KEYS_ENV = "ZOHO_MONGO_ENCRYPTION_KEY", "ZOHO_MONGO_OLD_ENCRYPTION_KEYS"
KMS_ENV, OLD_KMS_ENV = "ZOHO_MONGO_KMS_KEY", "ZOHO_MONGO_OLD_KMS_KEYS"
KEY_ID_FIELD = "enc_key_id"
BLIND_FIELDS = {field: f"{field}_hmac" for field in ("access_token", "refresh_token", "grant_token")}
GENERATE = "python -c \"import os, base64; print(base64.b64encode(os.urandom(32)).decode())\""


class DecryptError(Exception):
    """A stored value that cannot be opened: unknown key, wrong key, or tampered with."""


@dataclass(frozen=True, repr=False)
class Key:
    id: str
    """The key's id in the current format (``zms3``): its values and documents name it."""
    v2_id: str
    """The id 0.2 gave this key: its ``zms2:`` values and documents name it."""
    legacy_id: str
    """The id 0.1 gave this key: its ``zms1:`` values and documents name it."""
    aead: AESGCM
    mac: bytes

    def id_for(self, format: str) -> str:
        return {"zms3": self.id, "zms2": self.v2_id, "zms1": self.legacy_id}[format]

    def __repr__(self) -> str:  # never the blind-index key
        return f"Key(id={self.id!r})"


def _as_key(key: str | bytes | Key) -> Key:
    return key if isinstance(key, Key) else parse_key(key)


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=b"zoho-mongo-store/" + purpose).derive(secret)


def parse_key(text: str | bytes) -> Key:
    """A key from its base64 text (or 32 raw bytes): encryption, blind-index and id keys derived apart."""
    try:
        secret = text if isinstance(text, bytes) and len(text) == 32 else base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError):
        secret = b""
    if len(secret) != 32:
        raise store_error(f"an encryption key must be 32 random bytes, base64-encoded; generate one with: {GENERATE}")
    return Key(id=_derive(secret, b"key-id/3")[:6].hex(), v2_id=_derive(secret, b"key-id/2")[:6].hex(),
               legacy_id=_derive(secret, b"key-id")[:6].hex(),
               aead=AESGCM(_derive(secret, b"aes-256-gcm")), mac=_derive(secret, b"blind-index"))


def _associated(document_id: str, field: str) -> bytes:
    """0.1's associated data."""
    return f"{document_id}\x00{field}".encode()


def _bound(identity: dict[str, Any], field: str) -> bytes:
    """0.2's associated data: the field and the token's identity, unambiguously."""
    return json.dumps([field, *(identity.get(name) for name in IDENTITY_FIELDS)], separators=(",", ":")).encode()


def _bound_v3(identity: dict[str, Any], field: str, key_id: str, version: int) -> bytes:
    """The associated data of a sealed value: its format, key id and version, its field and the
    token's identity, unambiguously (a JSON array)."""
    return json.dumps(["zms3", key_id, version, field, *(identity.get(name) for name in IDENTITY_FIELDS)],
                      separators=(",", ":")).encode()


@dataclass(frozen=True)
class Sealed:
    """A sealed value's parts, as read from its text (``Cipher.parse``)."""

    format: str
    key_id: str
    version: int | None
    """The token's save count it was sealed at (``zms3``); None for older formats."""
    payload: bytes


def version_of(document: dict[str, Any] | None) -> int:
    """The version a stored document's sealed values carry (0 when none does): the next save
    seals at the one after it."""
    for field in SECRET_FIELDS:
        value = (document or {}).get(field)
        if isinstance(value, str) and value.startswith(PREFIX):
            try:
                return Cipher.parse(value).version or 0
            except DecryptError:
                return 0
    return 0


def identity_of(document: dict[str, Any]) -> dict[str, Any]:
    """The identity fields a document holds."""
    return {name: document[name] for name in IDENTITY_FIELDS if document.get(name) is not None}


class Cipher:
    """Seals and opens token documents; ``current`` seals, every configured key opens."""

    def __init__(self, key: str | bytes | Key, old_keys: Sequence[str | bytes | Key] = ()) -> None:
        """``key`` seals; it and ``old_keys`` open. Each is base64 text, 32 raw bytes (a data key) or a
        parsed ``Key``."""
        self.current = _as_key(key)
        keys = [self.current, *map(_as_key, old_keys)]
        self.keys = {k.id: k for k in reversed(keys)}
        """Every configured key by its current id (the blind indexes are looked up under each)."""
        self._by_format = {(name, k.id_for(name)): k for name in FORMATS for k in reversed(keys)}
        self.formats: tuple[str, ...] = FORMATS
        """The sealed formats this cipher opens: all of ``FORMATS`` until the collection's record
        says otherwise (``accept``)."""
        self.plain_lookups = True
        """Whether a lookup by a token value also asks for the value in plain text, for tokens stored
        before encryption was turned on; off once the collection's record says ``rotate-key`` sealed
        every token (``accept``), so no query carries a secret (a slow-query log would show it)."""
        self.wrapped_by: dict[str, str] = {}
        """Data keys recorded beside the collection that no configured KMS key opened, by key id: the
        name of the KMS key that wraps each (``envelope.py``), for the error that says what to configure."""

    def accept(self, formats: Sequence[str]) -> None:
        """Open only values in ``formats`` (the collection's record, ``validation.py``): once
        ``rotate-key`` has upgraded a collection, an older format is refused, so values written back
        from a backup made before can no longer be served, and no token is left in plain text either
        (the validator refused plaintext since it was installed, and the rotation sealed the rest):
        lookups stop asking for plain values."""
        self.formats = tuple(name for name in FORMATS if name in formats)
        self.plain_lookups = not (FORMATS[0] in self.formats and len(self.formats) < len(FORMATS))

    def __repr__(self) -> str:
        return f"Cipher(current={self.current!r})"

    @classmethod
    def configured(cls, key: str | bytes | None = None, old_keys: Sequence[str | bytes] = ()) -> Cipher | None:
        """From the store's settings (``encryption_key``, ``old_encryption_keys``); None when no key
        is configured."""
        if key is None:
            if old_keys:
                raise store_error(f"old encryption keys are set but no current key: set {KEY_ENV}")
            return None
        return cls(key, old_keys)

    # -- values -------------------------------------------------------------------------------

    def encrypt(self, value: str, identity: dict[str, Any], field: str, version: int = 1) -> str:
        """``value`` sealed in the current format: ``zms3:<key id>:<version>:<base64>``."""
        nonce, key = os.urandom(12), self.current
        sealed = key.aead.encrypt(nonce, value.encode(), _bound_v3(identity, field, key.id, version))
        return f"{PREFIX}{key.id}:{version}:{base64.b64encode(nonce + sealed).decode()}"

    @staticmethod
    def parse(text: str) -> Sealed:
        """A sealed value's parts; ``DecryptError`` (naming no value) when it is not one."""
        format, _, rest = text.partition(":")
        parts = rest.split(":", 2 if format == "zms3" else 1)
        try:
            if format not in FORMATS or len(parts) != (3 if format == "zms3" else 2):
                raise ValueError
            version = None
            if format == "zms3":
                if not parts[1].isascii() or not parts[1].isdigit() or parts[1] != str(int(parts[1])) \
                        or not 0 < int(parts[1]) <= MAX_VERSION:
                    raise ValueError
                version = int(parts[1])
            return Sealed(format, parts[0], version, base64.b64decode(parts[-1], validate=True))
        except (ValueError, binascii.Error):
            raise DecryptError("not a valid sealed value") from None

    def decrypt(self, text: str, document: dict[str, Any], field: str) -> str:
        document_id = document["_id"]
        try:
            sealed = self.parse(text)
        except DecryptError:
            raise DecryptError(f"{field} of token {document_id} is not a valid sealed value") from None
        if sealed.format not in self.formats:
            raise DecryptError(f"{field} of token {document_id} is sealed in the older format {sealed.format}, which this "
                               "collection no longer accepts (rotate-key upgraded it): it was written back from "
                               "before the upgrade")
        key = self._by_format.get((sealed.format, sealed.key_id))
        if key is None:
            wrapper = self.wrapped_by.get(sealed.key_id)
            hint = (f" (its data key is wrapped by KMS key {wrapper}: name it in {KMS_ENV} or {OLD_KMS_ENV})"
                    if wrapper else "")
            raise DecryptError(f"{field} of token {document_id} was sealed with key {sealed.key_id}, which is not "
                               f"configured{hint}")
        if sealed.format == "zms3":
            assert sealed.version is not None
            associated = _bound_v3(identity_of(document), field, sealed.key_id, sealed.version)
        elif sealed.format == "zms2":
            associated = _bound(identity_of(document), field)
        else:
            associated = _associated(document_id, field)
        raw = sealed.payload
        try:
            return key.aead.decrypt(raw[:12], raw[12:], associated).decode()
        except (InvalidTag, ValueError):  # ValueError: truncated (a nonce too short), or not UTF-8
            raise DecryptError(f"{field} of token {document_id} failed authentication: it was tampered with, "
                               "moved from another token, the token's user name, client id, api_domain or "
                               "redirect URL was changed, or the key is wrong") from None

    def blind(self, field: str, value: str, key: Key | None = None) -> str:
        return hmac.new((key or self.current).mac, f"{field}\x00{value}".encode(), hashlib.sha256).hexdigest()

    # -- documents ----------------------------------------------------------------------------

    def seal(self, fields: dict[str, Any], identity: dict[str, Any],
             stored: dict[str, Any] | None = None) -> dict[str, Any]:
        """The secrets of ``fields`` sealed (bound to ``identity``: the token's id and identity
        fields as they will be stored) at the version after ``stored``'s (the document as read
        before this save, or None for a new one), their blind indexes, and the sealing key's id.
        Every secret the document will hold must be in ``fields``: they are one save's values."""
        sealed: dict[str, Any] = {}
        version = version_of(stored) + 1
        for field in SECRET_FIELDS:
            if field in fields:
                sealed[field] = self.encrypt(fields[field], identity, field, version)
                if field in BLIND_FIELDS:
                    sealed[BLIND_FIELDS[field]] = self.blind(field, fields[field])
        sealed[KEY_ID_FIELD] = self.current.id
        return sealed

    def open(self, document: dict[str, Any]) -> dict[str, Any]:
        """A stored document with its secrets in the clear. A plaintext document (stored before
        encryption was turned on) passes unchanged; in a sealed one every secret must be sealed,
        all in one format, and open under the token's identity as stored."""
        opened = {key: value for key, value in document.items() if key not in BLIND_FIELDS.values()}
        sealed_document = opened.pop(KEY_ID_FIELD, None) is not None
        present = [field for field in SECRET_FIELDS if opened.get(field) is not None]
        if not sealed_document:
            if not any(is_sealed(opened[field]) for field in present):
                return opened
            raise DecryptError(f"token {document['_id']} holds sealed values without the id of their key: "
                               "the document was altered")
        seals = set()
        for field in present:
            value = opened[field]
            if not is_sealed(value):
                raise DecryptError(f"{field} of token {document['_id']} is stored in plain text in an encrypted token: "
                                   "the document was altered")
            opened[field] = self.decrypt(value, document, field)
            parts = self.parse(value)
            seals.add((parts.format, parts.key_id, parts.version))
        if len({format for format, _, _ in seals}) > 1:
            raise DecryptError(f"token {document['_id']} mixes values sealed in two formats: the document was altered")
        if len(seals) > 1:  # every save reseals all of a token's values under one key and version
            raise DecryptError(f"token {document['_id']} mixes values of two saves (another key or version): an older "
                               "value was written back, the document was altered")
        return opened

    def blind_match(self, field: str, value: str) -> dict[str, Any]:
        """The filter for sealed documents holding this value: its blind index under every configured
        key, and nothing of the value itself."""
        return {BLIND_FIELDS[field]: {"$in": list(dict.fromkeys(self.blind(field, value, key) for key in self.keys.values()))}}

    def lookup(self, match: dict[str, Any]) -> dict[str, Any]:
        """A match filter on token values rewritten to their blind indexes, under every configured
        key (so lookups work throughout a rotation), and to the plain value for documents stored
        before encryption was turned on, until a rotation has sealed them all (``plain_lookups``)."""
        clauses = match.get("$or", [match])
        rewritten = []
        for clause in clauses:
            [(field, value)] = clause.items()
            if field in BLIND_FIELDS:
                rewritten += [self.blind_match(field, value), *([{field: value}] if self.plain_lookups else [])]
            else:
                rewritten.append(clause)
        return rewritten[0] if len(rewritten) == 1 else {"$or": rewritten}


def is_sealed(value: Any) -> bool:
    """Whether a stored value is in one of the sealed formats (not whether it opens)."""
    return isinstance(value, str) and value.startswith(tuple(f"{name}:" for name in FORMATS))


def check_found(opened: dict[str, Any], match: dict[str, Any]) -> None:
    """A document found through a blind index must hold the value looked up: a blind index copied
    from another document would otherwise hand out that document's tokens."""
    clauses = match.get("$or", [match])
    blind = [clause for clause in clauses if next(iter(clause)) in BLIND_FIELDS]
    if blind and not any(opened.get(field) == value for clause in blind for field, value in clause.items()):
        fields = " or ".join(next(iter(clause)) for clause in blind)
        raise store_error(f"token {opened['_id']} was found by its {fields} blind index, but does not hold that "
                          "value: the document was altered; refused")


def open_or_refuse(cipher: Cipher | None, document: dict[str, Any]) -> dict[str, Any]:
    """Open a stored document, or refuse it clearly: never hand the SDK a sealed value."""
    if cipher is None:
        if document.get(KEY_ID_FIELD) or any(is_sealed(document.get(field)) for field in SECRET_FIELDS):
            raise store_error(f"token {document['_id']} is encrypted: configure its key in {KEY_ENV} (or {KMS_ENV})")
        return document
    try:
        return cipher.open(document)
    except DecryptError as error:
        raise store_error(f"cannot decrypt: {error}") from None

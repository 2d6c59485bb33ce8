"""Encryption at rest, opt-in: configure a key and the secrets are stored sealed.

client_secret, refresh, access and grant tokens are sealed with AES-256-GCM (``cryptography``),
each value with a fresh 96-bit nonce and bound (the associated data) to its field name and to the
token's identity: its id, user name, client id, api_domain and redirect URL. So a value copied to
another document or field fails authentication, and so does every secret of a token whose user
name, client id, data center or redirect URL was changed without the key; a plaintext secret in a
sealed token is refused too (``open``). Values sealed by 0.1 (``zms1:``, bound to the id and field
only) still open and are resealed by ``rotate-key`` or their next save. Lookups by access,
refresh or grant token use a keyed HMAC of the value (a blind index, ``<field>_hmac``) whose key is
derived separately from the encryption key. Documents carry the id of the key that sealed them,
so a store without that key refuses them with a clear error instead of returning garbage.

Keys: 32 random bytes, base64-encoded, in ``ZOHO_MONGO_ENCRYPTION_KEY`` (or ``encryption_key=``);
during a rotation the previous ones go in ``ZOHO_MONGO_OLD_ENCRYPTION_KEYS`` (comma-separated).
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

PREFIX = "zms2:"
LEGACY_PREFIX = "zms1:"
"""0.1's values: bound to the document id and field only."""
IDENTITY_FIELDS = ("_id", "user_name", "client_id", "api_domain", "redirect_url")
"""What every sealed secret of a token is bound to, besides its field name."""
KEY_ENV, OLD_KEYS_ENV = "ZOHO_MONGO_ENCRYPTION_KEY", "ZOHO_MONGO_OLD_ENCRYPTION_KEYS"
KEY_ID_FIELD = "enc_key_id"
BLIND_FIELDS = {field: f"{field}_hmac" for field in ("access_token", "refresh_token", "grant_token")}
GENERATE = "python -c \"import os, base64; print(base64.b64encode(os.urandom(32)).decode())\""


class DecryptError(Exception):
    """A stored value that cannot be opened: unknown key, wrong key, or tampered with."""


@dataclass(frozen=True, repr=False)
class Key:
    id: str
    legacy_id: str
    """The id 0.1 gave this key: its ``zms1:`` values and documents name it."""
    aead: AESGCM
    mac: bytes

    def __repr__(self) -> str:  # never the blind-index key
        return f"Key(id={self.id!r})"


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
    return Key(id=_derive(secret, b"key-id/2")[:6].hex(), legacy_id=_derive(secret, b"key-id")[:6].hex(),
               aead=AESGCM(_derive(secret, b"aes-256-gcm")), mac=_derive(secret, b"blind-index"))


def _associated(document_id: str, field: str) -> bytes:
    """0.1's associated data."""
    return f"{document_id}\x00{field}".encode()


def _bound(identity: dict[str, Any], field: str) -> bytes:
    """The associated data of a sealed value: its field and the token's identity, unambiguously."""
    return json.dumps([field, *(identity.get(name) for name in IDENTITY_FIELDS)], separators=(",", ":")).encode()


def identity_of(document: dict[str, Any]) -> dict[str, Any]:
    """The identity fields a document holds."""
    return {name: document[name] for name in IDENTITY_FIELDS if document.get(name) is not None}


class Cipher:
    """Seals and opens token documents; ``current`` seals, every configured key opens."""

    def __init__(self, key: str | bytes, old_keys: Sequence[str | bytes] = ()) -> None:
        self.current = parse_key(key)
        keys = [self.current, *map(parse_key, old_keys)]
        self.keys = {k.legacy_id: k for k in reversed(keys)} | {k.id: k for k in reversed(keys)}

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

    def encrypt(self, value: str, identity: dict[str, Any], field: str) -> str:
        nonce = os.urandom(12)
        sealed = self.current.aead.encrypt(nonce, value.encode(), _bound(identity, field))
        return f"{PREFIX}{self.current.id}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, text: str, document: dict[str, Any], field: str) -> str:
        document_id = document["_id"]
        legacy = text.startswith(LEGACY_PREFIX)
        try:
            key_id, payload = text[len(PREFIX):].split(":", 1)
            raw = base64.b64decode(payload, validate=True)
        except (ValueError, binascii.Error):
            raise DecryptError(f"{field} of token {document_id} is not a valid sealed value") from None
        key = self.keys.get(key_id)
        if key is None:
            raise DecryptError(f"{field} of token {document_id} was sealed with key {key_id}, which is not configured")
        associated = _associated(document_id, field) if legacy else _bound(identity_of(document), field)
        try:
            return key.aead.decrypt(raw[:12], raw[12:], associated).decode()
        except (InvalidTag, ValueError):  # ValueError: truncated (a nonce too short), or not UTF-8
            raise DecryptError(f"{field} of token {document_id} failed authentication: it was tampered with, "
                               "moved from another token, the token's user name, client id, api_domain or "
                               "redirect URL was changed, or the key is wrong") from None

    def blind(self, field: str, value: str, key: Key | None = None) -> str:
        return hmac.new((key or self.current).mac, f"{field}\x00{value}".encode(), hashlib.sha256).hexdigest()

    # -- documents ----------------------------------------------------------------------------

    def seal(self, fields: dict[str, Any], identity: dict[str, Any]) -> dict[str, Any]:
        """The secrets of ``fields`` sealed (bound to ``identity``: the token's id and identity
        fields as they will be stored), their blind indexes, and the sealing key's id."""
        sealed: dict[str, Any] = {}
        for field in SECRET_FIELDS:
            if field in fields:
                sealed[field] = self.encrypt(fields[field], identity, field)
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
        formats = set()
        for field in present:
            value = opened[field]
            if not is_sealed(value):
                raise DecryptError(f"{field} of token {document['_id']} is stored in plain text in an encrypted token: "
                                   "the document was altered")
            formats.add(value[:len(PREFIX)])
            opened[field] = self.decrypt(value, document, field)
        if len(formats) > 1:
            raise DecryptError(f"token {document['_id']} mixes values sealed in two formats: the document was altered")
        return opened

    def blind_match(self, field: str, value: str) -> dict[str, Any]:
        """The filter for sealed documents holding this value: its blind index under every configured
        key, and nothing of the value itself."""
        return {BLIND_FIELDS[field]: {"$in": list(dict.fromkeys(self.blind(field, value, key) for key in self.keys.values()))}}

    def lookup(self, match: dict[str, Any]) -> dict[str, Any]:
        """A match filter on token values rewritten to their blind indexes, under every configured
        key (so lookups work throughout a rotation), and to the plain value for documents stored
        before encryption was turned on."""
        clauses = match.get("$or", [match])
        rewritten = []
        for clause in clauses:
            [(field, value)] = clause.items()
            if field in BLIND_FIELDS:
                rewritten += [self.blind_match(field, value), {field: value}]
            else:
                rewritten.append(clause)
        return rewritten[0] if len(rewritten) == 1 else {"$or": rewritten}


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith((PREFIX, LEGACY_PREFIX))


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
            raise store_error(f"token {document['_id']} is encrypted: configure its key in {KEY_ENV}")
        return document
    try:
        return cipher.open(document)
    except DecryptError as error:
        raise store_error(f"cannot decrypt: {error}") from None

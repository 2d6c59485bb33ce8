"""Key providers: what wraps a collection's data key (envelope encryption, ``envelope.py``).

A provider is a key kept somewhere the database cannot reach (a KMS key, a key you hold) and two
operations on a 32-byte data key: ``wrap`` it for storage beside the tokens and ``unwrap`` what was
stored, both bound to an encryption context (the database and collection) that the provider
checks. ``generate`` makes a new data key and its wrapped form; by default 32 random bytes, wrapped.

Two providers ship: ``aws-kms`` (``aws_kms.py``, the ``kms`` extra) and ``local``, a 32-byte key of
yours (the format of ``ZOHO_MONGO_ENCRYPTION_KEY``) that wraps with AES-256-GCM. Another KMS (Google
Cloud KMS, Azure Key Vault, HashiCorp Vault's transit engine) is a subclass with ``scheme``, ``key``,
``wrap`` and ``unwrap`` (docs/encryption.md shows one), passed as ``kms_key=`` or registered for the
environment variable with ``envelope.register_provider``.

A refusal is ``KmsError`` with a short phrase (``"the key is disabled"``) that names no secret: the
store turns it into its one sentence naming the provider's key.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DATA_KEY_BYTES = 32
"""A data key: 32 random bytes, from which the cipher derives its AES-256-GCM, blind-index and id keys."""
NOT_OPENED = ("the wrapped data key does not open under this key and encryption context: it was wrapped by another "
              "key, for another database or collection, or altered")


class KmsError(Exception):
    """A provider that refused or could not be reached: one short phrase, never a secret or a wrapped key."""


class KeyProvider(ABC):
    """A key that wraps data keys. ``scheme`` and ``key`` name it (``aws-kms:alias/zoho-tokens``):
    the name is stored beside the wrapped data key and shown in errors, so it must not be a secret."""

    scheme: ClassVar[str]
    key: str
    """The key as its provider names it (an id, an ARN, an alias): never secret material."""

    @property
    def name(self) -> str:
        """``<scheme>:<key>``: what the store records and every error names."""
        return f"{self.scheme}:{self.key}"

    @abstractmethod
    def wrap(self, data_key: bytes, context: Mapping[str, str]) -> bytes:
        """``data_key`` encrypted under this key, bound to ``context``; ``KmsError`` when refused."""

    @abstractmethod
    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        """The data key ``wrap`` (or ``generate``) made with this ``context``; ``KmsError`` otherwise:
        another key, another context, a changed byte, a key that may not be used."""

    def generate(self, context: Mapping[str, str]) -> tuple[bytes, bytes]:
        """A new data key and its wrapped form. A KMS that generates keys itself overrides it (AWS's
        ``GenerateDataKey``: one call instead of a local random key and ``Encrypt``)."""
        data_key = os.urandom(DATA_KEY_BYTES)
        return data_key, self.wrap(data_key, context)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


_quiet = threading.local()


class _Quiet(logging.Filter):
    """Drops a logger's records on a thread inside ``unlogged``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet, "depth", 0)


_QUIET = _Quiet()


@contextmanager
def unlogged(*loggers: str) -> Iterator[None]:
    """The records of ``loggers`` dropped on this thread while the block runs. Drivers log request
    and reply bodies at DEBUG (botocore: the plaintext data key and the wrapped one; pymongo: the
    wrapped one), which an application's DEBUG logging would print; other threads' records pass."""
    for name in loggers:
        logger = logging.getLogger(name)
        if _QUIET not in logger.filters:
            logger.addFilter(_QUIET)
    _quiet.depth = getattr(_quiet, "depth", 0) + 1
    try:
        yield
    finally:
        _quiet.depth -= 1


def canonical(context: Mapping[str, str]) -> bytes:
    """An encryption context as bytes, the same whatever the order of its items (associated data)."""
    return json.dumps(sorted(context.items()), separators=(",", ":")).encode()


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=b"zoho-mongo-store/" + purpose).derive(secret)


class LocalKey(KeyProvider):
    """A 32-byte key you hold (base64, as ``ZOHO_MONGO_ENCRYPTION_KEY``; ``kms_key="local:<key>"``)
    that wraps the data key with AES-256-GCM, the context as associated data. No KMS: the key is
    wherever you keep it. It is named by an id derived from it (``local:3fa1c2d9e0b7``), never by
    the key. Useful where a KMS is not (development, tests), and as the smallest provider to copy."""

    scheme = "local"

    def __init__(self, key: str | bytes) -> None:
        try:
            secret = key if isinstance(key, bytes) and len(key) == DATA_KEY_BYTES else base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError, TypeError):
            secret = b""
        if len(secret) != DATA_KEY_BYTES:
            raise KmsError("a local: key must be 32 random bytes, base64-encoded")
        self.key = _derive(secret, b"wrapping-key-id")[:6].hex()
        self._aead = AESGCM(_derive(secret, b"wrapping-key"))

    def wrap(self, data_key: bytes, context: Mapping[str, str]) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, data_key, canonical(context))

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:12], wrapped[12:], canonical(context))
        except (InvalidTag, ValueError):
            raise KmsError(NOT_OPENED) from None

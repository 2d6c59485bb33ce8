"""Every setting of the store, declared once: its keyword, environment variable, default, parser and
meaning, in one frozen object (``StoreSettings``) that ``MongoTokenStore`` and ``AdminStore`` are
both built from.

A setting is a dataclass field made by ``setting()``; ``load`` fills an object from keywords first,
then the environment (or any mapping: the dashboard adds its secrets file), then the default, and
parses each value with the setting's own parser, so a bad value is one sentence naming the setting,
whichever way it came in. The operator tools and the dashboard declare their settings the same way
(``tools/settings.py``, ``dashboard/settings.py``). The strict parsers for days, seconds and flags
live here too: every layer parses durations alike.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pymongo import WriteConcern

from .kms import KeyProvider

MAX_DAYS = 100 * 366
"""The longest number of days a setting takes (a retention, a session timeout)."""
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off", ""})
S = TypeVar("S")


class SettingError(ValueError):
    """A setting whose value does not parse: one sentence naming the setting, never its value."""


# -- parsers: (name, value) -> value; ``value`` is a keyword's value or an environment's text ---------

def days(name: str, value: Any) -> float | None:
    """A number of days, strictly: more than 0 (fractions allowed) and at most ``MAX_DAYS``; None
    when unset (None or blank)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = _number(value)
    if number is None:
        raise SettingError(f"{name} must be a number of days, such as 90")
    if not 0 < number <= MAX_DAYS:  # also refuses nan and inf
        raise SettingError(f"{name} must be more than 0 and at most {MAX_DAYS} days")
    return number


def seconds(name: str, value: Any, *, zero: bool = False, most: float | None = None) -> float:
    """A number of seconds above 0 (or 0 too, with ``zero``: "off"), finite, at most ``most``."""
    number = _number(value)
    low_ok = number is not None and (number >= 0 if zero else number > 0)
    if number is None or not low_ok or not math.isfinite(number) or (most is not None and number > most):
        wanted = "0 (off) or a positive number of seconds" if zero else "a positive number of seconds"
        raise SettingError(f"{name} must be {wanted}" + (f" of at most {most:g}" if most is not None else ""))
    return number


def flag(name: str, value: Any) -> bool:
    """A boolean, strictly: True/False, or 1/0, true/false, yes/no, on/off in any case (trimmed);
    anything else is refused, so a typo never turns a safety off."""
    if isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise SettingError(f"{name} must be one of 1/0, true/false, yes/no, on/off; its value is not one of them")


def text(name: str, value: Any) -> str | None:
    """A string, trimmed when it came from the environment; None when blank."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise SettingError(f"{name} must be a string, not {type(value).__name__}")
    return value.strip() or None


_DATABASE_NAME = re.compile(r'[^/\\. "$*<>:|?\x00]{1,63}')
DATABASE_RULE = 'a database name has 1 to 63 characters and none of / \\ . " $ * < > : | ? or a space'
COLLECTION_RULE = ('a collection name cannot be empty, contain $, a NUL character or "..", start or end with ".", '
                   'or start with "system."')


def database_problem(name: str) -> str | None:
    """Why MongoDB would refuse ``name`` as a database name (pymongo raises from deep inside), or None."""
    return None if _DATABASE_NAME.fullmatch(name) else DATABASE_RULE


def collection_problem(name: str) -> str | None:
    """Why MongoDB would refuse ``name`` as a collection name, or None: pymongo's own checks
    (``x.``, ``.x``, ``a..b``) raise a raw ``InvalidName`` from the constructor otherwise."""
    bad = (not name or "$" in name or "\x00" in name or ".." in name or name.startswith((".", "system."))
           or name.endswith("."))
    return COLLECTION_RULE if bad else None


def database_name(name: str, value: Any) -> str | None:
    """A database name MongoDB accepts (``text``, then checked)."""
    return _named(name, text(name, value), database_problem)


def collection_name(name: str, value: Any) -> str | None:
    """A collection name MongoDB accepts (``text``, then checked): every collection setting's parser."""
    return _named(name, text(name, value), collection_problem)


def _named(name: str, value: str | None, problem: Callable[[str], str | None]) -> str | None:
    why = None if value is None else problem(value)
    if why is not None:
        raise SettingError(f"{name}: {why}")
    return value


def key_list(name: str, value: Any) -> tuple[str | bytes, ...]:
    """Keys given as a sequence, or comma-separated text (the environment)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, (bytes, bytearray)) or not isinstance(value, Sequence):
        raise SettingError(f"{name} must be a list of keys")
    return tuple(value)


def secret(name: str, value: Any) -> str | bytes | None:
    """A key, as text or raw bytes (checked where it is used, never echoed)."""
    if value is None or value == "":
        return None
    if not isinstance(value, (str, bytes)):
        raise SettingError(f"{name} must be a string or bytes, not {type(value).__name__}")
    return value


_KMS_NAME = re.compile(r"[a-z][a-z0-9-]*:\S+")
KMS_FORM = "<provider>:<key>, such as aws-kms:alias/zoho-tokens"


def kms_name(name: str, value: Any) -> str | KeyProvider | None:
    """A KMS key: ``<provider>:<key>`` text (trimmed; the provider is looked up when a store is
    built, ``envelope.py``) or a ``kms.KeyProvider`` object; None when blank."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, KeyProvider):
        return value
    if not isinstance(value, str) or not _KMS_NAME.fullmatch(value.strip()):
        raise SettingError(f"{name} must name a KMS key as {KMS_FORM}")
    return value.strip()


def kms_names(name: str, value: Any) -> tuple[str | KeyProvider, ...]:
    """KMS keys given as a sequence, or comma-separated text (the environment), each as ``kms_name``."""
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, (bytes, bytearray)) or not isinstance(value, Sequence):
        raise SettingError(f"{name} must be a list of KMS keys")
    parsed = (kms_name(name, part) for part in value)
    return tuple(part for part in parsed if part is not None)


def acknowledged(name: str, value: Any) -> WriteConcern | None:
    if value is None:
        return None
    if not isinstance(value, WriteConcern) or not value.acknowledged:
        raise SettingError(f"{name} must be an acknowledged pymongo WriteConcern, such as WriteConcern(w=1)")
    return value


class Text(str):
    """A value read as text (the environment, a secrets file): numbers and flags are parsed from
    it. A keyword's string is no number: ``socket_timeout="5"`` is refused, as any wrong type."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, Text):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


# -- declaring and loading --------------------------------------------------------------------------

@dataclass(frozen=True)
class Declared:
    """What ``setting()`` attaches to a field."""

    env: str | None
    parse: Callable[[str, Any], Any] | None
    doc: str
    secret_key: str | None
    """Its key in the dashboard's secrets file (``[dashboard]``), where one is read."""


def setting(default: Any, *, env: str | None = None, parse: Callable[[str, Any], Any] | None = None, doc: str = "",
            secret_key: str | None = None, hidden: bool = False) -> Any:
    """One setting, as a dataclass field: ``hidden`` keeps it out of the object's repr (a key, a
    password)."""
    return field(default=default, repr=not hidden,
                 metadata={"setting": Declared(env, parse, doc, secret_key)})


def declared(cls: type) -> dict[str, Declared]:
    """A settings class's settings by field name, in their declared order."""
    return {item.name: item.metadata["setting"] for item in dataclasses.fields(cls) if "setting" in item.metadata}


def _unset(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def load(cls: type[S], given: Mapping[str, Any] | None = None, environ: Mapping[str, Any] | None = None) -> S:
    """``cls`` with each setting from ``given`` (keywords; None means unset), else ``environ``
    (default ``os.environ``) under its variable, else its default, parsed by its own parser."""
    given = dict(given or {})
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, declaration in declared(cls).items():
        value = given.pop(name, None)
        label = name
        if _unset(value) and declaration.env is not None and not _unset(environ.get(declaration.env)):
            value, label = Text(environ[declaration.env]), declaration.env
        if _unset(value):
            continue
        values[name] = declaration.parse(label, value) if declaration.parse is not None else value
    if given:
        raise SettingError(f"unknown setting(s): {', '.join(sorted(given))}")
    return cls(**values)


# -- the store's settings ----------------------------------------------------------------------------

DEFAULT_DATABASE = "zoho"
DEFAULT_COLLECTION = "oauth_tokens"
EVENTS_COLLECTION = "token_events"


def seconds_or_off(name: str, value: Any) -> float:
    """``seconds``, where 0 turns the thing off."""
    return seconds(name, value, zero=True)


def margin(name: str, value: Any) -> float:
    """A refresh margin: 0 (none) up to 60 seconds."""
    return seconds(name, value, zero=True, most=60.0)


def count(name: str, value: Any) -> int:
    """A whole number from 1 to 10,000,000 (a bound on entries kept in memory)."""
    number = _number(value)
    if number is None or not number.is_integer() or not 1 <= number <= 10_000_000:
        raise SettingError(f"{name} must be a whole number from 1 to 10000000")
    return int(number)


@dataclass(frozen=True)
class StoreSettings:
    """What a store is built with. ``load(StoreSettings, {...})`` (``StoreSettings.load``) reads the
    environment for what the keywords leave unset."""

    uri: str | None = setting(None, env="MONGODB_URI", parse=text, secret_key="mongodb_uri", hidden=True,
                              doc="any MongoDB connection string; required unless a client is passed")
    username: str | None = setting(None, env="MONGODB_USERNAME", parse=text, hidden=True,
                                   doc="the user name, apart from the URI (no percent-encoding)")
    password: str | None = setting(None, env="MONGODB_PASSWORD", parse=text, hidden=True,
                                   doc="the password, apart from the URI (no percent-encoding)")
    database: str = setting(DEFAULT_DATABASE, env="ZOHO_MONGO_DATABASE", parse=database_name, secret_key="database",
                            doc="database name")
    collection: str = setting(DEFAULT_COLLECTION, env="ZOHO_MONGO_COLLECTION", parse=collection_name, secret_key="collection",
                              doc="the tokens' collection")
    create_indexes: bool = setting(True, parse=flag, doc="create the indexes on first use")
    server_selection_timeout: float = setting(5.0, parse=seconds,
                                              doc="how long a client the store creates waits for a reachable server")
    socket_timeout: float = setting(10.0, parse=seconds, doc="the longest one attempt of a store call waits")
    failover_wait: float = setting(30.0, parse=seconds,
                                   doc="how long a store call keeps trying through an election or a lost connection")
    fail_fast_after: float = setting(20.0, parse=seconds_or_off,
                                     doc="once a store call has waited this long through a failure and no server "
                                         "answers, MongoDB counts as down: new calls fail at once until a probe finds "
                                         "it back; 0 turns it off")
    write_concern: WriteConcern | None = setting(None, parse=acknowledged,
                                                 doc="the store's writes (default: majority, journaled)")
    refresh_lease: float = setting(10.0, parse=seconds_or_off, doc="how long one worker may take to refresh a token")
    refresh_wait: float = setting(12.0, parse=seconds, doc="the longest a worker waits for another's refresh")
    refresh_backoff: float = setting(30.0, parse=seconds, doc="the first back-off window after a failed refresh")
    refresh_backoff_max: float = setting(300.0, parse=seconds, doc="the longest back-off window")
    refresh_margin: float = setting(0.5, parse=margin,
                                    doc="how much earlier than the SDK the store decides a token needs refreshing")
    encryption_key: str | bytes | None = setting(None, env="ZOHO_MONGO_ENCRYPTION_KEY", parse=secret, hidden=True,
                                                 doc="turns on encryption at rest (32 bytes, base64)")
    old_encryption_keys: tuple[str | bytes, ...] = setting((), env="ZOHO_MONGO_OLD_ENCRYPTION_KEYS", parse=key_list,
                                                           hidden=True, doc="previous keys, still read during a rotation")
    kms_key: str | KeyProvider | None = setting(
        None, env="ZOHO_MONGO_KMS_KEY", parse=kms_name, hidden=True,
        doc="turns on envelope encryption: the KMS key that wraps the collection's data key, aws-kms:<key id, ARN or "
            "alias> (the kms extra)")
    old_kms_keys: tuple[str | KeyProvider, ...] = setting(
        (), env="ZOHO_MONGO_OLD_KMS_KEYS", parse=kms_names, hidden=True,
        doc="previous KMS keys, whose data keys are still read during a rotation")
    retire_replaced: bool = setting(True, parse=flag,
                                    doc="revoke at Zoho the refresh token a new login replaced (Zoho keeps 20 per user "
                                        "and client)")
    record_events: bool = setting(True, parse=flag, doc="keep each token's history")
    events_collection: str = setting(EVENTS_COLLECTION, env="ZOHO_EVENTS_COLLECTION", parse=collection_name,
                                     secret_key="events_collection", doc="the token history's collection")
    events_retention_days: float = setting(90.0, env="ZOHO_EVENTS_RETENTION_DAYS", parse=days,
                                           secret_key="events_retention_days", doc="days the history keeps an event")
    events_queue: int = setting(10_000, parse=count,
                                doc="events waiting to be written, at most; past it an event is dropped with a warning")
    read_cache: bool = setting(True, env="ZOHO_MONGO_READ_CACHE", parse=flag,
                               doc="answer lookups from memory while a change stream proves the token unchanged")
    read_cache_size: int = setting(10_000, parse=count, doc="tokens the read cache holds, at most (least recently used go)")

    def __post_init__(self) -> None:
        if self.refresh_backoff_max < self.refresh_backoff:
            raise SettingError("refresh_backoff_max must be at least refresh_backoff")
        if self.encryption_key is not None and self.kms_key is not None:
            raise SettingError("set either ZOHO_MONGO_ENCRYPTION_KEY or ZOHO_MONGO_KMS_KEY, not both: one key seals "
                               "(during a rotation the other goes in ZOHO_MONGO_OLD_ENCRYPTION_KEYS or "
                               "ZOHO_MONGO_OLD_KMS_KEYS)")
        if (self.old_encryption_keys or self.old_kms_keys) and self.encryption_key is None and self.kms_key is None:
            raise SettingError("old encryption keys are set but no current key: set ZOHO_MONGO_ENCRYPTION_KEY or "
                               "ZOHO_MONGO_KMS_KEY")

    @classmethod
    def load(cls, environ: Mapping[str, Any] | None = None, **given: Any) -> StoreSettings:
        """From keywords (None: unset), else the environment, else the defaults."""
        return load(cls, given, environ)

    def replace(self, **changes: Any) -> StoreSettings:
        """A copy with some settings changed, each parsed as when loaded."""
        parsed = {name: (declared(StoreSettings)[name].parse or (lambda _n, v: v))(name, value)
                  for name, value in changes.items()}
        return dataclasses.replace(self, **parsed)

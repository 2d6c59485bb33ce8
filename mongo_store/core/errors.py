"""Turning failures into the SDK's own exception without leaking a secret.

The SDK catches ``SDKException`` and logs ``str(exception)``, which includes ``str(cause)``. The
server's own error text can quote what the store sent: a duplicate-key error names the
conflicting value, and an authorization error quotes the whole command, secrets included. So a
server error is attached only as its code, code name and index key pattern, never its text.

The SDK is imported only by what needs it: importing any of its modules imports all of it (about
2,000 modules, a second), which the command line's admin commands have no use for. So
``store_error`` gives the SDK's ``SDKException`` whenever the SDK is loaded (the store, the
dashboard and ``zoho.py`` import it), and ``StoreError`` (the same code and message, without the SDK)
on the admin path, which never loads it; ``UnknownToken`` and ``RefreshFailing`` are built on first
use.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from pymongo.errors import (
    AutoReconnect,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WTimeoutError,
)

if TYPE_CHECKING:
    from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

SDK_EXCEPTION_MODULE = "zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception"
CODE = "TOKEN_STORE"
PLAIN_BESIDE_SEALED = ("this collection holds encrypted tokens, but this store has no encryption key: configure it in "
                       "ZOHO_MONGO_ENCRYPTION_KEY or ZOHO_MONGO_KMS_KEY (without it, saves would write plaintext copies)")

_SAFE_DETAILS = ("code", "codeName", "keyPattern")  # never keyValue or errmsg: they quote values
_SAFE_TEXT_CODES = {85, 86}  # IndexOptionsConflict, IndexKeySpecsConflict: they quote index specs only


_CAUSE = ". Cause: "


class StoreError(Exception):
    """A store failure on the admin path, where the SDK is not loaded: the code and the one
    sentence an ``SDKException`` would carry, shown the same way (``sentence``)."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.code, self.error_message, self.cause = CODE, message, cause


def _sdk_exception() -> type[SDKException] | None:
    """The SDK's exception class if the SDK is loaded, else None (never imports it)."""
    module = sys.modules.get(SDK_EXCEPTION_MODULE)
    return getattr(module, "SDKException", None)


def is_store_error(error: BaseException) -> bool:
    """Whether ``error`` is a store failure (an ``SDKException`` or a ``StoreError``), without loading the SDK."""
    sdk = _sdk_exception()
    return isinstance(error, StoreError) or (sdk is not None and isinstance(error, sdk))


_LAZY: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    """``UnknownToken`` and ``RefreshFailing`` subclass the SDK's exception, so they are built
    (importing the SDK) when first asked for."""
    if name not in ("UnknownToken", "RefreshFailing"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _LAZY:
        from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

        class UnknownToken(SDKException):
            """No stored token has this id: it was deleted (a logout), or never stored. The person must
            authorize the app again; any other ``TOKEN_STORE`` error (a database outage) is no reason to."""

            def __init__(self, message: str) -> None:
                super().__init__(code=CODE, message=message)

        class RefreshFailing(SDKException):
            """A refresh that failed (raised to the caller whose refresh it was), or a token whose refresh
            keeps failing, asked for inside its back-off window (or while the one caller let through is
            trying): refused at once instead of waiting, with when it failed and when it will next be
            tried (``lease.py``). ``reason`` says what to do (``reasons.py``): ``revoked``, the person
            must authorize the app again; ``throttled`` or ``unreachable``, try again shortly;
            ``refused``, the app's client credentials. ``retry_at`` (naive UTC, or None) is when one
            caller may try again."""

            def __init__(self, message: str, reason: str = "unreachable", retry_at: datetime | None = None) -> None:
                super().__init__(code=CODE, message=message)
                self.reason, self.retry_at = reason, retry_at

        for built in (UnknownToken, RefreshFailing):
            built.__module__, built.__qualname__ = __name__, built.__name__
            _LAZY[built.__name__] = built
    return _LAZY[name]


def store_error(message: str, cause: BaseException | None = None) -> SDKException:
    """An ``SDKException`` with the SDK's store code (a ``StoreError`` where the SDK is not loaded:
    the admin path); the message must never hold a secret."""
    sdk = _sdk_exception()
    if sdk is None:
        return StoreError(message, cause)
    if cause is not None:
        message = message.rstrip(".") + _CAUSE
    return sdk(code=CODE, message=message, cause=cause)


def sentence(error: BaseException) -> str:
    """The error's own sentence without the driver's detail, for a one-line display."""
    message = (getattr(error, "error_message", None) if is_store_error(error) else None) or str(error)
    return message.split(_CAUSE.rstrip())[0]


def redact(error: BaseException) -> BaseException:
    """A copy of a server error that keeps its type, code and index keys but none of its text."""
    if isinstance(error, OperationFailure):
        details = {key: value for key, value in (error.details or {}).items() if key in _SAFE_DETAILS}
        text = f"{details.get('codeName') or type(error).__name__} (code {error.code})"
        if details.get("keyPattern"):
            text += f" on index key {dict(details['keyPattern'])}"
        if error.code in _SAFE_TEXT_CODES and error.args:
            text += f": {error.args[0]}"
        return type(error)(text, code=error.code, details=details or None)
    return error


def conflict_field(error: BaseException) -> str:
    """The unique field a duplicate-key error is about (mongomock gives no details: then it is one
    of the two that a save can conflict on)."""
    pattern = (getattr(error, "details", None) or {}).get("keyPattern") or {}
    return ", ".join(pattern) or "user name or refresh token"


def describe(error: BaseException, timeout: float | None, *, no_primary: bool = False) -> str:
    """A sentence an operator understands, for the driver errors people actually meet."""
    within = f" within {timeout:g} s" if timeout else ""
    if no_primary:
        return f"no primary in the MongoDB replica set{within} (an election, or the set has lost its majority)"
    if isinstance(error, ServerSelectionTimeoutError):
        return f"no MongoDB server reachable{within}"
    if isinstance(error, (NetworkTimeout, ExecutionTimeout, WTimeoutError)):
        return f"the MongoDB operation did not complete{within}" if within else "the MongoDB operation timed out"
    if isinstance(error, AutoReconnect):
        return "the connection to MongoDB was lost"
    if isinstance(error, OperationFailure) and error.code == 18:
        return "MongoDB rejected the credentials (AuthenticationFailed): check the user, password and authSource in the URI"
    if isinstance(error, OperationFailure) and error.code == 121:  # the validator of validation.py
        return f"MongoDB refused a plaintext token (DocumentValidationFailure): {PLAIN_BESIDE_SEALED}"
    if isinstance(error, OperationFailure) and error.code == 13:
        return ("the MongoDB user may not do this (Unauthorized): the store needs readWrite on its database; "
                "a read-only user needs create_indexes=False and can only read")
    if isinstance(error, OperationFailure):
        name = (error.details or {}).get("codeName") or "OperationFailure"
        return f"MongoDB refused the operation ({name}, code {error.code})"
    if isinstance(error, PyMongoError):
        return f"MongoDB driver error ({type(error).__name__})"
    return f"unexpected error ({type(error).__name__})"


def raise_store_error(action: str, error: BaseException, timeout: float | None, *, no_primary: bool = False,
                      unknown_outcome: str | None = None) -> NoReturn:
    """Re-raise any failure of ``action`` as a redacted ``SDKException``. ``unknown_outcome``, when
    an attempt may have been applied, says what is safe to do about it."""
    safe = redact(error)
    message = f"could not {action}: {describe(error, timeout, no_primary=no_primary)}"
    if unknown_outcome:
        message += f". The outcome is unknown (it may have been applied): {unknown_outcome}"
    failure = store_error(message, safe)
    try:
        raise failure from safe
    except type(failure):
        failure.__context__ = None  # the unredacted original must not ride along as the context
        raise

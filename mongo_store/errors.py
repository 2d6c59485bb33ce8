"""Turning failures into the SDK's own exception without leaking a secret.

The SDK catches ``SDKException`` and logs ``str(exception)``, which includes ``str(cause)``. A
duplicate-key error from the server names the conflicting value, which may be a refresh token, so
every cause is redacted before it is attached.
"""

from __future__ import annotations

import re
from typing import NoReturn

from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WTimeoutError,
)
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

CODE = "TOKEN_STORE"

_DUP_KEY_VALUE = re.compile(r"dup key: \{.*\}", re.DOTALL)
_SAFE_DETAILS = ("code", "codeName", "keyPattern")  # never keyValue or errmsg: they quote the value


def store_error(message: str, cause: BaseException | None = None) -> SDKException:
    """An ``SDKException`` with the SDK's store code; the message must never hold a secret."""
    if cause is not None:
        message = message.rstrip(".") + ". Cause: "
    return SDKException(code=CODE, message=message, cause=cause)


def redact(error: BaseException) -> BaseException:
    """A copy of a driver error that keeps its type, code and field names but no stored value."""
    if isinstance(error, OperationFailure):
        details = {key: value for key, value in (error.details or {}).items() if key in _SAFE_DETAILS}
        text = _DUP_KEY_VALUE.sub("dup key: { <redacted> }", str(error.args[0] if error.args else ""))
        return type(error)(text, code=error.code, details=details or None)
    return error


def conflict_field(error: DuplicateKeyError) -> str:
    """The unique field a duplicate-key error is about (mongomock gives no details)."""
    pattern = (error.details or {}).get("keyPattern") or {}
    return ", ".join(pattern) or "a unique field"


def describe(error: BaseException, timeout: float | None) -> str:
    """A sentence an operator understands, for the driver errors people actually meet."""
    if isinstance(error, ServerSelectionTimeoutError):
        within = f" within {timeout:g} s" if timeout else ""
        return f"no MongoDB server reachable{within}"
    if isinstance(error, (NetworkTimeout, ExecutionTimeout, WTimeoutError)):
        return "the MongoDB operation timed out"
    if isinstance(error, AutoReconnect):
        return "the connection to MongoDB was lost"
    if isinstance(error, OperationFailure):
        name = (error.details or {}).get("codeName") or "OperationFailure"
        return f"MongoDB refused the operation ({name}, code {error.code})"
    if isinstance(error, PyMongoError):
        return f"MongoDB driver error ({type(error).__name__})"
    return f"unexpected error ({type(error).__name__})"


def raise_store_error(action: str, error: BaseException, timeout: float | None) -> NoReturn:
    """Re-raise any failure of ``action`` as a redacted ``SDKException``."""
    safe = redact(error)
    raise store_error(f"could not {action}: {describe(error, timeout)}", safe) from safe

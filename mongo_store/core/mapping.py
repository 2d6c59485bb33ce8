"""The document mapping: an ``OAuthToken`` to and from one MongoDB document, with input checks.

Every value is checked here before it can reach a filter or an update: only plain strings of a
bounded length pass, so a dict such as ``{"$ne": None}`` can never become a query operator.
Empty values are dropped, so they are never stored and never collide in a unique index.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal, overload

from .errors import store_error

if TYPE_CHECKING:  # imported where a token is built: the admin path reads documents only (errors.py)
    from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken

MAX_LENGTH = 4096
"""Longest accepted value, in characters. Zoho tokens are under 100; this only stops abuse."""

SECRET_FIELDS = ("client_secret", "refresh_token", "access_token", "grant_token")

# Document field -> (getter, setter) on OAuthToken. ``_id`` is the token's id; ``user_name`` is
# the UserSignature's name; ``expiry_time`` is a BSON date made from ``expires_in``.
_STRING_FIELDS = {
    "_id": ("get_id", "set_id"),
    "client_id": ("get_client_id", "set_client_id"),
    "client_secret": ("get_client_secret", "set_client_secret"),
    "refresh_token": ("get_refresh_token", "set_refresh_token"),
    "access_token": ("get_access_token", "set_access_token"),
    "grant_token": ("get_grant_token", "set_grant_token"),
    "redirect_url": ("get_redirect_url", "set_redirect_url"),
    "api_domain": ("get_api_domain", "set_api_domain"),
}
TOKEN_FIELDS = ("_id", "user_name", *list(_STRING_FIELDS)[1:], "expiry_time")
"""Every document field that carries token data (``created_at``/``updated_at`` are bookkeeping)."""

# Bookkeeping kept beside the token data, for the operators' health view (``tools/health.py``).
LEASE_FIELD = "refresh_lease"
"""Set while one worker refreshes (``lease.py``); a save removes it, so a lapsed one is a failed refresh."""
STARTED_FIELD = "refresh_started_at"
FAILURES_FIELD = "refresh_failures"
"""Failed refreshes since the last save: leases taken over after they lapsed."""
FAILED_AT_FIELD = "last_refresh_failure_at"
FAILING_SINCE_FIELD = "refresh_failing_since"
"""When the first of the failed refreshes since the last save happened."""
RETRY_FIELD = "refresh_retry_at"
"""After a failed refresh, no caller refreshes again before this time (the back-off, ``lease.py``)."""
REASON_FIELD = "refresh_failure_reason"
"""Why the last refresh failed: ``revoked``, ``throttled``, ``unreachable`` or ``refused``
(``reasons.py``); ``RefreshFailing.reason`` in every process, and the health view's."""
REFRESHED_FIELD = "last_refreshed_at"
"""The server's time of the last save that carried an access token (the SDK saves once per refresh)."""
CHECKED_AT_FIELD = "last_check_at"
CHECK_RESULT_FIELD = "check_result"
"""``ok``, or Zoho's error code, from the last ``zoho-mongo-store check``."""
CHECK_ERROR_FIELD = "check_error"
"""The last check's error code, present only while it stands (a save clears it)."""
ISSUED_FIELD = "refresh_tokens_seen"
"""Short digests of every refresh token saved for this user: Zoho gives a client at most 20 per user
and client (the 21st deletes the oldest), so a count near 20 explains a refresh token it refuses."""
ZOHO_REFRESH_TOKEN_LIMIT = 20
DISPLACED_SUFFIX = "_displaced"
"""The refresh tokens new logins replaced wait to be revoked in the tokens' collection name with this
suffix (``oauth_tokens_displaced``: ``displaced.py``)."""
KEYS_SUFFIX = "_data_keys"
"""The data keys KMS keys wrap (``envelope.py``): the tokens' collection's name with this suffix
(``oauth_tokens_data_keys``)."""
CLAIM_FIELD = "cleanup_claim"
"""The cleanup run that holds the token (with its refresh lease) while it revokes and deletes it."""
REVOKED_FIELD = "revoked_at"
"""Set once a cleanup run had Zoho revoke the token's refresh token, before its delete."""
REFRESH_STATE = (LEASE_FIELD, FAILURES_FIELD, FAILING_SINCE_FIELD, RETRY_FIELD, REASON_FIELD)
"""What a lookup reads besides the token, to coordinate its refresh (``lease.py``)."""
CLEARED_BY_SAVE = (*REFRESH_STATE, CHECK_ERROR_FIELD, CLAIM_FIELD, REVOKED_FIELD)
"""A save (a refresh, a login) ends all of these: the token works, and a cleanup leaves it alone."""

_EPOCH = datetime(1970, 1, 1)
_MS = timedelta(milliseconds=1)
_CANONICAL_INT = re.compile(r"0|-?[1-9][0-9]{0,18}")  # what str(int) writes, so it round-trips


@overload
def check_text(name: str, value: Any, *, required: Literal[True]) -> str: ...
@overload
def check_text(name: str, value: Any, *, required: bool = False) -> str | None: ...
def check_text(name: str, value: Any, *, required: bool = False) -> str | None:
    """A stored string, or None for absent/empty; anything else is refused with its field name."""
    if value is None or value == "":
        if required:
            raise store_error(f"{name} must be a non-empty string")
        return None
    if not isinstance(value, str):
        raise store_error(f"{name} must be a string, not {type(value).__name__}")
    if len(value) > MAX_LENGTH:
        raise store_error(f"{name} is {len(value)} characters long; the limit is {MAX_LENGTH}")
    if "\x00" in value:
        raise store_error(f"{name} contains a NUL character")
    if not value.isascii() and any("\ud800" <= character <= "\udfff" for character in value):
        # A lone surrogate is no valid text (encoding it fails, and that error would quote the value).
        raise store_error(f"{name} contains a character that is not valid Unicode (a lone surrogate)")
    return value


def expiry_to_date(expires_in: Any) -> datetime | None:
    """The SDK's ``expires_in`` (epoch milliseconds as a string) as a naive UTC date, exactly."""
    if expires_in is None or expires_in == "":
        return None
    if isinstance(expires_in, bool) or not isinstance(expires_in, (str, int)):
        raise store_error(f"expires_in must be a string of epoch milliseconds, not {type(expires_in).__name__}")
    text = str(expires_in)
    if not _CANONICAL_INT.fullmatch(text):
        raise store_error("expires_in must be a whole number of epoch milliseconds, such as '1767225600000'")
    try:
        return _EPOCH + int(text) * _MS
    except OverflowError:
        raise store_error("expires_in is outside the range of dates MongoDB can store") from None


def date_to_expiry(value: datetime) -> str:
    """Inverse of :func:`expiry_to_date`: the same digits the SDK wrote."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return str((value - _EPOCH) // _MS)


def token_fields(token: Any) -> dict[str, Any]:
    """The token's non-empty values as document fields, after checking every one of them."""
    from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
    from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

    if not isinstance(token, OAuthToken):
        raise store_error(f"expected an OAuthToken, not {type(token).__name__}")
    fields: dict[str, Any] = {}
    for field, (getter, _) in _STRING_FIELDS.items():
        value = check_text("id" if field == "_id" else field, getattr(token, getter)())
        if value is not None:
            fields[field] = value
    signature = token.get_user_signature()
    if signature is not None:
        if not isinstance(signature, UserSignature):
            raise store_error(f"user_signature must be a UserSignature, not {type(signature).__name__}")
        name = check_text("user_name", signature.get_name())
        if name is not None:
            fields["user_name"] = name
    expiry = expiry_to_date(token.get_expires_in())
    if expiry is not None:
        fields["expiry_time"] = expiry
    return fields


def malformed(document: dict[str, Any]) -> str | None:
    """Why a stored document cannot be a token (a hand-edited field of the wrong type), or None.
    Names fields and types only, never a value: the value may be a secret."""
    for field in ("_id", "user_name", *list(_STRING_FIELDS)[1:]):
        value = document.get(field)
        if value is not None and not isinstance(value, str):
            return f"{field} is {type(value).__name__}, not a string"
    expiry = document.get("expiry_time")
    if expiry is not None and not isinstance(expiry, datetime):
        return f"expiry_time is {type(expiry).__name__}, not a date"
    return None


def refuse_malformed(document: dict[str, Any]) -> dict[str, Any]:
    """The document, or a clear error naming it, before a malformed one reaches the SDK."""
    reason = malformed(document)
    if reason is not None:
        raise store_error(f"stored token {document.get('_id')!r} is malformed ({reason}): fix or delete it")
    return document


def fill_token(token: OAuthToken, document: dict[str, Any]) -> OAuthToken:
    """Fill the token's missing values from a stored document (present values win, as in FileStore)."""
    from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

    for field, (getter, setter) in _STRING_FIELDS.items():
        if getattr(token, getter)() in (None, "") and document.get(field) is not None:
            getattr(token, setter)(document[field])
    signature = token.get_user_signature()
    if document.get("user_name") is not None and (signature is None or signature.get_name() in (None, "")):
        token.set_user_signature(UserSignature(document["user_name"]))
    if token.get_expires_in() in (None, "") and document.get("expiry_time") is not None:
        token.set_expires_in(date_to_expiry(document["expiry_time"]))
    return token


def adopt(token: OAuthToken, document: dict[str, Any]) -> OAuthToken:
    """Give the token the stored authorization and access token (a save that lost to newer values
    hands the caller those values, so it goes on with what is stored)."""
    for field in ("refresh_token", "grant_token", "access_token"):
        if document.get(field) is not None:
            getattr(token, _STRING_FIELDS[field][1])(document[field])
    if document.get("expiry_time") is not None:
        token.set_expires_in(date_to_expiry(document["expiry_time"]))
    return fill_token(token, document)


def empty_token() -> OAuthToken:
    """An OAuthToken with every field None, built as FileStore does: without the constructor,
    which would refuse a token with no grant, refresh or access token."""
    from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken

    token = object.__new__(OAuthToken)
    for _, setter in _STRING_FIELDS.values():
        getattr(token, setter)(None)
    token.set_user_signature(None)
    token.set_expires_in(None)
    # OAuthToken.get_token reads this private flag; the constructor would set it to True.
    token._OAuthToken__find_user = True
    return token


def document_to_token(document: dict[str, Any]) -> OAuthToken:
    """A complete OAuthToken from a stored document."""
    return fill_token(empty_token(), document)


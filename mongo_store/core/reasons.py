"""Why a refresh failed, in a word an application can act on, and how long callers back off for it.

``RefreshFailing.reason`` (and the token's ``refresh_failure_reason``, written with the failure so
every process reports the same) is one of:

- ``revoked``: Zoho refused the refresh token (``invalid_code``, ``invalid_token``): it was revoked,
  replaced, or evicted by Zoho's 20-per-user limit. Only the person can fix it, by authorizing the
  app again; a new login ends the back-off at once.
- ``throttled``: Zoho's "Access Denied" (at most 10 access tokens per refresh token in 10 minutes).
  Waiting fixes it.
- ``unreachable``: no answer to go by: the accounts server could not be reached, timed out, answered
  a 5xx or something that was no JSON, or an error code this module does not know; also a refresh
  that never finished (its lease lapsed). Waiting fixes it.
- ``refused``: Zoho refused the app itself (``invalid_client``: the client id or secret stored with
  the token is wrong, say after the secret was rotated). Neither waiting nor the SDK fixes it: the
  operator looks, and a new login stores the app's current credentials.

The back-off per reason (``window``): after a refusal that waiting cannot cure (``revoked``,
``refused``), callers leave the token alone for the longest window (``refresh_backoff_max``, 5 min)
at once: a retry every 30 s would only ask Zoho the same question again, and the login that cures it
ends the back-off anyway. ``throttled`` and ``unreachable`` keep the doubling window (30 s, 60, 120,
240, then 300 s): Zoho's 10-minute throttle slides, so a slot frees within the first few windows,
and a server that is down or hanging is asked once per window per person (each attempt through a
hanging Zoho holds a thread: the SDK's refresh has no timeout).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol


class Backoff(Protocol):
    """``lease.Backoff``, as this module uses it (lease imports this module)."""

    @property
    def longest(self) -> float: ...

    def after(self, failures: int) -> timedelta: ...

REVOKED, THROTTLED, UNREACHABLE, REFUSED = "revoked", "throttled", "unreachable", "refused"
REASONS = (REVOKED, THROTTLED, UNREACHABLE, REFUSED)
REVOKED_CODES = frozenset({"invalid_code", "invalid_token"})
"""Zoho's answers to a refresh with a refresh token it does not honour."""
THROTTLED_CODES = frozenset({"access denied"})
"""Zoho's throttle (compared in lower case: "Access Denied")."""
REFUSED_CODES = frozenset({"invalid_client", "invalid_client_secret", "unauthorized_client"})
"""Zoho's answers about the app's client credentials."""
_INVALID_TOKEN_ERROR = "INVALID TOKEN ERROR"
"""The SDK's code for an answer without an access token; its message is Zoho's ``error``."""

_WHY = {
    REVOKED: "Zoho refused the refresh token{code}: it was revoked or replaced, and the person must authorize "
             "the app again (a new login ends this at once)",
    THROTTLED: "Zoho throttled the refresh{code}: at most 10 access tokens per refresh token in 10 minutes; "
               "try again shortly",
    UNREACHABLE: "Zoho's accounts server gave no answer to go by{code}; try again shortly",
    REFUSED: "Zoho refused the app's client credentials{code}: check the client id and secret (a new login "
             "stores the current ones)",
}


def of_code(code: Any) -> str:
    """The reason for Zoho's answer ``code`` to a refresh (its ``error``), by the rules above."""
    text = code.strip().lower() if isinstance(code, str) else ""
    if text in REVOKED_CODES:
        return REVOKED
    if text in THROTTLED_CODES:
        return THROTTLED
    if text in REFUSED_CODES:
        return REFUSED
    return UNREACHABLE


def of_error(error: BaseException | None, code: str | None) -> str:
    """The reason for an exception the SDK's refresh raised: Zoho's answer when it carries one
    (``code``: the SDK's ``INVALID TOKEN ERROR`` names it as its message), else no answer."""
    if error is not None and getattr(error, "code", None) == _INVALID_TOKEN_ERROR and code is not None:
        return of_code(code)
    return UNREACHABLE


def known(reason: Any) -> str:
    """A stored reason as one of ``REASONS`` (a failure recorded before reasons were, or edited by
    hand, counts as ``unreachable``: wait, which is what the store did before)."""
    return reason if reason in REASONS else UNREACHABLE


def window(backoff: Backoff, failures: int, reason: str) -> timedelta:
    """How long callers leave the token alone after its ``failures``-th failed refresh in a row,
    failing for ``reason`` (see the module's docstring for why)."""
    if reason in (REVOKED, REFUSED):
        return timedelta(seconds=backoff.longest)
    return backoff.after(failures)


def why(reason: str, code: str | None = None) -> str:
    """The reason in words, for an error message and the history (``code``: Zoho's, when known)."""
    return _WHY[known(reason)].format(code=f" ({code})" if code else "")

"""The suite's fakes of Zoho are the testing kit's ``FakeZoho`` (``mongo_store.testing``), so the kit
is tested by the suite that depends on it. Two thin views of it keep the suite's words:

``FakeZoho``: one person (alice, ``USER_NAME``) with a known grant code and refresh token, and
``requests`` counted as the suite's assertions count them (``grant``, ``refresh``, ``refused
refresh``, ``revoke``, ``users``, ``org``, ``"<endpoint> <trouble>"``); ``trouble`` and
``refuse_revoke`` make it misbehave as a broken or refusing server would.

``ZohoAccounts``: many people, every request counted by the kit's names (``counts``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from mongo_store.testing import FakeZoho as KitZoho
from mongo_store.testing.fake_zoho import HUGE

EMAIL = "alice@example.com"
ZGID = "700001"
USER_NAME = f"{EMAIL}:{ZGID}"
__all__ = ["EMAIL", "HUGE", "USER_NAME", "ZGID", "FakeZoho", "ZohoAccounts"]


def legacy_name(name: str, error: str | None) -> str | None:
    """A kit request's name in the suite's counting (refused grants, API calls and other clients
    were never counted)."""
    if name in ("revoke", "refused revoke"):
        return "revoke"
    if name == "refused refresh":
        return None if error == "invalid_client" else name
    if name in ("grant", "refresh", "users", "org") or (" " in name and not name.startswith("refused ")):
        return name
    return None


class FakeZoho(KitZoho):
    def __init__(self, grant_token: str, refresh_token: str, client_id: str, client_secret: str) -> None:
        super().__init__()
        self.grant_token, self.refresh_token = grant_token, refresh_token
        self.client = (client_id, client_secret)
        self.person(EMAIL, zgid=ZGID, user_id="9001", org_id="42", name="Alice", company="Example")
        self.authorize(EMAIL, client_id, client_secret, refresh_token=refresh_token)
        self.grant(EMAIL, code=grant_token, client_id=client_id, client_secret=client_secret, refresh_token=refresh_token)

    @property  # type: ignore[override]
    def requests(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for request in super().requests:
            name = legacy_name(request.name, request.error)
            if name is not None:
                counts[name] += 1
        return counts

    def new_access_token(self) -> str:
        return self.access_token(self.refresh_token)

    @property
    def refuse_revoke(self) -> bool:
        return "revoke" in self._failures

    @refuse_revoke.setter
    def refuse_revoke(self, refuse: bool) -> None:
        self.fail_next("revoke", error="invalid_token", times=None if refuse else 0)


class ZohoAccounts(KitZoho):
    """Zoho's rules for many people; the client id and secret are the app's (any would do)."""

    def __init__(self, client_id: str, client_secret: str, access_seconds: float = 3600.0) -> None:
        super().__init__(access_seconds=access_seconds)
        self.client = (client_id, client_secret)
        self.refuse_revokes: set[str] = set()
        """Refresh tokens whose revoke Zoho refuses (``access_denied``), for one token at a time."""
        self.revocations: list[tuple[str, str]] = []
        """(refresh token, ``revoked`` | ``invalid_token`` | ``refused``) of each revoke request."""

    def revoke_response(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        token = form.get("token", "")
        if token in self.refuse_revokes:
            reply: tuple[int, dict[str, Any]] = (200, {"status": "error", "error": "access_denied"})
            outcome = "refused"
        else:
            reply = super().revoke_response(form)
            outcome = "revoked" if reply[1].get("status") == "success" else str(reply[1].get("error"))
        self.revocations.append((token, outcome))
        return reply

    @property  # type: ignore[override]
    def requests(self) -> Counter[str]:
        return self.counts

"""The demo's own Zoho: the testing kit's fake (``mongo_store.testing.FakeZoho``) on 127.0.0.1, run
inside the ``demo`` command, taught the demo's tokens, so Check and Revoke work with no internet
and answer as Zoho would: a working token checks ok (an idle one is refreshed first), a revoke
succeeds, and a token the dashboard shows as failing is refused (``invalid_code``,
``INVALID_TOKEN``), as Zoho refuses a refresh token it revoked.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from ..core.clock import utc_naive, utcnow
from ..testing.fake_zoho import FakeZoho
from ..tools.health import GRANT_LIFETIME, health_of

ACCOUNTS_PATH = "/oauth/v2/token"
PORT_FILE = "fake-zoho-port"
"""Where the demo's data folder remembers its fake Zoho's port."""


def start(port: int = 0) -> FakeZoho:
    """A fake Zoho serving on 127.0.0.1 in a thread of this process, on ``port`` (0: a free one;
    a port taken meanwhile: a free one too); grant tokens live as long as the dashboard's health
    rules say they do."""
    try:
        return FakeZoho(grant_seconds=GRANT_LIFETIME.total_seconds(), port=port).start()
    except OSError:  # the remembered port is taken now
        return FakeZoho(grant_seconds=GRANT_LIFETIME.total_seconds()).start()


def start_kept(folder: Path) -> tuple[FakeZoho, bool]:
    """The fake on the port it had at the demo's last start (remembered in ``folder``), so the line
    pasted into another terminal keeps working across restarts; (fake, whether the port is the kept one)."""
    remembered = folder / PORT_FILE
    try:
        wanted = int(remembered.read_text().strip())
    except (OSError, ValueError):
        wanted = 0
    fake = start(wanted)
    folder.mkdir(parents=True, exist_ok=True)
    remembered.write_text(str(fake.port))
    return fake, wanted in (0, fake.port)


def settings(fake: FakeZoho) -> dict[str, str]:
    """The settings that send Check and Revoke to ``fake`` (accounts server and CRM API): the
    dashboard's, and the operator tools' the CLI reads (``ZOHO_ACCOUNTS_URL``, ``ZOHO_API_URL``)."""
    return {"DASHBOARD_ZOHO_ACCOUNTS_URL": fake.url + ACCOUNTS_PATH, "DASHBOARD_ZOHO_API_URL": fake.url,
            **cli_settings(fake)}


def cli_settings(fake: FakeZoho) -> dict[str, str]:
    """What the CLI needs beside the database to ask the demo's fake, not Zoho."""
    return {"ZOHO_ACCOUNTS_URL": fake.url + ACCOUNTS_PATH, "ZOHO_API_URL": fake.url}


def teach(fake: FakeZoho, documents: Iterable[dict[str, Any]], now: datetime | None = None) -> int:
    """Make ``fake`` know each token (documents with their secrets in the clear): its refresh
    token, its access token for the rest of its life, a grant token not yet exchanged for the
    rest of its ten minutes. A failing token is left unknown, so Zoho refuses it. Returns how
    many it knows."""
    now = now or utcnow()
    known = 0
    for document in documents:
        state, _ = health_of(document, now)
        if state == "failing" or not isinstance(document.get("client_id"), str):
            continue
        client = (document["client_id"], str(document.get("client_secret") or ""))
        email, _, zgid = str(document.get("user_name") or f"{document.get('_id', known)}@demo.invalid").partition(":")
        fake.person(email, zgid=zgid or None)
        refresh, access, grant = (document.get(field) for field in ("refresh_token", "access_token", "grant_token"))
        expiry = utc_naive(document.get("expiry_time"))
        left = (expiry - now).total_seconds() if isinstance(expiry, datetime) else 0.0
        if isinstance(refresh, str):
            fake.authorize(email, *client, refresh_token=refresh)
        if isinstance(access, str) and left > 0:
            # An access-only token was minted from a refresh token nobody holds.
            fake.issued(refresh if isinstance(refresh, str) else fake.authorize(email, *client), access, left)
        if isinstance(grant, str) and not refresh and not access and state != "unusable":
            updated = utc_naive(document.get("updated_at"))
            age = (now - updated).total_seconds() if isinstance(updated, datetime) else 0.0
            fake.grant(email, code=grant, client_id=client[0], client_secret=client[1], age=max(age, 0.0))
        known += 1
    return known

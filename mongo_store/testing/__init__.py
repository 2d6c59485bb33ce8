"""A testing kit for applications that use the Zoho CRM SDK with this store: a fake Zoho that keeps
Zoho's rules (``FakeZoho``), a guard that refuses any connection to the real Zoho (``ZohoGuard``),
and pytest fixtures (``zoho_token_store``, ``fake_zoho``, ``no_real_zoho``) that installing the
package registers as a pytest plugin. The store never imports this package.
See docs/testing-your-app.md."""

from __future__ import annotations

from .fake_zoho import DATA_CENTERS, Authorization, FakeZoho, Person, ZohoRequest
from .guard import RealZohoBlocked, ZohoGuard, is_zoho_host

__all__ = ["DATA_CENTERS", "Authorization", "FakeZoho", "Person", "RealZohoBlocked", "ZohoGuard", "ZohoRequest",
           "is_zoho_host"]

"""The kit's pytest fixtures, registered through the ``pytest11`` entry point: a project with the
package installed gets them with no conftest. Imports stay light (no SDK, no mongomock) until a
fixture is used, so the plugin never slows or breaks a test run that does not use it.

``fake_zoho`` and ``zoho_token_store`` reset the SDK's initializer (the process's and every
thread's: ``sdk.reset_sdk``) before and after each test, so no test talks to another's store or fake
Zoho, whatever order they run in. ``zoho_token_store_settings`` is the store's settings: override
the fixture (in a conftest, a module, or a class) to test with others, as pytest-httpserver's
``httpserver_listen_address`` is overridden."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

from .fake_zoho import FakeZoho
from .guard import ZohoGuard
from .sdk import reset_sdk

if TYPE_CHECKING:
    from mongo_store.core.store import MongoTokenStore

URI_OPTION = "--zoho-mongodb-uri"
URI_VARIABLE = "ZOHO_TEST_MONGODB_URI"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("zoho-mongo-store", "zoho-mongo-store testing kit")
    group.addoption(URI_OPTION, default=None, metavar="URI",
                    help=f"a real MongoDB for the zoho_token_store fixture (each test its own database, dropped "
                         f"afterwards); default: ${URI_VARIABLE}, else mongomock")


@pytest.fixture
def no_real_zoho(monkeypatch: pytest.MonkeyPatch) -> Iterator[ZohoGuard]:
    """For the test's duration, resolving or connecting to a real Zoho host raises RealZohoBlocked;
    ``.blocked`` lists what was refused. Proxies are turned off for the test (the variables cleared,
    and ``NO_PROXY=*`` against a system proxy that requests would read elsewhere): through a proxy no
    name would be resolved here, and a call to Zoho would pass the guard."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("no_proxy", "*")
    with ZohoGuard() as guard:
        yield guard


@pytest.fixture
def fresh_zoho_sdk() -> Iterator[None]:
    """The SDK's initializer (the process's and every thread's) is reset before and after the test:
    what ``fake_zoho`` and ``zoho_token_store`` do; ask for it in a test that uses neither."""
    reset_sdk()
    yield
    reset_sdk()


@pytest.fixture
def fake_zoho(no_real_zoho: ZohoGuard, fresh_zoho_sdk: None) -> Iterator[FakeZoho]:
    """A fake Zoho (accounts and CRM) on 127.0.0.1 for this test (with ``no_real_zoho``: no proxy,
    and a call to a real Zoho host is refused; the SDK's initializer reset around the test)."""
    with FakeZoho() as fake:
        yield fake


@pytest.fixture
def zoho_token_store_settings() -> Mapping[str, Any]:
    """The settings ``zoho_token_store`` is built with (``MongoTokenStore``'s keywords, such as
    ``refresh_backoff=1.0``): none by default. Override this fixture to test with others."""
    return {}


@pytest.fixture
def zoho_token_store(request: pytest.FixtureRequest, no_real_zoho: ZohoGuard, fresh_zoho_sdk: None,
                     zoho_token_store_settings: Mapping[str, Any]) -> Iterator[MongoTokenStore]:
    """A fresh, empty MongoTokenStore per test, with ``zoho_token_store_settings``: on mongomock, or
    on the MongoDB that ``--zoho-mongodb-uri`` / ``$ZOHO_TEST_MONGODB_URI`` names (a database of its
    own, dropped after). Revokes of refresh tokens a new login replaced are waited for at its end."""
    from mongo_store import MongoTokenStore

    uri = request.config.getoption(URI_OPTION) or os.environ.get(URI_VARIABLE)
    database = f"zoho_test_{uuid.uuid4().hex[:12]}"
    options = dict(zoho_token_store_settings)
    if not uri:
        import mongomock

        with MongoTokenStore(client=mongomock.MongoClient(), **{"database": database, **options}) as store:
            yield store
            store.wait_for_retirements()
        return
    store = MongoTokenStore(uri, **{"database": database, **options})
    try:
        yield store
        store.wait_for_retirements()
    finally:
        try:
            store.collection.database.client.drop_database(database)
        finally:
            store.close()

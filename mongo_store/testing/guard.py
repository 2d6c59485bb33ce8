"""No accidental calls to the real Zoho from a test: while a ``ZohoGuard`` is active, resolving or
connecting to any Zoho host (``zoho.com``, ``zoho.eu``, ``zohoapis.*``, ``accounts.zoho.*``,
``zohocloud.ca``: every data center) raises ``RealZohoBlocked`` before a packet leaves the machine.

Why at the resolver: every HTTP client (requests, urllib3, httpx, asyncio) resolves a name through
``socket.getaddrinfo`` before it connects, so a test cannot reach Zoho by any of them, and a DNS
lookup (which already tells Zoho's resolvers about the test) is refused too. Loopback stays allowed,
and names under ``.localhost`` resolve to 127.0.0.1, which is where the fake's per-data-center
hosts live (``accounts.zoho.eu.localhost``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from types import TracebackType
from typing import Any, ClassVar

ZOHO_LABEL = re.compile(r"zoho[a-z0-9]*", re.IGNORECASE)
"""A label that names Zoho's own domains: ``zoho.com``, ``zoho.eu``, ``www.zohoapis.com.au``,
``accounts.zohocloud.ca``... (a whole label, so ``zoho-mongo-store.example`` is not one)."""


class RealZohoBlocked(RuntimeError):
    """A test tried to reach a real Zoho host. Not an ``OSError``, so no HTTP client mistakes it for
    a network error to retry or to swallow: it reaches the test as itself."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"mongo_store.testing refused a connection to the real Zoho host {host!r}: tests talk to the "
            "fake_zoho fixture (pass fake_zoho.environment to Initializer.initialize, or "
            "fake_zoho.environment_for(dc) for another data center)")
        self.host = host


def _host_text(host: Any) -> str | None:
    if isinstance(host, bytes):
        return host.decode("ascii", "replace")
    return host if isinstance(host, str) else None


def is_zoho_host(host: str) -> bool:
    """Whether ``host`` is one of Zoho's own names (not an address, not a ``.localhost`` name)."""
    name = host.strip("[]").rstrip(".").lower()
    try:
        ipaddress.ip_address(name)
        return False
    except ValueError:
        pass
    if name == "localhost" or name.endswith(".localhost"):
        return False
    return any(ZOHO_LABEL.fullmatch(label) for label in name.split("."))


def _loopback_name(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name.endswith(".localhost")


class ZohoGuard:
    """Patches the resolver for as long as it is entered (re-entrant; one process-wide patch).
    ``blocked`` lists every host refused, so a test can assert that nothing tried (code that catches
    every exception, as the SDK does, would otherwise hide an attempt)."""

    _lock = threading.Lock()
    _active: ClassVar[list[ZohoGuard]] = []
    _originals: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        self.blocked: list[str] = []

    def _refuse(self, host: Any) -> None:
        name = _host_text(host)
        if name is not None and is_zoho_host(name):
            for guard in ZohoGuard._active:
                guard.blocked.append(name)
            raise RealZohoBlocked(name)

    def __enter__(self) -> ZohoGuard:
        with ZohoGuard._lock:
            if not ZohoGuard._active:
                self._patch()
            ZohoGuard._active.append(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        with ZohoGuard._lock:
            ZohoGuard._active.remove(self)
            if not ZohoGuard._active:
                for name, original in ZohoGuard._originals.items():
                    setattr(socket, name, original)
                ZohoGuard._originals.clear()

    def _patch(self) -> None:
        originals = ZohoGuard._originals
        originals.update(getaddrinfo=socket.getaddrinfo, create_connection=socket.create_connection,
                         gethostbyname=socket.gethostbyname, gethostbyname_ex=socket.gethostbyname_ex)
        refuse = self._refuse

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            refuse(host)
            name = _host_text(host)
            if name is not None and _loopback_name(name):
                host = "127.0.0.1"
            return originals["getaddrinfo"](host, *args, **kwargs)

        def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
            refuse(address[0])
            return originals["create_connection"](address, *args, **kwargs)

        def gethostbyname(host: Any) -> Any:
            refuse(host)
            name = _host_text(host)
            return originals["gethostbyname"]("127.0.0.1" if name is not None and _loopback_name(name) else host)

        def gethostbyname_ex(host: Any) -> Any:
            refuse(host)
            name = _host_text(host)
            return originals["gethostbyname_ex"]("127.0.0.1" if name is not None and _loopback_name(name) else host)

        socket.getaddrinfo = getaddrinfo
        socket.create_connection = create_connection
        socket.gethostbyname = gethostbyname
        socket.gethostbyname_ex = gethostbyname_ex

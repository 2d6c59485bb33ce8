"""No accidental calls to the real Zoho from a test: while a ``ZohoGuard`` is active, resolving or
connecting to any Zoho host (``zoho.com``, ``zoho.eu``, ``zohoapis.*``, ``accounts.zoho.*``,
``zohocloud.ca``: every data center) raises ``RealZohoBlocked`` before a packet leaves the machine.

Why at the resolver: every HTTP client (requests, urllib3, httpx, asyncio) resolves a name through
``socket.getaddrinfo`` before it connects, so a test cannot reach Zoho by any of them, and a DNS
lookup (which already tells Zoho's resolvers about the test) is refused too. Loopback stays allowed,
and names under ``.localhost`` resolve to 127.0.0.1, which is where the fake's per-data-center
hosts live (``accounts.zoho.eu.localhost``).

Where a name never reaches that resolver, the guard looks too: a raw ``socket.connect`` or
``connect_ex`` given a name (resolved in C), and a request through a proxy, which resolves the name
itself: the request line a client sends on any socket (``CONNECT accounts.zoho.com:443``, or
``GET http://accounts.zoho.com/...`` to an HTTP proxy) is read before it is sent. A name is matched
as a resolver would read it: NFKC-normalised and case-folded, IDNA's other full stops taken as dots
(``accounts.ｚｏｈｏ.com`` is accounts.zoho.com to IDNA). What it cannot see: another process (a
subprocess has none of these patches), a lookup made without Python's socket module (a DNS library
sending its own UDP packets), and an address given as a number.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import threading
import unicodedata
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


_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
"""The full stops IDNA reads as a dot besides ``.``."""


def _normalised(host: str) -> str:
    """A host name as a resolver reads it: NFKC (fullwidth letters are ASCII ones), IDNA's other
    full stops as dots, case-folded, without brackets or a trailing dot."""
    return unicodedata.normalize("NFKC", host.strip("[]")).translate(_DOTS).casefold().rstrip(".")


def is_zoho_host(host: str) -> bool:
    """Whether ``host`` is one of Zoho's own names (not an address, not a ``.localhost`` name),
    however it is spelled (``_normalised``)."""
    name = _normalised(host)
    try:
        ipaddress.ip_address(name)
        return False
    except ValueError:
        pass
    if name == "localhost" or name.endswith(".localhost"):
        return False
    return any(ZOHO_LABEL.fullmatch(label) for label in name.split("."))


def _loopback_name(host: str) -> bool:
    return _normalised(host).endswith(".localhost")


_METHOD_STARTS = frozenset(b"CGPHDOT")
"""The first byte of every HTTP method: anything else is no request line (a quick test on every send)."""


def request_target(data: Any) -> str | None:
    """The host a request line sent on a socket asks a proxy for: ``CONNECT host:port`` (a tunnel)
    or an absolute URL (``GET http://host/path``, a plain-HTTP proxy); None for anything else."""
    try:
        first = data[0]
    except (IndexError, TypeError):
        return None
    if first not in _METHOD_STARTS:
        return None
    line = bytes(data[:2048]).split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return None
    target = parts[1].decode("latin-1")
    if parts[0] == b"CONNECT":
        authority = target
    elif "://" in target:
        authority = re.split(r"[/?#]", target.split("://", 1)[1], maxsplit=1)[0]
    else:
        return None
    authority = authority.rpartition("@")[2]
    return authority.rsplit("]", 1)[0] + "]" if authority.startswith("[") else authority.rsplit(":", 1)[0] \
        if authority.count(":") == 1 else authority


class ZohoGuard:
    """Patches the resolver for as long as it is entered (re-entrant; one process-wide patch).
    ``blocked`` lists every host refused, so a test can assert that nothing tried (code that catches
    every exception, as the SDK does, would otherwise hide an attempt)."""

    _lock = threading.Lock()
    _active: ClassVar[list[ZohoGuard]] = []
    _originals: ClassVar[dict[str, Any]] = {}
    _methods: ClassVar[list[tuple[type, str, Any]]] = []
    """(class, name, its own method or None where inherited) of each socket method patched."""

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
                for owner, name, method in ZohoGuard._methods:
                    if method is None:  # inherited (socket.socket's come from _socket.socket)
                        delattr(owner, name)
                    else:
                        setattr(owner, name, method)
                ZohoGuard._methods.clear()

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
        self._patch_sockets(refuse)

    @staticmethod
    def _patch_sockets(refuse: Any) -> None:
        """A raw connect given a name (the C code resolves it, past ``getaddrinfo``), and the
        request line of a request through a proxy (which resolves the name itself)."""
        def connecting(original: Any) -> Any:
            def connect(self: socket.socket, address: Any, *args: Any) -> Any:
                if isinstance(address, tuple) and address:
                    refuse(address[0])
                return original(self, address, *args)
            return connect

        def sending(original: Any) -> Any:
            def send(self: socket.socket, data: Any, *args: Any, **kwargs: Any) -> Any:
                target = request_target(data)
                if target is not None:
                    refuse(target)
                return original(self, data, *args, **kwargs)
            return send

        for owner, name, wrap in ((socket.socket, "connect", connecting), (socket.socket, "connect_ex", connecting),
                                  (socket.socket, "send", sending), (socket.socket, "sendall", sending),
                                  (ssl.SSLSocket, "send", sending), (ssl.SSLSocket, "sendall", sending)):
            ZohoGuard._methods.append((owner, name, owner.__dict__.get(name)))
            setattr(owner, name, wrap(getattr(owner, name)))

"""Every call the package makes to Zoho's servers, bounded: a connect and a read timeout, an overall
bound, a reply size cap, and no redirect followed (its target would get the secret again).

The store itself needs one such call (revoking the refresh token a new login replaced:
``displaced.py``), and the store loads only ``mongo_store.core``, so the bounded call lives here;
the operator tools (``tools/zoho.py``: check, revoke) build on it. Errors are one sentence naming
the host, never a URL's query or a secret. ``requests`` (which the SDK brings) is imported on the
first call, so the SDK-free admin path that imports this module stays light.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .urls import UrlError, http_url

CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection to Zoho."""
READ_TIMEOUT = 10.0
"""Seconds Zoho may stay silent while answering."""
CALL_BOUND = 20.0
"""Seconds one call to Zoho may take in all (connecting, the headers, the body): a server that
trickles its answer byte by byte is cut off too."""
MAX_REPLY = 1024 * 1024
"""The largest reply read from Zoho (its token and user replies are under a few kilobytes)."""
REVOKE_PATH = "/revoke"
"""Appended to the accounts server's token URL (the SDK's ``Constants.REVOKE_URL``)."""
T = TypeVar("T")


class ZohoError(Exception):
    """A step at Zoho failed, or was not attempted (one sentence, never a secret)."""


class AlreadyRevoked(ZohoError):
    """Zoho answered that it no longer knows the refresh token (HTTP 400, ``invalid_token``):
    revoked before, or replaced. Nothing is left to revoke; ``host`` is the accounts server's."""

    def __init__(self, host: str) -> None:
        super().__init__(f"{host} no longer knows the refresh token (invalid_token)")
        self.host = host


class NotReached(ZohoError):
    """Zoho gave no answer to go by (unreachable, too slow, a redirect, a 5xx or 429, an oversized or
    unreadable reply): nothing is recorded on the token."""


@dataclass
class Reply:
    status: int
    body: Any
    """The parsed JSON, or None when the reply was no JSON."""


def host_of(url: str) -> str:
    """``host[:port]`` of a URL, never its user name or password."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.hostname or '?'}{f':{port}' if port else ''}"


def _bounded(work: Callable[[], T], host: str) -> T:
    """``work()`` within ``CALL_BOUND`` seconds: run in a daemon thread, which a server that holds
    the connection open can keep, but never the caller."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # handed to the caller
            outcome["error"] = error

    worker = threading.Thread(target=run, name="zoho-call", daemon=True)
    worker.start()
    worker.join(CALL_BOUND)
    if worker.is_alive():
        raise NotReached(f"{host} did not answer within {CALL_BOUND:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def call_zoho(method: str, url: str, **kwargs: Any) -> Reply:
    """One bounded request: connect and read timeouts, ``CALL_BOUND`` in all, at most ``MAX_REPLY``
    bytes read, no redirect followed (its target would get the secret again). The URL is read by
    the one parser that decided where the secret may go (``urls.py``), and the request is made to
    what it read. Raises ``NotReached`` with one sentence naming the host, never the URL's query or
    a secret; ``ZohoError`` for a URL that parser refuses (nothing is sent)."""
    import requests

    try:
        target = http_url(url)
    except UrlError as error:
        raise ZohoError(f"nothing was sent: {error}") from None
    url, host = target.text, target.netloc
    deadline = time.monotonic() + CALL_BOUND

    headers = {"Accept-Encoding": "identity", **kwargs.pop("headers", {})}  # no decompression bomb

    def exchange() -> Reply:
        with requests.Session() as session:
            response = session.request(method, url, headers=headers, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                                       allow_redirects=False, stream=True, **kwargs)
            with response:
                if 300 <= response.status_code < 400:
                    raise NotReached(f"{host} answered with a redirect (HTTP {response.status_code}), which is not "
                                     "followed")
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > MAX_REPLY:
                    raise NotReached(f"{host} answered with more than {MAX_REPLY // 1024} KiB")
                data = bytearray()
                for chunk in response.iter_content(64 * 1024):
                    data += chunk
                    if len(data) > MAX_REPLY:
                        raise NotReached(f"{host} answered with more than {MAX_REPLY // 1024} KiB")
                    if time.monotonic() > deadline:
                        raise NotReached(f"{host} did not answer within {CALL_BOUND:g} s")
        try:
            body = json.loads(bytes(data))
        except ValueError:
            body = None
        return Reply(response.status_code, body)

    try:
        return _bounded(exchange, host)
    except (requests.Timeout, TimeoutError):
        raise NotReached(f"{host} did not answer within {READ_TIMEOUT:g} s") from None
    except requests.RequestException as error:  # its text names the URL: the type says enough
        raise NotReached(f"cannot reach {host} ({type(error).__name__})") from None


def unusable_status(reply: Reply, host: str) -> NotReached | None:
    """A reply that says nothing about the token: Zoho is down or limiting us."""
    if reply.status == 429 or reply.status >= 500:
        return NotReached(f"{host} answered HTTP {reply.status}")
    return None


def revoke_refresh_token(accounts_url: str, refresh_token: str) -> str:
    """Revoke a refresh token at an accounts server (its token URL, as the SDK's environments name
    it: ``https://accounts.zoho.com/oauth/v2/token``); returns the host. Raises ``AlreadyRevoked``
    when Zoho no longer knows it (``invalid_token``), ``NotReached`` when it could not be asked,
    ``ZohoError`` when its answer (any other, a 5xx included) is no revocation."""
    host = host_of(accounts_url)
    reply = call_zoho("POST", accounts_url + REVOKE_PATH, data={"token": refresh_token})
    if reply.status == 400 and isinstance(reply.body, dict) and reply.body.get("error") == "invalid_token":
        raise AlreadyRevoked(host)
    if not (isinstance(reply.body, dict) and reply.body.get("status") == "success"):
        raise ZohoError(f"{host} did not revoke the refresh token" + (f" (HTTP {reply.status})" if reply.status != 200 else ""))
    return host


def zoho_accounts_url(api_domain: str | None) -> str | None:
    """The accounts server's token URL of the Zoho data center whose API host ``api_domain`` is
    exactly (``https://www.zohoapis.eu``...), else None: nothing else is trusted with a secret.
    Asks the SDK's own table of data centers (imported here: the SDK is loaded wherever a token is
    opened)."""
    if not api_domain:
        return None
    from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter

    known = DataCenter.get(api_domain)
    return known.accounts_url if known is not None and known.url == api_domain else None

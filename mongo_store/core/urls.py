"""The one reading of an http(s) URL that a token's secret is sent to.

``urllib.parse.urlsplit`` and urllib3 (which requests connects with) disagree on some URLs: to
``urlsplit``, ``http://A\\@B`` is host B, to urllib3 it is host A. A check made with one parser and
a request made with the other sent an access token to A after B was approved. So a URL is read
once, here, strictly: anything two parsers could read apart is refused (a backslash, user info, a
fragment, a percent sign or any character outside printable ASCII, spaces and tabs included, which
``urlsplit`` silently drops), urllib3's reading must agree, and the request is then made with the
URL rebuilt from the parsed parts (``HttpUrl.text``), so what was checked is what is connected to.
Errors name the part that is wrong, never the URL (it may carry a password).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL = 2048
_AUTHORITY = re.compile(r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])"
                        r"(?::(?P<port>[0-9]{1,5}))?")


class UrlError(ValueError):
    """A URL refused: one sentence naming what is wrong with it, never the URL."""


@dataclass(frozen=True)
class HttpUrl:
    """An http(s) URL as read once: ``text`` is what the HTTP client is given."""

    scheme: str
    host: str
    port: int | None
    rest: str
    """The path and the query, as given."""

    @property
    def origin(self) -> tuple[str, str, int | None]:
        return self.scheme, self.host, self.port

    @property
    def netloc(self) -> str:
        """``host[:port]``: what an error names."""
        return self.host + (f":{self.port}" if self.port is not None else "")

    @property
    def text(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.rest}"


def http_url(url: object) -> HttpUrl:
    """``url`` read strictly (see the module); ``UrlError`` when two parsers could read it apart."""
    if not isinstance(url, str):
        raise UrlError(f"the URL must be a string, not {type(url).__name__}")
    if len(url) > MAX_URL:
        raise UrlError(f"the URL is longer than {MAX_URL} characters")
    if any(not "!" <= character <= "~" for character in url):
        raise UrlError("the URL holds a space, a control character or a character outside ASCII")
    if "\\" in url:
        raise UrlError("the URL holds a backslash, which HTTP clients read differently")
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in ("http", "https"):
        raise UrlError("the URL must start with http:// or https://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority:
        raise UrlError("the URL holds a user name or password (an @ before its host)")
    if "#" in rest:
        raise UrlError("the URL holds a fragment (#)")
    found = _AUTHORITY.fullmatch(authority)
    if found is None:
        raise UrlError("the URL's host or port is not a plain name, address or number")
    port = int(found["port"]) if found["port"] is not None else None
    if port is not None and not 0 < port < 65536:
        raise UrlError("the URL's port is not between 1 and 65535")
    parsed = HttpUrl(scheme.lower(), found["host"].lower(), port, rest[len(authority):])
    _agree(parsed)
    return parsed


def _agree(parsed: HttpUrl) -> None:
    """urlsplit and urllib3 (requests' parser, imported here only: the store's own path has no
    use for it) must read the rebuilt URL as this one: scheme, host and port."""
    from urllib3.util import parse_url

    text, ours = parsed.text, (parsed.scheme, parsed.host.strip("[]"), parsed.port)
    try:
        split, theirs = urlsplit(text), parse_url(text)
        readings = {(split.scheme, split.hostname, split.port),
                    (theirs.scheme, (theirs.host or "").strip("[]").lower(), theirs.port)}
    except ValueError:  # urllib3's LocationParseError, urlsplit's bad port
        readings = set()
    if readings != {ours}:
        raise UrlError("the URL does not read alike for every HTTP client")

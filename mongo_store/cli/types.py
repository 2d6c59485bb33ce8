"""What the command line's options accept: each parser turns text into a value or raises
``argparse.ArgumentTypeError`` (a usage error: one line, exit 2). Nothing here imports pymongo or
the SDK, so ``--help`` and ``--version`` answer at once."""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Callable
from datetime import datetime, timezone
from urllib.parse import urlsplit

STATUSES = ("valid", "refresh-window", "within-hour", "expired")
HEALTH = ("healthy", "idle", "failing", "unusable")
SORTS = ("user", "expiry", "refreshed")
"""``health.STATUSES``, ``health.HEALTH`` and ``queries.SORTS``, repeated so that parsing imports
nothing heavy (tests/test_compatibility.py keeps them equal)."""
MAX_PAGE = 1_000_000_000
"""The highest --page: its skip stays far inside MongoDB's 64-bit numbers at any page size."""
MAX_PAGE_SIZE = 1000
MAX_TIMEOUT = 86_400.0


def whole(low: int, high: int) -> Callable[[str], int]:
    """A whole number from ``low`` to ``high``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high:,}" if value >= low else f"must be {low} or more")
        return value
    return parse


def page_number(text: str) -> int:
    """A page number for --page: not 0 (negative numbers count from the end, with a cursor only)."""
    value = whole(-MAX_PAGE, MAX_PAGE)(text)
    if value == 0:
        raise argparse.ArgumentTypeError("pages are numbered from 1 (or from -1, the last, backwards)")
    return value


def seconds(text: str) -> float:
    """A finite number of seconds above 0 and up to a day, for --timeout (``inf`` or ``nan`` would
    reach the driver as a malformed URI option)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_TIMEOUT:  # also false for nan
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}")
    return value


def http_url(example: str) -> Callable[[str], str]:
    """An http(s) URL with a host."""
    def parse(text: str) -> str:
        # Never echoed: a webhook's path is its secret (argparse would quote a value that raised).
        if any(character.isspace() or not character.isprintable() for character in text):
            raise argparse.ArgumentTypeError("the URL holds a space or a control character")
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018  (raises on a port that is not a number)
        except ValueError:
            raise argparse.ArgumentTypeError("is not a valid URL (its host or port does not parse)") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise argparse.ArgumentTypeError(f"must be an http(s) URL such as {example}")
        return text
    return parse


def zoho_url(example: str) -> Callable[[str], str]:
    """A URL a token's secret may be sent to: read by the one parser the calls to Zoho use
    (``core/urls.py``: nothing two HTTP clients could read apart), as it will be requested."""
    def parse(text: str) -> str:
        from ..core.urls import UrlError
        from ..core.urls import http_url as read

        try:
            return read(text).text
        except UrlError as error:  # never echoed: argparse would quote a value that raised
            raise argparse.ArgumentTypeError(f"{error} (an http(s) URL such as {example})") from None
    return parse


accounts_url = zoho_url("https://accounts.zoho.eu/oauth/v2/token")
"""--accounts-url."""
api_url = zoho_url("https://www.zohoapis.eu")
"""--api-url."""
webhook_url = http_url("https://hooks.slack.com/services/...")
"""--webhook."""


def policy_days(name: str) -> Callable[[str], float]:
    """A number of days for a cleanup rule, parsed as the settings are (``core.settings.days``)."""
    def parse(text: str) -> float:
        from ..core.settings import SettingError, Text, days

        try:
            value = days(name, Text(text))
        except SettingError as error:
            raise argparse.ArgumentTypeError(str(error).removeprefix(f"{name} ")) from None
        if value is None:
            raise argparse.ArgumentTypeError("must be a number of days, such as 90")
        return value
    return parse


def listen(text: str) -> tuple[str, int]:
    """HOST:PORT for --listen: an IP address (IPv6 in brackets) or localhost, and a port from 0
    (any free one, printed at start) to 65535."""
    host, colon, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        number = int(port)
        if host != "localhost":
            ipaddress.ip_address(host)
    except ValueError:
        raise argparse.ArgumentTypeError("must be HOST:PORT with an IP address, such as 127.0.0.1:9464 or [::1]:9464") from None
    if not colon or not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError("the port must be from 0 to 65535")
    return host, number


def moment(text: str) -> datetime:
    """A date (``2026-12-01``, the start of that day) or a date and time (``2026-12-01T14:30``), in
    UTC unless it names its offset; returned as naive UTC, as the store keeps dates."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError("must be a date such as 2026-12-01, or a date and time such as "
                                         "2026-12-01T14:30 (UTC)") from None
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def interval(text: str) -> float:
    """Seconds between counts: from 1 to 3600."""
    value = seconds(text)
    if not 1 <= value <= 3600:
        raise argparse.ArgumentTypeError("must be from 1 to 3600 seconds")
    return value

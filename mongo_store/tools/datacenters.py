"""Zoho's data centers under one short name each, wherever a person or a metric sees one (CLI,
dashboard, exporter, alerts): ``EU``, never ``eu`` here and ``zohoapis.eu`` there."""

from __future__ import annotations

DOMAINS = {
    "US": "https://www.zohoapis.com",
    "EU": "https://www.zohoapis.eu",
    "IN": "https://www.zohoapis.in",
    "AU": "https://www.zohoapis.com.au",
    "JP": "https://www.zohoapis.jp",
    "CA": "https://www.zohoapis.ca",
    "CN": "https://www.zohoapis.com.cn",
    "SA": "https://www.zohoapis.sa",
    "UK": "https://www.zohoapis.uk",
}
"""Each data center's name and the api_domain its tokens carry."""
NAMES = {domain: name for name, domain in DOMAINS.items()}
_BY_SUFFIX = {domain.removeprefix("https://www.zohoapis."): name for name, domain in DOMAINS.items()}
"""Also accepted when typed: the domain suffix (``com.au``)."""


def _key(text: str) -> str:
    key = text.strip().lower().removeprefix("https://").removeprefix("http://").rstrip("/")
    return key.removeprefix("www.").removeprefix("zohoapis.")


def known(text: str) -> str | None:
    """The data center's name for any of its forms (``EU``, ``eu``, ``com.au``, ``zohoapis.uk``,
    ``www.zohoapis.eu`` or the URL), else None."""
    key = _key(text)
    if key.upper() in DOMAINS:
        return key.upper()
    return _BY_SUFFIX.get(key)


def name(api_domain: str | None) -> str:
    """The short name of a token's data center; an unknown domain shows as itself (``none``: no
    api_domain)."""
    if not isinstance(api_domain, str) or not api_domain:
        return "none"
    return NAMES.get(api_domain.rstrip("/")) or api_domain


def label(api_domain: str | None) -> str:
    """The name with the host beside it, for inspect: ``EU (https://www.zohoapis.eu)``."""
    shown = name(api_domain)
    return f"{shown} ({api_domain})" if isinstance(api_domain, str) and shown != api_domain else shown

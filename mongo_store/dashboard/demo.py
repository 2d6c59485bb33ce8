"""Realistic fake tokens for the demo: several data centers, every status the overview counts."""

from __future__ import annotations

import random
from datetime import datetime, timezone

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from ..store import MongoTokenStore

DOMAINS = {"https://www.zohoapis.com": 40, "https://www.zohoapis.eu": 25, "https://www.zohoapis.in": 15,
           "https://www.zohoapis.com.au": 8, "https://www.zohoapis.jp": 5, "https://www.zohoapis.ca": 4,
           "https://www.zohoapis.sa": 2, "https://www.zohoapis.com.cn": 1}
FIRST = ["ana", "ben", "chen", "dara", "elif", "femi", "gus", "hana", "ivan", "jo", "kai", "lena", "mo", "nia",
         "omar", "pia", "quinn", "ravi", "sara", "tom", "uma", "vik", "wen", "yara", "zoe"]
COMPANIES = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell", "cyberdyne"]


def _hex(rng: random.Random, size: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(size))


def seed(store: MongoTokenStore, count: int = 300, rng: random.Random | None = None) -> int:
    """Save ``count`` fake tokens through the store's own save path."""
    rng = rng or random.Random(2026)
    now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
    clients = [f"1000.{_hex(rng, 30).upper()}" for _ in range(6)]
    for number in range(count):
        client = rng.choice(clients)
        token = OAuthToken(client_id=client, client_secret=_hex(rng, 42), refresh_token=f"1000.{_hex(rng, 32)}.{_hex(rng, 32)}",
                           redirect_url="https://crm-sync.example.com/oauth/callback")
        kind = rng.choices(["valid", "expired", "refresh-only", "grant-only", "soon"], [55, 22, 12, 8, 3])[0]
        if kind == "grant-only":
            token.set_refresh_token(None)
            token.set_grant_token(f"1000.{_hex(rng, 32)}.{_hex(rng, 32)}")
        elif kind != "refresh-only":
            token.set_access_token(f"1000.{_hex(rng, 32)}.{_hex(rng, 32)}")
            offset = {"valid": rng.randint(10_000, 3_600_000), "soon": rng.randint(60_000, 600_000),
                      "expired": -rng.randint(1_000, 3 * 86_400_000)}[kind]
            token.set_expires_in(str(now_ms + offset))
        if kind != "grant-only" and rng.random() < 0.9:
            person, company = rng.choice(FIRST), rng.choice(COMPANIES)
            token.set_user_signature(UserSignature(f"{person}.{number}@{company}.example:{700000 + number}"))
        token.set_api_domain(rng.choices(list(DOMAINS), list(DOMAINS.values()))[0])
        store.save_token(token)
    return count

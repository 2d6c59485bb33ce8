"""A tiny stand-in for Zoho's accounts and CRM servers on 127.0.0.1, counting what it receives.

Enough for the real SDK to exchange a grant token, refresh an access token, name the user
(``/crm/{version}/users?type=CurrentUser`` and ``/crm/{version}/org``), make API calls and revoke
a refresh token (``/oauth/v2/token/revoke``), for every SDK line (v8, v7, v6, v5: each calls its
own API version). ``refuse_revoke`` makes a revoke fail; a revoked refresh token stops working.

``trouble`` makes one endpoint (``"token"``, ``"revoke"`` or ``"api"``) misbehave, as a broken or
hostile server would: ``"hang"`` (accept, never answer), ``"redirect"`` (a 307 to ``redirect_to``),
``"huge"`` (a reply of ``HUGE`` bytes, streamed), or an HTTP status such as 503 or 429 with an
HTML body. Each such request is counted as ``"<endpoint> <trouble>"``.
"""

from __future__ import annotations

import inspect
import itertools
import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter

EMAIL = "alice@example.com"
ZGID = "700001"
USER_NAME = f"{EMAIL}:{ZGID}"
HUGE = 50 * 1024 * 1024


def environment(url: str) -> DataCenter.Environment:
    """A data center at ``url``, built the way the installed SDK line expects (5-0 also takes a name)."""
    arguments = [url, f"{url}/oauth/v2/token", url]
    if "name" in inspect.signature(DataCenter.Environment.__init__).parameters:
        arguments.append("fake")
    return DataCenter.Environment(*arguments)


class FakeZoho:
    def __init__(self, grant_token: str, refresh_token: str, client_id: str, client_secret: str) -> None:
        self.grant_token, self.refresh_token = grant_token, refresh_token
        self.client = (client_id, client_secret)
        self.requests: Counter[str] = Counter()
        self.valid_access: set[str] = set()
        self.seen_authorization: list[str] = []
        self.revoked: set[str] = set()
        self.refuse_revoke = False
        self.trouble: dict[str, str | int] = {}
        self.redirect_to = ""
        self.sent_bytes = 0
        self._released = threading.Event()
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.environment = environment(self.url)

    def __enter__(self) -> FakeZoho:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._released.set()  # a hanging handler ends
        self.server.shutdown()
        self.server.server_close()

    def new_access_token(self) -> str:
        with self._lock:
            token = f"1000.access.{next(self._numbers):04d}.fake"
            self.valid_access.add(token)
            return token

    def token_response(self, form: dict[str, str]) -> tuple[int, dict]:
        if (form.get("client_id"), form.get("client_secret")) != self.client:
            return 200, {"error": "invalid_client"}
        if form.get("grant_type") == "authorization_code" and form.get("code") == self.grant_token:
            self.requests["grant"] += 1
            return 200, {"access_token": self.new_access_token(), "refresh_token": self.refresh_token,
                         "api_domain": self.url, "token_type": "Bearer", "expires_in": 3600}
        if (form.get("grant_type") == "refresh_token" and form.get("refresh_token") == self.refresh_token
                and self.refresh_token not in self.revoked):
            self.requests["refresh"] += 1
            return 200, {"access_token": self.new_access_token(), "api_domain": self.url,
                         "token_type": "Bearer", "expires_in": 3600}
        if form.get("grant_type") == "refresh_token":
            self.requests["refused refresh"] += 1
        return 200, {"error": "invalid_code"}

    def revoke_response(self, form: dict[str, str]) -> tuple[int, dict]:
        self.requests["revoke"] += 1
        if self.refuse_revoke or form.get("token") != self.refresh_token:
            return 200, {"status": "error", "error": "invalid_token"}
        self.revoked.add(form["token"])
        return 200, {"status": "success"}

    def api_response(self, path: str, authorization: str) -> tuple[int, dict]:
        self.seen_authorization.append(authorization)
        if authorization.removeprefix("Zoho-oauthtoken ") not in self.valid_access:
            return 401, {"code": "INVALID_TOKEN", "status": "error", "message": "invalid oauth token", "details": {}}
        resource = re.fullmatch(r"/crm/v\d+/(users|org)", path)
        if resource and resource.group(1) == "users":
            self.requests["users"] += 1
            return 200, {"users": [{"id": "9001", "email": EMAIL, "full_name": "Alice"}],
                         "info": {"per_page": 200, "count": 1, "page": 1, "more_records": False}}
        if resource and resource.group(1) == "org":
            self.requests["org"] += 1
            return 200, {"org": [{"id": "42", "zgid": ZGID, "company_name": "Example"}]}
        return 404, {"code": "INVALID_URL_PATTERN", "status": "error", "message": "not found", "details": {}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                revoking = urlparse(self.path).path.endswith("/revoke")
                if not self.misbehave("revoke" if revoking else "token"):
                    self.reply(*(fake.revoke_response(form) if revoking else fake.token_response(form)))

            def do_GET(self) -> None:
                if not self.misbehave("api"):
                    self.reply(*fake.api_response(urlparse(self.path).path, self.headers.get("Authorization", "")))

            def misbehave(self, endpoint: str) -> bool:
                trouble = fake.trouble.get(endpoint)
                if trouble is None:
                    return False
                fake.requests[f"{endpoint} {trouble}"] += 1
                try:
                    if trouble == "hang":
                        fake._released.wait(60)
                    elif trouble == "redirect":
                        self.send_response(307)
                        self.send_header("Location", fake.redirect_to + self.path)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    elif trouble == "huge":
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.end_headers()  # no Content-Length: the size shows only as it is read
                        chunk = b" " * 65536
                        while fake.sent_bytes < HUGE:
                            self.wfile.write(chunk)
                            fake.sent_bytes += len(chunk)
                    else:
                        data = f"<html><body>{trouble}: try later</body></html>".encode()
                        self.send_response(int(trouble))
                        self.send_header("Content-Type", "text/html")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                except OSError:  # the client hung up, as it should
                    pass
                return True

            def reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

"""A loopback stand-in for ShootProof's OAuth server and Studio API: a real HTTP server in a thread.

It behaves as ../shared/gallery-samples/README.md documents the vendor:

- ``GET /oauth2/authorization/new`` (the owner "approves" at once): 302 to ``redirect_uri`` with
  ``code`` and ``state``. Codes are single use and bound to the redirect URI.
- ``POST /oauth2/authorization/token`` (form): ``authorization_code`` and ``refresh_token`` grants.
  Refresh tokens rotate: each refresh answers a new one and the old one stops working
  (``400 invalid_grant``). Access tokens live ``access_ttl`` seconds (default 2).
- ``GET /studio/brand/{brandId}/order?page&rows&sortBy=created&sortType=desc``: newest first, paged,
  ``{"items": [...], "meta": {...}}``; 401 problem+json for a missing, bad or expired token.
- ``GET /studio/brand/{brandId}/order/{orderId}/item``: ``{"items": [...]}``.
- Injected failures (:meth:`fail_next`): 429 with ``Retry-After``, 500s, on any path.
- Orders change later (:meth:`cancel`, :meth:`refund`), as a studio's orders do.

Every request is logged (:attr:`requests`) with its arrival time and the answer's status.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

PROBLEM = "application/problem+json"


@dataclass
class Logged:
    at: float
    method: str
    path: str
    query: dict[str, str]
    status: int = 0
    grant: str | None = None
    token: str | None = None


@dataclass
class Failure:
    path_contains: str
    status: int
    times: int
    retry_after: str | None = None
    query: dict[str, str] | None = None

    def matches(self, path: str, query: dict[str, str]) -> bool:
        if self.times <= 0 or self.path_contains not in path:
            return False
        return all(query.get(k) == v for k, v in (self.query or {}).items())


@dataclass
class FakeOAuthVendor:
    """OAuth 2 authorization-code server with rotating refresh tokens and short-lived access tokens."""

    client_id: str = "fake-client"
    client_secret: str = "fake-secret"
    access_ttl: float = 2.0
    authorize_path: str = "/oauth2/authorization/new"
    token_path: str = "/oauth2/authorization/token"
    lock: threading.RLock = field(default_factory=threading.RLock)
    codes: dict[str, str] = field(default_factory=dict)  # code -> redirect_uri
    access_tokens: dict[str, float] = field(default_factory=dict)  # token -> monotonic expiry
    refresh_tokens: set[str] = field(default_factory=set)  # the valid ones
    retired_refresh_tokens: set[str] = field(default_factory=set)
    issued_tokens: list[str] = field(default_factory=list)  # every access and refresh token ever issued
    failures: list[Failure] = field(default_factory=list)
    requests: list[Logged] = field(default_factory=list)
    always_401: bool = False
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeOAuthVendor:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-vendor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ------------------------------------------------------------------ controls

    def approve(self, authorize_url: str) -> tuple[str, str]:
        """What the owner's browser would get: (code, state) for an authorization URL we issued."""
        import urllib.error
        import urllib.request

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(authorize_url, timeout=5)
        except urllib.error.HTTPError as exc:
            if exc.code != 302:
                raise
            location = exc.headers["Location"]
        else:  # pragma: no cover
            raise AssertionError("the authorize endpoint did not redirect")
        query = parse_qs(urlsplit(location).query)
        return query["code"][0], query["state"][0]

    def issue_code(self, redirect_uri: str) -> str:
        code = "code-" + secrets.token_urlsafe(12)
        with self.lock:
            self.codes[code] = redirect_uri
        return code

    def fail_next(self, path_contains: str, status: int, times: int = 1, retry_after: str | None = None,
                  query: dict[str, str] | None = None) -> None:
        """The next ``times`` requests whose path contains ``path_contains`` (and whose query has the
        ``query`` items) answer ``status``, with ``Retry-After: retry_after`` when given."""
        with self.lock:
            self.failures.append(Failure(path_contains, status, times, retry_after, query))

    def clear_failures(self) -> None:
        with self.lock:
            self.failures.clear()

    def revoke_access_tokens(self) -> None:
        """Every access token issued so far stops working (the next API call gets a 401)."""
        with self.lock:
            self.access_tokens.clear()

    def token_grants(self) -> list[Logged]:
        with self.lock:
            return [r for r in self.requests if r.path == self.token_path]

    def api_requests(self, contains: str = "/brand/") -> list[Logged]:
        with self.lock:
            return [r for r in self.requests if contains in r.path]

    # ------------------------------------------------------------------ HTTP

    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: Any = None, *,
              content_type: str = "application/json", headers: dict[str, str] | None = None) -> int:
        data = b"" if body is None else json.dumps(body).encode()
        handler.send_response(status)
        if body is not None:
            handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)
        return status

    def problem(self, handler: BaseHTTPRequestHandler, status: int, title: str, detail: str = "",
                headers: dict[str, str] | None = None) -> int:
        body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
        return self._send(handler, status, body, content_type=PROBLEM, headers=headers)

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        auth = handler.headers.get("Authorization") or ""
        entry = Logged(time.monotonic(), method, parts.path, query,
                       token=auth[7:] if auth.lower().startswith("bearer ") else None)
        with self.lock:
            self.requests.append(entry)
            failure = next((f for f in self.failures if f.matches(parts.path, query)), None)
            if failure is not None:
                failure.times -= 1
        if failure is not None:
            headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else None
            title = "Too Many Requests" if failure.status == 429 else "Server Error"
            entry.status = self.problem(handler, failure.status, title, headers=headers)
            return
        try:
            entry.status = self.route(handler, method, parts.path, query, raw, entry)
        except Exception as exc:  # pragma: no cover - a bug in the fake shows as a 500
            entry.status = self.problem(handler, 500, "Fake Error", repr(exc))

    def route(self, handler: BaseHTTPRequestHandler, method: str, path: str, query: dict[str, str], raw: bytes,
              entry: Logged) -> int:
        if method == "GET" and path == self.authorize_path:
            return self._authorize(handler, query)
        if method == "POST" and path == self.token_path:
            return self._token(handler, raw, entry)
        return self.problem(handler, 404, "Not Found")

    def _authorize(self, handler: BaseHTTPRequestHandler, query: dict[str, str]) -> int:
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            return self.problem(handler, 400, "Bad Request", "unknown client or response type")
        redirect = query.get("redirect_uri", "")
        code = self.issue_code(redirect)
        query_string = urlencode({"code": code, "state": query.get("state", "")})
        location = redirect + ("&" if "?" in redirect else "?") + query_string
        return self._send(handler, 302, headers={"Location": location})

    def _issue(self) -> dict[str, Any]:
        access = "at-" + secrets.token_urlsafe(16)
        refresh = "rt-" + secrets.token_urlsafe(16)
        self.access_tokens[access] = time.monotonic() + self.access_ttl
        self.refresh_tokens.add(refresh)
        self.issued_tokens += [access, refresh]
        return {"access_token": access, "refresh_token": refresh, "token_type": "bearer",
                "expires_in": int(self.access_ttl) if self.access_ttl == int(self.access_ttl) else self.access_ttl,
                "scope": "studio"}

    def _token(self, handler: BaseHTTPRequestHandler, raw: bytes, entry: Logged) -> int:
        form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        entry.grant = form.get("grant_type")
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return self._send(handler, 401, {"error": "invalid_client"})
        with self.lock:
            if entry.grant == "authorization_code":
                code = form.get("code", "")
                if code not in self.codes or self.codes[code] != form.get("redirect_uri"):
                    return self._send(handler, 400, {"error": "invalid_grant"})
                del self.codes[code]
                return self._send(handler, 200, self._issue())
            if entry.grant == "refresh_token":
                token = form.get("refresh_token", "")
                if token not in self.refresh_tokens:
                    return self._send(handler, 400, {"error": "invalid_grant"})
                self.refresh_tokens.discard(token)  # rotation: the old one stops working now
                self.retired_refresh_tokens.add(token)
                return self._send(handler, 200, self._issue())
        return self._send(handler, 400, {"error": "unsupported_grant_type"})

    def check_bearer(self, handler: BaseHTTPRequestHandler, entry: Logged) -> int | None:
        """None when the bearer token is valid, else the status of the 401 sent."""
        with self.lock:
            expiry = self.access_tokens.get(entry.token or "")
            valid = not self.always_401 and expiry is not None and time.monotonic() < expiry
        if valid:
            return None
        return self.problem(handler, 401, "Unauthorized", "missing, invalid or expired access token",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


@dataclass
class FakeShootProof(FakeOAuthVendor):
    """The ShootProof Studio API on top of the OAuth server. ``api_url`` is ``{base}/studio``."""

    orders: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # brand -> id -> order
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # order id -> items

    @property
    def api_url(self) -> str:
        return self.base_url + "/studio"

    @property
    def auth_url(self) -> str:
        return self.base_url

    def add_order(self, brand_id: str, order_id: int, created: datetime, *, items: int = 1,
                  unit_price: str = "18.00", email: str | None = None) -> dict[str, Any]:
        lines = [
            {"id": order_id * 10 + k, "photoId": 77000000 + k, "name": f"8x10 Print {k}", "quantity": 1,
             "unitPrice": unit_price, "total": unit_price}
            for k in range(items)
        ]
        total = f"{float(unit_price) * items:.2f}"
        order = {
            "id": order_id, "orderNumber": str(10000 + order_id % 10000), "brandId": int(brand_id),
            "eventId": 990001, "eventName": "Fake Gallery",
            "created": created.astimezone(UTC).isoformat(timespec="seconds"),
            "status": "completed", "paymentStatus": "paid",
            "customerName": f"Buyer {order_id}", "customerEmail": email or f"buyer{order_id}@example.com",
            "customerPhone": None, "billingAddress": None, "currencyCode": "GBP",
            "subtotal": total, "adjustment": "0.00", "shipping": "0.00", "tax": "0.00", "total": total,
        }
        with self.lock:
            self.orders.setdefault(str(brand_id), {})[str(order_id)] = order
            self.items[str(order_id)] = lines
        return order

    def _find(self, order_id: int | str) -> dict[str, Any]:
        for brand in self.orders.values():
            if str(order_id) in brand:
                return brand[str(order_id)]
        raise KeyError(order_id)

    def cancel(self, order_id: int | str) -> None:
        with self.lock:
            order = self._find(order_id)
            order["status"] = "canceled"
            order["updated"] = datetime.now(UTC).isoformat(timespec="seconds")

    def refund(self, order_id: int | str, amount: str) -> None:
        with self.lock:
            order = self._find(order_id)
            order["paymentStatus"] = "refunded" if amount == order["total"] else "partially_refunded"
            order["refundedAmount"] = amount
            order["updated"] = datetime.now(UTC).isoformat(timespec="seconds")

    def route(self, handler: BaseHTTPRequestHandler, method: str, path: str, query: dict[str, str], raw: bytes,
              entry: Logged) -> int:
        segments = path.strip("/").split("/")
        if method == "GET" and len(segments) >= 4 and segments[:2] == ["studio", "brand"] and segments[3] == "order":
            denied = self.check_bearer(handler, entry)
            if denied is not None:
                return denied
            brand = segments[2]
            if len(segments) == 4:
                return self._list(handler, brand, query)
            if len(segments) == 6 and segments[5] == "item":
                with self.lock:
                    if segments[4] not in self.orders.get(brand, {}):
                        return self.problem(handler, 404, "Not Found", "no such order")
                    return self._send(handler, 200, {"items": list(self.items.get(segments[4], []))})
        return super().route(handler, method, path, query, raw, entry)

    def _list(self, handler: BaseHTTPRequestHandler, brand: str, query: dict[str, str]) -> int:
        if query.get("sortBy", "created") != "created" or query.get("sortType", "desc") != "desc":
            return self.problem(handler, 400, "Bad Request", "the fake sorts by created desc only")
        try:
            page = int(query.get("page", "1"))
            rows = int(query.get("rows", "25"))
        except ValueError:
            return self.problem(handler, 400, "Bad Request", "page and rows are integers")
        if page < 1 or not 1 <= rows <= 100:
            return self.problem(handler, 400, "Bad Request", "page >= 1, 1 <= rows <= 100")
        with self.lock:
            everything = sorted(self.orders.get(brand, {}).values(), key=lambda o: o["created"], reverse=True)
            chunk = [dict(o) for o in everything[(page - 1) * rows: page * rows]]
        total_pages = max(1, -(-len(everything) // rows))
        return self._send(handler, 200, {"items": chunk, "meta": {
            "currentPage": page, "rows": rows, "totalItems": len(everything), "totalPages": total_pages}})

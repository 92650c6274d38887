"""A loopback stand-in for Pic-Time as connectors/pictime.py ASSUMES it (no public API is documented).

- ``GET /oauth/authorize`` and ``POST /oauth/token``: the OAuth server of tests/fakes/shootproof.py
  (rotating refresh tokens, short-lived access tokens).
- ``GET /v1/orders?since=<cursor>&page=N`` (bearer): the orders changed after ``cursor`` (a change
  sequence number), oldest change first, ``page_size`` per page, answering
  ``{"orders": [...], "nextCursor": "<latest change>"}``; a page past the end has no orders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.shootproof import FakeOAuthVendor, Logged


@dataclass
class FakePictime(FakeOAuthVendor):
    authorize_path: str = "/oauth/authorize"
    token_path: str = "/oauth/token"
    page_size: int = 2
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed_at: dict[str, int] = field(default_factory=dict)  # order id -> change sequence number
    sequence: int = 0

    @property
    def api_url(self) -> str:
        return self.base_url + "/v1"

    @property
    def auth_url(self) -> str:
        return self.base_url

    def _touch(self, order_id: str) -> None:
        self.sequence += 1
        self.changed_at[order_id] = self.sequence

    def add_order(self, order_id: str, *, email: str | None = None) -> dict[str, Any]:
        order = {
            "orderId": order_id, "projectId": "p_fake", "projectName": "Fake Project",
            "orderDate": "2026-11-30 09:12:44", "timeZone": "Europe/London",
            "client": {"firstName": "Buyer", "lastName": order_id, "email": email or f"{order_id.lower()}@example.org"},
            "currency": "GBP",
            "lines": [{"productName": "Framed Print 16x12", "qty": 1, "price": "85.00", "lineTotal": "85.00"}],
            "shippingFee": "0.00", "discount": "0.00", "tax": "0.00", "orderTotal": "85.00",
            "paymentCollector": "photographer", "status": "paid",
        }
        with self.lock:
            self.orders[order_id] = order
            self._touch(order_id)
        return order

    def cancel(self, order_id: str) -> None:
        with self.lock:
            self.orders[order_id]["status"] = "cancelled"
            self._touch(order_id)

    def route(self, handler: BaseHTTPRequestHandler, method: str, path: str, query: dict[str, str], raw: bytes,
              entry: Logged) -> int:
        if method == "GET" and path == "/v1/orders":
            denied = self.check_bearer(handler, entry)
            if denied is not None:
                return denied
            try:
                since = int(query.get("since", "0"))
                page = int(query.get("page", "1"))
            except ValueError:
                return self.problem(handler, 400, "Bad Request", "since and page are integers")
            with self.lock:
                changed = sorted((seq, oid) for oid, seq in self.changed_at.items() if seq > since)
                chunk = [dict(self.orders[oid]) for _, oid in changed[(page - 1) * self.page_size:
                                                                     page * self.page_size]]
                cursor = str(max([since, *(seq for seq, _ in changed)]))
            return self._send(handler, 200, {"orders": chunk, "nextCursor": cursor})
        return super().route(handler, method, path, query, raw, entry)

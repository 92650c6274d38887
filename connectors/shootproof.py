"""ShootProof: polled from the Studio API (OAuth 2); also `galleryflow publish`.

The API as the connector uses it (../shared/gallery-samples/README.md, "The ShootProof Studio API"):

- authorize: ``{auth}/oauth2/authorization/new?response_type=code&client_id&redirect_uri&scope=studio&state``
- token: ``POST {auth}/oauth2/authorization/token`` (authorization_code / refresh_token grants; every
  refresh rotates the refresh token, see connectors/oauth.py)
- orders: ``GET {api}/brand/{brandId}/order?page=N&rows=R&sortBy=created&sortType=desc`` answering
  ``{"items": [order...], "meta": {"currentPage", "rows", "totalItems", "totalPages"}}``
- items: ``GET {api}/brand/{brandId}/order/{orderId}/item`` answering ``{"items": [item...]}``

One poll of a brand (there is no "changed since" filter):

1. Page newest-first. For each order: if it was published before AND was created before the recent
   window (``poll_recent_window_days``, default 30), every later order is older still: stop. Orders
   inside the window are re-read every poll, so refunds and cancellations reach the sale.
2. An order whose summary (the order without its items) hashes as last time is unchanged: no items
   request. Otherwise fetch its items and assemble the contract's order (order fields + ``items``).
3. Each page's new or changed orders are published through ``connectors.base.ingest`` and their
   hashes recorded after the broker's ack (connectors/polling.py).
4. Until a first poll has reached the last page (the backfill), seen old orders are skipped rather
   than ending the poll, so a backfill interrupted on page 40 resumes instead of stopping at page 1.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from connectors.http import VendorError, VendorHttp
from connectors.oauth import OAuthClient, TokenManager
from connectors.polling import (
    Candidate,
    LinkedAccount,
    PollContext,
    PollResult,
    content_hash,
    id_text,
    known_hashes,
    publish_changed,
)
from pipeline.settings import Settings
from schemas.canonical import StudioContext
from schemas.raw import ShootProofOrder

SOURCE = "shootproof"
MODEL = ShootProofOrder

SCOPE = "studio"
MAX_PAGES = 10_000
MAX_ITEM_PAGES = 100


def oauth_client(settings: Settings) -> OAuthClient:
    auth = settings.shootproof_auth_url.rstrip("/")
    secret = settings.shootproof_client_secret.get_secret_value() if settings.shootproof_client_secret else None
    return OAuthClient(
        vendor=SOURCE,
        authorize_endpoint=f"{auth}/oauth2/authorization/new",
        token_endpoint=f"{auth}/oauth2/authorization/token",
        client_id=settings.shootproof_client_id,
        client_secret=secret,
        scope=SCOPE,
    )


def redirect_uri(settings: Settings) -> str:
    return settings.shootproof_redirect_uri


def _created(order: dict[str, Any]) -> datetime | None:
    value = order.get("created")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _orders_page(body: Any) -> tuple[list[Any], int | None]:
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise VendorError("shootproof order list answer has no `items` list", vendor=SOURCE)
    meta = body.get("meta")
    total_pages = None
    if isinstance(meta, dict):
        value = meta.get("totalPages")
        if isinstance(value, int) and not isinstance(value, bool):
            total_pages = value
    return body["items"], total_pages


async def _items(tokens: TokenManager, url: str, result: PollResult) -> list[Any]:
    """Every item of one order (follows ``meta.totalPages`` when the vendor pages items)."""
    items: list[Any] = []
    page = 1
    while True:
        body = await tokens.get_json(url, {"page": page} if page > 1 else None)
        result.item_requests += 1
        if isinstance(body, list):
            return body
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise VendorError("shootproof order item answer has no `items` list", vendor=SOURCE)
        items.extend(body["items"])
        meta = body.get("meta")
        total = meta.get("totalPages") if isinstance(meta, dict) else None
        if not isinstance(total, int) or page >= total or page >= MAX_ITEM_PAGES:
            return items
        page += 1


async def poll(ctx: PollContext, account: LinkedAccount, studio: StudioContext, result: PollResult) -> None:
    """One poll of one linked brand (see the module docstring)."""
    settings = ctx.settings
    api = settings.shootproof_api_url.rstrip("/")
    brand = account.ref.account_id
    brand_path = f"{api}/brand/{quote(brand, safe='')}"
    cutoff = datetime.now(UTC) - timedelta(days=settings.poll_recent_window_days)
    backfill_done = bool(account.state.get("backfill_done"))
    rows = settings.poll_page_rows

    async with VendorHttp.from_settings(SOURCE, settings) as http:
        tokens = TokenManager(ctx.pool, ctx.cipher, http, oauth_client(settings), account.ref,
                              margin_seconds=settings.token_refresh_margin_seconds)
        page = 1
        reached_end = False
        while True:
            body = await tokens.get_json(
                f"{brand_path}/order", {"page": page, "rows": rows, "sortBy": "created", "sortType": "desc"}
            )
            orders, total_pages = _orders_page(body)
            result.pages += 1
            if not orders:
                reached_end = True
                break
            ids = [id_text(o.get("id")) if isinstance(o, dict) else None for o in orders]
            known = await known_hashes(ctx.pool, studio.studio_id, SOURCE, [i for i in ids if i])
            candidates: list[Candidate] = []
            stop = False
            for order, order_id in zip(orders, ids, strict=True):
                if not isinstance(order, dict) or order_id is None:
                    # Cannot fetch items without an id: hand it on as is (the contract dead-letters it).
                    candidates.append(Candidate(None, order if isinstance(order, dict) else {"order": order}))
                    continue
                previous = known.get(order_id)
                created = _created(order)
                if previous is not None and created is not None and created < cutoff:
                    if backfill_done:
                        stop = True  # seen and older than the window: so is everything after it
                        break
                    continue
                summary = content_hash({k: v for k, v in order.items() if k != "items"})
                if previous is not None and previous.summary_hash == summary:
                    result.unchanged += 1
                    continue
                items = await _items(tokens, f"{brand_path}/order/{quote(order_id, safe='')}/item", result)
                payload = {**order, "items": items}
                payload.setdefault("brandId", brand)
                candidates.append(Candidate(order_id, payload, summary))
            await publish_changed(ctx, studio, account.ref, candidates, result)
            if stop:
                break
            if (total_pages is not None and page >= total_pages) or (total_pages is None and len(orders) < rows):
                reached_end = True
                break
            if page >= MAX_PAGES:
                break
            page += 1
    if reached_end and not backfill_done:
        result.state["backfill_done"] = True

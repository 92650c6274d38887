"""Pic-Time: polled after the account is linked, or pushed by its order webhook.

ASSUMPTIONS (Pic-Time documents no public API; everything vendor-specific is in this module, so
adjust here when the vendor's details are known):

- Settings: ``GALLERYFLOW_PICTIME_CLIENT_ID`` / ``_CLIENT_SECRET``, ``GALLERYFLOW_PICTIME_API_URL``
  (placeholder default ``https://api.pic-time.com/v1``), ``GALLERYFLOW_PICTIME_AUTH_URL`` (placeholder
  default ``https://auth.pic-time.com``), ``GALLERYFLOW_PICTIME_REDIRECT_URI``.
- Link: the same OAuth 2 authorization-code shape as ShootProof: the owner approves at
  ``{auth}/oauth/authorize?response_type=code&client_id&redirect_uri&state`` (no scope), and
  ``POST {auth}/oauth/token`` (form-encoded ``authorization_code`` / ``refresh_token`` grants) answers
  ``access_token``, ``refresh_token``, ``token_type`` "bearer", ``expires_in``. Refresh tokens are
  treated as rotating (always safe: the new pair is stored before use; a non-rotating vendor that
  omits ``refresh_token`` keeps the old one).
- Account id: Pic-Time has no brand id in the link; ``--account-id`` names the linked account
  (default ``default``). It only keys the link; it is not sent to the vendor.
- Orders: ``GET {api}/orders?since=<cursor>&page=N`` with ``Authorization: Bearer``, answering
  ``{"orders": [order...], "nextCursor": "<opaque>"}``. Each order is one raw payload of the pictime
  contract (the same fields the order webhook sends). ``since`` is omitted on the first poll (the
  whole history). Pages run N = 1, 2, ... until a page has no orders (or says ``"hasMore": false``);
  the last ``nextCursor`` seen is stored only after every page was published, so a failed poll
  resumes from the old cursor (the content hashes keep re-reads from publishing twice).
- The cursor is assumed to be a "changed since" cursor: an order that is cancelled or refunded later
  comes back in a later poll with its new status. Updates also arrive through the order webhook
  (``POST /v1/orders/pictime`` on galleryflow's HTTP API, authenticated with the studio's API key).
- Errors: as ShootProof (401: refresh once; 429/5xx: back off honouring Retry-After).
"""

from __future__ import annotations

from typing import Any

from connectors.http import VendorError, VendorHttp
from connectors.oauth import OAuthClient, TokenManager
from connectors.polling import Candidate, LinkedAccount, PollContext, PollResult, id_text, publish_changed
from pipeline.settings import Settings
from schemas.canonical import StudioContext
from schemas.raw import PictimeOrder

SOURCE = "pictime"
MODEL = PictimeOrder

DEFAULT_ACCOUNT_ID = "default"
SCOPE: str | None = None
AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/token"
ORDERS_PATH = "/orders"
MAX_PAGES = 10_000


def oauth_client(settings: Settings) -> OAuthClient:
    auth = settings.pictime_auth_url.rstrip("/")
    secret = settings.pictime_client_secret.get_secret_value() if settings.pictime_client_secret else None
    return OAuthClient(
        vendor=SOURCE,
        authorize_endpoint=f"{auth}{AUTHORIZE_PATH}",
        token_endpoint=f"{auth}{TOKEN_PATH}",
        client_id=settings.pictime_client_id,
        client_secret=secret,
        scope=SCOPE,
    )


def redirect_uri(settings: Settings) -> str:
    return settings.pictime_redirect_uri


def _orders_page(body: Any) -> tuple[list[Any], str | None, bool | None]:
    if not isinstance(body, dict) or not isinstance(body.get("orders"), list):
        raise VendorError("pictime order list answer has no `orders` list", vendor=SOURCE)
    cursor = body.get("nextCursor")
    has_more = body.get("hasMore")
    return (
        body["orders"],
        str(cursor) if isinstance(cursor, str | int) and not isinstance(cursor, bool) and str(cursor) else None,
        has_more if isinstance(has_more, bool) else None,
    )


async def poll(ctx: PollContext, account: LinkedAccount, studio: StudioContext, result: PollResult) -> None:
    """Orders changed since the stored cursor, page by page; the new cursor is stored at the end."""
    settings = ctx.settings
    url = settings.pictime_api_url.rstrip("/") + ORDERS_PATH
    cursor = account.cursor
    next_cursor: str | None = None
    async with VendorHttp.from_settings(SOURCE, settings) as http:
        tokens = TokenManager(ctx.pool, ctx.cipher, http, oauth_client(settings), account.ref,
                              margin_seconds=settings.token_refresh_margin_seconds)
        for page in range(1, MAX_PAGES + 1):
            params: dict[str, Any] = {"page": page}
            if cursor:
                params["since"] = cursor
            orders, page_cursor, has_more = _orders_page(await tokens.get_json(url, params))
            result.pages += 1
            if page_cursor:
                next_cursor = page_cursor
            candidates = [
                Candidate(id_text(o.get("orderId")) if isinstance(o, dict) else None,
                          o if isinstance(o, dict) else {"order": o})
                for o in orders
            ]
            await publish_changed(ctx, studio, account.ref, candidates, result)
            if not orders or has_more is False:
                break
    if next_cursor and next_cursor != cursor:
        result.cursor = next_cursor

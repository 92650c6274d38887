"""OAuth 2 (authorization code) for linked gallery accounts, shared by ShootProof and Pic-Time.

- :func:`create_state` / :func:`consume_state`: a random ``state`` per link, kept only as a SHA-256
  hash, single use, expiring (default 30 minutes).
- :func:`exchange_code` / :func:`refresh_grant`: the token endpoint (form-encoded, JSON answer).
- :func:`store_link`: the tokens of a linked account, encrypted (connectors/secrets.py).
- :class:`TokenManager`: a valid access token for one account. It refreshes shortly before expiry
  (``token_refresh_margin_seconds``) and once on a 401. Refresh tokens rotate (the old one stops
  working the moment the vendor answers), so a refresh runs inside one transaction that holds the
  account row's lock: read the refresh token, call the vendor, write the new pair, commit; only then
  is the new access token used. The lock also makes two pollers of one account (``galleryflow poll``
  and ``galleryflow run``) refresh one after the other; the second sees the new pair and uses it.
  The refresh is shielded from cancellation so a stopping worker never loses a rotated pair.

Tokens, codes, states and client secrets are never logged; log lines carry ids only.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import asyncpg
import structlog

from connectors.http import VendorAuthError, VendorError, VendorHttp, check, json_body
from connectors.secrets import Cipher

log = structlog.get_logger(__name__)

STATE_TTL = timedelta(minutes=30)


class OAuthConfigError(RuntimeError):
    """The vendor's client id / secret are not configured."""


class OAuthStateError(ValueError):
    """An OAuth ``state`` that was never issued, was already used, expired, or is for another studio."""


class AccountNotLinkedError(LookupError):
    """No linked account with that studio, source and account id."""


@dataclass(frozen=True, slots=True)
class AccountRef:
    """One linked vendor account of a studio (ShootProof brand, Pic-Time account)."""

    studio_id: str
    source: str
    account_id: str

    def context(self, what: str) -> str:
        """Associated data binding a ciphertext to this account and field."""
        return f"{self.studio_id}|{self.source}|{self.account_id}|{what}"

    def ids(self) -> dict[str, str]:
        return {"studio_id": self.studio_id, "source": self.source, "account_id": self.account_id}


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """A vendor's OAuth endpoints and this installation's client registration."""

    vendor: str
    authorize_endpoint: str
    token_endpoint: str
    client_id: str | None
    client_secret: str | None = field(default=None, repr=False)
    scope: str | None = None

    def require_credentials(self) -> tuple[str, str]:
        if not self.client_id or not self.client_secret:
            prefix = f"GALLERYFLOW_{self.vendor.upper()}"
            raise OAuthConfigError(f"{prefix}_CLIENT_ID and {prefix}_CLIENT_SECRET must be set")
        return self.client_id, self.client_secret

    def authorize_url(self, state: str, redirect_uri: str) -> str:
        """Where the studio owner approves access; the vendor redirects back with ``code`` and ``state``."""
        if not self.client_id:
            raise OAuthConfigError(f"GALLERYFLOW_{self.vendor.upper()}_CLIENT_ID must be set")
        query = {"response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
                 "state": state}
        if self.scope:
            query["scope"] = self.scope
        separator = "&" if "?" in self.authorize_endpoint else "?"
        return f"{self.authorize_endpoint}{separator}{urlencode(query)}"


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None


# ------------------------------------------------------------------------------------- state


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


async def create_state(
    conn: asyncpg.Connection, studio_id: str, source: str, redirect_uri: str, ttl: timedelta = STATE_TTL
) -> str:
    """A new random ``state`` for a link of ``studio_id`` to ``source`` (stored hashed)."""
    await conn.execute("DELETE FROM oauth_states WHERE expires_at < now()")
    state = secrets.token_urlsafe(32)
    await conn.execute(
        """INSERT INTO oauth_states (state_hash, studio_id, source, redirect_uri, expires_at)
           VALUES ($1, $2, $3, $4, $5)""",
        _state_hash(state), studio_id, source, redirect_uri, datetime.now(UTC) + ttl,
    )
    return state


async def consume_state(conn: asyncpg.Connection, state: str, studio_id: str, source: str) -> str:
    """Use ``state`` once; returns the redirect URI it was issued with. Raises OAuthStateError."""
    row = await conn.fetchrow(
        "DELETE FROM oauth_states WHERE state_hash = $1 RETURNING studio_id, source, redirect_uri, expires_at",
        _state_hash(state),
    )
    if row is None:
        raise OAuthStateError("unknown or already used state: start again with --authorize-url")
    if row["studio_id"] != studio_id or row["source"] != source:
        raise OAuthStateError("that state was issued for another studio or source")
    if row["expires_at"] <= datetime.now(UTC):
        raise OAuthStateError("that state has expired: start again with --authorize-url")
    return str(row["redirect_uri"])


# ------------------------------------------------------------------------------ token endpoint


def _token_pair(body: Any, vendor: str, previous_refresh: str | None) -> TokenPair:
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise VendorError(f"{vendor} token answer has no access_token", vendor=vendor)
    token_type = body.get("token_type")
    if isinstance(token_type, str) and token_type.lower() != "bearer":
        raise VendorError(f"{vendor} token answer has token_type {token_type!r}, not bearer", vendor=vendor)
    refresh = body.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        refresh = previous_refresh  # a vendor that does not rotate keeps the old one valid
    expires_in = body.get("expires_in")
    expires_at = None
    if isinstance(expires_in, int | Decimal | str) and not isinstance(expires_in, bool):
        try:
            expires_at = datetime.now(UTC) + timedelta(seconds=float(expires_in))
        except (ValueError, OverflowError):
            expires_at = None
    return TokenPair(body["access_token"], refresh, expires_at)


async def _token_request(http: VendorHttp, client: OAuthClient, form: dict[str, str], what: str) -> Any:
    response = await http.request("POST", client.token_endpoint, data=form)
    if response.status_code in (400, 401):
        await response.aread()
        try:
            check(response, client.vendor)
        except VendorError as exc:
            raise VendorAuthError(
                f"{client.vendor} refused the {what} ({exc}): link the account again", status=exc.status,
                vendor=client.vendor,
            ) from None
    check(response, client.vendor)
    return json_body(response, client.vendor)


async def exchange_code(http: VendorHttp, client: OAuthClient, code: str, redirect_uri: str) -> TokenPair:
    """Trade an authorization code for tokens."""
    client_id, client_secret = client.require_credentials()
    body = await _token_request(http, client, {
        "grant_type": "authorization_code", "code": code, "client_id": client_id,
        "client_secret": client_secret, "redirect_uri": redirect_uri,
    }, "authorization code")
    return _token_pair(body, client.vendor, None)


async def refresh_grant(http: VendorHttp, client: OAuthClient, refresh_token: str) -> TokenPair:
    """A new token pair for ``refresh_token`` (which stops working once the vendor answers)."""
    client_id, client_secret = client.require_credentials()
    body = await _token_request(http, client, {
        "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id,
        "client_secret": client_secret,
    }, "refresh token")
    return _token_pair(body, client.vendor, refresh_token)


# ------------------------------------------------------------------------------ stored tokens


async def store_link(conn: asyncpg.Connection, cipher: Cipher, ref: AccountRef, tokens: TokenPair) -> None:
    """Insert or replace a linked account's tokens (encrypted); keeps its poll state and counters."""
    refresh = cipher.encrypt(tokens.refresh_token, ref.context("refresh_token")) if tokens.refresh_token else None
    await conn.execute(
        """INSERT INTO connector_accounts
               (studio_id, source, account_id, access_token_enc, refresh_token_enc, token_expires_at,
                token_refreshed_at)
           VALUES ($1, $2, $3, $4, $5, $6, now())
           ON CONFLICT (studio_id, source, account_id) DO UPDATE
           SET access_token_enc = EXCLUDED.access_token_enc, refresh_token_enc = EXCLUDED.refresh_token_enc,
               token_expires_at = EXCLUDED.token_expires_at, token_refreshed_at = now(), linked_at = now(),
               enabled = true, last_error = NULL, next_poll_at = NULL, updated_at = now()""",
        ref.studio_id, ref.source, ref.account_id,
        cipher.encrypt(tokens.access_token, ref.context("access_token")), refresh, tokens.expires_at,
    )


#: Refreshes in flight: a cancelled poll leaves its refresh running (shielded) until the new pair is stored.
_refreshing: set[asyncio.Future[str]] = set()


async def wait_for_refreshes(limit_seconds: float = 30.0) -> None:
    """Let refreshes that outlived a cancelled poll store their pair; call before closing the pool."""
    pending = [task for task in _refreshing if not task.done()]
    if pending:
        await asyncio.wait(pending, timeout=limit_seconds)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class TokenManager:
    """Valid access tokens for one linked account, refreshed before expiry and once on a 401."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        cipher: Cipher,
        http: VendorHttp,
        client: OAuthClient,
        ref: AccountRef,
        *,
        margin_seconds: float = 60.0,
    ) -> None:
        self.pool = pool
        self.cipher = cipher
        self.http = http
        self.client = client
        self.ref = ref
        self.margin = timedelta(seconds=margin_seconds)
        self.refreshes = 0

    _SELECT = """SELECT access_token_enc, refresh_token_enc, token_expires_at, token_refreshed_at
                 FROM connector_accounts WHERE studio_id = $1 AND source = $2 AND account_id = $3"""

    def _expiring(self, row: Any) -> bool:
        """Expired or within the margin of expiry; the margin is at most half the token's lifetime,
        so a short-lived token is not refreshed before every request."""
        expires_at, issued_at = row["token_expires_at"], row["token_refreshed_at"]
        if expires_at is None:
            return False
        margin = self.margin
        if issued_at is not None and expires_at > issued_at:
            margin = min(margin, (expires_at - issued_at) / 2)
        return datetime.now(UTC) >= expires_at - margin

    async def access_token(self) -> str:
        """The stored access token, refreshed first when it expires within the margin."""
        row = await self.pool.fetchrow(self._SELECT, self.ref.studio_id, self.ref.source, self.ref.account_id)
        if row is None:
            raise AccountNotLinkedError(f"no linked {self.ref.source} account {self.ref.account_id!r} "
                                        f"for studio {self.ref.studio_id!r}")
        if self._expiring(row):
            return await self.refresh(stale_access=None)
        return self.cipher.decrypt(row["access_token_enc"], self.ref.context("access_token"))

    async def refresh(self, stale_access: str | None) -> str:
        """Refresh (unless another poller already did) and return the new access token.

        ``stale_access`` is the token the vendor refused (a 401), or None for a refresh before expiry.
        """
        task = asyncio.ensure_future(self._refresh(stale_access))
        _refreshing.add(task)
        task.add_done_callback(_refreshing.discard)
        return await asyncio.shield(task)

    async def _refresh(self, stale_access: str | None) -> str:
        # Its own HTTP client: a poll cancelled mid-refresh closes the poll's client, not this one.
        async with self.http.clone() as http, self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(self._SELECT + " FOR UPDATE", *self.ref.ids().values())
            if row is None:
                raise AccountNotLinkedError(f"{self.ref.source} account {self.ref.account_id!r} was unlinked")
            current = self.cipher.decrypt(row["access_token_enc"], self.ref.context("access_token"))
            if stale_access is not None and current != stale_access:
                return current  # someone refreshed while we waited for the lock
            if stale_access is None and not self._expiring(row):
                return current
            if row["refresh_token_enc"] is None:
                raise VendorAuthError(f"{self.client.vendor} access token expired and there is no refresh token: "
                                      "link the account again", vendor=self.client.vendor)
            refresh_token = self.cipher.decrypt(row["refresh_token_enc"], self.ref.context("refresh_token"))
            pair = await refresh_grant(http, self.client, refresh_token)
            # The old refresh token is dead now: the new pair is written before anything uses it.
            await conn.execute(
                """UPDATE connector_accounts
                   SET access_token_enc = $4, refresh_token_enc = $5, token_expires_at = $6,
                       token_refreshed_at = now(), updated_at = now()
                   WHERE studio_id = $1 AND source = $2 AND account_id = $3""",
                *self.ref.ids().values(),
                self.cipher.encrypt(pair.access_token, self.ref.context("access_token")),
                self.cipher.encrypt(pair.refresh_token, self.ref.context("refresh_token"))
                if pair.refresh_token else None,
                pair.expires_at,
            )
        self.refreshes += 1
        log.info("access token refreshed", reason="401" if stale_access else "expiry", **self.ref.ids())
        return pair.access_token

    async def get_json(self, url: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``url`` with the bearer token; on a 401 refresh once and retry; the JSON answer."""
        token = await self.access_token()
        response = await self.http.request("GET", url, headers=_bearer(token), params=params)
        if response.status_code == 401:
            await response.aread()
            log.info("access token refused, refreshing once", **self.ref.ids())
            token = await self.refresh(stale_access=token)
            response = await self.http.request("GET", url, headers=_bearer(token), params=params)
            if response.status_code == 401:
                await response.aread()
                check(response, self.client.vendor)  # VendorAuthError
        check(response, self.client.vendor)
        return json_body(response, self.client.vendor)

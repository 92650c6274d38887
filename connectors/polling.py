"""What every poller shares: linked accounts, one poll's bookkeeping, and publishing only what changed.

A poll of one account (:func:`run_poll`):

1. takes a PostgreSQL advisory lock for the account (a second poller of the same account, e.g.
   ``galleryflow poll`` while ``galleryflow run`` polls, skips instead of racing it);
2. runs the vendor's poll function, which hands batches of orders to :func:`publish_changed`:
   each order's content hash is compared with the one stored for it; new or changed orders go through
   ``connectors.base.ingest`` (validated, published, acknowledged by the broker, or dead-lettered);
   only then are their hashes recorded, with the account's ``orders_published`` counter, in one
   transaction. A crash between the two re-publishes at most that batch (the importer absorbs it);
3. records the outcome on the account: ``last_poll_at``, ``last_error`` (ids and status codes only),
   ``next_poll_at`` (the interval, or longer when the vendor asked us to wait), cursor and state.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import structlog

from connectors.base import RawPublisher, UnknownStudioError, ingest, load_studio
from connectors.http import RateLimitedError, VendorError
from connectors.oauth import AccountNotLinkedError, AccountRef, OAuthConfigError, wait_for_refreshes
from connectors.secrets import Cipher, DecryptionError, SecretKeyMissingError, cipher_from_settings
from pipeline import services
from pipeline.db.pool import create_pool
from pipeline.kafka import ensure_topics, make_producer
from pipeline.retry import is_infrastructure_error
from pipeline.settings import Settings
from schemas import wire
from schemas.canonical import StudioContext

log = structlog.get_logger(__name__)

POLLED_SOURCES = ("shootproof", "pictime")

#: Errors whose message is ours (ids, status codes, problem titles): safe to store and show.
_KNOWN_ERRORS = (VendorError, SecretKeyMissingError, DecryptionError, OAuthConfigError, AccountNotLinkedError,
                 UnknownStudioError)


@dataclass(slots=True)
class LinkedAccount:
    ref: AccountRef
    cursor: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    last_poll_at: datetime | None = None
    next_poll_at: datetime | None = None

    def due(self, now: datetime) -> bool:
        return self.enabled and (self.next_poll_at is None or self.next_poll_at <= now)


@dataclass(slots=True)
class PollContext:
    settings: Settings
    pool: asyncpg.Pool
    publisher: RawPublisher
    cipher: Cipher


@dataclass(slots=True)
class PollResult:
    """What one poll of one account did."""

    ref: AccountRef
    published: int = 0
    unchanged: int = 0
    rejected: int = 0
    pages: int = 0
    item_requests: int = 0
    error: str | None = None
    retry_after: float | None = None
    skipped: bool = False
    cursor: str | None = None  # a new cursor to store (None: keep)
    state: dict[str, Any] = field(default_factory=dict)  # keys to merge into the account's state

    @property
    def ok(self) -> bool:
        return self.error is None and not self.skipped

    def summary(self) -> dict[str, Any]:
        return {**self.ref.ids(), "published": self.published, "unchanged": self.unchanged,
                "rejected": self.rejected, "pages": self.pages, "error": self.error, "skipped": self.skipped}


@dataclass(slots=True)
class Candidate:
    """An order as a poller assembled it, ready to be compared and published."""

    external_id: str | None
    payload: dict[str, Any]
    summary_hash: str | None = None


PollFunction = Callable[[PollContext, LinkedAccount, StudioContext, PollResult], Awaitable[None]]


# ------------------------------------------------------------------------------------ accounts


async def list_accounts(
    conn: asyncpg.Connection | asyncpg.Pool, *, studio_id: str | None = None, source: str | None = None
) -> list[LinkedAccount]:
    rows = await conn.fetch(
        """SELECT studio_id, source, account_id, cursor, state, enabled, last_poll_at, next_poll_at
           FROM connector_accounts
           WHERE ($1::text IS NULL OR studio_id = $1) AND ($2::text IS NULL OR source = $2)
           ORDER BY studio_id, source, account_id""",
        studio_id, source,
    )
    accounts = []
    for row in rows:
        state = row["state"]
        if isinstance(state, str):  # a connection without the json codec
            state = json.loads(state)
        accounts.append(LinkedAccount(
            AccountRef(row["studio_id"], row["source"], row["account_id"]), row["cursor"], state or {},
            row["enabled"], row["last_poll_at"], row["next_poll_at"],
        ))
    return accounts


@asynccontextmanager
async def poll_context(settings: Settings) -> AsyncIterator[PollContext]:
    """Cipher (fails first when GALLERYFLOW_SECRET_KEY is missing), topics, pool and producer."""
    cipher = cipher_from_settings(settings)
    await ensure_topics(settings)
    pool = await create_pool(services.database_url(settings), max_size=4)
    producer = make_producer(settings)
    try:
        await producer.start()
        yield PollContext(settings, pool, RawPublisher(settings, producer), cipher)
    finally:
        await wait_for_refreshes()
        await producer.stop()
        await pool.close()


# ---------------------------------------------------------------------------------- hashing


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _sorted(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [_sorted(v) for v in value]
    return value


def content_hash(value: Any) -> str:
    """SHA-256 of the value as canonical JSON (keys sorted, exact numbers)."""
    return hashlib.sha256(wire.dumps(_sorted(value))).hexdigest()


def id_text(value: Any) -> str | None:
    """An order id as the raw contract compares it (numbers and strings alike), or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return str(int(value))
    if isinstance(value, str) and value.strip():
        return value.replace("\x00", "").strip()
    return None


@dataclass(frozen=True, slots=True)
class Known:
    content_hash: str
    summary_hash: str | None


async def known_hashes(
    conn: asyncpg.Connection | asyncpg.Pool, studio_id: str, source: str, ids: Sequence[str]
) -> dict[str, Known]:
    if not ids:
        return {}
    rows = await conn.fetch(
        """SELECT external_order_id, content_hash, summary_hash FROM connector_order_hashes
           WHERE studio_id = $1 AND source = $2 AND external_order_id = ANY($3::text[])""",
        studio_id, source, list(ids),
    )
    return {r["external_order_id"]: Known(r["content_hash"], r["summary_hash"]) for r in rows}


async def publish_changed(
    ctx: PollContext, studio: StudioContext, ref: AccountRef, candidates: Sequence[Candidate], result: PollResult
) -> None:
    """Publish the new or changed candidates, then record their hashes (after the broker's ack)."""
    if not candidates:
        return
    known = await known_hashes(ctx.pool, studio.studio_id, ref.source,
                               [c.external_id for c in candidates if c.external_id])
    changed: list[tuple[Candidate, str, str]] = []
    seen_now: set[str] = set()
    for candidate in candidates:
        digest = content_hash(candidate.payload)
        key = candidate.external_id or f"(no id) {digest[:24]}"
        if key in seen_now:
            continue  # the same order twice in one batch (pages shifted under us)
        seen_now.add(key)
        previous = known.get(key)
        if previous is not None and previous.content_hash == digest:
            result.unchanged += 1
            continue
        changed.append((candidate, key, digest))
    if not changed:
        return
    outcome = await ingest(ctx.publisher, studio, ref.source, [c.payload for c, _, _ in changed])  # type: ignore[arg-type]
    # Every changed order is now either acknowledged by the broker or dead-lettered: record it.
    rows = [(studio.studio_id, ref.source, key, digest, c.summary_hash) for c, key, digest in changed]
    async with ctx.pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            """INSERT INTO connector_order_hashes (studio_id, source, external_order_id, content_hash, summary_hash)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (studio_id, source, external_order_id) DO UPDATE
               SET content_hash = EXCLUDED.content_hash, summary_hash = EXCLUDED.summary_hash, seen_at = now()""",
            rows,
        )
        await conn.execute(
            """UPDATE connector_accounts SET orders_published = orders_published + $4, updated_at = now()
               WHERE studio_id = $1 AND source = $2 AND account_id = $3""",
            *ref.ids().values(), len(outcome.published),
        )
    result.published += len(outcome.published)
    result.rejected += len(outcome.rejected)
    if outcome.rejected:
        log.warning("orders broke the contract, dead-lettered", count=len(outcome.rejected), **ref.ids())


# ------------------------------------------------------------------------------------- one poll


def _lock_key(ref: AccountRef) -> str:
    return f"galleryflow-poll|{ref.studio_id}|{ref.source}|{ref.account_id}"


def describe_error(exc: BaseException) -> str:
    """A message safe to store and show: ours verbatim, anything else by type only."""
    if isinstance(exc, _KNOWN_ERRORS):
        return str(exc)[:500]
    if is_infrastructure_error(exc):
        return f"Kafka or PostgreSQL unavailable ({type(exc).__name__}); retried on the next poll"
    return f"unexpected {type(exc).__name__} (see the poller's log)"


async def run_poll(ctx: PollContext, account: LinkedAccount, poll: PollFunction) -> PollResult:
    """Poll one account with ``poll`` and record the outcome on the account."""
    ref = account.ref
    result = PollResult(ref)
    async with ctx.pool.acquire() as lock_conn:
        locked = await lock_conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", _lock_key(ref))
        if not locked:
            result.skipped = True
            result.error = "another poller is polling this account right now"
            log.info("poll skipped: account busy", **ref.ids())
            return result
        try:
            started = datetime.now(UTC)
            try:
                studio = await load_studio(ctx.pool, ref.studio_id)
                await poll(ctx, account, studio, result)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                result.error = describe_error(exc)
                if isinstance(exc, RateLimitedError):
                    result.retry_after = exc.retry_after
                log.warning("poll failed", error_type=type(exc).__name__, status=getattr(exc, "status", None),
                            published=result.published, **ref.ids())
                if not isinstance(exc, _KNOWN_ERRORS):
                    log.warning("poll failure trace", trace="".join(traceback.format_tb(exc.__traceback__)),
                                **ref.ids())
            await _record(ctx, account, result, started)
            if result.ok:
                log.info("poll done", published=result.published, unchanged=result.unchanged,
                         rejected=result.rejected, pages=result.pages, **ref.ids())
            return result
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", _lock_key(ref))


async def _record(ctx: PollContext, account: LinkedAccount, result: PollResult, started: datetime) -> None:
    wait = ctx.settings.poll_interval_seconds
    if result.retry_after is not None:
        wait = max(wait, result.retry_after)
    next_poll = datetime.now(UTC) + timedelta(seconds=wait)
    await ctx.pool.execute(
        """UPDATE connector_accounts
           SET last_poll_at = $4, last_error = $5,
               last_success_at = CASE WHEN $5::text IS NULL THEN now() ELSE last_success_at END,
               next_poll_at = $6, cursor = COALESCE($7, cursor), state = state || $8::jsonb, updated_at = now()
           WHERE studio_id = $1 AND source = $2 AND account_id = $3""",
        *account.ref.ids().values(), started, result.error, next_poll,
        result.cursor if result.ok else None, result.state if result.ok else {},  # jsonb codec: a dict
    )

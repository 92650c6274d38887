"""`galleryflow run` polls every linked account (ShootProof, Pic-Time) on an interval.

Every ``min(poll_interval_seconds, 10)`` seconds the scheduler reads the linked accounts and polls,
one after the other, those that are due (``next_poll_at``: the interval after the last poll, or
longer when a vendor sent a long ``Retry-After``). A failing account records its error and waits for
its next turn; nothing here stops the worker. It is not started by ``run --until-idle`` (a poller
always has a next poll, so the worker would never be idle); use ``galleryflow poll --once`` there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from connectors import pictime, shootproof
from connectors.base import RawPublisher
from connectors.oauth import wait_for_refreshes
from connectors.polling import LinkedAccount, PollContext, PollFunction, PollResult, list_accounts, run_poll
from connectors.secrets import SecretKeyMissingError, cipher_from_settings
from pipeline import services
from pipeline.db.pool import create_pool
from pipeline.kafka import ensure_topics, make_producer
from pipeline.settings import Settings

log = structlog.get_logger(__name__)

POLLERS: dict[str, PollFunction] = {shootproof.SOURCE: shootproof.poll, pictime.SOURCE: pictime.poll}
MAX_TICK_SECONDS = 10.0


async def _wait(stop_event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop_event.wait(), timeout=seconds)


async def until_stopped(work: Coroutine[Any, Any, PollResult], stop_event: asyncio.Event) -> PollResult | None:
    """Run ``work``; cancel it when ``stop_event`` is set first (token refreshes are shielded)."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop_event.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None
    return task.result()


async def _record_missing_key(pool: asyncpg.Pool, accounts: list[LinkedAccount], settings: Settings,
                              message: str) -> None:
    next_poll = datetime.now(UTC) + timedelta(seconds=settings.poll_interval_seconds)
    for account in accounts:
        await pool.execute(
            """UPDATE connector_accounts SET last_poll_at = now(), last_error = $4, next_poll_at = $5,
                      updated_at = now()
               WHERE studio_id = $1 AND source = $2 AND account_id = $3""",
            *account.ref.ids().values(), message, next_poll,
        )


async def poll_linked_accounts(settings: Settings, stop_event: asyncio.Event) -> None:
    """Poll every due linked account until ``stop_event`` is set. Never raises for a failed poll."""
    tick = min(settings.poll_interval_seconds, MAX_TICK_SECONDS)
    pool: asyncpg.Pool | None = None
    ctx: PollContext | None = None
    producer = None
    last_failure: str | None = None
    log.info("account poller started", interval_s=settings.poll_interval_seconds)
    try:
        while not stop_event.is_set():
            try:
                if pool is None:
                    pool = await create_pool(services.database_url(settings), max_size=4)
                due = [a for a in await list_accounts(pool) if a.due(datetime.now(UTC))]
                if due and ctx is None:
                    try:
                        cipher = cipher_from_settings(settings)
                    except SecretKeyMissingError as exc:
                        await _record_missing_key(pool, due, settings, str(exc))
                        log.error("linked accounts cannot be polled: GALLERYFLOW_SECRET_KEY is not set",
                                  accounts=len(due))
                        due = []
                    else:
                        await ensure_topics(settings)
                        starting = make_producer(settings)
                        try:
                            await starting.start()
                        except BaseException:
                            await starting.stop()
                            raise
                        producer = starting
                        ctx = PollContext(settings, pool, RawPublisher(settings, producer), cipher)
                for account in due:
                    if stop_event.is_set():
                        break
                    poll = POLLERS.get(account.ref.source)
                    if poll is None or ctx is None:
                        continue
                    await until_stopped(run_poll(ctx, account, poll), stop_event)
                last_failure = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database or broker away: try again on the next tick
                failure = type(exc).__name__
                if failure != last_failure:
                    log.warning("account poller round failed; retrying", error_type=failure)
                last_failure = failure
            await _wait(stop_event, tick)
    finally:
        await wait_for_refreshes()
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()
        if pool is not None:
            with contextlib.suppress(Exception):
                await pool.close()
        log.info("account poller stopped")

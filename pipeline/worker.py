"""Run the worker (normaliser + importer) until stopped, or until idle."""

from __future__ import annotations

import asyncio
import signal

import structlog
from aiokafka import AIOKafkaProducer

from pipeline import services
from pipeline.app import InFlight, create_app
from pipeline.db.pool import create_pool
from pipeline.importer import ImportStage
from pipeline.kafka import ensure_topics, make_producer
from pipeline.lag import LagReader
from pipeline.normalise_stage import NormaliseStage
from pipeline.retry import retry_until_done
from pipeline.settings import Settings

log = structlog.get_logger(__name__)

#: The idle condition must hold this many checks in a row.
IDLE_CHECKS = 2


async def run_worker(settings: Settings, *, until_idle: bool = False, idle_timeout: float | None = None) -> None:
    """Consume raw and canonical orders. With ``until_idle``, return once every input topic is
    consumed and committed and no batch is in flight."""
    # The broker or the database may not be up yet: wait for them (they are infrastructure).
    backoff = {"initial": settings.retry_initial_seconds, "maximum": settings.retry_max_seconds}
    await retry_until_done(lambda: ensure_topics(settings), what="create topics", **backoff)
    pool = await retry_until_done(
        lambda: create_pool(services.database_url(settings), max_size=4), what="connect to PostgreSQL", **backoff
    )
    producer = await retry_until_done(lambda: _started_producer(settings), what="connect to Kafka", **backoff)
    in_flight = InFlight()
    normaliser = NormaliseStage(settings, producer)
    importer = ImportStage(settings, pool, producer)
    app = create_app(settings, normaliser.handle, importer.handle, in_flight)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
            pass
    await importer.flush_outbox()  # events a crash left behind
    await app.start()
    log.info("worker started", app_id=settings.app_id)
    try:
        if until_idle:
            waiter = asyncio.ensure_future(_wait_idle(settings, in_flight))
            stopper = asyncio.ensure_future(stop.wait())
            done, pending = await asyncio.wait(
                {waiter, stopper}, timeout=idle_timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            if not done:
                raise TimeoutError(f"not idle after {idle_timeout} s")
        else:
            # Linked ShootProof / Pic-Time accounts are polled alongside (not in --until-idle mode).
            from connectors.scheduler import poll_linked_accounts

            await asyncio.gather(stop.wait(), poll_linked_accounts(settings, stop))
    finally:
        log.info("worker stopping", app_id=settings.app_id)
        await app.stop()
        await producer.stop()
        await pool.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                pass


async def _started_producer(settings: Settings) -> AIOKafkaProducer:
    producer = make_producer(settings)
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    return producer


async def _wait_idle(settings: Settings, in_flight: InFlight) -> None:
    """Idle: raw then canonical fully committed by the group, nothing in flight, twice in a row."""
    reader = LagReader(settings)
    await reader.start()
    try:
        streak = 0
        while streak < IDLE_CHECKS:
            await asyncio.sleep(settings.idle_check_seconds)
            raw = await reader.read([settings.raw_topic])
            canonical = await reader.read([settings.canonical_topic])
            idle = in_flight.batches == 0 and all(p.lag == 0 for p in raw + canonical)
            streak = streak + 1 if idle else 0
    finally:
        await reader.stop()

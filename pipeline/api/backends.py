"""The API's connections: one durable producer (reconnected when it fails) and the readiness checks.

The producer is made by `pipeline.kafka.make_producer` (acks=all, idempotent). A push is answered 202
only once `connectors.base.ingest` has seen every message acknowledged. When the broker cannot be
reached the API keeps running and answers 503 (with Retry-After) until it can: a failed connect is not
retried for `cooldown` seconds, so a burst of pushes during an outage does not queue behind timeouts.
A publish that fails or times out drops the producer and the next push makes a new one, because an
idempotent aiokafka producer has been seen to stall after a broker outage (aiokafka #1017).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from connectors.base import IngestResult, RawPublisher, ingest
from pipeline import services
from pipeline.kafka import ensure_topics, make_producer
from pipeline.settings import Settings
from schemas.canonical import Source, StudioContext

log = structlog.get_logger(__name__)

#: What a database call can raise when PostgreSQL is down, unreachable or misbehaving.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
)


class KafkaUnavailable(Exception):
    """The broker did not take the messages (or cannot be reached): nothing may be claimed accepted."""


class MessageTooLarge(Exception):
    """The broker refuses a message this large (only when max_order_bytes is set near its limit)."""


class KafkaLink:
    """The API's one producer, connected at startup and again on demand after a failure."""

    def __init__(
        self, settings: Settings, *, connect_timeout: float, publish_timeout: float, cooldown: float
    ) -> None:
        self.settings = settings
        self.connect_timeout = connect_timeout
        self.publish_timeout = publish_timeout
        self.cooldown = cooldown
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._failed_at: float | None = None
        self._topics_ensured = False
        self._stopping: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        return self._producer is not None

    async def producer(self) -> AIOKafkaProducer:
        """The started producer; ``KafkaUnavailable`` when the broker cannot be reached."""
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                if self._failed_at is not None and time.monotonic() - self._failed_at < self.cooldown:
                    raise KafkaUnavailable("the broker did not answer moments ago")
                self._producer = await self._connect()
            return self._producer

    async def _connect(self) -> AIOKafkaProducer:
        producer = make_producer(self.settings)
        try:
            await asyncio.wait_for(producer.start(), self.connect_timeout)
            if not self._topics_ensured:
                await asyncio.wait_for(ensure_topics(self.settings), self.connect_timeout)
                self._topics_ensured = True
        except BaseException as exc:  # cancelled too: never leave a half-started producer behind
            await _stop_quietly(producer, self.connect_timeout)
            if not isinstance(exc, KafkaError | OSError | TimeoutError):
                raise
            self._failed_at = time.monotonic()
            log.warning("kafka unavailable", error=type(exc).__name__)
            raise KafkaUnavailable(type(exc).__name__) from exc
        self._failed_at = None
        log.info("kafka producer connected")
        return producer

    async def publish(self, studio: StudioContext, source: Source, payloads: Sequence[Any]) -> IngestResult:
        """Publish validated orders through the shared connector code; returns once acknowledged."""
        producer = await self.producer()
        publisher = RawPublisher(self.settings, producer)
        try:
            return await asyncio.wait_for(
                ingest(publisher, studio, source, payloads, dead_letter_rejects=False), self.publish_timeout
            )
        except MessageSizeTooLargeError as exc:
            raise MessageTooLarge(str(exc)) from exc
        except (KafkaError, OSError, TimeoutError) as exc:
            # Unacknowledged messages may still arrive later; a re-push is harmless downstream.
            log.warning("kafka publish failed", error=type(exc).__name__, studio_id=studio.studio_id)
            self._discard(producer)
            raise KafkaUnavailable(type(exc).__name__) from exc

    def _discard(self, producer: AIOKafkaProducer) -> None:
        if self._producer is not producer:
            return
        self._producer = None
        task = asyncio.get_running_loop().create_task(_stop_quietly(producer, self.connect_timeout))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def check(self, within: float) -> None:
        """Raise unless the producer is connected and the broker answers a metadata request now."""
        await self.producer()
        admin = AIOKafkaAdminClient(
            bootstrap_servers=services.bootstrap_servers(self.settings),
            client_id=f"{self.settings.app_id}-api-ready",
            request_timeout_ms=int(within * 1000),
        )
        try:
            await asyncio.wait_for(admin.start(), within)
            topics = await asyncio.wait_for(admin.list_topics(), within)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(admin.close(), within)
        if self.settings.raw_topic not in topics:
            raise KafkaUnavailable(f"topic {self.settings.raw_topic} is missing")

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await _stop_quietly(producer, self.publish_timeout)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)


async def _stop_quietly(producer: AIOKafkaProducer, within: float) -> None:
    try:
        await asyncio.wait_for(producer.stop(), within)
    except Exception as exc:  # a stop that fails leaves nothing to clean up that we could reach
        log.warning("kafka producer stop failed", error=type(exc).__name__)


async def open_pool(settings: Settings, *, connect_timeout: float) -> asyncpg.Pool:
    """A lazy pool (no connection until needed), so the API starts while PostgreSQL is down."""
    from pipeline.db.pool import init_connection

    pool = await asyncpg.create_pool(
        services.database_url(settings), min_size=0, max_size=8, init=init_connection,
        timeout=connect_timeout, command_timeout=30,
    )
    assert pool is not None
    return pool


async def check_postgres(pool: asyncpg.Pool, within: float) -> None:
    """Raise unless PostgreSQL answers ``SELECT 1`` within ``within`` seconds."""
    if await asyncio.wait_for(pool.fetchval("SELECT 1"), within) != 1:
        raise RuntimeError("SELECT 1 did not answer 1")

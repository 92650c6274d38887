"""Kafka plumbing shared by every stage: the one producer configuration and topic creation."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    InvalidProducerEpoch,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    TopicAlreadyExistsError,
    UnknownProducerId,
)

from pipeline import services
from pipeline.settings import Settings

log = structlog.get_logger(__name__)

#: Raw orders can be large (ShootProof orders with many items): allow up to 4 MiB per message.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


#: Errors after which aiokafka's idempotent producer never delivers again (aiokafka #1017). Seen in
#: tests/chaos: a broker stopped for longer than request_timeout_ms leaves its partitions leaderless in
#: the producer's metadata; the waiting batches are failed (LeaderNotAvailableError) after taking their
#: sequence numbers, and the broker then refuses every later batch of those partitions with
#: OutOfOrderSequenceNumber, for ever.
WEDGED_ERRORS = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, ProducerFenced)
REPLACED_PRODUCER_STOP_SECONDS = 10.0


def make_producer(settings: Settings) -> DurableProducer:
    """A durable producer: acks=all, idempotent, ordered per partition, replaced when it wedges."""
    return DurableProducer(settings)


class DurableProducer:
    """``AIOKafkaProducer``'s start/send/send_and_wait/stop over one aiokafka producer, which is
    replaced by a fresh one (a new producer id) on the next send once it is wedged (WEDGED_ERRORS, or
    its sender task died). The send that met the error still fails: callers retry it as any broker
    error (``retry_until_done``, a connector's next poll), and a message that reaches the topic twice
    is absorbed downstream (orders are idempotent on studio, source and order id)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer = _aiokafka_producer(settings)
        self._started = False
        self._wedged: BaseException | None = None
        self._lock = asyncio.Lock()
        self.replacements = 0

    async def start(self) -> None:
        await self._producer.start()
        self._started = True

    async def stop(self) -> None:
        self._started = False
        await self._producer.stop()

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, **kwargs: Any
    ) -> asyncio.Future[Any]:
        """Queue one message; returns the future of the broker's acknowledgement."""
        if self._started and (self._wedged is not None or _sender_died(self._producer)):
            await self._replace()
        producer = self._producer
        try:
            future: asyncio.Future[Any] = await producer.send(topic, value=value, key=key, **kwargs)
        except WEDGED_ERRORS as exc:
            self._mark_wedged(producer, exc)
            raise
        future.add_done_callback(functools.partial(self._check, producer))
        return future

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, **kwargs: Any
    ) -> Any:
        return await (await self.send(topic, value=value, key=key, **kwargs))

    def _check(self, producer: AIOKafkaProducer, future: asyncio.Future[Any]) -> None:
        error = None if future.cancelled() else future.exception()
        if isinstance(error, WEDGED_ERRORS):
            self._mark_wedged(producer, error)

    def _mark_wedged(self, producer: AIOKafkaProducer, error: BaseException) -> None:
        if producer is self._producer and self._wedged is None:
            self._wedged = error
            log.warning("kafka producer wedged; replacing it", error_type=type(error).__name__)

    async def _replace(self) -> None:
        async with self._lock:
            old = self._producer
            if self._wedged is None and not _sender_died(old):
                return  # another send replaced it meanwhile
            new = _aiokafka_producer(self._settings)
            try:
                await new.start()
            except BaseException:  # broker away: the caller retries, and the next send tries again
                await _stop_quietly(new)
                raise
            self._producer, self._wedged = new, None
            self.replacements += 1
            log.warning("kafka producer replaced", replacements=self.replacements)
        await _stop_quietly(old)


def _sender_died(producer: AIOKafkaProducer) -> bool:
    """True when aiokafka's background sender task ended (private in aiokafka 0.14): every send fails."""
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    return task is not None and task.done()


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), REPLACED_PRODUCER_STOP_SECONDS)
    except Exception as exc:
        log.warning("kafka producer stop failed", error_type=type(exc).__name__)


def _aiokafka_producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=services.bootstrap_servers(settings),
        client_id=f"{settings.app_id}-producer",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=MAX_MESSAGE_BYTES,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        retry_backoff_ms=200,
    )


def all_topics(settings: Settings) -> list[str]:
    return [
        settings.raw_topic,
        settings.canonical_topic,
        settings.deadletter_topic,
        settings.committed_topic,
    ]


async def ensure_topics(settings: Settings, names: Iterable[str] | None = None) -> list[str]:
    """Create the pipeline's topics up front with the configured partitions; returns those created."""
    wanted = list(names) if names is not None else all_topics(settings)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=services.bootstrap_servers(settings), client_id=f"{settings.app_id}-admin"
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if not missing:
            return []
        new = [
            NewTopic(
                name,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs={"max.message.bytes": str(MAX_MESSAGE_BYTES)},
            )
            for name in missing
        ]
        try:
            await admin.create_topics(new)
        except TopicAlreadyExistsError:
            pass
        # Metadata propagates asynchronously: wait until every topic is listed.
        for _ in range(50):
            if set(missing) <= set(await admin.list_topics()):
                break
            await asyncio.sleep(0.1)
        return missing
    finally:
        await admin.close()

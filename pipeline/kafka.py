"""Kafka plumbing shared by every stage: the one producer configuration and topic creation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from pipeline import services
from pipeline.settings import Settings

#: Raw orders can be large (ShootProof orders with many items): allow up to 4 MiB per message.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def make_producer(settings: Settings) -> AIOKafkaProducer:
    """A durable producer: acks=all, idempotent, ordered per partition."""
    return AIOKafkaProducer(
        bootstrap_servers=services.bootstrap_servers(settings),
        client_id=f"{settings.app_id}-producer",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=MAX_MESSAGE_BYTES,
        request_timeout_ms=30_000,
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

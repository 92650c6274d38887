"""Consumer lag of the worker's group: what `run --until-idle` waits on and `status` shows."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from pipeline import services
from pipeline.settings import Settings


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


class LagReader:
    """Reads end offsets and the group's committed offsets (no group membership of its own)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        bootstrap = services.bootstrap_servers(settings)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=f"{settings.app_id}-lag")
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, client_id=f"{settings.app_id}-lag", enable_auto_commit=False
        )

    async def start(self) -> None:
        await self._admin.start()
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def read(self, topics: list[str]) -> list[PartitionLag]:
        partitions = []
        for description in await self._admin.describe_topics(topics):
            if description.get("error_code", 0):
                continue
            for meta in description.get("partitions", []):
                partitions.append(TopicPartition(description["topic"], meta["partition"]))
        partitions.sort()
        ends = await self._consumer.end_offsets(partitions)
        committed = await self._admin.list_consumer_group_offsets(
            self.settings.consumer_group, partitions=partitions
        )
        result = []
        for tp in partitions:
            meta = committed.get(tp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else 0
            result.append(PartitionLag(tp.topic, tp.partition, offset, ends[tp]))
        return result

"""Reading the dead-letter topic (operators' view)."""

from __future__ import annotations

import json
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline import services
from pipeline.settings import Settings


async def read_dead_letters(settings: Settings) -> list[dict[str, Any]]:
    """Every dead letter on the topic, oldest first (reads from the beginning up to the end)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=services.bootstrap_servers(settings),
        client_id=f"{settings.app_id}-dlq-reader",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(settings.deadletter_topic)
        if partitions is None:
            await consumer._client.force_metadata_update()  # noqa: SLF001
            partitions = consumer.partitions_for_topic(settings.deadletter_topic) or set()
        tps = [TopicPartition(settings.deadletter_topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        letters: list[tuple[str, dict[str, Any]]] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    try:
                        letter = json.loads(record.value or b"{}")
                    except ValueError:
                        letter = {"error": "unreadable dead letter", "original": repr(record.value)}
                    letter.setdefault("dead_letter_offset", record.offset)
                    letters.append((str(letter.get("time", "")), letter))
                    if record.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
        letters.sort(key=lambda pair: pair[0])
        return [letter for _, letter in letters]
    finally:
        await consumer.stop()

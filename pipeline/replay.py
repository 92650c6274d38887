"""`galleryflow replay`: re-normalise raw history through the normal path (e.g. after a rule change).

Reads the raw topic from the offsets of a moment (``offsets_for_times``) to the end it has now, keeps
the orders of one source (and one studio), and publishes each one again to the raw topic unchanged:
same key (so the same partition, in the same order) and the same bytes (so the same ``received_at``).
The normaliser and the importer then treat them like any redelivery: an order whose canonical form is
unchanged is a no-op (equal content hash), one the new rules change updates its one sale, and an
older version never overwrites a newer one. Replaying twice changes nothing.

A replayed copy carries the header ``galleryflow-replay`` (the run's id); within one run a message
whose key and bytes were already sent (a copy from an earlier replay) is sent once only.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline import services
from pipeline.kafka import ensure_topics, make_producer
from pipeline.settings import Settings
from schemas import wire
from schemas.canonical import SOURCES

REPLAY_HEADER = "galleryflow-replay"
_AGO = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: Sends in flight before waiting for the broker's acknowledgements.
WINDOW = 1000


@dataclass(slots=True)
class ReplayStats:
    scanned: int = 0  # raw messages read
    total: int = 0  # raw messages in range (what the progress bar counts to)
    matched: int = 0  # of the source (and studio)
    published: int = 0  # sent again
    duplicates: int = 0  # same key and bytes as one already sent in this run


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 date or date-time (no offset means UTC), or an age: ``30m``, ``12h``, ``7d``, ``2w``."""
    value = text.strip()
    match = _AGO.fullmatch(value)
    if match:
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        try:
            moment = datetime.combine(date.fromisoformat(value), datetime.min.time())
        except ValueError:
            raise ValueError(f"--from {text!r}: give an ISO date or date-time, or an age like 7d or 12h") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _whose(key: bytes | None, value: bytes | None) -> tuple[str | None, str | None]:
    """(studio id, source) of a raw message: from its key, else from its envelope."""
    if key:
        parts = key.decode("utf-8", "replace").split("|", 2)
        if len(parts) == 3:
            return parts[0], parts[1]
    try:
        data = wire.loads(value or b"")
        studio = data.get("studio")
        return (studio.get("studio_id") if isinstance(studio, dict) else None), data.get("source")
    except Exception:
        return None, None


async def replay_raw(
    settings: Settings,
    source: str,
    since: datetime,
    studio_id: str | None = None,
    *,
    progress: Callable[[ReplayStats], None] | None = None,
) -> ReplayStats:
    """Publish again every raw order of ``source`` (and ``studio_id``) received at or after ``since``."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
    await ensure_topics(settings)
    run = uuid.uuid4().hex
    stats = ReplayStats()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=services.bootstrap_servers(settings),
        client_id=f"{settings.app_id}-replay-{run[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = make_producer(settings)
    await consumer.start()
    await producer.start()
    try:
        ranges = await _ranges(consumer, settings.raw_topic, since)
        stats.total = sum(end - start for start, end in ranges.values())
        if progress is not None:
            progress(stats)
        if not ranges:
            return stats
        consumer.assign(list(ranges))
        for tp, (start, _end) in ranges.items():
            consumer.seek(tp, start)
        seen: set[bytes] = set()
        pending: list[asyncio.Future[Any]] = []
        remaining = set(ranges)
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=2000)
            for tp, records in batch.items():
                end = ranges[tp][1]
                for record in records:
                    if record.offset >= end:
                        remaining.discard(tp)
                        break
                    stats.scanned += 1
                    if record.offset + 1 >= end:
                        remaining.discard(tp)
                    studio, src = _whose(record.key, record.value)
                    if src != source or (studio_id is not None and studio != studio_id):
                        continue
                    stats.matched += 1
                    digest = hashlib.sha256(
                        len(record.key or b"").to_bytes(8, "big") + (record.key or b"") + (record.value or b"")
                    ).digest()
                    if digest in seen:
                        stats.duplicates += 1
                        continue
                    seen.add(digest)
                    pending.append(await producer.send(
                        settings.raw_topic, key=record.key, value=record.value,
                        headers=[(REPLAY_HEADER, run.encode("ascii"))],
                    ))
                    stats.published += 1
                    if len(pending) >= WINDOW:
                        await _acked(pending)
            if progress is not None:
                progress(stats)
            for tp in list(remaining):  # the end may sit on a marker the consumer never returns
                if await consumer.position(tp) >= ranges[tp][1]:
                    remaining.discard(tp)
        await _acked(pending)
        if progress is not None:
            progress(stats)
        return stats
    finally:
        await producer.stop()
        await consumer.stop()


async def _ranges(
    consumer: AIOKafkaConsumer, topic: str, since: datetime
) -> dict[TopicPartition, tuple[int, int]]:
    """For each partition: the first offset at or after ``since``, and the end now."""
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    if not tps:
        return {}
    ends = await consumer.end_offsets(tps)
    starts = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
    ranges = {}
    for tp in tps:
        found = starts.get(tp)
        if found is not None and found.offset < ends[tp]:
            ranges[tp] = (found.offset, ends[tp])
    return ranges


async def _acked(pending: list[asyncio.Future[Any]]) -> None:
    for future in pending:
        await future
    pending.clear()

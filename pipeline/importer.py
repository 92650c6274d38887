"""The import stage: canonical orders -> PostgreSQL, one transaction per batch.

A batch is committed in these steps, each one visible below:

1. Parse every message into a CanonicalOrder; what does not parse is a dead letter.
2. In one transaction: apply each order (contact, shoot, sale, items or inbox entry, decision) and
   write its committed-sale event into the outbox table. Infrastructure errors (database away)
   retry the whole transaction until it passes; nothing is skipped.
3. A data error rolls the batch back; the orders are then written one per transaction, and only the
   ones that fail on their own become dead letters.
4. Publish the dead letters and wait for the broker's acknowledgement.
5. Publish the outbox (committed-sale events) and delete what the broker acknowledged.

Only after these steps does the stream acknowledge the batch, so the consumer offsets never pass an
order that is not in PostgreSQL (or in the dead-letter topic). A crash replays at most this batch,
which the idempotent writes absorb.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from pipeline import deadletter
from pipeline.db.sales import UnknownStudioError, apply_order, load_studios
from pipeline.messages import Incoming
from pipeline.metrics import ORDERS_IMPORTED
from pipeline.retry import is_infrastructure_error, retry_until_done
from pipeline.settings import Settings
from schemas.canonical import CanonicalOrder
from schemas.envelope import message_key
from schemas.events import DeadLetter

log = structlog.get_logger(__name__)

Parsed = tuple[Incoming, CanonicalOrder]


class ImportStage:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.pool = pool
        self.producer = producer

    async def handle(self, messages: Sequence[Incoming]) -> Counter[str]:
        """Import one batch; returns how many orders had each outcome."""
        dead: list[tuple[bytes | None, DeadLetter]] = []
        parsed: list[Parsed] = []
        for message in messages:  # step 1
            try:
                parsed.append((message, _parse(message.value or b"")))
            except ValidationError as exc:
                dead.append((message.key, deadletter.build(message, "importer", _readable(exc))))

        outcomes: Counter[str] = Counter()
        if parsed:
            try:  # step 2
                outcomes += await retry_until_done(
                    lambda: self._write(parsed), what="import batch",
                    initial=self.settings.retry_initial_seconds, maximum=self.settings.retry_max_seconds,
                )
            except Exception as exc:  # step 3: a data error somewhere in the batch
                log.info("batch has a bad order, writing one by one", error_type=type(exc).__name__)
                for item in parsed:
                    outcomes += await self._write_alone(item, dead)

        outcomes["dead_letter"] += len(dead)
        await deadletter.publish(self.producer, self.settings.deadletter_topic, dead)  # step 4
        await self.flush_outbox()  # step 5
        for kind, count in outcomes.items():
            ORDERS_IMPORTED.labels(outcome=kind).inc(count)
        return outcomes

    async def _write_alone(
        self, item: Parsed, dead: list[tuple[bytes | None, DeadLetter]]
    ) -> Counter[str]:
        message, order = item
        try:
            return await retry_until_done(
                lambda: self._write([item]), what="import order",
                initial=self.settings.retry_initial_seconds, maximum=self.settings.retry_max_seconds,
            )
        except Exception as exc:
            if is_infrastructure_error(exc):  # pragma: no cover - retry_until_done never lets one out
                raise
            log.warning(
                "order dead-lettered", stage="importer", source=order.source,
                external_order_id=order.external_order_id, error_type=type(exc).__name__,
            )
            letter = deadletter.build(
                message, "importer", _db_reason(exc), studio_id=order.studio_id, source=order.source
            )
            dead.append((message.key, letter))
            return Counter()

    async def _write(self, items: Sequence[Parsed]) -> Counter[str]:
        outcomes: Counter[str] = Counter()
        events: list[tuple[str, str, str]] = []
        async with self.pool.acquire() as conn, conn.transaction():
            studios = await load_studios(conn, {order.studio_id for _, order in items})
            for _, order in items:
                studio = studios.get(order.studio_id)
                if studio is None:
                    raise UnknownStudioError(f"unknown studio {order.studio_id!r}")
                outcome, event = await apply_order(conn, studio, order)
                outcomes[outcome.kind] += 1
                if event is not None:
                    key = message_key(order.studio_id, order.source, order.external_order_id)
                    events.append((order.studio_id, key, event))
            if events:
                await conn.executemany(
                    "INSERT INTO sale_events_outbox (studio_id, event_key, payload) VALUES ($1, $2, $3)",
                    events,
                )
            replayed = {letter for message, _ in items if (letter := deadletter.replay_id(message))}
            if replayed:  # replays of dead letters, processed without error: resolved with the order
                await conn.executemany(
                    """INSERT INTO dead_letter_resolutions
                              (dead_letter_id, status, resolved_at, resolved_by)
                       VALUES ($1, 'resolved', now(), 'importer')
                       ON CONFLICT (dead_letter_id) DO UPDATE
                          SET status = 'resolved', resolved_at = now(), resolved_by = 'importer'""",
                    [(letter,) for letter in sorted(replayed)],
                )
        return outcomes

    async def flush_outbox(self) -> int:
        """Publish committed-sale events written by committed transactions; delete them once acked."""

        async def flush() -> int:
            sent = 0
            async with self.pool.acquire() as conn:
                while True:
                    async with conn.transaction():
                        rows = await conn.fetch(
                            """SELECT id, event_key, payload FROM sale_events_outbox
                                ORDER BY id LIMIT 2000 FOR UPDATE SKIP LOCKED"""
                        )
                        if not rows:
                            return sent
                        futures = [
                            await self.producer.send(
                                self.settings.committed_topic,
                                key=row["event_key"].encode(),
                                value=row["payload"].encode(),
                            )
                            for row in rows
                        ]
                        for future in futures:
                            await future
                        await conn.execute(
                            "DELETE FROM sale_events_outbox WHERE id = ANY($1::bigint[])",
                            [row["id"] for row in rows],
                        )
                        sent += len(rows)

        return await retry_until_done(flush, what="publish committed sales")


def _parse(value: bytes) -> CanonicalOrder:
    """The canonical order; text PostgreSQL refuses (NUL, sent as the JSON escape) is removed."""
    order = CanonicalOrder.model_validate_json(value)
    if b"\\u0000" not in value:
        return order
    return CanonicalOrder.model_validate(_without_nul(order.model_dump()))


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {key: _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def _readable(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:10]:
        where = ".".join(str(p) for p in error.get("loc", ())) or "(message)"
        parts.append(f"{where}: {error.get('msg')}")
    return "invalid canonical order: " + "; ".join(parts)


def _db_reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"

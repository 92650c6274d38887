"""The importer against the real database and broker: rules 1, 5 and 8, batches, dead letters."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from pipeline import services
from pipeline.db.pool import create_pool
from pipeline.importer import ImportStage
from pipeline.kafka import ensure_topics, make_producer
from pipeline.messages import Incoming
from pipeline.settings import Settings
from pipeline.studios import StudioSpec, add_studio
from schemas.canonical import CanonicalCustomer, CanonicalItem, CanonicalOrder

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 28, 12, tzinfo=UTC)


def canonical(
    ext: str, *, studio: str = "a", email: str | None = "ann@example.com", total: str = "10.00",
    status: str = "paid", updated: datetime | None = None, received: datetime = T0,
) -> CanonicalOrder:
    return CanonicalOrder(
        studio_id=studio, source="pictime", external_order_id=ext, placed_at=T0,
        order_date=T0.date(), source_updated_at=updated, received_at=received, status=status,
        currency="GBP", total=Decimal(total),
        customer=CanonicalCustomer(name="Ann Lee", first_name="Ann", last_name="Lee", email=email),
        items=[CanonicalItem(description="Print", quantity=1, unit_price=Decimal(total),
                             line_total=Decimal(total))],
    )


def message(order: CanonicalOrder | bytes, offset: int = 0) -> Incoming:
    value = order if isinstance(order, bytes) else order.model_dump_json().encode()
    return Incoming("canonical", 0, offset, b"k", value)


@pytest.fixture
async def stage(settings: Settings, db: asyncpg.Connection) -> Any:
    for sid, auto in (("a", True), ("b", True), ("strict", False)):
        await add_studio(db, StudioSpec(studio_id=sid, name=sid, timezone="Europe/London", country="GB",
                                        currency="GBP", auto_create_contacts=auto))
    await ensure_topics(settings)
    pool = await create_pool(services.database_url(settings))
    producer = make_producer(settings)
    await producer.start()
    yield ImportStage(settings, pool, producer)
    await producer.stop()
    await pool.close()


async def sales(db: asyncpg.Connection, studio: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT external_order_id, contact_id, status, total FROM sales WHERE studio_id = $1 ORDER BY 1",
        studio,
    )


async def test_two_orders_of_a_new_client_in_one_batch_create_one_contact(stage: ImportStage, db: Any) -> None:
    outcomes = await stage.handle([message(canonical("o1")), message(canonical("o2"), 1)])
    assert outcomes == Counter({"created": 2, "dead_letter": 0})
    rows = await sales(db, "a")
    assert len(rows) == 2 and rows[0]["contact_id"] == rows[1]["contact_id"]
    assert await db.fetchval("SELECT count(*) FROM contacts WHERE studio_id = 'a'") == 1


async def test_the_same_email_in_two_studios_never_crosses(stage: ImportStage, db: Any) -> None:
    await db.execute(
        """INSERT INTO contacts (studio_id, contact_id, email, email_norm, full_name)
           VALUES ('b', 'B1', 'ann@example.com', 'ann@example.com', 'Ann Lee')"""
    )
    await stage.handle([message(canonical("o1", studio="a"))])
    (row,) = await sales(db, "a")
    assert row["contact_id"] != "B1"
    assert await db.fetchval("SELECT studio_id FROM contacts WHERE contact_id = $1", row["contact_id"]) == "a"
    assert await sales(db, "b") == []


async def test_redelivery_is_a_no_op_and_a_change_updates_the_one_sale(stage: ImportStage, db: Any) -> None:
    await stage.handle([message(canonical("o1"))])
    again = await stage.handle([message(canonical("o1", received=T0 + timedelta(hours=1)))])
    assert again["unchanged"] == 1
    changed = canonical("o1", status="refunded", total="12.00", updated=T0 + timedelta(days=1))
    assert (await stage.handle([message(changed)]))["updated"] == 1
    (row,) = await sales(db, "a")
    assert (row["status"], row["total"]) == ("refunded", Decimal("12.00"))
    items = await db.fetch("SELECT line_total FROM sale_items WHERE studio_id = 'a'")
    assert [i["line_total"] for i in items] == [Decimal("12.00")]


async def test_an_older_version_arriving_late_never_overwrites_a_newer_one(stage: ImportStage, db: Any) -> None:
    newer = canonical("o1", status="cancelled", updated=T0 + timedelta(days=2))
    older = canonical("o1", status="paid", updated=T0 + timedelta(days=1), received=T0 + timedelta(days=3))
    await stage.handle([message(newer)])
    assert (await stage.handle([message(older)]))["stale"] == 1
    assert (await sales(db, "a"))[0]["status"] == "cancelled"


async def test_no_match_in_a_strict_studio_waits_in_the_inbox_once(stage: ImportStage, db: Any) -> None:
    order = canonical("o1", studio="strict")
    assert (await stage.handle([message(order)]))["inbox"] == 1
    again = await stage.handle([message(canonical("o1", studio="strict", received=T0 + timedelta(1)))])
    assert again["inbox_unchanged"] == 1
    rows = await db.fetch("SELECT reason FROM inbox WHERE studio_id = 'strict'")
    assert [r["reason"] for r in rows] == ["no_contact_match"]
    assert await sales(db, "strict") == []


async def test_an_inbox_order_becomes_a_sale_once_its_contact_exists(stage: ImportStage, db: Any) -> None:
    await stage.handle([message(canonical("o1", studio="strict"))])
    await db.execute(
        """INSERT INTO contacts (studio_id, contact_id, email, email_norm)
           VALUES ('strict', 'S1', 'ann@example.com', 'ann@example.com')"""
    )
    changed = canonical("o1", studio="strict", total="11.00", updated=T0 + timedelta(days=1))
    assert (await stage.handle([message(changed)]))["created"] == 1
    assert [r["contact_id"] for r in await sales(db, "strict")] == ["S1"]
    assert await db.fetchval("SELECT count(*) FROM inbox WHERE studio_id = 'strict'") == 0


async def test_bad_messages_are_dead_lettered_and_the_rest_of_the_batch_lands(stage: ImportStage, db: Any) -> None:
    unknown_studio = canonical("o9", studio="nobody")
    batch = [message(canonical("o1")), message(b"not json", 1), message(unknown_studio, 2),
             message(canonical("o2"), 3)]
    outcomes = await stage.handle(batch)
    assert outcomes["created"] == 2 and outcomes["dead_letter"] == 2
    assert [r["external_order_id"] for r in await sales(db, "a")] == ["o1", "o2"]


async def test_a_resent_older_version_without_update_times_never_overwrites(stage: ImportStage, db: Any) -> None:
    # Pic-Time sends no update time: paid, then refunded, then the paid payload again (a webhook retry).
    paid, refunded = canonical("o1"), canonical("o1", status="refunded", received=T0 + timedelta(hours=1))
    await stage.handle([message(paid)])
    await stage.handle([message(refunded)])
    retry = canonical("o1", received=T0 + timedelta(hours=2))
    assert (await stage.handle([message(retry)]))["stale"] == 1
    assert (await sales(db, "a"))[0]["status"] == "refunded"


async def test_a_newer_version_without_an_update_time_still_applies(stage: ImportStage, db: Any) -> None:
    # ShootProof's `updated` is optional: a cancellation without it, received later, must not be lost.
    await stage.handle([message(canonical("o1", updated=T0 + timedelta(days=5)))])
    cancelled = canonical("o1", status="cancelled", received=T0 + timedelta(days=6))
    assert (await stage.handle([message(cancelled)]))["updated"] == 1
    assert (await sales(db, "a"))[0]["status"] == "cancelled"


async def test_an_inbox_order_delivered_again_is_linked_once_its_contact_exists(stage: ImportStage, db: Any) -> None:
    await stage.handle([message(canonical("o1", studio="strict"))])
    await db.execute(
        """INSERT INTO contacts (studio_id, contact_id, email, email_norm)
           VALUES ('strict', 'S1', 'ann@example.com', 'ann@example.com')"""
    )
    again = canonical("o1", studio="strict", received=T0 + timedelta(hours=1))
    assert (await stage.handle([message(again)]))["created"] == 1
    assert await db.fetchval("SELECT count(*) FROM inbox WHERE studio_id = 'strict'") == 0

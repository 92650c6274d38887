"""The real pipeline (real broker, real database) on the demo samples gives demo/expected.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from pipeline import services
from pipeline.demo import default_samples, publish_samples, seed
from pipeline.reports import count_contacts_created, list_inbox, list_sales
from pipeline.settings import Settings
from pipeline.worker import run_worker

pytestmark = pytest.mark.integration

SAMPLES = default_samples()
EXPECTED = json.loads((SAMPLES / "expected.json").read_text())


def _sale_view(sale: dict[str, Any], like: dict[str, Any]) -> dict[str, Any]:
    """The sale in the shape of an expected.json entry (only the keys the entry has)."""
    view: dict[str, Any] = {
        "source": sale["source"],
        "external_order_id": sale["external_order_id"],
        "order_date": sale["order_date"],
        "status": sale["status"],
        "currency": sale["currency"],
        "total": sale["total"],
        "refunded": sale["refunded"],
        "shoot_id": sale["shoot_id"],
        "item_count": len(sale["items"]),
        "contact_id": sale["contact"]["contact_id"],
        "contact_email": sale["contact"]["email"],
        "contact_created_by_import": sale["contact"]["created_by_import"],
    }
    return {key: view[key] for key in like}


async def _snapshot(settings: Settings, studio_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    conn = await asyncpg.connect(services.database_url(settings))
    try:
        from pipeline.db.pool import init_connection

        await init_connection(conn)
        return (
            await list_sales(conn, studio_id),
            await list_inbox(conn, studio_id),
            await count_contacts_created(conn, studio_id),
        )
    finally:
        await conn.close()


def assert_matches_expected(sales: list[dict[str, Any]], inbox: list[dict[str, Any]], created: int) -> None:
    by_key = {(s["source"], s["external_order_id"]): s for s in sales}
    assert len(sales) == len(EXPECTED["sales"])
    for expected in EXPECTED["sales"]:
        sale = by_key[(expected["source"], expected["external_order_id"])]
        assert _sale_view(sale, expected) == expected
    assert [
        {
            "source": i["source"],
            "external_order_id": i["external_order_id"],
            "reason": i["reason"],
            "candidate_contact_ids": sorted(c["contact_id"] for c in i["candidates"]),
        }
        for i in inbox
    ] == EXPECTED["inbox"]
    assert created == EXPECTED["contacts_created"]


async def _committed_events(settings: Settings) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        settings.committed_topic,
        bootstrap_servers=services.bootstrap_servers(settings),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    await consumer.start()
    try:
        events = []
        batch = await consumer.getmany(timeout_ms=5000)
        while batch:
            for records in batch.values():
                events.extend(json.loads(r.value) for r in records)
            batch = await consumer.getmany(timeout_ms=1000)
        return events
    finally:
        await consumer.stop()


async def test_demo_samples_give_expected_outcome_and_a_rerun_changes_nothing(settings: Settings) -> None:
    spec = await seed(settings, Path(SAMPLES))
    counts = await publish_samples(settings, spec.studio_id, Path(SAMPLES))
    assert counts == {"shootproof": (4, 0), "pictime": (3, 0), "theimagefile": (2, 0), "api": (3, 0)}
    await run_worker(settings, until_idle=True, idle_timeout=180)

    sales, inbox, created = await _snapshot(settings, spec.studio_id)
    assert_matches_expected(sales, inbox, created)
    pictime = next(s for s in sales if s["external_order_id"] == "PT-7781244")
    assert (pictime["total"], pictime["payout"]) == ("39.60", "27.72")

    events = await _committed_events(settings)
    # 8 sales created, and the ShootProof refund updated one of them.
    assert sorted(e["event"] for e in events) == ["created"] * 8 + ["updated"]
    assert {e["studio_id"] for e in events} == {"harbour-light"}

    # Rule 8 end to end: publishing everything again changes nothing.
    await seed(settings, Path(SAMPLES))
    await publish_samples(settings, spec.studio_id, Path(SAMPLES))
    await run_worker(settings, until_idle=True, idle_timeout=180)
    again, inbox_again, created_again = await _snapshot(settings, spec.studio_id)
    assert_matches_expected(again, inbox_again, created_again)
    assert [(s["external_order_id"], s["status"], s["total"]) for s in again] == [
        (s["external_order_id"], s["status"], s["total"]) for s in sales
    ]
    assert len(await _committed_events(settings)) == len(events)

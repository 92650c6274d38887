"""Helpers of the integration tests that run the real pipeline: orders, seeding, running the
worker until idle, reading topics and the read models, and the CLI against a test's own app id."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from pipeline import services
from pipeline.db.pool import init_connection
from pipeline.kafka import ensure_topics, make_producer
from pipeline.reports import list_inbox, list_sales
from pipeline.settings import Settings
from pipeline.studios import StudioSpec, add_studio
from pipeline.worker import run_worker

REPO = Path(__file__).resolve().parents[2]
#: A worker that loops on a poison message never goes idle: this bounds every run.
IDLE_TIMEOUT = 120


def api_sale(reference: str, **fields: Any) -> dict[str, Any]:
    sale: dict[str, Any] = {
        "source": "Shop", "reference": reference, "date": "2026-11-20T14:00:00Z",
        "client_name": "Dev Sharma", "client_email": f"{reference.lower()}@example.com",
        "items": [{"description": "Print", "quantity": 1, "price": "10.00"}],
    }
    sale.update(fields)
    return sale


def shootproof_order(order_id: int, items: int) -> dict[str, Any]:
    return {
        "id": order_id, "brandId": 5501, "created": "2026-11-28T21:14:05+00:00", "status": "completed",
        "paymentStatus": "paid", "customerEmail": "big@example.com", "currencyCode": "GBP",
        "total": str(items), "items": [
            {"id": i, "name": f"Print {i}", "quantity": 1, "unitPrice": "1.00"} for i in range(items)
        ],
    }


async def seed(settings: Settings, *specs: StudioSpec) -> None:
    conn = await asyncpg.connect(services.database_url(settings))
    try:
        for spec in specs:
            await add_studio(conn, spec)
    finally:
        await conn.close()
    await ensure_topics(settings)


async def run_until_idle(settings: Settings) -> None:
    await asyncio.wait_for(run_worker(settings, until_idle=True, idle_timeout=IDLE_TIMEOUT), IDLE_TIMEOUT + 30)


async def snapshot(settings: Settings, studio_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    conn = await asyncpg.connect(services.database_url(settings))
    try:
        await init_connection(conn)
        return await list_sales(conn, studio_id), await list_inbox(conn, studio_id)
    finally:
        await conn.close()


async def publish_raw(settings: Settings, messages: list[tuple[bytes, bytes]]) -> None:
    """Straight onto the raw topic, as a broken or older connector might."""
    producer = make_producer(settings)
    await producer.start()
    try:
        for key, value in messages:
            await (await producer.send(settings.raw_topic, key=key, value=value))
    finally:
        await producer.stop()


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, pointed at this test's topics and database."""
    env = {
        **os.environ,
        "GALLERYFLOW_APP_ID": settings.app_id,
        "GALLERYFLOW_DATABASE_URL": services.database_url(settings),
        "GALLERYFLOW_KAFKA_BOOTSTRAP_SERVERS": services.bootstrap_servers(settings),
        "GALLERYFLOW_PARTITIONS": str(settings.partitions),
    }
    return subprocess.run(
        [str(Path(sys.executable).with_name("galleryflow")), *args],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=False,
    )


async def acli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cli, settings, *args)


async def raw_records(settings: Settings) -> list[Any]:
    consumer = AIOKafkaConsumer(
        settings.raw_topic, bootstrap_servers=services.bootstrap_servers(settings),
        auto_offset_reset="earliest", enable_auto_commit=False,
    )
    await consumer.start()
    try:
        records = []
        batch = await consumer.getmany(timeout_ms=3000)
        while batch:
            for found in batch.values():
                records.extend(found)
            batch = await consumer.getmany(timeout_ms=1000)
        return records
    finally:
        await consumer.stop()

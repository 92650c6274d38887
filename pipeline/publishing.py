"""`galleryflow publish`: raw orders from a file through the same connector code as the HTTP API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from connectors.base import RawPublisher, check_source, ingest, load_studio
from pipeline import services
from pipeline.kafka import ensure_topics, make_producer
from pipeline.settings import Settings
from schemas import wire

CHUNK = 1000


def read_orders(path: Path) -> list[Any]:
    """A JSON object (one order), a JSON array (many), or JSON lines (one order a line)."""
    text = path.read_bytes()
    try:
        document = wire.loads(text)
    except wire.WireError:
        orders = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    orders.append(wire.loads(line))
                except wire.WireError as exc:
                    raise ValueError(f"{path.name} line {number}: {exc}") from exc
        return orders
    return list(document) if isinstance(document, list) else [document]


async def publish_file(
    settings: Settings, studio_id: str, source: str, path: Path, console: Console | None = None
) -> tuple[int, int]:
    """Publish every order in ``path``; returns (published, rejected)."""
    checked = check_source(source)
    orders = read_orders(path)
    conn = await asyncpg.connect(services.database_url(settings))
    try:
        studio = await load_studio(conn, studio_id)
    finally:
        await conn.close()
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    publisher = RawPublisher(settings, producer)
    published = rejected = 0
    try:
        with Progress(
            TextColumn("publishing {task.fields[name]}"), BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=console, transient=True,
            disable=console is None or len(orders) < 2 * CHUNK,
        ) as progress:
            task = progress.add_task("publish", total=len(orders), name=path.name)
            for start in range(0, len(orders), CHUNK):
                chunk = orders[start:start + CHUNK]
                # Orders that break the contract, do not fit or cannot be written as JSON become
                # connector dead letters inside ingest: never a crash half-way through the file.
                result = await ingest(publisher, studio, checked, chunk)
                published += len(result.published)
                rejected += len(result.rejected)
                progress.advance(task, len(chunk))
    finally:
        await producer.stop()
    return published, rejected


"""Connection pools."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

T = TypeVar("T")


async def init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, init=init_connection, command_timeout=60
    )
    assert pool is not None
    return pool


async def with_connection(url: str, action: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run ``action`` on one short-lived connection (JSON codecs set), then close it."""
    conn = await asyncpg.connect(url)
    try:
        await init_connection(conn)
        return await action(conn)
    finally:
        await conn.close()

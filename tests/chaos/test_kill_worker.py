"""kill -9 of the worker process group, several times, while a 20,000-order stream flows."""

from __future__ import annotations

import asyncio
import os
import random
import time

import pytest

from pipeline.kafka import ensure_topics
from pipeline.settings import Settings
from tests.chaos.conftest import Stack, Workers
from tests.chaos.harness import (
    PublishStats,
    Worker,
    assert_exactly_once,
    count_sales,
    event_figures,
    exactly_once_figures,
    make_stream,
    publish_stream,
    read_outcome,
    read_topic,
    record,
    until_idle,
    wait_for,
)

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

ORDERS = 20_000
KILLS = 5


@pytest.mark.timeout(420)
async def test_kill_9_of_the_worker_loses_and_duplicates_nothing(
    chaos_stack: Stack, chaos_settings: Settings, workers: Workers
) -> None:
    settings = chaos_settings
    seed = int(os.environ.get("GALLERYFLOW_CHAOS_SEED") or time.time())
    rng = random.Random(seed)
    stream = make_stream(ORDERS, seed=seed, chunk=250)
    await ensure_topics(settings)
    began = time.monotonic()

    worker = workers.start("worker-0")
    # Paced over about a minute, so that the kills land while connectors are still publishing.
    published = PublishStats()
    publishing = asyncio.ensure_future(
        publish_stream(settings, stream, pause=0.7, deadline=300, stats=published)
    )
    kills: list[dict[str, object]] = []
    try:
        for number in range(1, KILLS + 1):
            before = max(await count_sales(settings), 0)
            progress = rng.randint(200, 1500)

            async def imported_more(w: Worker = worker, before: int = before, progress: int = progress) -> bool:
                assert w.alive, f"the worker exited by itself:\n{w.tail()}"
                return await count_sales(settings) >= min(before + progress, ORDERS)

            await wait_for(imported_more, 120, f"the worker to import {progress} more orders")
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            worker.kill()
            imported = await count_sales(settings)
            kills.append({"kill": number, "sales_at_kill": imported, "published_at_kill": published.published,
                          "publishing": not publishing.done(),
                          "worker_seconds": round(time.monotonic() - worker.started_at, 1)})
            if number < KILLS:
                worker = workers.start(f"worker-{number}")
        stats = await asyncio.wait_for(publishing, timeout=300)
    finally:
        if not publishing.done():
            publishing.cancel()
    assert stats.published == ORDERS

    idle_seconds = await until_idle(settings, chaos_stack.log_dir, 240)
    outcome = await read_outcome(settings)
    figures = exactly_once_figures(outcome, stream)
    events = await event_figures(settings, outcome)
    dead_letters = len(await read_topic(settings, settings.deadletter_topic))
    record(
        "kill_worker",
        kills_survived=len(kills),
        kills=kills,
        **figures,
        **events,
        dead_letters=dead_letters,
        seed=seed,
        publish_seconds=stats.seconds,
        until_idle_seconds=round(idle_seconds, 1),
        seconds=round(time.monotonic() - began, 1),
    )
    # Every kill hit a worker with orders still to import, most of them while orders were arriving.
    assert all(int(k["sales_at_kill"]) < ORDERS for k in kills), kills  # type: ignore[call-overload]
    assert sum(1 for k in kills if k["publishing"]) >= 3, kills
    assert_exactly_once(outcome, stream)
    assert outcome.outbox == 0
    assert events["sales_without_event"] == 0 and events["events_for_unknown_sales"] == 0, events
    assert dead_letters == 0

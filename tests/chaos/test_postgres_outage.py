"""PostgreSQL goes away for 30 seconds in the middle of an import: the importer pauses, retries and
resumes; nothing is skipped (no dead letters), nothing is duplicated."""

from __future__ import annotations

import asyncio
import time

import pytest

from pipeline import services
from pipeline.kafka import ensure_topics
from pipeline.settings import Settings
from tests.chaos.conftest import Stack, Workers
from tests.chaos.harness import (
    assert_exactly_once,
    count_sales,
    event_figures,
    exactly_once_figures,
    make_stream,
    publish_stream,
    read_lag,
    read_outcome,
    read_topic,
    record,
    wait_for,
)

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

ORDERS = 8_000
OUTAGE_SECONDS = 30.0


@pytest.mark.timeout(360)
async def test_postgres_away_for_30_s_mid_import_pauses_and_resumes(
    chaos_stack: Stack, chaos_settings: Settings, workers: Workers
) -> None:
    settings = chaos_settings
    stream = make_stream(ORDERS, seed=3, chunk=250)
    await ensure_topics(settings)
    began = time.monotonic()
    stats = await publish_stream(settings, stream)
    assert stats.published == ORDERS
    worker = workers.start("worker")

    async def importing() -> bool:
        assert worker.alive, worker.tail()
        return await count_sales(settings) >= ORDERS // 5

    await wait_for(importing, 120, "the import to be under way", interval=0.2)
    sales_at_stop = await count_sales(settings)
    # "immediate" is a crash: connections drop without a goodbye and the restart replays the WAL.
    await asyncio.to_thread(services.stop_postgres, chaos_stack.services_settings, "immediate")
    stopped = time.monotonic()
    while time.monotonic() - stopped < OUTAGE_SECONDS:
        assert worker.alive, f"the worker died while PostgreSQL was away:\n{worker.tail()}"
        await asyncio.sleep(1.0)
    await asyncio.to_thread(services.start_postgres, chaos_stack.services_settings)
    back = time.monotonic()
    down_seconds = back - stopped
    sales_after_restart = await count_sales(settings)

    async def caught_up() -> bool:
        assert worker.alive, worker.tail()
        if await count_sales(settings) < ORDERS:
            return False
        return all(p.lag == 0 for p in await read_lag(settings))

    resumed = await wait_for(caught_up, 180, "the import to finish after PostgreSQL came back", 1.0)
    assert worker.stop() == 0, worker.tail()
    log = worker.log_text()
    pauses = log.count("infrastructure error, pausing")
    outcome = await read_outcome(settings)
    figures = exactly_once_figures(outcome, stream)
    events = await event_figures(settings, outcome)
    dead_letters = await read_topic(settings, settings.deadletter_topic)
    record(
        "postgres_outage",
        outages_survived=1,
        down_seconds=round(down_seconds, 1),
        sales_at_stop=sales_at_stop,
        sales_after_restart=sales_after_restart,
        retries_logged=pauses,
        finished_after_restart_seconds=round(resumed, 1),
        **figures,
        **events,
        dead_letters=len(dead_letters),
        seconds=round(time.monotonic() - began, 1),
    )
    assert sales_at_stop < ORDERS, "the outage must land mid-import"
    assert pauses > 0, "the importer should have paused and retried while PostgreSQL was away"
    assert dead_letters == [], "nothing may be skipped"
    assert_exactly_once(outcome, stream)
    assert outcome.outbox == 0
    assert events["sales_without_event"] == 0 and events["events_for_unknown_sales"] == 0, events

"""Two workers in one consumer group: a second joins mid-stream, then the first is killed (-9).
Both rebalances hand partitions over with nothing lost and nothing duplicated."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from pipeline import services
from pipeline.kafka import ensure_topics
from pipeline.settings import Settings
from tests.chaos.conftest import Stack, Workers
from tests.chaos.harness import (
    PublishStats,
    assert_exactly_once,
    count_sales,
    event_figures,
    exactly_once_figures,
    make_stream,
    publish_stream,
    read_lag,
    read_outcome,
    record,
    wait_for,
)
from tests.conftest import free_port

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

ORDERS = 10_000


async def group_members(settings: Settings) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=services.bootstrap_servers(settings))
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([settings.consumer_group])
        # The raw DescribeGroups response: groups are (error_code, group, state, protocol_type,
        # protocol, members, ...).
        return sum(len(group[5]) for group in response.groups if group[1] == settings.consumer_group)
    finally:
        await admin.close()


@pytest.mark.timeout(360)
async def test_a_worker_joining_and_one_killed_mid_stream_lose_and_duplicate_nothing(
    chaos_stack: Stack, chaos_settings: Settings, workers: Workers
) -> None:
    settings = chaos_settings
    stream = make_stream(ORDERS, seed=4, chunk=250)
    await ensure_topics(settings)
    began = time.monotonic()
    first = workers.start("worker-a")
    published = PublishStats()
    publishing = asyncio.ensure_future(publish_stream(settings, stream, pause=0.6, stats=published))
    try:

        async def sales_at_least(count: int) -> bool:
            assert not publishing.done() or publishing.exception() is None
            return await count_sales(settings) >= count

        await wait_for(lambda: sales_at_least(1_000), 120, "worker a to import 1,000 orders")
        second = workers.start("worker-b", web_port=free_port())
        joined_at_sales = await count_sales(settings)

        async def two_members() -> bool:
            return await group_members(settings) == 2 and await sales_at_least(joined_at_sales + 1_000)

        await wait_for(two_members, 120, "worker b in the group and 1,000 more orders imported")
        members_with_both = await group_members(settings)
        first.kill()
        killed_at_sales = await count_sales(settings)
        killed_while_publishing = not publishing.done()
        stats = await asyncio.wait_for(publishing, timeout=240)
    finally:
        if not publishing.done():
            publishing.cancel()
    assert stats.published == ORDERS

    async def caught_up() -> bool:
        assert second.alive, second.tail()
        if await count_sales(settings) < ORDERS:
            return False
        return all(p.lag == 0 for p in await read_lag(settings))

    caught_up_seconds = await wait_for(caught_up, 180, "worker b to take over and finish", 1.0)
    assert second.stop() == 0, second.tail()
    outcome = await read_outcome(settings)
    figures = exactly_once_figures(outcome, stream)
    events = await event_figures(settings, outcome)
    record(
        "rebalance",
        rebalances=2,
        kills_survived=1,
        members_with_both=members_with_both,
        sales_when_b_joined=joined_at_sales,
        sales_when_a_killed=killed_at_sales,
        killed_while_publishing=killed_while_publishing,
        b_finished_after_kill_seconds=round(caught_up_seconds, 1),
        **figures,
        **events,
        seconds=round(time.monotonic() - began, 1),
    )
    assert members_with_both == 2
    assert killed_at_sales < ORDERS, "worker a must die with work left"
    assert_exactly_once(outcome, stream)
    assert outcome.outbox == 0
    assert events["sales_without_event"] == 0 and events["events_for_unknown_sales"] == 0, events

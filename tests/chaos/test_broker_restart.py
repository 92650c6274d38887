"""The Kafka broker stops and comes back mid-stream, with connectors publishing and the worker consuming."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from pipeline import services
from pipeline.kafka import ensure_topics, make_producer
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

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

ORDERS = 8_000
#: (how the broker goes away, seconds it stays away). A stop (controlled shutdown) leaves the partitions
#: leaderless in the clients' metadata; kill -9 does not.
OUTAGES = (("stop", 10.0), ("kill -9", 10.0))
#: Producer request timeout, which is also how long a batch may wait for a leader: shorter than the
#: outages, so that the batches waiting in them expire as they would in an outage of over 30 s with the
#: default. That wedged aiokafka's idempotent producer for good (aiokafka #1017) until
#: pipeline.kafka.DurableProducer replaced a wedged producer; without it publishing never resumes.
REQUEST_TIMEOUT_MS = 3_000


@pytest.mark.timeout(420)
async def test_a_broker_restart_mid_stream_loses_nothing_and_publishing_resumes(
    chaos_stack: Stack, chaos_settings: Settings, workers: Workers
) -> None:
    settings = chaos_settings.model_copy(update={"kafka_request_timeout_ms": REQUEST_TIMEOUT_MS})
    stream = make_stream(ORDERS, seed=2, chunk=40)
    await ensure_topics(settings)
    began = time.monotonic()
    worker = workers.start("worker", settings=settings)
    published = PublishStats()
    publishing = asyncio.ensure_future(
        # Small chunks with short pauses, as a busy connector: produce requests are in flight when
        # the broker goes down, which is when the producer learns that its partitions lost their leader.
        publish_stream(settings, stream, pause=0.05, deadline=360, attempt_timeout=120, stats=published)
    )
    outages: list[dict[str, object]] = []
    try:
        for number, (how, down_for) in enumerate(OUTAGES, start=1):
            floor = number * ORDERS // (len(OUTAGES) + 2)

            async def flowing(floor: int = floor) -> bool:
                assert not publishing.done() or publishing.exception() is None
                return published.published >= floor and await count_sales(settings) > 0

            await wait_for(flowing, 120, f"{floor} orders published and some imported")
            at_stop = {"published": published.published, "sales": await count_sales(settings)}
            await asyncio.to_thread(services.stop_kafka, chaos_stack.services_settings, how == "kill -9")
            await asyncio.sleep(down_for)
            during = published.published
            await asyncio.to_thread(services.start_kafka, chaos_stack.services_settings)
            ready = time.monotonic()

            async def resumed(during: int = during) -> bool:
                return published.published > during or publishing.done()

            resumed_after = await wait_for(resumed, 60, "publishing to resume after the broker came back",
                                           interval=0.1)
            outages.append({"outage": number, "how": how, "down_seconds": down_for,
                            "published_at_stop": at_stop["published"], "sales_at_stop": at_stop["sales"],
                            "publishing_resumed_seconds": round(resumed_after, 1),
                            "broker_ready_at": round(ready - began, 1)})
        stats = await asyncio.wait_for(publishing, timeout=300)
    finally:
        if not publishing.done():
            publishing.cancel()
    assert stats.published >= ORDERS  # a chunk that failed in the outage is sent again

    async def caught_up() -> bool:
        assert worker.alive, f"the worker exited:\n{worker.tail()}"
        if await count_sales(settings) < ORDERS:
            return False
        return all(p.lag == 0 for p in await read_lag(settings))

    # The same worker process that lived through the outages finishes the stream.
    caught_up_seconds = await wait_for(caught_up, 240, "the worker to import everything and commit", 1.0)
    assert worker.stop() == 0, worker.tail()
    outcome = await read_outcome(settings)
    figures = exactly_once_figures(outcome, stream)
    events = await event_figures(settings, outcome)
    record(
        "broker_restart",
        outages_survived=len(outages),
        outages=outages,
        **figures,
        **events,
        publish_attempts_failed=len(stats.failures),
        publish_failures=stats.failures[:8],
        publisher_producer_replacements=stats.producer_replacements,
        worker_producer_replacements=worker.log_text().count("kafka producer replaced"),
        longest_publish_seconds=round(stats.longest_chunk_seconds, 1),
        caught_up_seconds=round(caught_up_seconds, 1),
        seconds=round(time.monotonic() - began, 1),
    )
    assert_exactly_once(outcome, stream)
    assert outcome.outbox == 0
    assert events["sales_without_event"] == 0 and events["events_for_unknown_sales"] == 0, events


async def _pump(producer: Any, topic: str, name: str, sent: list[int], stop: asyncio.Event) -> None:
    """A busy connector: small batches back to back, each awaited; failures are retried."""
    number = 0
    while not stop.is_set():
        try:
            async with asyncio.timeout(30):
                futures = [await producer.send(topic, value=b"order", key=f"{name}-{number + i}".encode())
                           for i in range(20)]
                for future in futures:
                    await future
            sent.append(time.monotonic())
        except Exception:
            await asyncio.sleep(0.2)
        number += 20
        await asyncio.sleep(0.05)


@pytest.mark.timeout(180)
async def test_the_producer_recovers_when_a_broker_stop_leaves_it_wedged(
    chaos_stack: Stack, chaos_settings: Settings
) -> None:
    """The deterministic form of aiokafka #1017, on the real broker: batches wait out the producer's
    request timeout while a stopped broker's partitions are leaderless, and a plain idempotent
    producer is then refused (OutOfOrderSequenceNumber) for good. pipeline.kafka's producer resumes."""
    settings = chaos_settings.model_copy(update={"kafka_request_timeout_ms": 2_000})
    await ensure_topics(settings)
    durable = make_producer(settings)
    plain = AIOKafkaProducer(bootstrap_servers=services.bootstrap_servers(settings), acks="all",
                             enable_idempotence=True, linger_ms=5, request_timeout_ms=2_000)
    await durable.start()
    await plain.start()
    stop = asyncio.Event()
    durable_acks: list[float] = []
    plain_acks: list[float] = []
    pumps = [asyncio.ensure_future(_pump(durable, settings.raw_topic, "durable", durable_acks, stop)),
             asyncio.ensure_future(_pump(plain, settings.canonical_topic, "plain", plain_acks, stop))]
    try:
        await asyncio.sleep(3)
        await asyncio.to_thread(services.stop_kafka, chaos_stack.services_settings)
        await asyncio.sleep(6)
        await asyncio.to_thread(services.start_kafka, chaos_stack.services_settings)
        back = time.monotonic()

        async def durable_resumed() -> bool:
            return any(at > back for at in durable_acks)

        resumed_after = await wait_for(durable_resumed, 60, "the durable producer to publish again", 0.1)
        await asyncio.sleep(10)  # give the plain producer every chance to recover on its own
        plain_recovered = any(at > back for at in plain_acks)
    finally:
        stop.set()
        await asyncio.gather(*pumps, return_exceptions=True)
        for producer in (durable, plain):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 10)
    record(
        "producer_wedge",
        outages_survived=1,
        durable_resumed_seconds=round(resumed_after, 1),
        durable_replacements=durable.replacements,
        plain_aiokafka_producer_recovered=plain_recovered,
    )
    if not plain_recovered:  # the outage wedged aiokafka's producer: ours must have replaced its own
        assert durable.replacements >= 1

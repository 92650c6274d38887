"""The faust app: two agents, each with concurrency 1 (faust commits past in-flight messages when
concurrency > 1), each taking batches and handing them to its stage.

faust acknowledges a `take_events` batch when the loop asks for the next one, and also when the
body raises or is cancelled. So the stages never raise (data errors become dead letters,
infrastructure errors are retried inside), and a batch interrupted by a shutdown is finished first;
if it cannot be finished in time the process exits without committing (the batch is redelivered).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import faust
import structlog

from pipeline import services
from pipeline.messages import Incoming
from pipeline.metrics import BATCH_SECONDS
from pipeline.settings import Settings

log = structlog.get_logger(__name__)

Handler = Callable[[Sequence[Incoming]], Awaitable[Any]]

#: How long a shutdown waits for an in-flight batch before exiting without committing.
SHUTDOWN_GRACE_SECONDS = 20.0


@dataclass
class InFlight:
    """Counts batches being processed (the idle check waits for zero)."""

    batches: int = 0
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


def create_app(settings: Settings, normalise: Handler, import_: Handler, in_flight: InFlight) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{services.bootstrap_servers(settings)}",
        store="memory://",
        autodiscover=False,
        web_enabled=False,
        web_port=settings.worker_web_port,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=0.5,
        broker_commit_every=1000,
        broker_session_timeout=settings.consumer_session_timeout_seconds,
        broker_heartbeat_interval=1.0,
        broker_max_poll_interval=600.0,
        producer_acks=-1,
        stream_wait_empty=True,
        stream_buffer_maxsize=max(settings.import_batch_size, settings.normalise_batch_size) * 2,
        table_standby_replicas=0,
        logging_config=None,
    )
    raw = app.topic(
        settings.raw_topic, key_serializer="raw", value_serializer="raw",
        partitions=settings.partitions, internal=False,
    )
    canonical = app.topic(
        settings.canonical_topic, key_serializer="raw", value_serializer="raw",
        partitions=settings.partitions, internal=False,
    )

    async def run_batch(stage: str, handler: Handler, events: Sequence[Any]) -> None:
        messages = [Incoming.from_faust(event) for event in events]
        in_flight.batches += 1
        task = asyncio.ensure_future(_timed(stage, handler, messages))
        in_flight.tasks.add(task)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await _finish_or_exit(stage, task)
            raise
        except Exception:
            # A stage never raises by design; if one does, it is a bug. Exit without committing so
            # the batch is redelivered rather than acknowledged and lost.
            log.exception("stage raised; exiting without commit", stage=stage)
            os._exit(70)
        finally:
            in_flight.tasks.discard(task)
            in_flight.batches -= 1

    @app.agent(raw, name="normaliser", concurrency=1)
    async def normaliser_agent(stream: faust.StreamT) -> None:
        async for events in _batches(stream, settings.normalise_batch_size, 0.2):
            await run_batch("normaliser", normalise, events)

    @app.agent(canonical, name="importer", concurrency=1)
    async def importer_agent(stream: faust.StreamT) -> None:
        async for events in _batches(stream, settings.import_batch_size, settings.import_batch_seconds):
            await run_batch("importer", import_, events)

    return app


def _batches(stream: faust.StreamT, size: int, within: float) -> AsyncIterator[Sequence[Any]]:
    """Batches of events (not values: a dead letter needs the message's topic, partition, offset)."""
    return cast(faust.Stream, stream).take_events(size, within=within)


async def _timed(stage: str, handler: Handler, messages: Sequence[Incoming]) -> None:
    with BATCH_SECONDS.labels(stage=stage).time():
        await handler(messages)


async def _finish_or_exit(stage: str, task: asyncio.Task[Any]) -> None:
    """Cancelled mid-batch: faust will acknowledge the batch anyway, so it must be finished."""
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=SHUTDOWN_GRACE_SECONDS)
    except Exception:
        log.error("batch could not be finished at shutdown; exiting without commit", stage=stage)
        os._exit(75)

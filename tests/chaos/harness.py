"""What the chaos tests share: order streams with a known sum, worker processes, reads of the outcome.

Nothing here mocks anything: orders go through the connectors' publisher to the real broker, the worker
is the real `galleryflow run` process, and the outcome is read from the real database and topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from connectors.base import RawPublisher, ingest, load_studio
from pipeline import services
from pipeline.kafka import make_producer
from pipeline.lag import LagReader, PartitionLag
from pipeline.settings import Settings
from pipeline.studios import StudioSpec, add_studio
from schemas.canonical import SOURCES, Source, StudioContext

ROOT = Path(__file__).resolve().parents[2]
GALLERYFLOW = ROOT / ".venv" / "bin" / "galleryflow"
RESULTS = ROOT / ".data" / "chaos-results.json"

STUDIOS = (
    StudioSpec(studio_id="north-light", name="North Light", timezone="Europe/London", country="GB",
               currency="GBP"),
    StudioSpec(studio_id="west-coast", name="West Coast", timezone="America/Los_Angeles", country="US",
               currency="USD"),
    StudioSpec(studio_id="dublin-bay", name="Dublin Bay", timezone="Europe/Dublin", country="IE",
               currency="EUR"),
    StudioSpec(studio_id="kiwi-lens", name="Kiwi Lens", timezone="Pacific/Auckland", country="NZ",
               currency="NZD"),
)
CONTACTS_PER_STUDIO = 400


# ---------------------------------------------------------------- orders with a known outcome


@dataclass(frozen=True, slots=True)
class Order:
    studio_id: str
    source: Source
    external_order_id: str
    total: Decimal
    payload: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.studio_id, self.source, self.external_order_id)


@dataclass(slots=True)
class Stream:
    """A list of orders in publishing chunks (one studio and source per chunk), with the exact sum."""

    chunks: list[list[Order]]

    @property
    def orders(self) -> list[Order]:
        return [order for chunk in self.chunks for order in chunk]

    @property
    def keys(self) -> set[tuple[str, str, str]]:
        return {order.key for order in self.orders}

    @property
    def total(self) -> Decimal:
        return sum((order.total for order in self.orders), Decimal("0"))

    @property
    def items(self) -> int:
        """Sale items the orders make (theimagefile sends no prices: its total is an item of its own)."""
        return sum(2 if order.source == "theimagefile" else 1 for order in self.orders)

    def __len__(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)


def make_order(studio_id: str, source: Source, number: int, rng: random.Random) -> Order:
    """One valid raw order of ``source`` whose canonical total is known exactly."""
    cents = rng.randint(100, 99_999)
    total = Decimal(cents).scaleb(-2)
    contact = rng.randrange(CONTACTS_PER_STUDIO)
    email = f"client{contact}@{studio_id}.example.com"
    first, last = f"Client{contact}", f"Chaos{contact}"
    day = 1 + number % 28
    if source == "shootproof":
        ext = str(50_000_000 + number)
        payload: dict[str, Any] = {
            "id": int(ext), "orderNumber": f"SP{number}", "brandId": 5501, "eventId": 1000 + number % 50,
            "created": f"2026-11-{day:02d}T10:{number % 60:02d}:00+00:00", "status": "completed",
            "paymentStatus": "paid", "customerName": f"{first} {last}", "customerEmail": email,
            "currencyCode": "GBP", "total": str(total),
            "items": [{"id": number, "name": "8x10 Print", "quantity": 1, "unitPrice": str(total),
                       "total": str(total)}],
        }
    elif source == "pictime":
        ext = f"PT-{number}"
        payload = {
            "orderId": ext, "projectId": f"p_{number % 40}", "projectName": "Chaos Session",
            "orderDate": f"2026-11-{day:02d} 09:{number % 60:02d}:00", "timeZone": "Europe/London",
            "client": {"firstName": first, "lastName": last, "email": email},
            "currency": "GBP",
            "lines": [{"productName": "Framed Print", "qty": 1, "price": total, "lineTotal": total}],
            "orderTotal": total, "paymentCollector": "photographer", "status": "paid",
        }
    elif source == "theimagefile":
        ext = f"TIF-{number}"
        payload = {
            "orderRef": ext, "albumName": "Chaos Album", "albumCode": f"ALB-{number % 30}",
            "orderDate": f"{day:02d}/11/2026 18:{number % 60:02d}",
            "customer": {"name": f"{first} {last}", "email": email},
            "items": [{"description": "10x8 Print", "quantity": 1}],
            "orderTotal": f"£{total}",
        }
    else:
        ext = f"Etsy:R-{number}"
        payload = {
            "source": "Etsy", "reference": f"R-{number}", "date": f"2026-11-{day:02d}",
            "client_name": f"{first} {last}", "client_email": email,
            "items": [{"description": "Photo Book", "quantity": 1, "price": str(total)}],
            "total": str(total), "currency": "GBP",
        }
    return Order(studio_id, source, ext, total, payload)


def make_stream(count: int, *, seed: int, chunk: int = 250, studios: Sequence[str] | None = None,
                first_number: int = 0) -> Stream:
    """``count`` orders across the four sources and the studios, in chunks cycling through them."""
    rng = random.Random(seed)
    studio_ids = list(studios or [s.studio_id for s in STUDIOS])
    combos = [(studio, source) for studio in studio_ids for source in SOURCES]
    chunks: list[list[Order]] = []
    number = first_number
    index = 0
    while number < first_number + count:
        studio, source = combos[index % len(combos)]
        size = min(chunk, first_number + count - number)
        chunks.append([make_order(studio, source, number + i, rng) for i in range(size)])
        number += size
        index += 1
    return Stream(chunks)


# ---------------------------------------------------------------- database


async def seed_studios(settings: Settings) -> None:
    conn = await asyncpg.connect(services.database_url(settings))
    try:
        for spec in STUDIOS:
            await add_studio(conn, spec)
    finally:
        await conn.close()


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the database says after a run."""

    sales: int
    distinct_keys: int
    keys: frozenset[tuple[str, str, str]]
    total: Decimal
    inbox: int
    outbox: int
    items: int
    items_total: Decimal

    def lost(self, expected: Iterable[tuple[str, str, str]]) -> int:
        return len(set(expected) - self.keys)

    def unexpected(self, expected: Iterable[tuple[str, str, str]]) -> int:
        return len(self.keys - set(expected))

    @property
    def duplicated(self) -> int:
        return self.sales - self.distinct_keys


async def read_outcome(settings: Settings) -> Outcome:
    conn = await asyncpg.connect(services.database_url(settings), timeout=10)
    try:
        rows = await conn.fetch("SELECT studio_id, source, external_order_id FROM sales")
        total = await conn.fetchval("SELECT coalesce(sum(total), 0) FROM sales")
        inbox = await conn.fetchval("SELECT count(*) FROM inbox")
        outbox = await conn.fetchval("SELECT count(*) FROM sale_events_outbox")
        items = await conn.fetchrow("SELECT count(*) AS n, coalesce(sum(line_total), 0) AS s FROM sale_items")
    finally:
        await conn.close()
    keys = [(r["studio_id"], r["source"], r["external_order_id"]) for r in rows]
    return Outcome(len(keys), len(set(keys)), frozenset(keys), Decimal(total), inbox, outbox,
                   items["n"], Decimal(items["s"]))


async def count_sales(settings: Settings) -> int:
    """The number of sales, or -1 while the database does not answer."""
    try:
        conn = await asyncpg.connect(services.database_url(settings), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return -1
    try:
        return int(await conn.fetchval("SELECT count(*) FROM sales"))
    finally:
        await conn.close()


# ---------------------------------------------------------------- Kafka


async def read_topic(settings: Settings, topic: str, seconds: float = 60.0) -> list[Any]:
    """Every record on ``topic`` from the beginning up to its current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=services.bootstrap_servers(settings),
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        async with asyncio.timeout(seconds):
            partitions: set[int] | None = None
            while not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic)
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            records: list[Any] = []
            remaining = {tp for tp in tps if ends[tp] > 0}
            while remaining:
                for tp, batch in (await consumer.getmany(*remaining, timeout_ms=1000)).items():
                    records.extend(batch)
                    if batch and batch[-1].offset + 1 >= ends[tp]:
                        remaining.discard(tp)
            return records
    finally:
        await consumer.stop()


async def committed_event_keys(settings: Settings) -> Counter[str]:
    """How many committed-sale events each sale key has on `<app>.sales.committed`."""
    return Counter(
        r.key.decode() for r in await read_topic(settings, settings.committed_topic) if r.key is not None
    )


async def read_lag(settings: Settings) -> list[PartitionLag]:
    reader = LagReader(settings)
    await reader.start()
    try:
        return await reader.read([settings.raw_topic, settings.canonical_topic])
    finally:
        await reader.stop()


def sale_key(key: tuple[str, str, str]) -> str:
    return "|".join(key)


# ---------------------------------------------------------------- publishing like a connector


@dataclass(slots=True)
class PublishStats:
    published: int = 0
    chunks: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    longest_chunk_seconds: float = 0.0
    producer_replacements: int = 0


async def publish_stream(
    settings: Settings,
    stream: Stream,
    *,
    pause: float = 0.0,
    attempt_timeout: float = 90.0,
    deadline: float = 300.0,
    stats: PublishStats | None = None,
) -> PublishStats:
    """Publish each chunk through connectors.base.ingest, as a connector does: one publisher (one
    producer) for the whole stream. A chunk that fails is published again, as a poller re-polls (the
    pipeline is idempotent, so a chunk twice is harmless); a chunk that neither succeeds nor fails
    within ``attempt_timeout`` is a stalled producer and fails the test."""
    stats = stats or PublishStats()
    conn = await asyncpg.connect(services.database_url(settings))
    try:
        studios: dict[str, StudioContext] = {s.studio_id: await load_studio(conn, s.studio_id) for s in STUDIOS}
    finally:
        await conn.close()
    producer = make_producer(settings)
    await producer.start()
    publisher = RawPublisher(settings, producer)
    began = time.monotonic()
    try:
        for chunk in stream.chunks:
            first = chunk[0]
            while True:
                if time.monotonic() - began > deadline:
                    raise TimeoutError(f"publishing took more than {deadline} s")
                chunk_began = time.monotonic()
                try:
                    async with asyncio.timeout(attempt_timeout):
                        result = await ingest(publisher, studios[first.studio_id], first.source,
                                              [o.payload for o in chunk])
                except TimeoutError as exc:
                    raise AssertionError(
                        f"publishing {len(chunk)} orders stalled for {attempt_timeout} s "
                        f"(after {stats.published} published; failures so far {stats.failures})"
                    ) from exc
                except Exception as exc:  # broker away: the connector tries the chunk again
                    stats.failures.append(f"{time.monotonic() - began:.1f}s {type(exc).__name__}: {exc}"[:200])
                    await asyncio.sleep(0.5)
                    continue
                assert not result.rejected, result.rejected[:3]
                stats.published += len(result.published)
                stats.chunks += 1
                stats.longest_chunk_seconds = max(stats.longest_chunk_seconds,
                                                  time.monotonic() - chunk_began)
                break
            if pause:
                await asyncio.sleep(pause)
    finally:
        stats.seconds = round(time.monotonic() - began, 2)
        stats.producer_replacements = producer.replacements
        with contextlib.suppress(Exception):
            async with asyncio.timeout(30):
                await producer.stop()
    return stats


# ---------------------------------------------------------------- worker processes


def worker_env(settings: Settings, **overrides: object) -> dict[str, str]:
    """The environment of a `galleryflow` process configured exactly like ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GALLERYFLOW_")}
    values = settings.model_dump()
    values.update(overrides)
    for name, value in values.items():
        if value is None or isinstance(value, dict | list) or "secret" in name:
            continue
        env[f"GALLERYFLOW_{name.upper()}"] = str(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Worker:
    """One `galleryflow run` process in its own session (process group), logging to a file."""

    def __init__(self, settings: Settings, log_dir: Path, name: str, *, until_idle: bool = False,
                 web_port: int | None = None) -> None:
        self.settings = settings
        self.name = name
        self.log = log_dir / f"{settings.app_id}-{name}.log"
        self.until_idle = until_idle
        self.web_port = web_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> Worker:
        overrides: dict[str, object] = {}
        if self.web_port is not None:
            overrides["worker_web_port"] = self.web_port
        command = [str(GALLERYFLOW), "run", *(["--until-idle"] if self.until_idle else [])]
        with self.log.open("ab") as out:
            out.write(f"\n==== {time.strftime('%H:%M:%S')} start {self.name}: {' '.join(command)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(command, env=worker_env(self.settings, **overrides), cwd=ROOT,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.started_at = time.monotonic()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal_group(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """kill -9 of the worker and everything in its process group."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._note(f"killed -9 (exit {self.proc.returncode})")

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._signal_group(signal.SIGKILL)  # anything left in the group
        return self.proc.returncode

    async def wait(self, seconds: float) -> int:
        """Wait for the process to exit by itself; kill it and fail after ``seconds``."""
        assert self.proc is not None
        deadline = time.monotonic() + seconds
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"{self.name} did not finish within {seconds} s; log {self.log}:\n"
                                     f"{self.tail()}")
            await asyncio.sleep(0.2)
        return self.proc.returncode

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _note(self, text: str) -> None:
        with self.log.open("a") as out:
            out.write(f"==== {time.strftime('%H:%M:%S')} {self.name}: {text}\n")


async def wait_for(predicate: Callable[[], Awaitable[bool]], seconds: float, what: str,
                   interval: float = 0.5) -> float:
    """Poll ``predicate`` until true; returns the seconds it took, fails after ``seconds``."""
    began = time.monotonic()
    while not await predicate():
        if time.monotonic() - began > seconds:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(interval)
    return time.monotonic() - began


async def until_idle(settings: Settings, log_dir: Path, seconds: float = 180.0) -> float:
    """`galleryflow run --until-idle` as its own process; returns how long it ran."""
    worker = Worker(settings, log_dir, "until-idle", until_idle=True).start()
    began = time.monotonic()
    code = await worker.wait(seconds)
    assert code == 0, f"run --until-idle exited {code}:\n{worker.tail()}"
    return time.monotonic() - began


# ---------------------------------------------------------------- figures


def record(test: str, **figures: Any) -> None:
    """Merge one test's figures into .data/chaos-results.json (read by people writing the README)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        data = {}
    data.setdefault("tests", {})[test] = {**figures, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(RESULTS)


def exactly_once_figures(outcome: Outcome, stream: Stream) -> dict[str, Any]:
    """orders, sales, lost, duplicated, unexpected and both sums, for the record and the asserts."""
    return {
        "orders": len(stream),
        "sales": outcome.sales,
        "lost": outcome.lost(stream.keys),
        "duplicated": outcome.duplicated,
        "unexpected": outcome.unexpected(stream.keys),
        "sum_expected": str(stream.total),
        "sum_sales": str(outcome.total),
        "sum_items": str(outcome.items_total),
    }


def assert_exactly_once(outcome: Outcome, stream: Stream) -> None:
    figures = exactly_once_figures(outcome, stream)
    assert figures["lost"] == 0, figures
    assert figures["duplicated"] == 0, figures
    assert figures["unexpected"] == 0, figures
    assert outcome.sales == outcome.distinct_keys == len(stream), figures
    assert outcome.total == stream.total, figures
    assert outcome.items == stream.items and outcome.items_total == stream.total, figures
    assert outcome.inbox == 0, figures


async def event_figures(settings: Settings, outcome: Outcome) -> dict[str, int]:
    """Committed-sale events: every sale needs at least one (at-least-once: a crash may repeat one)."""
    events = await committed_event_keys(settings)
    keys = {sale_key(k) for k in outcome.keys}
    return {
        "events": sum(events.values()),
        "sales_without_event": len(keys - set(events)),
        "events_for_unknown_sales": len(set(events) - keys),
        "repeated_events": sum(n - 1 for n in events.values() if n > 1),
    }


def start_results() -> None:
    """A new run: the figures in the file are this run's only."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"tests": {}}, indent=2) + "\n")


def finish_results(**suite: Any) -> None:
    """Add the totals of this run (kills and outages survived, orders, lost, duplicated, seconds)."""
    try:
        data = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        return
    tests: dict[str, dict[str, Any]] = data.get("tests", {})

    def total(name: str) -> int:
        return sum(int(figures.get(name) or 0) for figures in tests.values())

    data["totals"] = {
        "kills_survived": total("kills_survived"),
        "outages_survived": total("outages_survived"),
        "orders": total("orders"),
        "lost": total("lost"),
        "duplicated": total("duplicated"),
        "unexpected": total("unexpected"),
        "sales_without_event": total("sales_without_event"),
        **suite,
    }
    RESULTS.write_text(json.dumps(data, indent=2, default=str) + "\n")

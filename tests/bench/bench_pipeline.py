"""`make bench`: throughput of the pipeline on this machine, on the real broker and database.

Measures, for N generated orders across the four sources and several studios:
1. the pure normaliser (raw envelope -> canonical order), one core;
2. publishing through the connector code (acks=all, idempotent producer);
3. the worker end to end (normaliser + importer into PostgreSQL), until idle.
Figures go to stdout and to `.data/bench/results-<time>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from connectors.base import make_envelope
from pipeline import services
from pipeline.db.migrate import migrate
from pipeline.normaliser import normalise
from pipeline.settings import Settings
from pipeline.worker import run_worker
from schemas.canonical import StudioContext
from tests.chaos.harness import make_stream, publish_stream, read_outcome, seed_studios

REPO = Path(__file__).resolve().parents[2]


def bench_normaliser(stream_orders: list, studio: StudioContext) -> float:
    envelopes = [make_envelope(studio.model_copy(update={"studio_id": o.studio_id}), o.source, o.payload)
                 for o in stream_orders]
    began = time.perf_counter()
    for envelope in envelopes:
        normalise(envelope)
    return len(envelopes) / (time.perf_counter() - began)


async def main(count: int) -> dict[str, object]:
    base = Settings()
    suffix = uuid.uuid4().hex[:8]
    url = services.database_url(base).rsplit("/", 1)[0] + f"/gf_bench_{suffix}"
    settings = base.model_copy(update={"app_id": f"bench-{suffix}", "database_url": url,
                                       "kafka_bootstrap_servers": services.bootstrap_servers(base)})
    services.up(settings)
    await migrate(url)
    await seed_studios(settings)
    stream = make_stream(count, seed=7)
    studio = StudioContext(studio_id="x", timezone="Europe/London", country="GB", currency="GBP")

    normalise_rate = bench_normaliser(stream.orders, studio)
    published = await publish_stream(settings, stream)
    began = time.perf_counter()
    await run_worker(settings, until_idle=True, idle_timeout=1800)
    worker_seconds = time.perf_counter() - began
    outcome = await read_outcome(settings)
    return {
        "time": datetime.now(UTC).isoformat(),
        "orders": count,
        "normaliser_orders_per_s": round(normalise_rate),
        "publish_orders_per_s": round(count / published.seconds) if published.seconds else None,
        "worker_seconds": round(worker_seconds, 2),
        "end_to_end_orders_per_s": round(count / worker_seconds),
        "sales": outcome.sales,
        "note": "worker time includes start-up, group join and the idle check (about 2-4 s)",
    }


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=20_000)
    args = parser.parse_args()
    result = asyncio.run(main(args.orders))
    table = Table(title="galleryflow benchmark")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, str(value))
    Console().print(table)
    out = REPO / ".data" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"results-{int(time.time())}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    run()

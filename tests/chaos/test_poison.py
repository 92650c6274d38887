"""Poison on every source, straight onto the raw topic (payloads breaking their contract, an order of a
studio nobody knows, garbage bytes, a tombstone), then good orders: the poison becomes dead letters
with a reason, the good orders become sales, and the consumer lag returns to zero."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from pipeline.kafka import ensure_topics, make_producer
from pipeline.settings import Settings
from schemas import wire
from tests.chaos.conftest import Stack, Workers
from tests.chaos.harness import (
    assert_exactly_once,
    count_sales,
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

STUDIO = {"studio_id": "north-light", "timezone": "Europe/London", "country": "GB", "currency": "GBP"}

#: source -> (a payload that breaks its contract, a word the dead letter's reason must name)
BROKEN = {
    "shootproof": ({"id": 1, "brandId": 5, "created": "2026-11-28T21:14:05+00:00", "status": "completed",
                    "currencyCode": "GBP", "items": []}, "total"),
    "pictime": ({"orderId": "PT-X", "orderDate": "yesterday", "currency": "GBP", "lines": [],
                 "orderTotal": "1.00"}, "orderDate"),
    "theimagefile": ({"orderRef": "TIF-X", "orderDate": "30/11/2026 18:05", "items": [],
                      "orderTotal": "abc"}, "orderTotal"),
    "api": ({"source": "Etsy", "reference": "R-X", "date": "2026-11-27"}, "items"),
}
#: Valid orders of a studio this database does not know: they pass the normaliser, not the importer.
UNKNOWN_STUDIO = {"studio_id": "nobody-here", "timezone": "Europe/London", "country": "GB", "currency": "GBP"}
GARBAGE: list[tuple[bytes, bytes | None]] = [
    (b"garbage-bytes", b"\x00\xff\xfe not json {"),
    (b"garbage-empty", b""),
    (b"garbage-array", b"[1, 2, 3]"),
    (b"garbage-tombstone", None),
]
GOOD_ORDERS = 800


def envelope(studio: dict[str, str], source: str, ext: str, payload: dict[str, Any]) -> bytes:
    return wire.dumps({"envelope_version": 1, "studio": studio, "source": source, "external_order_id": ext,
                       "received_at": "2026-11-30T10:00:00+00:00", "connector_version": "chaos-test",
                       "payload": payload})


@pytest.mark.timeout(300)
async def test_poison_goes_to_the_dead_letter_topic_and_good_orders_flow(
    chaos_stack: Stack, chaos_settings: Settings, workers: Workers
) -> None:
    settings = chaos_settings
    await ensure_topics(settings)
    began = time.monotonic()
    good = make_stream(GOOD_ORDERS, seed=5, chunk=50)
    unknown = make_stream(4, seed=6, chunk=1, first_number=900_000)

    producer = make_producer(settings)
    await producer.start()
    try:
        poison: list[tuple[bytes, bytes | None]] = [
            (f"north-light|{source}|poison".encode(), envelope(STUDIO, source, f"poison-{source}", payload))
            for source, (payload, _) in BROKEN.items()
        ]
        poison += [
            (f"nobody-here|{o.source}|{o.external_order_id}".encode(),
             envelope(UNKNOWN_STUDIO, o.source, o.external_order_id, o.payload))
            for o in unknown.orders
        ]
        poison += GARBAGE
        for key, value in poison:
            await producer.send_and_wait(settings.raw_topic, value=value, key=key)
    finally:
        await producer.stop()
    worker = workers.start("worker")
    stats = await publish_stream(settings, good)
    assert stats.published == GOOD_ORDERS

    async def caught_up() -> bool:
        assert worker.alive, worker.tail()
        if await count_sales(settings) < GOOD_ORDERS:
            return False
        return all(p.lag == 0 for p in await read_lag(settings))

    caught_up_seconds = await wait_for(caught_up, 150, "good orders imported and lag zero", 1.0)
    lag = await read_lag(settings)
    assert worker.stop() == 0, worker.tail()

    letters = [json.loads(r.value) for r in await read_topic(settings, settings.deadletter_topic)]
    outcome = await read_outcome(settings)
    figures = exactly_once_figures(outcome, good)
    record(
        "poison",
        poison_messages=len(poison),
        dead_letters=len(letters),
        dead_letters_by_stage={s: sum(1 for x in letters if x.get("stage") == s) for s in ("normaliser", "importer")},
        lag_after=sum(p.lag for p in lag),
        caught_up_seconds=round(caught_up_seconds, 1),
        **figures,
        seconds=round(time.monotonic() - began, 1),
    )
    assert_exactly_once(outcome, good)
    assert all(p.lag == 0 for p in lag) and {p.topic for p in lag} == {settings.raw_topic,
                                                                        settings.canonical_topic}
    assert len(letters) == len(poison), [x.get("error") for x in letters]
    by_key = {x.get("key"): x for x in letters}
    for source, (payload, word) in BROKEN.items():
        letter = by_key[f"north-light|{source}|poison"]
        assert (letter["stage"], letter["source"], letter["studio_id"]) == ("normaliser", source, "north-light")
        assert word in letter["error"], letter["error"]
        assert letter["original"]["payload"] == payload  # the original is kept whole, for a replay
    for order in unknown.orders:
        letter = by_key[f"nobody-here|{order.source}|{order.external_order_id}"]
        assert letter["stage"] == "importer" and "nobody-here" in letter["error"], letter
    for key, _ in GARBAGE:
        letter = by_key[key.decode()]
        assert letter["stage"] == "normaliser" and letter["error"], letter
        assert letter["topic"] == settings.raw_topic and letter["offset"] is not None

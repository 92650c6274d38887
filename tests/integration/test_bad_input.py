"""Bad input through the real stages (real broker, real database): oversized orders become one clear
dead letter each with no retry loop, and text PostgreSQL refuses, emoji, right-to-left names and
combining accents are stored intact (NUL removed), never a crash."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from connectors.base import encode, make_envelope
from pipeline import deadletter, services
from pipeline.db.pool import create_pool, init_connection
from pipeline.dlq import read_dead_letters
from pipeline.importer import ImportStage
from pipeline.kafka import make_producer
from pipeline.messages import Incoming
from pipeline.publishing import publish_file
from pipeline.settings import Settings
from pipeline.studios import StudioSpec
from schemas import wire
from schemas.canonical import StudioContext
from schemas.envelope import ENVELOPE_OVERHEAD_BYTES
from tests.integration.pipeline_helpers import (
    api_sale,
    publish_raw,
    run_until_idle,
    seed,
    shootproof_order,
    snapshot,
)

pytestmark = pytest.mark.integration

STUDIO = StudioSpec(studio_id="north", name="North", timezone="Europe/London", country="GB", currency="GBP")
STRICT = StudioSpec(studio_id="strict", name="Strict", timezone="Europe/London", country="GB", currency="GBP",
                    auto_create_contacts=False)


# --- oversized orders ------------------------------------------------------------------------


async def test_oversized_orders_from_a_file_are_clear_dead_letters(settings: Settings, tmp_path: Path) -> None:
    await seed(settings, STUDIO)
    huge_note = "n" * (settings.max_order_bytes + 1000)
    orders = [
        api_sale("OK-1"),
        api_sale("MANY-1", items=[{"description": "Print", "quantity": 1, "price": "1.00"}] * 5000),
        api_sale("NOTE-1", note=huge_note),  # an unknown field: valid, but far too large
        api_sale("NOTE-2", client_name="x" * 5_000_000),  # over the broker's 4 MiB message limit too
        api_sale("SURROGATE-1", client_name="\ud800"),  # a JSON escape that is no character at all
        api_sale("OK-2"),
    ]
    path = tmp_path / "orders.json"
    # ASCII JSON: the lone surrogate is written as its escape; Python's json reads it back as one.
    path.write_text(json.dumps(orders, ensure_ascii=True))
    published, rejected = await publish_file(settings, STUDIO.studio_id, "api", path)
    assert (published, rejected) == (2, 4)  # was: MessageSizeTooLargeError / UnicodeEncodeError, a crash

    await run_until_idle(settings)
    sales, _ = await snapshot(settings, STUDIO.studio_id)
    assert sorted(s["external_order_id"] for s in sales) == ["Shop:OK-1", "Shop:OK-2"]
    letters = await read_dead_letters(settings)
    assert len(letters) == 4, [letter["error"] for letter in letters]
    by_key = {letter["key"]: letter for letter in letters}
    assert by_key["north|api|SURROGATE-1"]["error"].startswith("order cannot be written as JSON")
    many = by_key["north|api|MANY-1"]
    assert many["stage"] == "connector" and "at most 1000 items" in many["error"]
    for ref in ("NOTE-1", "NOTE-2"):
        letter = by_key[f"north|api|{ref}"]
        assert letter["stage"] == "connector"
        assert letter["error"].startswith("order too large: ") and f"at most {settings.max_order_bytes}" in letter[
            "error"]
        assert letter["original_truncated"] is True and len(letter["original"]) == deadletter.PREVIEW_CHARS


async def test_oversized_raw_messages_are_dead_lettered_by_the_normaliser_without_a_retry_loop(
    settings: Settings,
) -> None:
    await seed(settings, STUDIO)
    studio = StudioContext(studio_id="north", timezone="Europe/London", country="GB", currency="GBP")
    many = make_envelope(studio, "shootproof", shootproof_order(1, 10))
    many = many.model_copy(update={"payload": shootproof_order(1, 5000)})  # past the connector's check
    too_big = settings.max_order_bytes + ENVELOPE_OVERHEAD_BYTES + 10  # past what a connector lets through
    noted = make_envelope(studio, "api", api_sale("NOTE-1", note="n" * too_big))
    # Not JSON at all, 900 KB of control bytes: its dead letter escapes each byte to six ("\u0001"),
    # which was a 5.4 MB message the broker refused; the stage raised and the worker exited, forever.
    poison = b"\x01" * 900_000
    good = make_envelope(studio, "api", api_sale("OK-1"))
    await publish_raw(settings, [
        encode(many), encode(noted), (b"north|api|POISON", poison), encode(good),
    ])

    await run_until_idle(settings)
    sales, _ = await snapshot(settings, "north")
    assert [s["external_order_id"] for s in sales] == ["Shop:OK-1"]
    letters = await read_dead_letters(settings)
    errors = {letter["key"]: letter["error"] for letter in letters}
    assert len(letters) == 3, errors  # one each: no redelivery loop
    assert errors["north|shootproof|1"] == "too many items: 5000 (at most 1000)"
    assert errors["north|api|Shop:NOTE-1"].startswith("raw order too large: ")
    assert errors["north|api|POISON"].startswith("invalid raw envelope") or "JSON" in errors["north|api|POISON"]
    poisoned = next(letter for letter in letters if letter["key"] == "north|api|POISON")
    assert poisoned["original_truncated"] is True
    assert (poisoned["topic"], poisoned["offset"]) == (settings.raw_topic, poisoned["offset"])


# --- text PostgreSQL refuses, and text it must keep -----------------------------------------

NAMES = {
    "EMOJI": "Zoë 📷🎉 Brown",
    "RTL": "שרה כהן",
    "ARABIC": "مريم الحسن",
    "COMBINING": "Zoe\u0308 Ange\u0301lique",  # decomposed accents: kept as sent, not re-composed
    "MIXED": "Ann \u202eLee\u202c 李",
    "NUL": "Ni\x00amh O\x00Brien",
}


async def test_names_and_text_survive_the_whole_pipeline(settings: Settings, tmp_path: Path) -> None:
    await seed(settings, STUDIO, STRICT)
    orders = [
        api_sale(ref, client_name=name, items=[
            {"description": f"{name} \x00print 🖼", "quantity": 1, "price": "5.00"},
        ])
        for ref, name in NAMES.items()
    ]
    path = tmp_path / "orders.json"
    path.write_bytes(wire.dumps(orders))
    assert await publish_file(settings, "north", "api", path) == (len(NAMES), 0)
    strict_path = tmp_path / "strict.json"
    strict_path.write_bytes(wire.dumps([api_sale("RTL", client_name=NAMES["RTL"], client_email="x\x00@e.com")]))
    assert await publish_file(settings, "strict", "api", strict_path) == (1, 0)

    await run_until_idle(settings)
    assert await read_dead_letters(settings) == []
    sales, _ = await snapshot(settings, "north")
    by_ref = {s["external_order_id"].removeprefix("Shop:"): s for s in sales}
    assert sorted(by_ref) == sorted(NAMES)
    for ref, name in NAMES.items():
        clean = name.replace("\x00", "")
        assert by_ref[ref]["contact"]["name"] == clean, ref  # byte for byte: no normalisation
        assert by_ref[ref]["items"][0]["description"] == f"{clean} print 🖼"
    _, inbox = await snapshot(settings, "strict")
    (waiting,) = inbox
    assert waiting["reason"] == "no_contact_match"
    conn = await asyncpg.connect(services.database_url(settings))
    try:
        await init_connection(conn)
        stored = await conn.fetchval("SELECT canonical_order FROM inbox WHERE studio_id = 'strict'")
    finally:
        await conn.close()
    assert stored["customer"]["name"] == NAMES["RTL"] and stored["customer"]["email"] == "x@e.com"


async def test_nul_sent_straight_to_the_importer_is_cleaned_not_dead_lettered(settings: Settings) -> None:
    """Was: a canonical order with a NUL (JSON "\\u0000") was refused by PostgreSQL (text and jsonb),
    so a good order became a dead letter. The normaliser strips NUL, but the importer must not
    depend on it (dead-letter replays and other producers write the canonical topic too)."""
    await seed(settings, STUDIO, STRICT)
    studio = StudioContext(studio_id="north", timezone="Europe/London", country="GB", currency="GBP")
    from pipeline.normaliser import normalise

    def canonical(studio_id: str, ref: str) -> bytes:
        envelope = make_envelope(studio.model_copy(update={"studio_id": studio_id}), "api",
                                 api_sale(ref, client_name="Nia Brown"))
        text = normalise(envelope).model_dump_json()
        return text.replace("Nia Brown", "Nia\\u0000 Brown").replace('"Print"', '"Pr\\u0000int 📷"').encode()

    pool = await create_pool(services.database_url(settings))
    producer = make_producer(settings)
    await producer.start()
    try:
        stage = ImportStage(settings, pool, producer)
        outcomes = await stage.handle([
            Incoming(settings.canonical_topic, 0, 0, b"k1", canonical("north", "N1")),
            Incoming(settings.canonical_topic, 0, 1, b"k2", canonical("strict", "S1")),  # inbox: jsonb
        ])
    finally:
        await producer.stop()
        await pool.close()
    assert outcomes == Counter({"created": 1, "inbox": 1, "dead_letter": 0})
    sales, _ = await snapshot(settings, "north")
    assert sales[0]["contact"]["name"] == "Nia Brown"
    assert sales[0]["items"][0]["description"] == "Print 📷"
    _, inbox = await snapshot(settings, "strict")
    assert len(inbox) == 1
    assert json.dumps(inbox).find("\\u0000") == -1

"""`galleryflow dlq list` and `dlq replay` against the real broker and database: a dead letter
replayed after a fix is processed and leaves the list (resolved); one that fails again becomes a new
dead letter linked by replay_of; each stage's dead letters go back to the topic that stage reads."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from connectors.base import RawPublisher, encode, make_envelope
from pipeline import deadletter, services
from pipeline import normalise_stage as stage_module
from pipeline.dlq import ReplayError, list_dead_letters, replay_dead_letters
from pipeline.errors import NormaliseError
from pipeline.kafka import make_producer
from pipeline.settings import Settings
from pipeline.studios import StudioSpec, add_studio
from schemas.canonical import StudioContext
from tests.integration.pipeline_helpers import acli, api_sale, publish_raw, raw_records, run_until_idle, seed, snapshot

pytestmark = pytest.mark.integration

NORTH = StudioSpec(studio_id="north", name="North", timezone="Europe/London", country="GB", currency="GBP")
CONTEXT = StudioContext(studio_id="north", timezone="Europe/London", country="GB", currency="GBP")
LIST_KEYS = {"stage", "error", "source", "studio_id", "original", "topic", "partition", "offset", "id", "time"}


def buggy_rule(monkeypatch: pytest.MonkeyPatch, bad_ref: str) -> None:
    """A normaliser rule with a bug for one order (the "fix" is monkeypatch.undo())."""
    real = stage_module.normalise

    def normalise(envelope: Any) -> Any:
        if envelope.external_order_id == bad_ref:
            raise NormaliseError("rule bug: cannot normalise this order")
        return real(envelope)

    monkeypatch.setattr(stage_module, "normalise", normalise)


async def test_a_fixed_normaliser_dead_letter_replays_exactly_and_leaves_the_list(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(settings, NORTH)
    await publish_raw(settings, [
        encode(make_envelope(CONTEXT, "api", api_sale("BUG-1", total="12.50"))),
        encode(make_envelope(CONTEXT, "api", api_sale("OK-1"))),
    ])
    buggy_rule(monkeypatch, "Shop:BUG-1")
    await run_until_idle(settings)
    listed = await acli(settings, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (letter,) = json.loads(listed.stdout)
    assert LIST_KEYS <= set(letter) and letter["status"] == "open"
    assert (letter["stage"], letter["error"], letter["source"]) == (
        "normaliser", "rule bug: cannot normalise this order", "api")
    assert letter["original"]["payload"]["total"] == "12.50"

    monkeypatch.undo()  # the fix is deployed
    replayed = await acli(settings, "dlq", "replay", "--id", letter["id"], "--json")
    assert replayed.returncode == 0, replayed.stderr
    (result,) = json.loads(replayed.stdout)
    assert (result["outcome"], result["topic"]) == ("published", settings.raw_topic)
    assert result["detail"].startswith("exact bytes")
    # Replayed, not processed yet: still listed, as replayed.
    assert [x["status"] for x in await list_dead_letters(settings)] == ["replayed"]
    records = await raw_records(settings)
    original = next(r for r in records if r.offset == letter["offset"] and r.partition == letter["partition"])
    (copy,) = [r for r in records if (deadletter.DEAD_LETTER_ID_HEADER, letter["id"].encode()) in r.headers]
    assert (copy.key, copy.value) == (original.key, original.value)

    await run_until_idle(settings)
    sales, _ = await snapshot(settings, "north")
    assert sorted(s["external_order_id"] for s in sales) == ["Shop:BUG-1", "Shop:OK-1"]
    assert json.loads((await acli(settings, "dlq", "list", "--json")).stdout) == []
    (done,) = json.loads((await acli(settings, "dlq", "list", "--json", "--all")).stdout)
    assert (done["id"], done["status"]) == (letter["id"], "resolved")
    conn = await asyncpg.connect(services.database_url(settings))
    try:
        row = await conn.fetchrow("SELECT * FROM dead_letter_resolutions WHERE dead_letter_id = $1", letter["id"])
    finally:
        await conn.close()
    assert (row["status"], row["resolved_by"], row["replay_count"]) == ("resolved", "importer", 1)
    again = await acli(settings, "dlq", "replay", "--id", letter["id"])
    assert again.returncode == 1 and "already resolved" in again.stderr


async def test_a_replay_that_fails_again_is_a_new_dead_letter_linked_to_the_old(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(settings, NORTH)
    await publish_raw(settings, [encode(make_envelope(CONTEXT, "api", api_sale("BUG-1")))])
    buggy_rule(monkeypatch, "Shop:BUG-1")
    await run_until_idle(settings)
    (first,) = await list_dead_letters(settings)

    results = await replay_dead_letters(settings)  # --all; the bug is not fixed yet
    assert [(r.id, r.outcome) for r in results] == [(first["id"], "published")]
    await run_until_idle(settings)
    (second,) = await list_dead_letters(settings)
    assert second["id"] != first["id"] and second["replay_of"] == first["id"]
    assert second["status"] == "open" and second["error"] == first["error"]
    everything = {x["id"]: x for x in await list_dead_letters(settings, include_done=True)}
    assert everything[first["id"]]["status"] == "failed_again"
    assert everything[first["id"]]["replayed_as"] == second["id"]
    with pytest.raises(ReplayError, match="already failed_again"):
        await replay_dead_letters(settings, [first["id"]])
    with pytest.raises(ReplayError, match="no dead letter"):
        await replay_dead_letters(settings, ["nope"])

    monkeypatch.undo()
    await replay_dead_letters(settings, [second["id"]])
    await run_until_idle(settings)
    assert await list_dead_letters(settings) == []
    sales, _ = await snapshot(settings, "north")
    assert [s["external_order_id"] for s in sales] == ["Shop:BUG-1"]


async def test_an_importer_dead_letter_goes_back_to_the_canonical_topic(settings: Settings) -> None:
    await seed(settings, NORTH)
    late = CONTEXT.model_copy(update={"studio_id": "late"})  # the studio is not in the database yet
    await publish_raw(settings, [encode(make_envelope(late, "api", api_sale("L-1")))])
    await run_until_idle(settings)
    (letter,) = await list_dead_letters(settings)
    assert letter["stage"] == "importer" and "unknown studio 'late'" in letter["error"]

    conn = await asyncpg.connect(services.database_url(settings))
    try:
        await add_studio(conn, NORTH.model_copy(update={"studio_id": "late"}))  # the fix
    finally:
        await conn.close()
    (result,) = await replay_dead_letters(settings)
    assert (result.outcome, result.topic) == ("published", settings.canonical_topic)
    await run_until_idle(settings)
    assert await list_dead_letters(settings) == []
    sales, _ = await snapshot(settings, "late")
    assert [s["external_order_id"] for s in sales] == ["Shop:L-1"]


async def test_connector_dead_letters_are_validated_again(settings: Settings) -> None:
    await seed(settings, NORTH)
    producer = make_producer(settings)
    await producer.start()
    try:
        publisher = RawPublisher(settings, producer)
        # An older connector refused a good order (the bug); and a payload that is still broken.
        fixed = await publisher.reject("north", "api", api_sale("C-1"), "old connector bug")
        broken = await publisher.reject("north", "api", {"reference": "C-2"}, "no source")
    finally:
        await producer.stop()
    results = {r.id: r for r in await replay_dead_letters(settings)}
    assert results[fixed.id].outcome == "published" and results[fixed.id].topic == settings.raw_topic
    assert results[broken.id].outcome == "failed_again"
    assert "breaks the api contract" in results[broken.id].detail

    await run_until_idle(settings)
    waiting = await list_dead_letters(settings)
    assert [(x["replay_of"], x["stage"]) for x in waiting] == [(broken.id, "connector")]
    sales, _ = await snapshot(settings, "north")
    assert [s["external_order_id"] for s in sales] == ["Shop:C-1"]
    status = {x["id"]: x["status"] for x in await list_dead_letters(settings, include_done=True)}
    assert status[fixed.id] == "resolved" and status[broken.id] == "failed_again"


async def test_cli_needs_exactly_one_of_id_or_all(settings: Settings) -> None:
    for args in ([], ["--all", "--id", "x"]):
        result = await acli(settings, "dlq", "replay", *args)
        assert result.returncode == 1 and "--id" in result.stderr
    unknown = await acli(settings, "dlq", "replay", "--id", "nope")
    assert unknown.returncode == 1 and "no dead letter with id 'nope'" in unknown.stderr

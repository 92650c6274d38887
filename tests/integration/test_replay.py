"""`galleryflow replay`: raw history re-normalised through the normal path; idempotent; filtered by
source, studio and time; a rule change reaches the sales."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from connectors.base import encode, make_envelope
from pipeline import normalise_stage as stage_module
from pipeline import services
from pipeline.demo import default_samples, publish_samples, seed
from pipeline.dlq import read_dead_letters
from pipeline.replay import REPLAY_HEADER, replay_raw
from pipeline.settings import Settings
from tests.integration.pipeline_helpers import acli, api_sale, publish_raw, raw_records, run_until_idle
from tests.integration.pipeline_helpers import seed as seed_studios
from tests.integration.test_bad_input import STUDIO
from tests.integration.test_demo_pipeline import _committed_events

pytestmark = pytest.mark.integration


async def database_state(settings: Settings) -> dict[str, list[Any]]:
    """Every row the importer writes, with its timestamps: any write at all would show."""
    conn = await asyncpg.connect(services.database_url(settings))
    try:
        return {
            table: [tuple(row) for row in await conn.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")]
            for table in ("sales", "sale_items", "contacts", "inbox", "sale_events_outbox")
        }
    finally:
        await conn.close()


async def test_replaying_twice_changes_nothing(settings: Settings) -> None:
    started = datetime.now(UTC) - timedelta(seconds=5)
    spec = await seed(settings, default_samples())
    await publish_samples(settings, spec.studio_id, default_samples())
    await run_until_idle(settings)
    before = await database_state(settings)
    events = len(await _committed_events(settings))
    assert len(before["sales"]) == 8

    first = await replay_raw(settings, "shootproof", started)
    assert first.matched == 4 and first.published + first.duplicates == 4 and first.published >= 3
    await run_until_idle(settings)
    assert await database_state(settings) == before
    assert len(await _committed_events(settings)) == events
    assert await read_dead_letters(settings) == []

    # Again, through the CLI: the copies of the first replay are read too, but sent once.
    result = await acli(settings, "replay", "--source", "shootproof", "--from", started.isoformat())
    assert result.returncode == 0, result.stderr
    assert f"re-published {first.published} shootproof order(s)" in result.stdout
    await run_until_idle(settings)
    assert await database_state(settings) == before
    assert len(await _committed_events(settings)) == events
    copies = [r for r in await raw_records(settings) if any(k == REPLAY_HEADER for k, _ in r.headers)]
    assert len(copies) == 2 * first.published
    originals = {(r.key, r.value) for r in await raw_records(settings) if not r.headers}
    assert {(r.key, r.value) for r in copies} <= originals  # unchanged: same key, same bytes


async def test_a_rule_change_reaches_the_sales_of_the_replayed_source_only(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=5)
    spec = await seed(settings, default_samples())
    await publish_samples(settings, spec.studio_id, default_samples())
    await run_until_idle(settings)
    before = {r[0]: r for r in await _sales(settings)}

    real = stage_module.normalise

    def new_rule(envelope: Any) -> Any:  # e.g. gallery names now upper-cased
        order = real(envelope)
        name = order.gallery_name.upper() if order.gallery_name else order.gallery_name
        return order.model_copy(update={"gallery_name": name})

    monkeypatch.setattr(stage_module, "normalise", new_rule)
    stats = await replay_raw(settings, "pictime", started)
    assert stats.published == 3
    await run_until_idle(settings)
    after = {r[0]: r for r in await _sales(settings)}
    assert after.keys() == before.keys()
    for ident, (_, source, gallery, received, updated) in after.items():
        _, _, old_gallery, old_received, old_updated = before[ident]
        assert received == old_received  # the same raw bytes: the same received_at
        if source == "pictime" and old_gallery:
            assert gallery == old_gallery.upper() and updated > old_updated
        else:
            assert (gallery, updated) == (old_gallery, old_updated)


async def _sales(settings: Settings) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(services.database_url(settings))
    try:
        rows = await conn.fetch(
            "SELECT external_order_id, source, gallery_name, received_at, updated_at FROM sales"
        )
    finally:
        await conn.close()
    return [tuple(row) for row in rows]


async def test_replay_reads_from_the_time_given_and_filters_source_and_studio(settings: Settings) -> None:
    south = STUDIO.model_copy(update={"studio_id": "south"})
    await seed_studios(settings, STUDIO, south)
    context = {
        spec.studio_id: make_envelope_context(spec.studio_id) for spec in (STUDIO, south)
    }
    await publish_raw(settings, [
        encode(make_envelope(context["north"], "api", api_sale("OLD-N"))),
        encode(make_envelope(context["south"], "api", api_sale("OLD-S"))),
    ])
    await asyncio.sleep(1.5)
    since = datetime.now(UTC)
    await asyncio.sleep(0.1)
    await publish_raw(settings, [
        encode(make_envelope(context["north"], "api", api_sale("NEW-N"))),
        encode(make_envelope(context["south"], "api", api_sale("NEW-S"))),
        encode(make_envelope(context["north"], "pictime", _pictime("PT-N"))),
    ])
    stats = await replay_raw(settings, "api", since, "north")
    assert (stats.total, stats.scanned, stats.matched, stats.published) == (3, 3, 1, 1)
    copies = [r for r in await raw_records(settings) if any(k == REPLAY_HEADER for k, _ in r.headers)]
    assert [r.key for r in copies] == [b"north|api|Shop:NEW-N"]
    everything = await replay_raw(settings, "api", since - timedelta(minutes=5))
    assert everything.matched == 5 and everything.published == 4 and everything.duplicates == 1
    nothing = await replay_raw(settings, "api", datetime.now(UTC) + timedelta(hours=1))
    assert (nothing.total, nothing.published) == (0, 0)


def make_envelope_context(studio_id: str) -> Any:
    from schemas.canonical import StudioContext

    return StudioContext(studio_id=studio_id, timezone="Europe/London", country="GB", currency="GBP")


def _pictime(order_id: str) -> dict[str, Any]:
    return {"orderId": order_id, "orderDate": "2026-11-30 10:00:00", "currency": "GBP", "orderTotal": "5.00",
            "lines": [{"productName": "Print", "qty": 1, "price": "5.00"}]}


async def test_cli_rejects_a_bad_source_or_time(settings: Settings) -> None:
    bad_source = await acli(settings, "replay", "--source", "flickr", "--from", "1d")
    assert bad_source.returncode == 1 and "unknown source 'flickr'" in bad_source.stderr
    bad_time = await acli(settings, "replay", "--source", "api", "--from", "last tuesday")
    assert bad_time.returncode == 1 and "--from 'last tuesday'" in bad_time.stderr

"""Tenancy and secrets: studios never see each other's contacts, sales, inbox or keys; API keys are
stored hashed; the demo's logs hold none of the sample emails or phone numbers."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from pipeline import services
from pipeline.db.pool import init_connection
from pipeline.demo import default_samples, publish_samples, seed
from pipeline.logs import configure as configure_logs
from pipeline.normaliser import normalise_phone
from pipeline.publishing import publish_file
from pipeline.reports import list_inbox, list_sales
from pipeline.settings import Settings
from pipeline.studios import StudioSpec, add_studio, issue_key, revoke_key, studio_for_key
from pipeline.worker import run_worker
from schemas import wire
from tests.integration.pipeline_helpers import api_sale, run_until_idle

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def studio(studio_id: str, auto: bool = True) -> StudioSpec:
    return StudioSpec(studio_id=studio_id, name=studio_id.title(), timezone="Europe/London", country="GB",
                      currency="GBP", auto_create_contacts=auto)


# Each studio has a contact "C1", but not the same person: a match that leaked across studios would
# still satisfy the (studio_id, contact_id) foreign key, so only the ids below can tell.
CONTACTS = {
    "north": [("C1", "Ann", "Lee", "ann@example.com", "+447700900111")],
    "south": [("C1", "Bob", "Ray", "bob@example.com", "+447700900222"),
              ("C2", "Ann", "Lee-Smith", "ann@example.com", None)],
    "east": [("C1", "Eve", "Lee", "eve@example.com", None)],
    "west": [],
}


async def seed_tenants(settings: Settings) -> None:
    conn = await asyncpg.connect(services.database_url(settings))
    try:
        for studio_id, rows in CONTACTS.items():
            await add_studio(conn, studio(studio_id, auto=studio_id != "east"))
            for contact_id, first, last, email, phone in rows:
                await conn.execute(
                    """INSERT INTO contacts (studio_id, contact_id, first_name, last_name, email, email_norm,
                                             phone, phone_e164)
                       VALUES ($1, $2, $3, $4, $5, $5, $6, $6)""",
                    studio_id, contact_id, first, last, email, phone,
                )
    finally:
        await conn.close()


async def read_model(settings: Settings, studio_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    conn = await asyncpg.connect(services.database_url(settings))
    try:
        await init_connection(conn)
        return await list_sales(conn, studio_id), await list_inbox(conn, studio_id)
    finally:
        await conn.close()


async def test_the_same_email_and_phone_in_other_studios_never_cross(settings: Settings, tmp_path: Path) -> None:
    await seed_tenants(settings)
    orders = {
        "north": [api_sale("SAME", client_name="Ann Lee", client_email="ann@example.com", total="10.00")],
        "south": [
            api_sale("SAME", client_name="Ann Lee", client_email=" ANN@Example.com ", total="20.00"),
            # North's Ann's phone, no email: south has nobody with it, so a new south contact.
            api_sale("PHONE", client_name="Ann Lee", client_email="", client_phone="07700 900111"),
        ],
        "west": [api_sale("W", client_name="Ann Lee", client_email="ann@example.com")],
        "east": [api_sale("E", client_name="Ann Lee", client_email="ann@example.com")],
    }
    for studio_id, payloads in orders.items():
        path = tmp_path / f"{studio_id}.json"
        path.write_bytes(wire.dumps(payloads))
        assert await publish_file(settings, studio_id, "api", path) == (len(payloads), 0)
    await run_until_idle(settings)

    north, north_inbox = await read_model(settings, "north")
    south, south_inbox = await read_model(settings, "south")
    west, _ = await read_model(settings, "west")
    east, east_inbox = await read_model(settings, "east")
    # The same order id in two studios: two sales, each in its own studio, each with its own total.
    assert [(s["external_order_id"], s["total"], s["contact"]["contact_id"]) for s in north] == [
        ("Shop:SAME", "10.00", "C1")]
    by_ref = {s["external_order_id"]: s for s in south}
    assert (by_ref["Shop:SAME"]["total"], by_ref["Shop:SAME"]["contact"]["contact_id"]) == ("20.00", "C2")
    phone_contact = by_ref["Shop:PHONE"]["contact"]
    assert phone_contact["created_by_import"] and phone_contact["contact_id"] not in {"C1", "C2"}
    (west_sale,) = west
    assert west_sale["contact"]["created_by_import"] and west_sale["contact"]["email"] == "ann@example.com"
    # A strict studio with no Ann of its own: the inbox, with only its own contacts as candidates.
    assert east == [] and north_inbox == [] and south_inbox == []
    (waiting,) = east_inbox
    assert waiting["reason"] == "no_contact_match"
    assert {c["contact_id"] for c in waiting["candidates"]} <= {"C1"}
    assert all(c["email"] in (None, "eve@example.com") for c in waiting["candidates"])

    conn = await asyncpg.connect(services.database_url(settings))
    try:
        created = await conn.fetch(
            "SELECT studio_id, contact_id FROM contacts WHERE created_by_import ORDER BY 1")
        crossing = await conn.fetchval(
            """SELECT count(*) FROM sale_items i JOIN sales s ON s.id = i.sale_id
                WHERE i.studio_id <> s.studio_id""")
    finally:
        await conn.close()
    assert [r["studio_id"] for r in created] == ["south", "west"]
    assert crossing == 0


async def test_a_studios_sales_and_inbox_show_only_that_studio(settings: Settings, tmp_path: Path) -> None:
    await seed_tenants(settings)
    for studio_id in ("north", "south", "east"):
        path = tmp_path / f"{studio_id}.json"
        path.write_bytes(wire.dumps([
            api_sale(f"{studio_id}-1", client_email=f"someone.{studio_id}@example.com",
                     items=[{"description": f"{studio_id} print", "quantity": 2, "price": "3.00"}]),
            api_sale("SHARED-REF", client_email=f"x.{studio_id}@example.com"),
        ]))
        assert await publish_file(settings, studio_id, "api", path) == (2, 0)
    await run_until_idle(settings)
    for studio_id in ("north", "south"):
        sales, inbox = await read_model(settings, studio_id)
        assert sorted(s["external_order_id"] for s in sales) == sorted([f"Shop:{studio_id}-1", "Shop:SHARED-REF"])
        own = next(s for s in sales if s["external_order_id"] == f"Shop:{studio_id}-1")
        assert [i["description"] for i in own["items"]] == [f"{studio_id} print"]
        assert all(studio_id in s["contact"]["email"] for s in sales)
        assert inbox == []
    east_sales, east_inbox = await read_model(settings, "east")
    assert east_sales == []
    assert sorted(i["external_order_id"] for i in east_inbox) == ["Shop:SHARED-REF", "Shop:east-1"]
    assert await read_model(settings, "nobody") == ([], [])


async def test_api_keys_are_stored_hashed_and_open_only_their_studio(settings: Settings) -> None:
    conn = await asyncpg.connect(services.database_url(settings))
    try:
        key_a = (await add_studio(conn, studio("alpha")))["api_key"]
        key_b = (await add_studio(conn, studio("beta")))["api_key"]
        key_a2 = await issue_key(conn, "alpha")
        keys = [key_a, key_b, key_a2]
        assert all(isinstance(k, str) and len(k) > 40 for k in keys)
        dump = "\n".join(
            row["line"] for row in await conn.fetch(
                """SELECT row_to_json(t)::text AS line FROM api_keys t
                   UNION ALL SELECT row_to_json(s)::text FROM studios s"""
            )
        )
        every_table = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        for row in every_table:
            dump += "\n".join(
                r["line"] for r in await conn.fetch(
                    f'SELECT row_to_json(t)::text AS line FROM "{row["tablename"]}" t')
            )
        for key in keys:
            assert key not in dump
            assert key[12:] not in dump  # the secret part: only a 12-character lookup prefix is kept
            assert hashlib.sha256(key.encode()).hexdigest() in dump
        assert await studio_for_key(conn, key_a) == "alpha"
        assert await studio_for_key(conn, key_a2) == "alpha"
        assert await studio_for_key(conn, key_b) == "beta"
        assert await studio_for_key(conn, key_a[:12] + key_b[12:]) is None  # alpha's prefix, beta's secret
        assert await studio_for_key(conn, key_b[:-1] + ("A" if key_b[-1] != "A" else "B")) is None
        assert await revoke_key(conn, "alpha", key_a[:12]) == 1
        assert await studio_for_key(conn, key_a) is None
        assert await studio_for_key(conn, key_a2) == "alpha"
        assert await revoke_key(conn, "beta", key_a2[:12]) == 0  # beta cannot revoke alpha's key
        assert await studio_for_key(conn, key_a2) == "alpha"
    finally:
        await conn.close()


# --- no personal data in logs ----------------------------------------------------------------


def personal_data() -> set[str]:
    """Every email and phone number of the demo (contacts and orders), in the forms logs might show."""
    found: set[str] = set()
    folder = default_samples()
    with (folder / "contacts.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            found.update(v for v in (row["email"], row["phone"]) if v)

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, str) and re.search("mail|phone", key, re.I) and item.strip():
                    found.add(item)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for name in ("shootproof.json", "pictime.json", "theimagefile.json", "api.json"):
        walk(wire.loads((folder / name).read_bytes()))
    forms = set()
    for value in found:
        text = value.strip()
        forms |= {text, text.casefold()}
        digits = re.sub(r"\D", "", text)
        if len(digits) >= 7:
            forms |= {digits, digits[-9:]}  # 07700900123, 7700900123's tail
            e164 = normalise_phone(text, "GB")
            if e164:
                forms |= {e164, e164[1:]}
    return forms


def leaks(text: str) -> list[str]:
    """The personal data found in ``text``, each with the first line that shows it."""
    forms = personal_data()
    found = []
    for line in text.splitlines():
        squashed = re.sub(r"[\s\-().]", "", line)
        for form in sorted(forms):
            if form in line or (form.isdigit() and form in squashed):
                found.append(f"{form}: {line[:300]}")
                forms.discard(form)
    return found


def test_the_sample_data_has_emails_and_phones() -> None:
    data = personal_data()
    assert "aoife.hughes@example.com" in data and "+447700900123" in data
    found = {leak.split(": ")[0] for leak in leaks("contact ann 07700 900123 done")}
    assert {"07700 900123", "07700900123", "700900123"} <= found
    assert leaks("studio=harbour-light offset=12") == []


async def test_the_demo_cli_logs_no_emails_or_phone_numbers(settings: Settings) -> None:
    env = {
        **os.environ,
        "GALLERYFLOW_APP_ID": settings.app_id,
        "GALLERYFLOW_DATABASE_URL": services.database_url(settings),
        "GALLERYFLOW_KAFKA_BOOTSTRAP_SERVERS": services.bootstrap_servers(settings),
        "GALLERYFLOW_PARTITIONS": str(settings.partitions),
        "GALLERYFLOW_WORKER_WEB_PORT": str(settings.worker_web_port),
        "GALLERYFLOW_CONSUMER_SESSION_TIMEOUT_SECONDS": "6",
        "GALLERYFLOW_IDLE_CHECK_SECONDS": "0.5",
        "GALLERYFLOW_LOG_LEVEL": "DEBUG",
    }
    result = await asyncio.to_thread(
        subprocess.run, [str(Path(sys.executable).with_name("galleryflow")), "demo"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=400, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Sales (8)" in result.stdout  # the demo really ran
    assert "worker started" in result.stderr  # and its logs were captured
    assert leaks(result.stderr) == []


async def test_the_pipeline_logs_no_personal_data_even_for_bad_orders(
    settings: Settings, tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """In-process at DEBUG, with orders that are rejected and dead-lettered too.

    aiokafka logs every message it sends at DEBUG ("Sending (key=... value=...)", found by this test
    when it turned every library to DEBUG): the logging set-up must keep it quiet at any level.
    """
    configure_logs("DEBUG")
    caplog.set_level(logging.DEBUG)
    for library in ("aiokafka", "faust", "mode", "kafka"):
        assert logging.getLogger(library).getEffectiveLevel() > logging.DEBUG
    try:
        spec = await seed(settings, default_samples())
        await publish_samples(settings, spec.studio_id, default_samples())
        broken = tmp_path / "broken.json"
        broken.write_bytes(wire.dumps([
            api_sale("B-1", client_email="aoife.hughes@example.com", client_phone="07700 900123",
                     date="not a date"),
            api_sale("B-2", client_email="gareth.jones@example.org", note="n" * (settings.max_order_bytes + 1)),
        ]))
        assert await publish_file(settings, spec.studio_id, "api", broken) == (0, 2)
        await run_worker(settings, until_idle=True, idle_timeout=180)
    finally:
        configure_logs(settings.log_level, settings.log_json)
    captured = capfd.readouterr()
    logged = captured.err + captured.out + "\n".join(r.getMessage() for r in caplog.records)
    assert "order dead-lettered" in logged or "worker started" in logged
    assert leaks(logged) == []

"""The ShootProof poller against a loopback fake of ShootProof, the real broker and the real database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaTimeoutError

from connectors import pictime, shootproof
from connectors.http import VendorHttp
from connectors.oauth import AccountRef, consume_state, create_state, exchange_code, store_link
from connectors.polling import PollResult, list_accounts, poll_context, run_poll
from connectors.scheduler import poll_linked_accounts
from connectors.secrets import Cipher
from pipeline import services
from pipeline.db.migrate import migrate
from pipeline.db.pool import init_connection
from pipeline.demo import default_samples, seed
from pipeline.reports import list_sales
from pipeline.settings import Settings
from pipeline.worker import run_worker
from tests.conftest import Infra, drop_database, make_settings
from tests.fakes.pictime import FakePictime
from tests.fakes.shootproof import FakeShootProof

pytestmark = pytest.mark.integration

STUDIO = "harbour-light"  # the demo studio (seeded)
BRAND = "5501"
CLIENT_ID = "sp-client-id"
CLIENT_SECRET = "sp-client-secret-do-not-log"
SECRET_KEY = "test-secret-key-for-galleryflow-connectors"
GALLERYFLOW = Path(sys.executable).parent / "galleryflow"


@pytest.fixture
def fake() -> Iterator[FakeShootProof]:
    server = FakeShootProof(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, access_ttl=2.0).start()
    yield server
    server.stop()


@pytest.fixture
async def sp_settings(infra: Infra, fake: FakeShootProof) -> AsyncIterator[Settings]:
    value = make_settings(
        infra,
        secret_key=SECRET_KEY,
        shootproof_client_id=CLIENT_ID,
        shootproof_client_secret=CLIENT_SECRET,
        shootproof_api_url=fake.api_url,
        shootproof_auth_url=fake.auth_url,
        poll_page_rows=10,
        poll_interval_seconds=1.0,
        token_refresh_margin_seconds=0.5,
        connector_max_attempts=4,
        connector_retry_initial_seconds=0.05,
        connector_retry_max_seconds=5.0,
    )
    await migrate(services.database_url(value))
    await seed(value, default_samples())
    yield value
    await drop_database(value)


# ------------------------------------------------------------------------------------ helpers


async def _conn(settings: Settings) -> asyncpg.Connection:
    conn = await asyncpg.connect(services.database_url(settings))
    await init_connection(conn)
    return conn


async def link(settings: Settings, fake: FakeShootProof, brand: str = BRAND) -> None:
    """The link flow through the library: state, owner approval at the fake, code exchange."""
    client = shootproof.oauth_client(settings)
    redirect = settings.shootproof_redirect_uri
    conn = await _conn(settings)
    try:
        state = await create_state(conn, STUDIO, "shootproof", redirect)
        code, returned_state = await asyncio.to_thread(fake.approve, client.authorize_url(state, redirect))
        assert returned_state == state
        uri = await consume_state(conn, returned_state, STUDIO, "shootproof")
        async with VendorHttp.from_settings("shootproof", settings) as http:
            tokens = await exchange_code(http, client, code, uri)
        await store_link(conn, Cipher(SECRET_KEY), AccountRef(STUDIO, "shootproof", brand), tokens)
    finally:
        await conn.close()


async def poll_once(settings: Settings) -> PollResult:
    async with poll_context(settings) as ctx:
        (account,) = await list_accounts(ctx.pool, studio_id=STUDIO, source="shootproof")
        return await run_poll(ctx, account, shootproof.poll)


async def raw_messages(settings: Settings) -> list[tuple[str, dict[str, Any]]]:
    consumer = AIOKafkaConsumer(
        settings.raw_topic, bootstrap_servers=services.bootstrap_servers(settings),
        auto_offset_reset="earliest", enable_auto_commit=False,
    )
    await consumer.start()
    try:
        found: list[tuple[str, dict[str, Any]]] = []
        batch = await consumer.getmany(timeout_ms=3000)
        while batch:
            for records in batch.values():
                found.extend((r.key.decode(), json.loads(r.value)) for r in records)
            batch = await consumer.getmany(timeout_ms=1000)
        return found
    finally:
        await consumer.stop()


async def account_row(settings: Settings) -> dict[str, Any]:
    conn = await _conn(settings)
    try:
        row = await conn.fetchrow("SELECT * FROM connector_accounts WHERE studio_id = $1 AND source = 'shootproof'",
                                  STUDIO)
        assert row is not None
        return dict(row)
    finally:
        await conn.close()


async def assert_no_clear_secrets(settings: Settings, fake: FakeShootProof) -> None:
    """No token, code or client secret appears anywhere in the connector tables."""
    conn = await _conn(settings)
    try:
        parts = [
            await conn.fetchval(f"SELECT coalesce(string_agg(row_to_json(t)::text, ' '), '') FROM {table} t")
            for table in ("connector_accounts", "oauth_states", "connector_order_hashes")
        ]
        dump = " ".join(parts)
    finally:
        await conn.close()
    assert fake.issued_tokens, "the fake issued no token: nothing was checked"
    for secret in [*fake.issued_tokens, CLIENT_SECRET, SECRET_KEY]:
        assert secret not in dump


def stored_tokens(row: dict[str, Any]) -> tuple[str, str]:
    cipher = Cipher(SECRET_KEY)
    ref = AccountRef(STUDIO, "shootproof", BRAND)
    return (cipher.decrypt(row["access_token_enc"], ref.context("access_token")),
            cipher.decrypt(row["refresh_token_enc"], ref.context("refresh_token")))


def add_orders(fake: FakeShootProof, count: int, *, start: int = 81_000_000, age: timedelta = timedelta(hours=1),
               step: timedelta = timedelta(minutes=30)) -> list[int]:
    now = datetime.now(UTC)
    ids = []
    for n in range(count):
        fake.add_order(BRAND, start + n, now - age - n * step)
        ids.append(start + n)
    return ids


def answered(fake: FakeShootProof, contains: str) -> int:
    """How many API requests whose path contains ``contains`` were answered 200."""
    return sum(1 for r in fake.api_requests(contains) if r.status == 200)


def list_pages(fake: FakeShootProof, since: int = 0) -> list[str]:
    """The `page` of every answered order-list request (after the first ``since`` requests)."""
    return [r.query["page"] for r in fake.requests[since:] if r.path.endswith("/order") and r.status == 200]


def cli_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GALLERYFLOW_")}
    env.update({
        "GALLERYFLOW_DATABASE_URL": services.database_url(settings),
        "GALLERYFLOW_KAFKA_BOOTSTRAP_SERVERS": services.bootstrap_servers(settings),
        "GALLERYFLOW_APP_ID": settings.app_id,
        "GALLERYFLOW_DATA_DIR": str(settings.data_dir),
        "GALLERYFLOW_PARTITIONS": str(settings.partitions),
        "GALLERYFLOW_SECRET_KEY": SECRET_KEY,
        "GALLERYFLOW_SHOOTPROOF_CLIENT_ID": CLIENT_ID,
        "GALLERYFLOW_SHOOTPROOF_CLIENT_SECRET": CLIENT_SECRET,
        "GALLERYFLOW_SHOOTPROOF_API_URL": settings.shootproof_api_url,
        "GALLERYFLOW_SHOOTPROOF_AUTH_URL": settings.shootproof_auth_url,
        "GALLERYFLOW_POLL_PAGE_ROWS": str(settings.poll_page_rows),
        "GALLERYFLOW_LOG_LEVEL": "INFO",
    })
    return env


async def cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(GALLERYFLOW), *args, env=cli_env(settings),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


# -------------------------------------------------------------------------------------- tests


async def test_cli_link_poll_publishes_each_order_once_and_status(sp_settings: Settings, fake: FakeShootProof) -> None:
    add_orders(fake, 25)

    # 1. The authorization URL, with a state stored only as a hash.
    code, out, err = await cli(sp_settings, "link", "shootproof", "--studio", STUDIO, "--authorize-url")
    assert code == 0, err
    url = out.strip()
    assert url.startswith(f"{fake.auth_url}/oauth2/authorization/new?")
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == [CLIENT_ID] and query["response_type"] == ["code"]
    assert query["scope"] == ["studio"] and query["redirect_uri"] == [sp_settings.shootproof_redirect_uri]
    auth_code, state = await asyncio.to_thread(fake.approve, url)
    assert state == query["state"][0] and len(state) >= 32

    # 2. The code exchange stores the tokens encrypted; the state is single use.
    code, out, err = await cli(sp_settings, "link", "shootproof", "--studio", STUDIO, "--brand-id", BRAND,
                               "--code", auth_code, "--state", state)
    assert code == 0, err
    assert "linked shootproof account 5501" in out
    code, _, err = await cli(sp_settings, "link", "shootproof", "--studio", STUDIO, "--brand-id", BRAND,
                             "--code", auth_code, "--state", state)
    assert code == 1 and "state" in err
    assert [g.grant for g in fake.token_grants()] == ["authorization_code"]

    # 3. One poll pages through all three pages and publishes each order.
    code, out, err = await cli(sp_settings, "poll", "--studio", STUDIO, "--source", "shootproof", "--once")
    assert code == 0, err
    assert "25 published" in out
    assert list_pages(fake) == ["1", "2", "3"]
    assert answered(fake, "/item") == 25
    for secret in [*fake.issued_tokens, auth_code, CLIENT_SECRET]:
        assert secret not in out + err  # never printed or logged

    # 4. Later polls publish nothing again (and skip the unchanged orders' items).
    for _ in range(2):
        result = await poll_once(sp_settings)
        assert (result.error, result.published, result.unchanged) == (None, 0, 25)
    assert answered(fake, "/item") == 25
    messages = await raw_messages(sp_settings)
    assert len(messages) == 25
    assert len({key for key, _ in messages}) == 25
    first = messages[0][1]
    assert first["source"] == "shootproof" and first["studio"]["studio_id"] == STUDIO
    assert len(first["payload"]["items"]) == 1 and first["payload"]["brandId"] == 5501

    # 5. A new order: only it is published.
    fake.add_order(BRAND, 81_000_500, datetime.now(UTC))
    result = await poll_once(sp_settings)
    assert (result.error, result.published) == (None, 1)
    messages = await raw_messages(sp_settings)
    assert len(messages) == 26
    assert f"{STUDIO}|shootproof|81000500" in {key for key, _ in messages}

    # 6. Status.
    code, out, err = await cli(sp_settings, "connectors", "status", "--json")
    assert code == 0, err
    rows = json.loads(out)
    row = next(r for r in rows if r["studio_id"] == STUDIO and r["source"] == "shootproof")
    assert row["linked"] is True and row["account_id"] == BRAND
    assert row["orders_published"] == 26 and row["last_error"] is None and row["last_poll_at"]
    pictime_row = next(r for r in rows if r["studio_id"] == STUDIO and r["source"] == "pictime")
    assert pictime_row["linked"] is False and pictime_row["orders_published"] == 0

    await assert_no_clear_secrets(sp_settings, fake)


async def test_poller_survives_429_and_500s(sp_settings: Settings, fake: FakeShootProof) -> None:
    fake.access_ttl = 3600  # token expiry has its own test; here only the back-off is under test
    ids = add_orders(fake, 35)  # four pages of 10
    await link(sp_settings, fake)
    fake.fail_next("/studio/brand/5501/order", 429, retry_after="1", query={"page": "2"})
    fake.fail_next(f"/order/{ids[3]}/item", 500, times=2)
    fake.fail_next(f"/order/{ids[27]}/item", 503, times=1)

    result = await poll_once(sp_settings)
    assert result.error is None and result.published == 35 and result.pages == 4

    page2 = [r for r in fake.requests if r.path.endswith("/order") and r.query.get("page") == "2"]
    assert [r.status for r in page2] == [429, 200]
    assert page2[1].at - page2[0].at >= 0.95  # Retry-After: 1 honoured
    assert [r.status for r in fake.api_requests(f"/order/{ids[3]}/item")] == [500, 500, 200]
    assert [r.status for r in fake.api_requests(f"/order/{ids[27]}/item")] == [503, 200]

    # Retries are bounded: a 500 that does not stop fails the poll, records the error and
    # publishes nothing of that page; the next poll publishes the rest exactly once.
    new = add_orders(fake, 5, start=81_000_100, age=timedelta(minutes=1), step=timedelta(seconds=5))
    fake.fail_next(f"/order/{new[2]}/item", 500, times=50)
    failed = await poll_once(sp_settings)
    assert failed.error is not None and "500" in failed.error and failed.published == 0
    assert len(fake.api_requests(f"/order/{new[2]}/item")) == sp_settings.connector_max_attempts
    row = await account_row(sp_settings)
    assert row["last_error"] == failed.error and row["orders_published"] == 35
    fake.clear_failures()
    again = await poll_once(sp_settings)
    assert again.error is None and again.published == 5
    assert (await account_row(sp_settings))["last_error"] is None

    messages = await raw_messages(sp_settings)
    assert len(messages) == 40 and len({k for k, _ in messages}) == 40


async def test_tokens_refresh_rotate_and_stay_encrypted(
    sp_settings: Settings, fake: FakeShootProof, capfd: pytest.CaptureFixture[str]
) -> None:
    add_orders(fake, 5)
    await link(sp_settings, fake)
    _, first_refresh = stored_tokens(await account_row(sp_settings))
    assert fake.refresh_tokens == {first_refresh}

    # A fresh token: no refresh.
    assert (await poll_once(sp_settings)).published == 5
    assert [g.grant for g in fake.token_grants()] == ["authorization_code"]

    # The vendor refuses the access token: one refresh, then the same request again.
    fake.revoke_access_tokens()
    mark = len(fake.requests)
    result = await poll_once(sp_settings)
    assert result.error is None
    statuses = [(r.path.rsplit("/", 1)[-1], r.status) for r in fake.requests[mark:mark + 3]]
    assert statuses == [("order", 401), ("token", 200), ("order", 200)]
    assert [g.grant for g in fake.token_grants()] == ["authorization_code", "refresh_token"]
    access, second_refresh = stored_tokens(await account_row(sp_settings))
    assert second_refresh != first_refresh and fake.refresh_tokens == {second_refresh}
    assert access in fake.access_tokens
    # Rotation: the old refresh token no longer works at the vendor.
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"{fake.auth_url}/oauth2/authorization/token", data={
            "grant_type": "refresh_token", "refresh_token": first_refresh,
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"

    # Shortly before expiry the poller refreshes first: no 401 at all.
    await asyncio.sleep(fake.access_ttl)
    mark = len(fake.requests)
    assert (await poll_once(sp_settings)).error is None
    assert fake.requests[mark].path.endswith("/token") and fake.requests[mark].grant == "refresh_token"
    assert all(r.status != 401 for r in fake.requests[mark:])
    _, third_refresh = stored_tokens(await account_row(sp_settings))
    assert fake.refresh_tokens == {third_refresh} and third_refresh not in (first_refresh, second_refresh)

    # A token refused even after a refresh: refresh once only, then the poll fails and says so.
    fake.always_401 = True
    mark = len(fake.token_grants())
    failed = await poll_once(sp_settings)
    assert failed.error is not None and "401" in failed.error
    assert len(fake.token_grants()) == mark + 1
    assert (await account_row(sp_settings))["last_error"] == failed.error
    _, fourth_refresh = stored_tokens(await account_row(sp_settings))
    assert fake.refresh_tokens == {fourth_refresh}  # the rotated pair was kept

    await assert_no_clear_secrets(sp_settings, fake)
    captured = capfd.readouterr()
    for secret in [*fake.issued_tokens, CLIENT_SECRET]:
        assert secret not in captured.out + captured.err


async def test_cancellation_in_the_recent_window_updates_the_sale(
    sp_settings: Settings, fake: FakeShootProof
) -> None:
    settings = sp_settings.model_copy(update={"poll_page_rows": 2})
    now = datetime.now(UTC)
    recent = [81_200_001, 81_200_002, 81_200_003]
    old = [81_100_001, 81_100_002]
    for n, order_id in enumerate(recent):
        fake.add_order(BRAND, order_id, now - timedelta(days=n + 1))
    for n, order_id in enumerate(old):
        fake.add_order(BRAND, order_id, now - timedelta(days=40 + n))
    await link(settings, fake)

    first = await poll_once(settings)
    assert (first.error, first.published, first.pages) == (None, 5, 3)
    await run_worker(settings, until_idle=True, idle_timeout=180)
    conn = await _conn(settings)
    try:
        sales = {s["external_order_id"]: s for s in await list_sales(conn, STUDIO) if s["source"] == "shootproof"}
    finally:
        await conn.close()
    expected_ids = {str(i) for i in recent + old}
    assert expected_ids <= set(sales)
    assert {sales[i]["status"] for i in expected_ids} == {"paid"}

    # Later: one recent order is cancelled; an order older than the window is refunded.
    fake.cancel(recent[1])
    fake.refund(old[0], "18.00")
    items_before = answered(fake, "/item")
    mark = len(fake.requests)
    second = await poll_once(settings)
    assert (second.error, second.published) == (None, 1)
    assert list_pages(fake, mark) == ["1", "2"]  # stopped at the first seen order older than the window
    assert answered(fake, "/item") == items_before + 1  # only the changed order's items

    messages = await raw_messages(settings)
    assert len(messages) == 6
    assert [m["payload"]["status"] for _, m in messages].count("canceled") == 1

    await run_worker(settings, until_idle=True, idle_timeout=180)
    conn = await _conn(settings)
    try:
        after = {s["external_order_id"]: s for s in await list_sales(conn, STUDIO) if s["source"] == "shootproof"}
    finally:
        await conn.close()
    assert after[str(recent[1])]["status"] == "cancelled"
    assert [after[str(i)]["status"] for i in (recent[0], recent[2])] == ["paid", "paid"]
    assert after[str(old[0])]["status"] == "paid"  # outside the re-read window: not re-read (by design)
    assert len(after) == len(sales)  # the cancellation updated the one sale, never a second one


async def test_run_polls_linked_accounts_on_an_interval(sp_settings: Settings, fake: FakeShootProof) -> None:
    add_orders(fake, 3)
    await link(sp_settings, fake)
    stop = asyncio.Event()
    task = asyncio.create_task(poll_linked_accounts(sp_settings, stop))
    try:
        async def polled_twice() -> bool:
            return list_pages(fake).count("1") >= 2

        await wait_for(polled_twice, 30, "two polls")
        fake.add_order(BRAND, 81_300_000, datetime.now(UTC))

        async def published_four() -> bool:
            return (await account_row(sp_settings))["orders_published"] == 4

        await wait_for(published_four, 30, "the new order")
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    assert task.done() and task.exception() is None
    row = await account_row(sp_settings)
    assert row["last_error"] is None and row["last_success_at"] is not None
    messages = await raw_messages(sp_settings)
    assert len(messages) == 4

    # Without GALLERYFLOW_SECRET_KEY the accounts are not polled and the status says why.
    conn = await _conn(sp_settings)
    try:
        await conn.execute("UPDATE connector_accounts SET next_poll_at = NULL")
    finally:
        await conn.close()
    requests_before = len(fake.requests)
    keyless = sp_settings.model_copy(update={"secret_key": None})
    stop = asyncio.Event()
    task = asyncio.create_task(poll_linked_accounts(keyless, stop))

    async def error_recorded() -> bool:
        return "GALLERYFLOW_SECRET_KEY" in ((await account_row(sp_settings))["last_error"] or "")

    try:
        await wait_for(error_recorded, 15, "the missing-key error")
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    assert len(fake.requests) == requests_before


async def test_a_failed_publish_records_no_hash_and_the_next_poll_publishes(
    sp_settings: Settings, fake: FakeShootProof
) -> None:
    add_orders(fake, 3)
    await link(sp_settings, fake)
    async with poll_context(sp_settings) as ctx:
        real_publish = ctx.publisher.publish

        async def broker_away(envelopes: Any) -> None:
            raise KafkaTimeoutError()

        ctx.publisher.publish = broker_away  # type: ignore[method-assign]
        (account,) = await list_accounts(ctx.pool, studio_id=STUDIO, source="shootproof")
        failed = await run_poll(ctx, account, shootproof.poll)
        assert failed.error is not None and "KafkaTimeoutError" in failed.error and failed.published == 0
        assert await ctx.pool.fetchval("SELECT count(*) FROM connector_order_hashes") == 0
        assert (await account_row(sp_settings))["orders_published"] == 0

        ctx.publisher.publish = real_publish  # type: ignore[method-assign]
        (account,) = await list_accounts(ctx.pool, studio_id=STUDIO, source="shootproof")
        again = await run_poll(ctx, account, shootproof.poll)
        assert (again.error, again.published) == (None, 3)
        assert await ctx.pool.fetchval("SELECT count(*) FROM connector_order_hashes") == 3
    assert len(await raw_messages(sp_settings)) == 3


async def test_pictime_link_and_cursor_poll(infra: Infra) -> None:
    """Pic-Time as connectors/pictime.py assumes it: link, then orders since a cursor."""
    vendor = FakePictime(client_id="pt-client", client_secret="pt-secret").start()
    settings = make_settings(
        infra, secret_key=SECRET_KEY, pictime_client_id="pt-client", pictime_client_secret="pt-secret",
        pictime_api_url=vendor.api_url, pictime_auth_url=vendor.auth_url,
        connector_retry_initial_seconds=0.05,
    )
    try:
        await migrate(services.database_url(settings))
        await seed(settings, default_samples())
        for n in range(3):
            vendor.add_order(f"PT-9{n}")
        client = pictime.oauth_client(settings)
        conn = await _conn(settings)
        try:
            state = await create_state(conn, STUDIO, "pictime", settings.pictime_redirect_uri)
            url = client.authorize_url(state, settings.pictime_redirect_uri)
            assert url.startswith(f"{vendor.auth_url}/oauth/authorize?")
            code, returned = await asyncio.to_thread(vendor.approve, url)
            await consume_state(conn, returned, STUDIO, "pictime")
            async with VendorHttp.from_settings("pictime", settings) as http:
                tokens = await exchange_code(http, client, code, settings.pictime_redirect_uri)
            await store_link(conn, Cipher(SECRET_KEY), AccountRef(STUDIO, "pictime", "default"), tokens)
        finally:
            await conn.close()

        async def poll_pictime() -> PollResult:
            async with poll_context(settings) as ctx:
                (account,) = await list_accounts(ctx.pool, studio_id=STUDIO, source="pictime")
                return await run_poll(ctx, account, pictime.poll)

        first = await poll_pictime()
        assert (first.error, first.published, first.pages) == (None, 3, 3)  # 2 + 1 + an empty page
        assert [r.query.get("since") for r in vendor.api_requests("/v1/orders")] == [None, None, None]
        second = await poll_pictime()
        assert (second.error, second.published) == (None, 0)
        assert vendor.api_requests("/v1/orders")[-1].query.get("since") == "3"

        vendor.cancel("PT-91")
        third = await poll_pictime()
        assert (third.error, third.published) == (None, 1)
        messages = await raw_messages(settings)
        assert len(messages) == 4
        assert [m["payload"]["status"] for k, m in messages if k.endswith("|PT-91")] == ["paid", "cancelled"]

        await run_worker(settings, until_idle=True, idle_timeout=180)
        conn = await _conn(settings)
        try:
            sales = {s["external_order_id"]: s for s in await list_sales(conn, STUDIO) if s["source"] == "pictime"}
        finally:
            await conn.close()
        assert [sales[f"PT-9{n}"]["status"] for n in range(3)] == ["paid", "cancelled", "paid"]
    finally:
        vendor.stop()
        await drop_database(settings)


async def test_galleryflow_run_polls_linked_accounts_into_sales(sp_settings: Settings, fake: FakeShootProof) -> None:
    """`galleryflow run` (the worker without --until-idle) polls too: orders become sales, updates follow."""
    ids = add_orders(fake, 2)

    async def shootproof_sales() -> dict[str, dict[str, Any]]:
        conn = await _conn(sp_settings)
        try:
            return {s["external_order_id"]: s for s in await list_sales(conn, STUDIO) if s["source"] == "shootproof"}
        finally:
            await conn.close()

    await link(sp_settings, fake)
    worker = asyncio.create_task(run_worker(sp_settings))
    try:
        async def both_sold() -> bool:
            return set(await shootproof_sales()) == {str(i) for i in ids}

        await wait_for(both_sold, 120, "sales from the polled orders")
        fake.cancel(ids[0])

        async def cancelled() -> bool:
            return (await shootproof_sales())[str(ids[0])]["status"] == "cancelled"

        await wait_for(cancelled, 60, "the cancellation to reach the sale")
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    sales = await shootproof_sales()
    assert [sales[str(i)]["status"] for i in ids] == ["cancelled", "paid"]

"""The HTTP push API over real HTTP (uvicorn on a free port), real Kafka and real PostgreSQL."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import structlog
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from pipeline import services
from pipeline.api import create_api
from pipeline.demo import default_samples
from pipeline.records import import_contacts
from pipeline.reports import list_sales
from pipeline.settings import Settings
from pipeline.studios import StudioSpec, add_studio, issue_key, revoke_key
from pipeline.worker import run_worker
from tests.conftest import free_port

pytestmark = pytest.mark.integration

SAMPLES = default_samples()
TIF_ORDERS: list[dict[str, Any]] = json.loads((SAMPLES / "theimagefile.json").read_text())
PICTIME_ORDERS: list[dict[str, Any]] = json.loads((SAMPLES / "pictime.json").read_text())
API_SALES: list[dict[str, Any]] = json.loads((SAMPLES / "api.json").read_text())
ORDER = TIF_ORDERS[0]  # TIF-2026-004411: matches contact C004 by email
ORDER_KEY = "harbour-light|theimagefile|TIF-2026-004411"
ETSY_SALE = API_SALES[0]  # Etsy ETSY-2231, two items
STUDIO = "harbour-light"
OTHER_STUDIO = "north-pier"
IDLE_TIMEOUT = 120.0


@dataclass
class Api:
    url: str
    port: int
    key: str
    settings: Settings
    db: asyncpg.Connection


def _spec(studio_id: str) -> StudioSpec:
    return StudioSpec(studio_id=studio_id, name=f"Studio {studio_id}", timezone="Europe/London",
                      country="GB", currency="GBP")


async def _seed(db: asyncpg.Connection, studio_id: str) -> str:
    """A studio with the demo contacts; returns its first API key."""
    result = await add_studio(db, _spec(studio_id))
    await import_contacts(db, studio_id, SAMPLES / "contacts.csv")
    assert result["api_key"]
    return str(result["api_key"])


@asynccontextmanager
async def _serve(settings: Settings) -> AsyncIterator[tuple[str, int]]:
    """uvicorn in this event loop on a free port, until the block ends."""
    port = free_port()
    config = uvicorn.Config(create_api(settings), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(60):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the API stopped during startup")
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}", port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@pytest.fixture
async def api(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[Api]:
    key = await _seed(db, STUDIO)
    async with _serve(settings) as (url, port):
        yield Api(url, port, key, settings, db)


@pytest.fixture
async def client(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as value:
        yield value


def _wrong(key: str) -> str:
    """The key with its last character changed: the right prefix, the wrong key."""
    return key[:-1] + ("A" if key[-1] != "A" else "B")


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _raw_messages(settings: Settings) -> list[tuple[str, dict[str, Any]]]:
    """Every message on the raw topic, read up to its end offsets (key, decoded value)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=services.bootstrap_servers(settings),
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(settings.raw_topic, p) for p in range(settings.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        out: list[tuple[str, dict[str, Any]]] = []
        async with asyncio.timeout(30):
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    out.extend((r.key.decode(), json.loads(r.value)) for r in records)
        return out
    finally:
        await consumer.stop()


async def _sales(db: asyncpg.Connection, studio_id: str) -> list[dict[str, Any]]:
    return await list_sales(db, studio_id)


# ---------------------------------------------------------------- 202 and what it leads to


async def test_push_is_on_kafka_when_answered_202_and_lands_as_a_sale(api: Api, client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/orders/theimagefile", json=ORDER, headers=_bearer(api.key))

    assert response.status_code == 202, response.text
    assert response.json() == {
        "accepted": 1, "orders": [{"source": "theimagefile", "external_order_id": "TIF-2026-004411"}],
    }
    # 202 means the broker acknowledged: the message is readable now, before any worker runs.
    raw = await _raw_messages(api.settings)
    assert [key for key, _ in raw] == [ORDER_KEY]
    envelope = raw[0][1]
    assert envelope["studio"]["studio_id"] == STUDIO
    assert envelope["payload"] == ORDER

    await run_worker(api.settings, until_idle=True, idle_timeout=IDLE_TIMEOUT)
    sales = await _sales(api.db, STUDIO)
    assert [(s["source"], s["external_order_id"], s["total"], s["contact"]["contact_id"]) for s in sales] == [
        ("theimagefile", "TIF-2026-004411", "64.50", "C004")
    ]
    assert len(sales[0]["items"]) == 3  # two listed items and the order-total item


async def test_the_same_order_pushed_twice_is_one_sale(api: Api, client: httpx.AsyncClient) -> None:
    first = await client.post("/v1/orders/theimagefile", json=ORDER, headers=_bearer(api.key))
    assert first.status_code == 202, first.text
    await run_worker(api.settings, until_idle=True, idle_timeout=IDLE_TIMEOUT)
    before = await api.db.fetch("SELECT id, total FROM sales WHERE studio_id = $1", STUDIO)
    assert len(before) == 1

    again = await client.post("/v1/orders/theimagefile", json=ORDER, headers=_bearer(api.key))
    assert again.status_code == 202, again.text
    assert [key for key, _ in await _raw_messages(api.settings)] == [ORDER_KEY, ORDER_KEY]
    await run_worker(api.settings, until_idle=True, idle_timeout=IDLE_TIMEOUT)

    after = await api.db.fetch("SELECT id, total FROM sales WHERE studio_id = $1", STUDIO)
    assert [tuple(r) for r in after] == [tuple(r) for r in before]


async def test_a_key_of_studio_a_never_writes_into_studio_b(api: Api, client: httpx.AsyncClient) -> None:
    other_key = await _seed(api.db, OTHER_STUDIO)

    pushed_a = await client.post("/v1/orders/theimagefile", json=ORDER, headers=_bearer(api.key))
    pushed_b = await client.post("/v1/sales", json=ETSY_SALE, headers=_bearer(other_key))
    assert (pushed_a.status_code, pushed_b.status_code) == (202, 202), (pushed_a.text, pushed_b.text)
    await run_worker(api.settings, until_idle=True, idle_timeout=IDLE_TIMEOUT)

    studio_a = [(s["source"], s["external_order_id"]) for s in await _sales(api.db, STUDIO)]
    studio_b = [(s["source"], s["external_order_id"]) for s in await _sales(api.db, OTHER_STUDIO)]
    assert studio_a == [("theimagefile", "TIF-2026-004411")]
    assert studio_b == [("api", "Etsy:ETSY-2231")]
    assert await api.db.fetchval(
        "SELECT count(*) FROM sales WHERE studio_id = $1 AND source = 'theimagefile'", OTHER_STUDIO
    ) == 0


async def test_an_api_sale_with_items_lands_as_source_colon_reference(api: Api, client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/sales", json=ETSY_SALE, headers={"X-API-Key": api.key})

    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "orders": [{"source": "api", "external_order_id": "Etsy:ETSY-2231"}]}
    await run_worker(api.settings, until_idle=True, idle_timeout=IDLE_TIMEOUT)
    sales = await _sales(api.db, STUDIO)
    assert [(s["source"], s["external_order_id"], s["total"], s["status"]) for s in sales] == [
        ("api", "Etsy:ETSY-2231", "48.50", "paid")
    ]
    assert [(i["description"], i["quantity"], i["unit_price"]) for i in sales[0]["items"]] == [
        ("Printed Photo Book 8x8", 1, "45.00"), ("Gift wrap", 1, "3.50"),
    ]


async def test_an_array_is_accepted_whole_and_pictime_webhook_is_a_pushed_source(
    api: Api, client: httpx.AsyncClient
) -> None:
    orders = await client.post("/v1/orders/theimagefile", json=TIF_ORDERS, headers=_bearer(api.key))
    webhook = await client.post("/v1/orders/pictime", json=PICTIME_ORDERS[0], headers=_bearer(api.key))

    assert orders.status_code == 202, orders.text
    assert orders.json()["accepted"] == 2
    assert [o["external_order_id"] for o in orders.json()["orders"]] == ["TIF-2026-004411", "TIF-2026-004415"]
    assert webhook.status_code == 202, webhook.text
    assert webhook.json()["orders"] == [{"source": "pictime", "external_order_id": "PT-7781203"}]
    assert sorted(key for key, _ in await _raw_messages(api.settings)) == [
        "harbour-light|pictime|PT-7781203", ORDER_KEY, "harbour-light|theimagefile|TIF-2026-004415",
    ]


# ---------------------------------------------------------------- 401


async def test_401_without_a_key(api: Api, client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": f"Basic {api.key}"}):
        response = await client.post("/v1/orders/theimagefile", json=ORDER, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "missing" in response.json()["detail"]
    assert await _raw_messages(api.settings) == []


async def test_401_with_a_wrong_key(api: Api, client: httpx.AsyncClient) -> None:
    wrong = _wrong(api.key)
    for headers in (_bearer(wrong), _bearer("not-a-key"), {"X-API-Key": wrong}):
        response = await client.post("/v1/orders/theimagefile", json=ORDER, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json() == {"detail": "invalid or revoked API key"}
    assert await _raw_messages(api.settings) == []


async def test_401_with_a_revoked_key(api: Api, client: httpx.AsyncClient) -> None:
    key = await issue_key(api.db, STUDIO)
    before = await client.post("/v1/orders/theimagefile", json=ORDER, headers=_bearer(key))
    assert before.status_code == 202, before.text

    assert await revoke_key(api.db, STUDIO, key[:12]) == 1
    after = await client.post("/v1/orders/theimagefile", json=ORDER, headers=_bearer(key))

    assert after.status_code == 401, after.text
    assert after.headers["www-authenticate"].startswith("Bearer")
    assert len(await _raw_messages(api.settings)) == 1  # only the push made before the revocation
    still = await client.post("/v1/orders/theimagefile", json=ORDER, headers=_bearer(api.key))
    assert still.status_code == 202  # revoking one key leaves the studio's other keys working


# ---------------------------------------------------------------- 413, 415, 422, 404


def _padded(size: int) -> bytes:
    """ORDER as JSON of exactly ``size`` bytes (an ignored extra field takes up the room)."""
    order = copy.deepcopy(ORDER)
    order["note"] = ""
    base = len(json.dumps(order).encode())
    order["note"] = "x" * (size - base)
    body = json.dumps(order).encode()
    assert len(body) == size
    return body


async def test_413_when_the_declared_length_is_over_the_limit(settings: Settings, db: asyncpg.Connection) -> None:
    key = await _seed(db, STUDIO)
    small = settings.model_copy(update={"max_order_bytes": 4096})
    async with _serve(small) as (url, port), httpx.AsyncClient(base_url=url, timeout=30) as client:
        headers = {**_bearer(key), "Content-Type": "application/json"}
        at_limit = await client.post("/v1/orders/theimagefile", content=_padded(4096), headers=headers)
        over = await client.post("/v1/orders/theimagefile", content=_padded(4097), headers=headers)
        assert (at_limit.status_code, over.status_code) == (202, 413), (at_limit.text, over.text)

        # A declared gigabyte is refused from the headers alone: the server never waits for the body.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /v1/orders/theimagefile HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {key}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n"
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert status_line.startswith(b"HTTP/1.1 413"), status_line
    assert len(await _raw_messages(small)) == 1  # only the body at the limit


async def test_413_when_a_streamed_body_grows_over_the_limit(settings: Settings, db: asyncpg.Connection) -> None:
    key = await _seed(db, STUDIO)
    small = settings.model_copy(update={"max_order_bytes": 4096})

    def chunked(body: bytes) -> Any:
        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 1000):
                yield body[start:start + 1000]
        return chunks()

    async with _serve(small) as (url, _port), httpx.AsyncClient(base_url=url, timeout=30) as client:
        headers = {**_bearer(key), "Content-Type": "application/json"}
        under = await client.post("/v1/orders/theimagefile", content=chunked(_padded(4000)), headers=headers)
        over = await client.post("/v1/orders/theimagefile", content=chunked(_padded(9000)), headers=headers)
        assert "content-length" not in over.request.headers  # no declared length: only counting catches it
        assert (under.status_code, over.status_code) == (202, 413), (under.text, over.text)
    assert len(await _raw_messages(small)) == 1


async def test_415_when_the_content_type_is_not_json(api: Api, client: httpx.AsyncClient) -> None:
    body = json.dumps(ORDER).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/jsonp", None):
        headers = _bearer(api.key) | ({"Content-Type": content_type} if content_type else {})
        response = await client.post("/v1/orders/theimagefile", content=body, headers=headers)
        assert response.status_code == 415, (content_type, response.text)
    assert await _raw_messages(api.settings) == []

    vendor = await client.post("/v1/orders/theimagefile", content=body,
                               headers=_bearer(api.key) | {"Content-Type": "application/vnd.tif+json; charset=utf-8"})
    assert vendor.status_code == 202, vendor.text


async def test_415_when_the_body_is_not_valid_json(api: Api, client: httpx.AsyncClient) -> None:
    headers = _bearer(api.key) | {"Content-Type": "application/json"}
    for body in (b'{"orderRef": "TIF-1",', b"", b"\xff\xfe\x00", b'{"orderTotal": NaN}'):
        response = await client.post("/v1/orders/theimagefile", content=body, headers=headers)
        assert response.status_code == 415, (body, response.text)
        assert "JSON" in response.json()["detail"]
    assert await _raw_messages(api.settings) == []


async def test_422_names_the_missing_field_and_publishes_nothing(api: Api, client: httpx.AsyncClient) -> None:
    broken = {k: v for k, v in ORDER.items() if k != "orderRef"}

    one = await client.post("/v1/orders/theimagefile", json=broken, headers=_bearer(api.key))
    assert one.status_code == 422, one.text
    assert one.json() == {"detail": [{"field": "orderRef", "error": "Field required"}]}

    # All or nothing: the valid order of an array is not published either.
    many = await client.post("/v1/orders/theimagefile", json=[TIF_ORDERS[1], broken], headers=_bearer(api.key))
    assert many.status_code == 422, many.text
    assert many.json() == {"detail": [{"field": "orderRef", "error": "Field required", "index": 1}]}

    empty = await client.post("/v1/sales", json=[], headers=_bearer(api.key))
    assert empty.status_code == 422, empty.text
    assert await _raw_messages(api.settings) == []

    fixed = await client.post("/v1/orders/theimagefile", json=[TIF_ORDERS[1], ORDER], headers=_bearer(api.key))
    assert fixed.status_code == 202, fixed.text
    assert len(await _raw_messages(api.settings)) == 2


async def test_422_for_text_that_is_not_unicode_and_nothing_of_the_array_is_published(
    api: Api, client: httpx.AsyncClient
) -> None:
    good = json.dumps({**ETSY_SALE, "reference": "ARR-GOOD"})
    bad = json.dumps({**ETSY_SALE, "reference": "ARR-BAD", "client_name": "Bad NAME"}).replace("NAME", "\\ud800")
    headers = {**_bearer(api.key), "Content-Type": "application/json"}
    answer = await client.post("/v1/sales", content=f"[{good}, {bad}]".encode(), headers=headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["index"] == 1
    assert "lone surrogate" in answer.json()["detail"][0]["error"]
    assert await _raw_messages(api.settings) == []


async def test_422_for_an_api_sale_without_items_or_total(api: Api, client: httpx.AsyncClient) -> None:
    sale = {k: v for k, v in ETSY_SALE.items() if k not in ("items", "total")}
    response = await client.post("/v1/sales", json=sale, headers=_bearer(api.key))
    assert response.status_code == 422, response.text
    assert "items" in response.json()["detail"][0]["error"]


async def test_404_for_a_source_that_is_not_pushed(api: Api, client: httpx.AsyncClient) -> None:
    for source in ("shootproof", "api", "etsy"):
        response = await client.post(f"/v1/orders/{source}", json=ORDER, headers=_bearer(api.key))
        assert response.status_code == 404, (source, response.text)
    anonymous = await client.post("/v1/orders/shootproof", json=ORDER)
    assert anonymous.status_code == 404
    assert await _raw_messages(api.settings) == []


# ---------------------------------------------------------------- operations


async def test_logs_carry_ids_never_keys_or_personal_data(api: Api, client: httpx.AsyncClient) -> None:
    broken = {k: v for k, v in ORDER.items() if k != "items"}
    with structlog.testing.capture_logs() as logs:
        assert (await client.post("/v1/orders/theimagefile", json=ORDER, headers=_bearer(api.key))).status_code == 202
        wrong = await client.post("/v1/orders/theimagefile", json=ORDER, headers=_bearer(_wrong(api.key)))
        assert wrong.status_code == 401
        assert (await client.post("/v1/orders/theimagefile", json=broken, headers=_bearer(api.key))).status_code == 422
    text = json.dumps(logs, default=str)
    assert "TIF-2026-004411" in text and "items" in text  # ids and field names are logged...
    for secret in (api.key, api.key[:12], "Siobh", "O'Connor", "oconnor@example.ie", "855550142", "64.50"):
        assert secret not in text  # ...keys, names, emails, phones and amounts are not


async def test_health_readiness_docs_and_metrics(api: Api, client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"kafka": "ok", "postgres": "ok"}}

    spec = (await client.get("/openapi.json")).json()
    assert {"/v1/orders/{source}", "/v1/sales", "/healthz", "/readyz"} <= set(spec["paths"])
    assert "requestBody" in spec["paths"]["/v1/sales"]["post"]
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()

    assert (await client.post("/v1/orders/theimagefile", json=ORDER, headers=_bearer(api.key))).status_code == 202
    assert (await client.post("/v1/orders/theimagefile", json=ORDER)).status_code == 401
    assert (await client.post("/v1/orders/theimagefile", json=ORDER)).status_code == 401
    assert (await client.get("/wp-login.php")).status_code == 404
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    counts = {
        (s.labels.get("route"), s.labels.get("status")): s.value
        for family in text_string_to_metric_families(metrics.text)
        if family.name == "galleryflow_api_requests"
        for s in family.samples
        if s.name == "galleryflow_api_requests_total"
    }
    assert counts[("/v1/orders/{source}", "202")] == 1
    assert counts[("/v1/orders/{source}", "401")] == 2
    assert counts[("/readyz", "200")] == 1
    assert counts[("/docs", "200")] == 1
    assert counts[("(unmatched)", "404")] == 1  # unknown paths never become labels of their own


async def test_503_with_retry_after_when_kafka_is_unavailable(settings: Settings, db: asyncpg.Connection) -> None:
    key = await _seed(db, STUDIO)
    no_kafka = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    async with _serve(no_kafka) as (url, _port), httpx.AsyncClient(base_url=url, timeout=30) as client:
        assert (await client.get("/healthz")).status_code == 200
        response = await client.post("/v1/orders/theimagefile", json=ORDER, headers=_bearer(key))
        assert response.status_code == 503, response.text
        assert int(response.headers["retry-after"]) > 0
        assert "accepted" not in response.json()
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["postgres"] == "ok"
        assert ready.json()["checks"]["kafka"].startswith("failed")


async def test_503_when_postgres_is_unavailable(settings: Settings, db: asyncpg.Connection) -> None:
    key = await _seed(db, STUDIO)
    no_db = settings.model_copy(update={"database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/none"})
    async with _serve(no_db) as (url, _port), httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post("/v1/orders/theimagefile", json=ORDER, headers=_bearer(key))
        assert response.status_code == 503, response.text  # the key cannot be checked: not a 401
        assert "retry-after" in response.headers
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["kafka"] == "ok"
        assert ready.json()["checks"]["postgres"].startswith("failed")
    assert await _raw_messages(no_db) == []

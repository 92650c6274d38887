"""`galleryflow services`: a real broker and database under a throwaway data dir, on ports of their own."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline import services
from pipeline.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

def _free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (held open together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


# Ports of its own, so the test never meets the developer's services or another test's.
KAFKA_PORT, CONTROLLER_PORT, POSTGRES_PORT = _free_ports(3)


def _settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, database_url=None, kafka_bootstrap_servers=None,
                    local_kafka_port=KAFKA_PORT, local_kafka_controller_port=CONTROLLER_PORT,
                    local_postgres_port=POSTGRES_PORT)


@pytest.fixture(scope="module")
def stack() -> Iterator[Settings]:
    """Services up under /tmp (not pytest's tmp dir: pytest may chmod it 0700 under a running server)."""
    data_dir = Path(tempfile.mkdtemp(prefix="gf-services-", dir="/tmp"))
    # Share the jar cache with the repo's .data so the test fetches the jars at most once.
    shared = services.ensure_kafka_jars(ROOT / ".data" / "kafka" / "libs", print)
    (data_dir / "kafka").mkdir()
    (data_dir / "kafka" / "libs").symlink_to(shared, target_is_directory=True)
    settings = _settings(data_dir)
    services.up(settings, print)
    try:
        yield settings
    finally:
        services.down(settings)
        shutil.rmtree(data_dir, ignore_errors=True)


def _by_name(settings: Settings) -> dict[str, services.ServiceStatus]:
    return {s.name: s for s in services.status(settings)}


def test_up_then_status_says_running(stack: Settings) -> None:
    status = _by_name(stack)
    assert status["kafka"] == services.ServiceStatus(
        "kafka", "local", True, f"127.0.0.1:{KAFKA_PORT}", status["kafka"].pid)
    assert status["postgres"].running and status["postgres"].mode == "local"
    assert status["kafka"].pid and status["postgres"].pid
    recorded = (Path(stack.data_dir) / "services.json").read_text()
    assert str(status["kafka"].pid) in recorded and str(status["postgres"].pid) in recorded


def test_up_again_is_a_no_op(stack: Settings) -> None:
    before = _by_name(stack)
    again = services.up(stack)
    assert again["kafka"]["started"] is False and again["postgres"]["started"] is False
    assert again["kafka"]["pid"] == before["kafka"].pid
    assert again["postgres"]["pid"] == before["postgres"].pid
    assert _by_name(stack) == before


def test_env_lines(stack: Settings) -> None:
    assert services.env_lines(stack) == [
        f"export GALLERYFLOW_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{KAFKA_PORT}",
        f"export GALLERYFLOW_DATABASE_URL=postgresql://postgres@127.0.0.1:{POSTGRES_PORT}/galleryflow",
    ]


async def test_postgres_query(stack: Settings) -> None:
    conn = await asyncpg.connect(services.database_url(stack))
    try:
        await conn.execute("CREATE TEMP TABLE t (id int PRIMARY KEY, name text)")
        await conn.executemany("INSERT INTO t VALUES ($1, $2)", [(1, "café"), (2, "Ørsted")])
        assert await conn.fetch("SELECT name FROM t ORDER BY id") == [("café",), ("Ørsted",)]
        assert await conn.fetchval("SHOW server_encoding") == "UTF8"
    finally:
        await conn.close()


async def test_kafka_round_trip(stack: Settings) -> None:
    bootstrap = services.bootstrap_servers(stack)
    topic = f"services-test-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    sent = {f"k{i}".encode(): f"v{i}".encode() for i in range(20)}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value in sent.items():
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=topic,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    got: dict[bytes, bytes] = {}
    try:
        async with asyncio.timeout(60):
            while len(got) < len(sent):
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    got.update((r.key, r.value) for r in records if r.key is not None and r.value is not None)
        await consumer.commit()  # the group coordinator works (offsets topic with one replica)
    finally:
        await consumer.stop()
    assert got == sent


def test_restart_one_service_at_a_time(stack: Settings) -> None:
    old = _by_name(stack)
    assert services.stop_kafka(stack) is True
    assert not _by_name(stack)["kafka"].running
    assert services.start_kafka(stack)["started"] is True
    assert services.stop_postgres(stack) is True
    assert not _by_name(stack)["postgres"].running
    assert services.start_postgres(stack)["started"] is True
    new = _by_name(stack)
    assert new["kafka"].running and new["postgres"].running
    assert new["kafka"].pid != old["kafka"].pid and new["postgres"].pid != old["postgres"].pid


def test_external_services_are_left_alone(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql://u@127.0.0.1:1/db",
                        kafka_bootstrap_servers="127.0.0.1:1")
    assert services.up(settings) == {
        "postgres": {"mode": "external", "address": "postgresql://u@127.0.0.1:1/db"},
        "kafka": {"mode": "external", "address": "127.0.0.1:1"},
    }
    assert [(s.name, s.mode, s.running) for s in services.status(settings)] == [
        ("kafka", "external", False), ("postgres", "external", False)]
    assert services.down(settings) == []
    assert not (tmp_path / "kafka").exists() and not (tmp_path / "postgres").exists()


def test_down_stops_what_up_started(stack: Settings) -> None:
    assert sorted(services.down(stack)) == ["kafka", "postgres"]
    assert not any(s.running for s in services.status(stack))
    assert services.down(stack) == []

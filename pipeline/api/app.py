"""The HTTP push API: theimagefile, Pic-Time's webhook and any shop push orders with a studio's API key.

Every answer is decided before anything is claimed: 401 (key), 415 (not JSON), 413 (too large),
422 (breaks the source's contract: nothing is published, not even the valid orders of an array),
503 (broker or database unavailable), and 202 only once the broker acknowledged every raw message
(acks=all). The push goes through `connectors.base.ingest`, like `galleryflow publish`, so a re-sent
order is a no-op downstream. Logs carry ids only: never keys, names, emails or phones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import Annotated, Any

import asyncpg
import structlog
from fastapi import Depends, FastAPI, HTTPException, Path, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from connectors.base import OrderTooLarge, UnknownStudioError, field_errors, load_studio, make_envelope
from pipeline.api.backends import (
    DATABASE_ERRORS,
    KafkaLink,
    KafkaUnavailable,
    MessageTooLarge,
    check_postgres,
    open_pool,
)
from pipeline.api.body import BodyError, check_declared_length, is_json_media_type, orders_of, parse, read_limited
from pipeline.api.metrics import ApiMetrics, MetricsMiddleware
from pipeline.api.openapi import ORDER_EXAMPLES, SALE_EXAMPLES, orders_body
from pipeline.settings import Settings
from pipeline.studios import studio_for_key
from schemas.canonical import Source, StudioContext
from schemas.raw import ApiSale, PictimeOrder, TheImageFileOrder

log = structlog.get_logger(__name__)

#: Sources that push to ``POST /v1/orders/{source}`` (``api`` sales use ``POST /v1/sales``).
PUSHED_SOURCES: tuple[Source, ...] = ("theimagefile", "pictime")
RETRY_AFTER_SECONDS = 5
#: A 422 lists at most this many field errors (an array of a thousand broken orders stays readable).
MAX_ERRORS_SHOWN = 100
#: Order ids per "accepted" log line.
MAX_IDS_LOGGED = 50

_BEARER_CHALLENGE = 'Bearer realm="galleryflow"'
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key, as an alternative")


# ---------------------------------------------------------------- answers (for the OpenAPI document)


class OrderRef(BaseModel):
    source: str
    external_order_id: str


class Accepted(BaseModel):
    accepted: int
    orders: list[OrderRef]


class FieldError(BaseModel):
    field: str
    error: str
    index: int | None = None  # present when the body was an array: which order


class ContractErrors(BaseModel):
    detail: list[FieldError]


class Problem(BaseModel):
    detail: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


_PUSH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing, wrong or revoked API key"},
    413: {"model": Problem, "description": "Body over the size limit (`GALLERYFLOW_MAX_ORDER_BYTES`)"},
    415: {"model": Problem, "description": "Not `application/json` (or `+json`), or not valid JSON"},
    422: {"model": ContractErrors, "description": "Breaks the source's contract; nothing was published"},
    503: {"model": Problem, "description": "Kafka or PostgreSQL unavailable; nothing accepted (see Retry-After)"},
}


# ---------------------------------------------------------------- the app


@dataclass
class ApiState:
    settings: Settings
    metrics: ApiMetrics
    kafka: KafkaLink
    ready_timeout: float
    pool: asyncpg.Pool | None = None


def create_api(
    settings: Settings,
    *,
    connect_timeout: float = 5.0,
    publish_timeout: float = 15.0,
    ready_timeout: float = 3.0,
) -> FastAPI:
    """The FastAPI app: its lifespan opens a PostgreSQL pool and one durable Kafka producer.

    Neither being down stops the app from starting: pushes answer 503 and ``/readyz`` says which one
    is missing until it answers again.
    """
    state = ApiState(
        settings=settings,
        metrics=ApiMetrics(),
        kafka=KafkaLink(settings, connect_timeout=connect_timeout, publish_timeout=publish_timeout,
                        cooldown=float(RETRY_AFTER_SECONDS)),
        ready_timeout=ready_timeout,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state.pool = await open_pool(settings, connect_timeout=connect_timeout)
        try:
            await state.kafka.producer()
        except KafkaUnavailable:
            log.warning("api starting without kafka: pushes answer 503 until it answers")
        try:
            await check_postgres(state.pool, ready_timeout)
        except DATABASE_ERRORS as exc:
            log.warning("api starting without postgresql: pushes answer 503 until it answers",
                        error=type(exc).__name__)
        log.info("api started", app_id=settings.app_id, max_order_bytes=settings.max_order_bytes)
        try:
            yield
        finally:
            await state.kafka.close()
            try:
                await asyncio.wait_for(state.pool.close(), connect_timeout)
            except TimeoutError:
                state.pool.terminate()
            log.info("api stopped", app_id=settings.app_id)

    app = FastAPI(
        title="galleryflow",
        version=_version(),
        summary="Gallery and shop orders pushed into a studio's records, through Kafka.",
        lifespan=lifespan,
    )
    app.state.galleryflow = state
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    _add_routes(app)
    return app


def _version() -> str:
    try:
        return metadata.version("galleryflow")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.galleryflow
    return state


def _unavailable(what: str) -> HTTPException:
    return HTTPException(
        503, f"{what} unavailable: nothing was accepted; retry later",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


# ---------------------------------------------------------------- dependencies


def pushed_source(
    source: Annotated[str, Path(description="The pushing gallery", json_schema_extra={"enum": list(PUSHED_SOURCES)})],
) -> Source:
    """404 for anything but a pushed source (before the key is even looked at)."""
    if source not in PUSHED_SOURCES:
        raise HTTPException(404, f"no such source; orders are pushed for {', '.join(PUSHED_SOURCES)}")
    return source  # type: ignore[return-value]


async def authenticated_studio(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_api_key_header)],
) -> StudioContext:
    """The studio the presented key belongs to; 401 when there is no key or it is wrong or revoked."""
    key = ((bearer.credentials if bearer is not None else None) or header_key or "").strip()
    if not key:
        raise HTTPException(
            401, "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
            headers={"WWW-Authenticate": _BEARER_CHALLENGE},
        )
    state = _state(request)
    assert state.pool is not None
    studio: StudioContext | None = None
    try:
        studio_id = await studio_for_key(state.pool, key)
        if studio_id is not None:
            studio = await load_studio(state.pool, studio_id)
    except UnknownStudioError:
        studio = None
    except DATABASE_ERRORS as exc:
        log.warning("api key lookup failed", error=type(exc).__name__)
        raise _unavailable("database") from None
    if studio is None:
        raise HTTPException(
            401, "invalid or revoked API key",
            headers={"WWW-Authenticate": f'{_BEARER_CHALLENGE}, error="invalid_token"'},
        )
    return studio


# ---------------------------------------------------------------- the push


def contract_errors(
    studio: StudioContext, source: Source, payloads: Sequence[Any], many: bool, max_bytes: int | None = None
) -> list[dict[str, Any]]:
    """Field errors of every order that breaks the contract (with its index when the body was an array).
    An order that would be over the size limit on the raw topic is a 413, not a field error."""
    errors: list[dict[str, Any]] = []
    for index, payload in enumerate(payloads):
        try:
            make_envelope(studio, source, payload, max_bytes=max_bytes)
        except OrderTooLarge as exc:
            raise HTTPException(413, str(exc)) from None
        except ValidationError as exc:
            found = field_errors(exc)
        except ValueError as exc:
            found = [{"field": "(order)", "error": str(exc)}]
        else:
            continue
        errors.extend({**error, "index": index} if many else error for error in found)
    return errors


async def _accept(request: Request, studio: StudioContext, source: Source) -> dict[str, Any]:
    state = _state(request)
    limit = state.settings.max_order_bytes
    if not is_json_media_type(request.headers.get("content-type")):
        raise HTTPException(415, "send JSON: `Content-Type: application/json`")
    try:
        check_declared_length(request.headers.get("content-length"), limit)
        body = await read_limited(request.stream(), limit)
        payloads, many = orders_of(parse(body))
    except BodyError as exc:
        raise HTTPException(exc.status, exc.detail) from None
    except ClientDisconnect:
        raise HTTPException(400, "the client went away before the body was complete") from None

    errors = contract_errors(studio, source, payloads, many, max_bytes=limit)
    if errors:
        state.metrics.orders.labels(source=source, outcome="rejected").inc(len(payloads))
        log.info("orders rejected", studio_id=studio.studio_id, source=source, orders=len(payloads),
                 fields=sorted({str(e["field"]) for e in errors})[:20])
        shown = errors[:MAX_ERRORS_SHOWN]
        if len(errors) > len(shown):
            shown.append({"field": "(body)", "error": f"{len(errors) - len(shown)} more errors not shown"})
        raise HTTPException(422, shown)

    try:
        result = await state.kafka.publish(studio, source, payloads)
    except KafkaUnavailable:
        raise _unavailable("message broker") from None
    except MessageTooLarge:
        raise HTTPException(413, "the broker refuses a message this large; send fewer orders at once") from None

    orders = [{"source": e.source, "external_order_id": e.external_order_id} for e in result.published]
    state.metrics.orders.labels(source=source, outcome="accepted").inc(len(orders))
    log.info("orders accepted", studio_id=studio.studio_id, source=source, count=len(orders),
             external_order_ids=[o["external_order_id"] for o in orders[:MAX_IDS_LOGGED]])
    return {"accepted": len(orders), "orders": orders}


def _add_routes(app: FastAPI) -> None:
    @app.post(
        "/v1/orders/{source}",
        status_code=202,
        response_model=Accepted,
        responses={404: {"model": Problem, "description": "Not a pushed source"}, **_PUSH_RESPONSES},
        openapi_extra=orders_body(
            [TheImageFileOrder, PictimeOrder],
            "One order, or an array of orders (all or nothing), in the source's shape.",
            ORDER_EXAMPLES,
        ),
        tags=["push"],
    )
    async def push_orders(
        request: Request,
        source: Annotated[Source, Depends(pushed_source)],
        studio: Annotated[StudioContext, Depends(authenticated_studio)],
    ) -> dict[str, Any]:
        """Push gallery orders: `theimagefile`, or `pictime` (Pic-Time's order webhook).

        The key decides the studio. 202 means the raw orders are durably on Kafka.
        """
        return await _accept(request, studio, source)

    @app.post(
        "/v1/sales",
        status_code=202,
        response_model=Accepted,
        responses=_PUSH_RESPONSES,
        openapi_extra=orders_body([ApiSale], "One sale, or an array of sales (all or nothing).", SALE_EXAMPLES),
        tags=["push"],
    )
    async def push_sales(
        request: Request, studio: Annotated[StudioContext, Depends(authenticated_studio)]
    ) -> dict[str, Any]:
        """Push sales from any shop (e.g. a Zapier "send sale" step).

        A sale's id is `"<source>:<reference>"`: sending it again changes nothing.
        """
        return await _accept(request, studio, "api")

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is up (no dependency checked)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], response_model=Readiness,
             responses={503: {"model": Readiness, "description": "Kafka or PostgreSQL does not answer"}})
    async def readyz(request: Request) -> JSONResponse:
        """Ready when Kafka answers a metadata request and PostgreSQL answers `SELECT 1`."""
        state = _state(request)
        assert state.pool is not None
        kafka, postgres = await asyncio.gather(
            _outcome(state.kafka.check(state.ready_timeout)),
            _outcome(check_postgres(state.pool, state.ready_timeout)),
        )
        checks = {"kafka": kafka, "postgres": postgres}
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse({"status": "ready" if ready else "unavailable", "checks": checks},
                            status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(_state(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _outcome(check: Any) -> str:
    try:
        await check
    except KafkaUnavailable as exc:
        return f"failed: {exc}"
    except TimeoutError:
        return "failed: timed out"
    except Exception as exc:  # a readiness probe reports every failure, it never raises
        return f"failed: {type(exc).__name__}"
    return "ok"

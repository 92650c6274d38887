"""What every connector shares: the studio lookup, the raw envelope and the one publisher.

Every way an order comes in (the CLI's `publish`, the HTTP API, the pollers) ends here, so they all
validate the same way and publish the same envelope with the same key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from pipeline import deadletter
from pipeline.messages import Incoming
from pipeline.settings import Settings
from schemas import raw, wire
from schemas.canonical import SOURCES, Source, StudioContext
from schemas.envelope import RawOrderEnvelope, message_key
from schemas.events import DeadLetter

CONNECTOR_VERSION = "galleryflow-connectors/1"


class UnknownStudioError(LookupError):
    """No studio with that id."""


class UnknownSourceError(ValueError):
    """Not one of the sources galleryflow knows."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A payload that breaks its source's contract: why, field by field."""

    index: int
    errors: list[dict[str, Any]]
    message: str


async def load_studio(conn: asyncpg.Connection | asyncpg.Pool, studio_id: str) -> StudioContext:
    row = await conn.fetchrow(
        "SELECT studio_id, timezone, country, currency FROM studios WHERE studio_id = $1", studio_id
    )
    if row is None:
        raise UnknownStudioError(f"unknown studio {studio_id!r}")
    return StudioContext(**dict(row))


def check_source(source: str) -> Source:
    if source not in SOURCES:
        raise UnknownSourceError(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
    return source  # type: ignore[return-value]


def field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Readable field errors (path and message), without echoing the input values."""
    return [
        {"field": ".".join(str(p) for p in error.get("loc", ())) or "(order)", "error": error.get("msg")}
        for error in exc.errors()
    ]


class OrderTooLarge(ValueError):
    """The order, as it would go on the raw topic, is over the size limit."""


def make_envelope(
    studio: StudioContext,
    source: Source,
    payload: Any,
    received_at: datetime | None = None,
    *,
    max_bytes: int | None = None,
) -> RawOrderEnvelope:
    """Validate ``payload`` against its source's contract and wrap it. Raises ValidationError, or
    ValueError when it cannot be written as JSON (a lone surrogate, say) or, with ``max_bytes``,
    OrderTooLarge when the order written as JSON is larger (the limit the normaliser applies too)."""
    model = raw.validate_raw(source, payload)
    try:
        size = len(wire.dumps(payload))
    except (UnicodeError, wire.WireError) as exc:
        raise ValueError(f"order cannot be written as JSON: {_unicode_reason(exc)}") from exc
    if max_bytes is not None and size > max_bytes:
        raise OrderTooLarge(f"order too large: {size} bytes (at most {max_bytes})")
    return RawOrderEnvelope(
        studio=studio,
        source=source,
        external_order_id=raw.external_order_id(source, model),
        received_at=received_at or datetime.now(UTC),
        connector_version=CONNECTOR_VERSION,
        payload=payload,
    )


def _unicode_reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeEncodeError):
        return "text holds a lone surrogate (not valid Unicode)"
    return str(exc)


def encode(envelope: RawOrderEnvelope) -> tuple[bytes, bytes]:
    """(key, value) of the raw message; the payload keeps its exact numbers (no floats)."""
    value = {
        "envelope_version": envelope.envelope_version,
        "studio": envelope.studio.model_dump(),
        "source": envelope.source,
        "external_order_id": envelope.external_order_id,
        "received_at": envelope.received_at,
        "connector_version": envelope.connector_version,
        "payload": envelope.payload,
    }
    return envelope.key().encode("utf-8"), wire.dumps(value)


class RawPublisher:
    """Publishes raw envelopes (acks=all, idempotent producer) and waits for the broker."""

    def __init__(self, settings: Settings, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.producer = producer

    async def publish(self, envelopes: Sequence[RawOrderEnvelope]) -> None:
        futures = []
        for envelope in envelopes:
            key, value = encode(envelope)
            futures.append(await self.producer.send(self.settings.raw_topic, key=key, value=value))
        for future in futures:
            await future

    async def reject(self, studio_id: str, source: str, payload: Any, reason: str) -> DeadLetter:
        """A payload the connector refused goes to the dead-letter topic (never silently dropped)."""
        key_text = None
        if isinstance(payload, dict):
            ident = payload.get("id") or payload.get("orderId") or payload.get("orderRef") or payload.get(
                "reference"
            )
            if isinstance(ident, str | int):
                key_text = message_key(studio_id, source, str(ident))
        message = Incoming(
            topic=None,
            partition=None,
            offset=None,
            key=key_text.encode() if key_text else None,
            value=_dump_any(payload),
        )
        letter = deadletter.build(message, "connector", reason, studio_id=studio_id, source=source)
        await deadletter.publish(self.producer, self.settings.deadletter_topic, [(message.key, letter)])
        return letter


@dataclass(slots=True)
class IngestResult:
    published: list[RawOrderEnvelope]
    rejected: list[Rejected]


async def ingest(
    publisher: RawPublisher,
    studio: StudioContext,
    source: Source,
    payloads: Sequence[Any],
    *,
    dead_letter_rejects: bool = True,
) -> IngestResult:
    """Validate, wrap and publish a batch of raw orders of one studio and source.

    Valid orders are published and acknowledged by the broker before this returns. Invalid ones are
    returned with their field errors and, unless told otherwise (the HTTP API answers 422 instead),
    sent to the dead-letter topic.
    """
    envelopes: list[RawOrderEnvelope] = []
    rejected: list[Rejected] = []
    received_at = datetime.now(UTC)
    for index, payload in enumerate(payloads):
        try:
            envelopes.append(
                make_envelope(studio, source, payload, received_at, max_bytes=publisher.settings.max_order_bytes)
            )
        except ValidationError as exc:
            errors = field_errors(exc)
            summary = "; ".join(f"{e['field']}: {e['error']}" for e in errors[:10])
            rejected.append(Rejected(index, errors, f"breaks the {source} contract: {summary}"))
        except ValueError as exc:
            rejected.append(Rejected(index, [{"field": "(order)", "error": str(exc)}], str(exc)))
    await publisher.publish(envelopes)
    if dead_letter_rejects:
        for item in rejected:
            await publisher.reject(studio.studio_id, source, payloads[item.index], item.message)
    return IngestResult(envelopes, rejected)


def _dump_any(payload: Any) -> bytes:
    try:
        return wire.dumps(payload)
    except Exception:
        return repr(payload).encode("utf-8", "replace")


def split_orders(document: Any) -> Iterable[Any]:
    """A JSON object is one order; a JSON array is many."""
    if isinstance(document, list):
        yield from document
    else:
        yield document

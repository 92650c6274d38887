"""The normaliser stage: raw envelopes -> canonical orders (or dead letters), same message key.

The pure work is in :mod:`pipeline.normaliser`; this shell only decodes, publishes and waits for the
broker, so that the stream acknowledges a raw order only once its canonical form (or its dead letter)
is safely on the broker.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import structlog
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from pipeline import deadletter
from pipeline.kafka import MAX_MESSAGE_BYTES
from pipeline.messages import Headers, Incoming
from pipeline.metrics import ORDERS_NORMALISED
from pipeline.normaliser import normalise
from pipeline.retry import retry_until_done
from pipeline.settings import Settings
from schemas import wire
from schemas.envelope import ENVELOPE_OVERHEAD_BYTES, RawOrderEnvelope
from schemas.events import DeadLetter

log = structlog.get_logger(__name__)

#: A canonical order must fit on the canonical topic with room to spare.
MAX_CANONICAL_BYTES = MAX_MESSAGE_BYTES - 64 * 1024


class NormaliseStage:
    def __init__(self, settings: Settings, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.producer = producer

    async def handle(self, messages: Sequence[Incoming]) -> Counter[str]:
        canonical: list[tuple[bytes | None, bytes, Headers]] = []
        dead: list[tuple[bytes | None, DeadLetter]] = []
        for message in messages:
            result = self._normalise_one(message)
            if isinstance(result, DeadLetter):
                dead.append((message.key, result))
            else:
                canonical.append((message.key, result, _forwarded(message)))

        async def publish() -> None:
            futures = [
                await self.producer.send(
                    self.settings.canonical_topic, key=key, value=value, headers=list(headers) or None
                )
                for key, value, headers in canonical
            ]
            for future in futures:
                await future

        if canonical:
            await retry_until_done(publish, what="publish canonical orders")
        await deadletter.publish(self.producer, self.settings.deadletter_topic, dead)
        outcomes = Counter({"canonical": len(canonical), "dead_letter": len(dead)})
        for kind, count in outcomes.items():
            ORDERS_NORMALISED.labels(outcome=kind).inc(count)
        return outcomes

    def _normalise_one(self, message: Incoming) -> bytes | DeadLetter:
        studio_id = source = None
        size = len(message.value or b"")
        limit = self.settings.max_order_bytes + ENVELOPE_OVERHEAD_BYTES
        if size > limit:  # never parsed: its key says whose it is
            studio_id, source = _from_key(message.key_text)
            reason = f"raw order too large: {size} bytes (at most {limit})"
            return self._dead(message, reason, studio_id, source)
        try:
            data = wire.loads(message.value or b"")
            if isinstance(data, dict):
                studio = data.get("studio")
                studio_id = _text(studio.get("studio_id")) if isinstance(studio, dict) else None
                source = _text(data.get("source"))
            envelope = RawOrderEnvelope.model_validate(data)
            order = normalise(envelope)
            value = order.model_dump_json().encode("utf-8")
            if len(value) > MAX_CANONICAL_BYTES:
                return self._dead(
                    message, f"canonical order too large: {len(value)} bytes (at most {MAX_CANONICAL_BYTES})",
                    studio_id, source,
                )
            return value
        except ValidationError as exc:
            reason = "invalid raw envelope: " + "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ())) or '(message)'}: {e.get('msg')}"
                for e in exc.errors()[:10]
            )
        except Exception as exc:  # the normaliser is pure: anything it raises is about the data
            reason = str(exc) or type(exc).__name__
        return self._dead(message, reason, studio_id, source)

    def _dead(self, message: Incoming, reason: str, studio_id: str | None, source: str | None) -> DeadLetter:
        log.info(
            "order dead-lettered", stage="normaliser", source=source, studio_id=studio_id,
            topic=message.topic, partition=message.partition, offset=message.offset,
        )
        return deadletter.build(message, "normaliser", reason, studio_id=studio_id, source=source)


def _forwarded(message: Incoming) -> Headers:
    """Headers the canonical order carries on: the dead-letter id of a replay (the importer resolves it)."""
    return tuple(pair for pair in message.headers if pair[0] == deadletter.DEAD_LETTER_ID_HEADER)


def _from_key(key: str | None) -> tuple[str | None, str | None]:
    parts = (key or "").split("|", 2)
    return (_text(parts[0]), _text(parts[1])) if len(parts) == 3 else (None, None)


def _text(value: object) -> str | None:
    return value[:200] if isinstance(value, str) else None

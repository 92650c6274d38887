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
from pipeline.metrics import ORDERS_NORMALISED
from pipeline.messages import Incoming
from pipeline.normaliser import normalise
from pipeline.retry import retry_until_done
from pipeline.settings import Settings
from schemas import wire
from schemas.envelope import RawOrderEnvelope
from schemas.events import DeadLetter

log = structlog.get_logger(__name__)


class NormaliseStage:
    def __init__(self, settings: Settings, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.producer = producer

    async def handle(self, messages: Sequence[Incoming]) -> Counter[str]:
        canonical: list[tuple[bytes | None, bytes]] = []
        dead: list[tuple[bytes | None, DeadLetter]] = []
        for message in messages:
            result = self._normalise_one(message)
            if isinstance(result, DeadLetter):
                dead.append((message.key, result))
            else:
                canonical.append((message.key, result))

        async def publish() -> None:
            futures = [
                await self.producer.send(self.settings.canonical_topic, key=key, value=value)
                for key, value in canonical
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
        try:
            data = wire.loads(message.value or b"")
            if isinstance(data, dict):
                studio = data.get("studio")
                studio_id = _text(studio.get("studio_id")) if isinstance(studio, dict) else None
                source = _text(data.get("source"))
            envelope = RawOrderEnvelope.model_validate(data)
            order = normalise(envelope)
            return order.model_dump_json().encode("utf-8")
        except ValidationError as exc:
            reason = "invalid raw envelope: " + "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ())) or '(message)'}: {e.get('msg')}"
                for e in exc.errors()[:10]
            )
        except Exception as exc:  # the normaliser is pure: anything it raises is about the data
            reason = str(exc) or type(exc).__name__
        log.info(
            "order dead-lettered", stage="normaliser", source=source, studio_id=studio_id,
            topic=message.topic, partition=message.partition, offset=message.offset,
        )
        return deadletter.build(message, "normaliser", reason, studio_id=studio_id, source=source)


def _text(value: object) -> str | None:
    return value[:200] if isinstance(value, str) else None

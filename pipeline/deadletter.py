"""Dead letters: the original message, where it came from, the stage and the reason."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from pipeline.messages import Incoming
from pipeline.retry import retry_until_done
from schemas import wire
from schemas.events import DeadLetter, Stage

MAX_REASON_CHARS = 2000


def build(
    message: Incoming,
    stage: Stage,
    error: BaseException | str,
    *,
    studio_id: str | None = None,
    source: str | None = None,
) -> DeadLetter:
    reason = error if isinstance(error, str) else (str(error) or type(error).__name__)
    return DeadLetter(
        id=uuid.uuid4().hex,
        stage=stage,
        error=reason[:MAX_REASON_CHARS],
        error_type="DataError" if isinstance(error, str) else type(error).__name__,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key_text,
        studio_id=studio_id,
        source=source,
        original=_original(message.value),
        time=datetime.now(UTC),
    )


def _original(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        return wire.loads(value)
    except Exception:
        return value.decode("utf-8", "replace").replace("\x00", "\\u0000")


def encode(letter: DeadLetter) -> bytes:
    return letter.model_dump_json().encode("utf-8")


async def publish(
    producer: AIOKafkaProducer, topic: str, letters: list[tuple[bytes | None, DeadLetter]]
) -> None:
    """Send dead letters and wait until the broker has them (before the source offset moves on)."""
    if not letters:
        return

    async def send_all() -> None:
        futures = [
            await producer.send(topic, key=key, value=encode(letter)) for key, letter in letters
        ]
        for future in futures:
            await future

    await retry_until_done(send_all, what="publish dead letters")

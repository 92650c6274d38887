"""Dead letters: the original message, where it came from, the stage and the reason."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from pipeline.messages import Incoming
from pipeline.retry import retry_until_done
from schemas import wire
from schemas.events import DeadLetter, Stage

MAX_REASON_CHARS = 2000
MAX_KEY_CHARS = 1000
#: A dead letter stays well under the broker's message limit: past this size its original is cut to a
#: preview (the whole message stays at its topic, partition and offset, where `dlq replay` reads it).
MAX_DEAD_LETTER_BYTES = 1024 * 1024
PREVIEW_CHARS = 16 * 1024
#: Header a replayed message carries: the id of the dead letter it replays.
DEAD_LETTER_ID_HEADER = "galleryflow-dead-letter-id"
_LETTER_ID = re.compile(rb"[A-Za-z0-9_-]{1,100}")  # ours are uuid4 hex; anything else is not a replay


def build(
    message: Incoming,
    stage: Stage,
    error: BaseException | str,
    *,
    studio_id: str | None = None,
    source: str | None = None,
    replay_of: str | None = None,
) -> DeadLetter:
    """The dead letter of ``message``; never raises, and always encodes to a bounded message.

    A message that carries the dead-letter id header (a replay that failed again) links back to it.
    """
    reason = error if isinstance(error, str) else (str(error) or type(error).__name__)
    key = message.key_text
    letter = DeadLetter(
        id=uuid.uuid4().hex,
        stage=stage,
        error=_clean(reason[:MAX_REASON_CHARS]) or "",
        error_type="DataError" if isinstance(error, str) else type(error).__name__,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=_clean(key[:MAX_KEY_CHARS]) if key is not None else None,
        studio_id=_clean(studio_id),
        source=_clean(source),
        original=_original(message.value),
        original_truncated=False,
        replay_of=replay_of or replay_id(message),
        time=datetime.now(UTC),
    )
    try:
        size = len(encode(letter))
    except Exception:  # e.g. nesting too deep to write back: keep the original as text
        size = MAX_DEAD_LETTER_BYTES + 1
    if size > MAX_DEAD_LETTER_BYTES:
        text = _text(message.value)
        truncated = text is not None and len(text) > PREVIEW_CHARS
        letter = letter.model_copy(update={
            "original": text[:PREVIEW_CHARS] if text is not None else None,
            "original_truncated": truncated,
        })
    return letter


def replay_id(message: Incoming) -> str | None:
    """The id of the dead letter this message replays, if it is a replay."""
    value = message.header(DEAD_LETTER_ID_HEADER)
    return value.decode("ascii") if value and _LETTER_ID.fullmatch(value) else None


def _original(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        parsed = wire.loads(value)
        wire.dumps(parsed)  # raises for what cannot be written back, e.g. a lone surrogate ("\\ud800")
        return parsed
    except Exception:
        return _text(value)


def _clean(text: str | None) -> str | None:
    """Text that can be written as UTF-8 (a lone surrogate becomes its escape)."""
    return None if text is None else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace").replace("\x00", "\\u0000")


def encode(letter: DeadLetter) -> bytes:
    """The dead letter as JSON; numbers in the original stay the numbers they were (never floats)."""
    return wire.dumps(letter.model_dump())


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

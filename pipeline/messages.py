"""What a stage sees of a Kafka message, independent of faust."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Incoming:
    topic: str | None
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes | None

    @classmethod
    def from_faust(cls, event: Any) -> Incoming:
        message = event.message
        return cls(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=_as_bytes(message.key),
            value=_as_bytes(message.value),
        )

    @property
    def key_text(self) -> str | None:
        return self.key.decode("utf-8", "replace") if self.key is not None else None


def _as_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)

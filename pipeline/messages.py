"""What a stage sees of a Kafka message, independent of faust."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Incoming:
    topic: str | None
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes | None
    headers: Headers = ()

    @classmethod
    def from_faust(cls, event: Any) -> Incoming:
        message = event.message
        return cls(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=_as_bytes(message.key),
            value=_as_bytes(message.value),
            headers=_headers(getattr(message, "headers", None)),
        )

    def header(self, name: str) -> bytes | None:
        """The last value of header ``name``, or None."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found

    @property
    def key_text(self) -> str | None:
        return self.key.decode("utf-8", "replace") if self.key is not None else None


def _headers(headers: Any) -> Headers:
    if not headers:
        return ()
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(key), _as_bytes(value) or b"") for key, value in pairs)


def _as_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)

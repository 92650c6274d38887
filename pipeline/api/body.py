"""Reading a pushed body: JSON media types, a hard size limit, and JSON without floats.

Nothing here trusts the client: the declared length is checked before a byte is read, the stream is
counted as it arrives (chunked bodies have no declared length), and the parsed document is checked
for absurd nesting before anything walks it recursively.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any

from schemas import wire

#: The contract nests four levels deep; extra fields are tolerated, but not a JSON bomb.
MAX_DEPTH = 32


class BodyError(Exception):
    """The body cannot be taken: ``status`` is the HTTP answer, ``detail`` says why."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` or any ``application/*+json`` (parameters such as charset ignored)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or (subtype.endswith("+json") and len(subtype) > 5))


def check_declared_length(content_length: str | None, limit: int) -> None:
    """413 when the declared Content-Length is over ``limit`` (before reading anything)."""
    if content_length is None:
        return
    try:
        declared = int(content_length)
    except ValueError:
        raise BodyError(400, "Content-Length is not a number") from None
    if declared > limit:
        raise BodyError(413, f"body is {declared} bytes; the limit is {limit}")


async def read_limited(chunks: AsyncIterable[bytes], limit: int) -> bytes:
    """The whole body, but never more than ``limit`` bytes in memory: 413 as soon as it is over."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise BodyError(413, f"body is over the limit of {limit} bytes")
    return bytes(body)


def parse(body: bytes) -> Any:
    """The JSON document (numbers as ``int`` or ``Decimal``); 415 when it is not JSON."""
    try:
        document = wire.loads(body)
    except RecursionError:
        raise BodyError(422, [{"field": "(body)", "error": f"nested deeper than {MAX_DEPTH} levels"}]) from None
    except wire.WireError as exc:
        raise BodyError(415, str(exc)) from None
    except ValueError:  # e.g. an integer literal longer than Python's int digit limit
        raise BodyError(415, "not valid JSON: a number is out of range") from None
    if nested_deeper_than(document, MAX_DEPTH):
        raise BodyError(422, [{"field": "(body)", "error": f"nested deeper than {MAX_DEPTH} levels"}])
    return document


def nested_deeper_than(document: Any, limit: int) -> bool:
    """True when objects and arrays nest more than ``limit`` levels (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def orders_of(document: Any) -> tuple[list[Any], bool]:
    """The orders in a document and whether it was an array: one object is one order."""
    if isinstance(document, list):
        if not document:
            raise BodyError(422, [{"field": "(body)", "error": "the array holds no orders"}])
        return list(document), True
    return [document], False

"""JSON on the wire without floats: numbers parse to ``Decimal`` and are written back exactly."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

_encode_str = json.encoder.encode_basestring  # type: ignore[attr-defined]


class WireError(ValueError):
    """The bytes are not the JSON we expect."""


def loads(data: bytes | str) -> Any:
    """Parse JSON; every non-integer number becomes a ``Decimal`` (never a float)."""
    try:
        return json.loads(data, parse_float=Decimal, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"not valid JSON: {exc}") from exc


def _reject_constant(name: str) -> Any:
    raise WireError(f"not valid JSON: {name} is not a number")


def dumps(value: Any) -> bytes:
    """Serialise to compact UTF-8 JSON; ``Decimal`` is written as the number it is."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts).encode("utf-8")


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_encode_str(value))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise WireError(f"{value} is not a JSON number")
        out.append(str(value))
    elif isinstance(value, float):
        raise WireError("floats are not allowed on the wire; use Decimal")
    elif isinstance(value, dict):
        out.append("{")
        first = True
        for key, item in value.items():
            if not first:
                out.append(",")
            first = False
            out.append(_encode_str(str(key)))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, datetime | date):
        out.append(_encode_str(value.isoformat()))
    else:
        raise WireError(f"cannot serialise {type(value).__name__}")

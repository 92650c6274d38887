"""The API's body handling and contract check, without a server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from pipeline.api.app import contract_errors
from pipeline.api.body import (
    MAX_DEPTH,
    BodyError,
    check_declared_length,
    is_json_media_type,
    nested_deeper_than,
    orders_of,
    parse,
    read_limited,
)
from pipeline.api.openapi import inline_schema
from schemas.canonical import StudioContext
from schemas.raw import ApiSale, TheImageFileOrder

STUDIO = StudioContext(studio_id="harbour-light", timezone="Europe/London", country="GB", currency="GBP")
ORDER: dict[str, Any] = {
    "orderRef": "TIF-1", "orderDate": "30/11/2026 18:05", "orderTotal": "£64.50",
    "items": [{"description": "10x8 Print", "quantity": 2}],
}


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/vnd.theimagefile+json", True),
        ("application/problem+json", True),
        ("application/+json", False),
        ("application/jsonp", False),
        ("text/json", False),
        ("text/plain", False),
        ("multipart/form-data; boundary=x", False),
        ("", False),
        (None, False),
    ],
)
def test_json_media_types(content_type: str | None, expected: bool) -> None:
    assert is_json_media_type(content_type) is expected


def test_declared_length_over_the_limit_is_413_before_reading() -> None:
    check_declared_length(None, 10)
    check_declared_length("10", 10)
    with pytest.raises(BodyError) as caught:
        check_declared_length("11", 10)
    assert caught.value.status == 413
    with pytest.raises(BodyError) as bad:
        check_declared_length("ten", 10)
    assert bad.value.status == 400


async def _chunks(sizes: list[int], consumed: list[int]) -> AsyncIterator[bytes]:
    for size in sizes:
        consumed.append(size)
        yield b"x" * size


async def test_read_limited_stops_as_soon_as_the_body_is_over_the_limit() -> None:
    consumed: list[int] = []
    assert await read_limited(_chunks([4, 6], consumed), 10) == b"x" * 10

    consumed.clear()
    with pytest.raises(BodyError) as caught:
        await read_limited(_chunks([6, 6, 1000, 1000], consumed), 10)
    assert caught.value.status == 413
    assert consumed == [6, 6]  # the rest of the stream is never pulled into memory


def test_parse_gives_decimals_never_floats() -> None:
    document = parse(b'{"orderTotal": 64.50, "n": 3, "s": "1.10"}')
    assert document == {"orderTotal": Decimal("64.50"), "n": 3, "s": "1.10"}
    assert isinstance(document["orderTotal"], Decimal)


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"NaN", b'{"a": Infinity}', b"1" * 5000, b"{'a': 1}"])
def test_parse_refuses_what_is_not_json_with_415(body: bytes) -> None:
    with pytest.raises(BodyError) as caught:
        parse(body)
    assert caught.value.status == 415


def test_parse_refuses_absurd_nesting_with_422() -> None:
    for depth in (MAX_DEPTH + 1, 100_000):
        with pytest.raises(BodyError) as caught:
            parse(b"[" * depth + b"]" * depth)
        assert caught.value.status == 422
    assert parse(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None


def test_nesting_depth() -> None:
    assert not nested_deeper_than({"a": [{"b": 1}]}, 3)
    assert nested_deeper_than({"a": [{"b": []}]}, 3)
    assert not nested_deeper_than("scalar", 0)


def test_orders_of_one_object_or_a_non_empty_array() -> None:
    assert orders_of({"a": 1}) == ([{"a": 1}], False)
    assert orders_of([{"a": 1}, {"b": 2}]) == ([{"a": 1}, {"b": 2}], True)
    with pytest.raises(BodyError) as caught:
        orders_of([])
    assert caught.value.status == 422


def test_contract_errors_name_the_field_and_the_order_of_an_array() -> None:
    assert contract_errors(STUDIO, "theimagefile", [ORDER], many=False) == []
    broken = {k: v for k, v in ORDER.items() if k != "orderTotal"}
    assert contract_errors(STUDIO, "theimagefile", [broken], many=False) == [
        {"field": "orderTotal", "error": "Field required"}
    ]
    assert contract_errors(STUDIO, "theimagefile", [ORDER, broken, "text"], many=True) == [
        {"field": "orderTotal", "error": "Field required", "index": 1},
        {"field": "(order)", "error": "Input should be a valid dictionary or instance of TheImageFileOrder",
         "index": 2},
    ]


def test_contract_errors_do_not_echo_personal_data_in_field_names() -> None:
    order = {**ORDER, "customer": {"name": "Siobhán O'Connor", "email": 42}}
    errors = contract_errors(STUDIO, "theimagefile", [order], many=False)
    assert [e["field"] for e in errors] == ["customer.email"]


@pytest.mark.parametrize("model", [TheImageFileOrder, ApiSale])
def test_openapi_body_schemas_are_self_contained(model: Any) -> None:
    text = json.dumps(inline_schema(model))
    assert "$ref" not in text and "$defs" not in text
    assert "items" in json.loads(text)["properties"]

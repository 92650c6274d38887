"""Money: JSON strings and numbers become exact ``Decimal``; floats and garbage are refused."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pipeline import normaliser
from pipeline.errors import NormaliseError
from schemas import wire
from schemas.canonical import StudioContext
from schemas.envelope import RawOrderEnvelope
from schemas.raw import ApiItem, parse_money

STUDIO = StudioContext(studio_id="s1", timezone="Europe/London", country="GB", currency="GBP")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("18.00", "18.00"),
        ("£18.00", "18.00"),
        (" £18.00 ", "18.00"),
        ("$5", "5"),
        ("€7.5", "7.5"),
        ("12.00 €", "12.00"),
        ("1,234.50", "1234.50"),
        ("£1,234,567.89", "1234567.89"),
        ("0", "0"),
        (".5", "0.5"),
        ("-5.00", "-5.00"),
        ("-£5.00", "-5.00"),
        ("£-5.00", "-5.00"),
        ("+3.10", "3.10"),
        ("1E+2", "1E+2"),
        ("2.5e-3", "0.0025"),
    ],
)
def test_money_strings(text: str, expected: str) -> None:
    amount = parse_money(text)
    assert isinstance(amount, Decimal)
    assert str(amount) == str(Decimal(expected))


@pytest.mark.parametrize(
    ("json_text", "expected"),
    [("150.0", "150.0"), ("150", "150"), ("19.99", "19.99"), ("0.1", "0.1"), ("1234.5", "1234.5")],
)
def test_money_json_numbers_stay_exact(json_text: str, expected: str) -> None:
    value = wire.loads(json_text)
    assert not isinstance(value, float)
    amount = parse_money(value)
    assert str(amount) == expected
    assert amount == Decimal(expected)


def test_json_150_0_equals_150_00() -> None:
    assert parse_money(wire.loads("150.0")) == Decimal("150.00")


def test_point_one_is_not_binary() -> None:
    # 0.1 + 0.2 as floats is 0.30000000000000004; as money it is exactly 0.3.
    total = parse_money(wire.loads("0.1")) + parse_money(wire.loads("0.2"))
    assert total == Decimal("0.3")


@pytest.mark.parametrize(
    "garbage",
    [
        "abc",
        "",
        "   ",
        "£",
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "inf",
        "sNaN",
        "1,23.00",
        "12,34",
        "1.234,50",
        "1 234.50",
        "1_000",
        "١٢٣",
        "0x10",
        "--5",
        "-£-5",
        "5-",
        "18.00 GBP",
        "£18.00.00",
        "1e99999",
    ],
)
def test_money_garbage_strings_rejected(garbage: str) -> None:
    with pytest.raises(ValueError, match=r"money|amount"):
        parse_money(garbage)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (18.0, "float"),
        (0.1, "float"),
        (True, "boolean"),
        (False, "boolean"),
        (None, "NoneType"),
        ([], "list"),
        ({"amount": 1}, "dict"),
        (Decimal("NaN"), "finite"),
        (Decimal("sNaN"), "finite"),
        (Decimal("Infinity"), "finite"),
        (Decimal("-Infinity"), "finite"),
        (Decimal("1E+20"), "too large"),
        (10**15, "too large"),
        (Decimal("0.000000001"), "decimal places"),
    ],
)
def test_money_bad_values_rejected_with_clear_error(value: Any, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_money(value)


def test_normaliser_parse_money_raises_normalise_error() -> None:
    assert normaliser.parse_money("£1,234.50") == Decimal("1234.50")
    with pytest.raises(NormaliseError, match="not an amount of money"):
        normaliser.parse_money("twelve pounds")


def test_money_field_in_raw_model() -> None:
    assert ApiItem.model_validate({"description": "x", "quantity": 1, "price": "£1,234.50"}).price == Decimal(
        "1234.50"
    )
    assert ApiItem.model_validate({"description": "x", "quantity": 1, "price": 7}).price == Decimal(7)
    with pytest.raises(ValidationError, match="price"):
        ApiItem.model_validate({"description": "x", "quantity": 1, "price": 7.5})
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        ApiItem.model_validate({"description": "x", "quantity": 1, "price": "-1.00"})


def test_negative_zero_becomes_zero() -> None:
    price = ApiItem.model_validate({"description": "x", "quantity": 1, "price": "-0.00"}).price
    assert price == 0
    assert not price.is_signed()


def _api_sale(price: Any, quantity: int) -> Any:
    payload = {
        "source": "Shop",
        "reference": "R1",
        "date": "2026-05-01",
        "items": [{"description": "Print", "quantity": quantity, "price": price}],
    }
    envelope = RawOrderEnvelope(
        studio=STUDIO,
        source="api",
        external_order_id="Shop:R1",
        received_at=dt.datetime(2026, 5, 2, tzinfo=dt.UTC),
        connector_version="test",
        payload=payload,
    )
    return normaliser.normalise(envelope)


@pytest.mark.parametrize("price", ["19.99", "£19.99", Decimal("19.99")])
def test_19_99_times_3_is_59_97_exactly(price: Any) -> None:
    order = _api_sale(price, 3)
    assert order.items[0].line_total == Decimal("59.97")
    assert str(order.items[0].line_total) == "59.97"
    assert order.total == Decimal("59.97")


def test_many_small_amounts_sum_exactly() -> None:
    payload_items = [{"description": f"Print {n}", "quantity": 1, "price": "0.10"} for n in range(10)]
    envelope = RawOrderEnvelope(
        studio=STUDIO,
        source="api",
        external_order_id="Shop:R2",
        received_at=dt.datetime(2026, 5, 2, tzinfo=dt.UTC),
        connector_version="test",
        payload={"source": "Shop", "reference": "R2", "date": "2026-05-01", "items": payload_items},
    )
    assert normaliser.normalise(envelope).total == Decimal("1.00")


def _scaled(coefficient: int, places: int) -> Decimal:
    return Decimal(coefficient).scaleb(-places)


# Every scale money may have: 0 to 8 places ("15.00", "0.00000001"), and exponents ("1.5E+3").
_amounts = st.one_of(
    st.builds(_scaled, st.integers(-(10**12), 10**12), st.integers(0, 8)),
    st.builds(_scaled, st.integers(-(10**9), 10**9), st.integers(-3, -1)),
)


@settings(max_examples=300)
@given(_amounts)
def test_money_round_trips_exactly(amount: Decimal) -> None:
    parsed = parse_money(str(amount))
    assert parsed == amount
    assert str(parsed) == str(amount)
    assert parse_money(amount) is amount


@settings(max_examples=200)
@given(st.decimals(min_value=0, max_value=Decimal("9999999999.99"), places=2))
def test_money_with_symbol_and_separators_round_trips(amount: Decimal) -> None:
    assert str(parse_money(f"£{amount:,}")) == str(amount)


@settings(max_examples=200)
@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_integer_money(amount: int) -> None:
    assert parse_money(amount) == Decimal(amount)
    assert parse_money(str(amount)) == Decimal(amount)


@settings(max_examples=300)
@given(st.one_of(st.text(), st.floats(), st.booleans(), st.none(), st.decimals(), st.integers()))
def test_money_never_raises_anything_but_value_error(value: Any) -> None:
    try:
        amount = parse_money(value)
    except ValueError:
        return
    assert isinstance(amount, Decimal)
    assert amount.is_finite()
    assert not isinstance(value, float | bool)

"""The raw payload models follow the contract: required fields, types, ids, dates, extras ignored."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import wire
from schemas.raw import (
    RAW_MODELS,
    ApiSale,
    PictimeOrder,
    ShootProofOrder,
    TheImageFileOrder,
    external_order_id,
    validate_raw,
)

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"


def samples(source: str) -> list[dict[str, Any]]:
    data = wire.loads((DEMO / f"{source}.json").read_bytes())
    assert isinstance(data, list)
    return data


def sample(source: str, index: int = 0) -> dict[str, Any]:
    return copy.deepcopy(samples(source)[index])


def error_locations(exc: ValidationError) -> set[str]:
    return {".".join(str(part) for part in error["loc"]) for error in exc.errors()}


def test_one_model_per_source() -> None:
    assert RAW_MODELS == {
        "shootproof": ShootProofOrder,
        "pictime": PictimeOrder,
        "theimagefile": TheImageFileOrder,
        "api": ApiSale,
    }


@pytest.mark.parametrize(
    ("source", "expected_ids"),
    [
        ("shootproof", ["81234567", "81234601", "81234567", "81234567"]),
        ("pictime", ["PT-7781203", "PT-7781244", "PT-7781300"]),
        ("theimagefile", ["TIF-2026-004411", "TIF-2026-004415"]),
        ("api", ["Etsy:ETSY-2231", "Etsy:ETSY-2231", "Square:SQ-90017"]),
    ],
)
def test_every_sample_validates(source: str, expected_ids: list[str]) -> None:
    models = [validate_raw(source, payload) for payload in samples(source)]
    assert all(isinstance(model, RAW_MODELS[source]) for model in models)
    assert [external_order_id(source, model) for model in models] == expected_ids


def test_shootproof_numbers_and_strings_become_the_same_strings() -> None:
    numeric = validate_raw("shootproof", sample("shootproof", 0))
    textual = validate_raw("shootproof", sample("shootproof", 1))
    assert isinstance(numeric, ShootProofOrder) and isinstance(textual, ShootProofOrder)
    assert numeric.id == "81234567" and textual.id == "81234601"
    assert numeric.eventId == textual.eventId == "330012"
    assert numeric.brandId == "5501"
    assert numeric.items[0].id == "9001" and textual.items[0].id == "9010"
    assert textual.items[0].photoId is None


def test_shootproof_money_types() -> None:
    strings = validate_raw("shootproof", sample("shootproof", 0))
    numbers = validate_raw("shootproof", sample("shootproof", 1))
    assert isinstance(strings, ShootProofOrder) and isinstance(numbers, ShootProofOrder)
    assert strings.total == Decimal("95.95") and isinstance(strings.total, Decimal)
    assert numbers.total == Decimal("150.00") and isinstance(numbers.total, Decimal)
    assert strings.items[0].unitPrice == Decimal("18.00")


def test_dates_are_parsed() -> None:
    shootproof = validate_raw("shootproof", sample("shootproof", 0))
    assert isinstance(shootproof, ShootProofOrder)
    assert shootproof.created == dt.datetime(2026, 11, 28, 21, 14, 5, tzinfo=dt.UTC)
    pictime = validate_raw("pictime", sample("pictime", 0))
    assert isinstance(pictime, PictimeOrder)
    assert pictime.orderDate == dt.datetime(2026, 11, 30, 9, 12, 44)
    assert pictime.timeZone == "Europe/London"
    tif = validate_raw("theimagefile", sample("theimagefile", 0))
    assert isinstance(tif, TheImageFileOrder)
    assert tif.orderDate == dt.datetime(2026, 11, 30, 18, 5)
    api = validate_raw("api", sample("api", 0))
    assert isinstance(api, ApiSale)
    assert api.date == dt.date(2026, 11, 27) and not isinstance(api.date, dt.datetime)


def test_unknown_fields_are_ignored() -> None:
    payload = sample("pictime", 0)
    payload["somethingNew"] = {"nested": [1, 2, 3]}
    payload["lines"][0]["sku"] = "FP-16x12"
    model = validate_raw("pictime", payload)
    assert "somethingNew" not in model.model_dump()


REQUIRED = [
    ("shootproof", ["id", "brandId", "created", "status", "currencyCode", "total", "items"]),
    ("pictime", ["orderId", "orderDate", "currency", "orderTotal", "lines"]),
    ("theimagefile", ["orderRef", "orderDate", "orderTotal", "items"]),
    ("api", ["source", "reference", "date"]),
]


@pytest.mark.parametrize(
    ("source", "field"), [(source, field) for source, fields in REQUIRED for field in fields]
)
def test_missing_required_field_is_named(source: str, field: str) -> None:
    payload = sample(source)
    del payload[field]
    with pytest.raises(ValidationError) as caught:
        validate_raw(source, payload)
    assert field in error_locations(caught.value)


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ("shootproof", "customerEmail"),
        ("shootproof", "eventId"),
        ("shootproof", "billingAddress"),
        ("shootproof", "paymentStatus"),
        ("pictime", "client"),
        ("pictime", "timeZone"),
        ("pictime", "status"),
        ("theimagefile", "customer"),
        ("theimagefile", "currency"),
        ("api", "client_phone"),
        ("api", "currency"),
    ],
)
def test_optional_fields_may_be_missing_or_null(source: str, field: str) -> None:
    payload = sample(source)
    payload.pop(field, None)
    validate_raw(source, payload)
    payload[field] = None
    validate_raw(source, payload)


def test_api_needs_items_or_total() -> None:
    payload = sample("api", 0)
    del payload["total"]
    assert validate_raw("api", payload)  # items alone
    payload = sample("api", 0)
    del payload["items"]
    assert validate_raw("api", payload)  # total alone
    del payload["total"]
    with pytest.raises(ValidationError, match="needs `items` or `total`"):
        validate_raw("api", payload)
    payload["items"] = []
    with pytest.raises(ValidationError, match="needs `items` or `total`"):
        validate_raw("api", payload)


@pytest.mark.parametrize("quantity", [True, "2", Decimal("2.5"), Decimal("NaN"), -1, 1_000_001, None])
def test_quantity_must_be_a_plain_non_negative_int(quantity: Any) -> None:
    payload = sample("theimagefile")
    payload["items"][0]["quantity"] = quantity
    with pytest.raises(ValidationError) as caught:
        validate_raw("theimagefile", payload)
    assert "items.0.quantity" in error_locations(caught.value)


def test_quantity_zero_is_allowed() -> None:
    payload = sample("theimagefile")
    payload["items"][0]["quantity"] = 0
    model = validate_raw("theimagefile", payload)
    assert isinstance(model, TheImageFileOrder) and model.items[0].quantity == 0


@pytest.mark.parametrize("bad_id", [True, "", "   ", Decimal("1.5"), [1], {"id": 1}, None])
def test_bad_ids_rejected(bad_id: Any) -> None:
    payload = sample("shootproof")
    payload["id"] = bad_id
    with pytest.raises(ValidationError) as caught:
        validate_raw("shootproof", payload)
    assert "id" in error_locations(caught.value)


def test_ids_are_trimmed_and_lose_nul_bytes() -> None:
    payload = sample("pictime")
    payload["orderId"] = " PT-1\x00 "
    model = validate_raw("pictime", payload)
    assert external_order_id("pictime", model) == "PT-1"


def test_integral_decimal_id_becomes_integer_text() -> None:
    payload = sample("shootproof")
    payload["id"] = Decimal("81234567.0")
    assert external_order_id("shootproof", validate_raw("shootproof", payload)) == "81234567"


@pytest.mark.parametrize(
    "created",
    [
        "2026-11-28T21:14:05",  # naive
        "2026-11-28",
        "28/11/2026 21:14",
        "yesterday",
        1764364445,
        None,
    ],
)
def test_shootproof_created_needs_an_offset(created: Any) -> None:
    payload = sample("shootproof")
    payload["created"] = created
    with pytest.raises(ValidationError) as caught:
        validate_raw("shootproof", payload)
    assert "created" in error_locations(caught.value)


def test_shootproof_offsets_are_converted_to_utc() -> None:
    payload = sample("shootproof")
    payload["created"] = "2026-11-29T02:44:05+05:30"
    payload["updated"] = "2026-12-01T09:00:00Z"
    model = validate_raw("shootproof", payload)
    assert isinstance(model, ShootProofOrder)
    assert model.created == dt.datetime(2026, 11, 28, 21, 14, 5, tzinfo=dt.UTC)
    assert model.created.utcoffset() == dt.timedelta(0)
    assert model.updated == dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "order_date",
    [
        "2026-11-30T09:12:44",
        "2026-11-30 09:12",
        "2026-1-3 9:12:44",
        "2026-02-30 10:00:00",
        "30/11/2026 09:12",
    ],
)
def test_pictime_order_date_format(order_date: str) -> None:
    payload = sample("pictime")
    payload["orderDate"] = order_date
    with pytest.raises(ValidationError) as caught:
        validate_raw("pictime", payload)
    assert "orderDate" in error_locations(caught.value)


@pytest.mark.parametrize("zone", ["Europe/Nowhere", "Europe", "../etc/passwd", "GMT+1\x00", 5])
def test_pictime_time_zone_must_exist(zone: Any) -> None:
    payload = sample("pictime")
    payload["timeZone"] = zone
    with pytest.raises(ValidationError) as caught:
        validate_raw("pictime", payload)
    assert "timeZone" in error_locations(caught.value)


def test_pictime_blank_time_zone_is_none() -> None:
    payload = sample("pictime")
    payload["timeZone"] = "  "
    model = validate_raw("pictime", payload)
    assert isinstance(model, PictimeOrder) and model.timeZone is None


@pytest.mark.parametrize(
    "order_date", ["2026-11-30 18:05", "31/02/2026 10:00", "30/11/26 18:05", "30/11/2026"]
)
def test_theimagefile_order_date_format(order_date: str) -> None:
    payload = sample("theimagefile")
    payload["orderDate"] = order_date
    with pytest.raises(ValidationError) as caught:
        validate_raw("theimagefile", payload)
    assert "orderDate" in error_locations(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-27", dt.date(2026, 11, 27)),
        ("2026-11-20T14:00:00Z", dt.datetime(2026, 11, 20, 14, tzinfo=dt.UTC)),
        ("2026-11-20T15:00:00+01:00", dt.datetime(2026, 11, 20, 14, tzinfo=dt.UTC)),
        ("2026-11-20T14:00:00", dt.datetime(2026, 11, 20, 14)),
    ],
)
def test_api_date_or_datetime(value: str, expected: dt.date) -> None:
    payload = sample("api", 2)
    payload["date"] = value
    model = validate_raw("api", payload)
    assert isinstance(model, ApiSale)
    assert model.date == expected
    assert type(model.date) is type(expected)


@pytest.mark.parametrize("value", ["27/11/2026", "2026-13-01", "", 20261127, None])
def test_api_bad_date(value: Any) -> None:
    payload = sample("api", 2)
    payload["date"] = value
    with pytest.raises(ValidationError) as caught:
        validate_raw("api", payload)
    assert "date" in error_locations(caught.value)


def test_currency_is_upper_cased() -> None:
    payload = sample("pictime")
    payload["currency"] = " usd "
    model = validate_raw("pictime", payload)
    assert isinstance(model, PictimeOrder) and model.currency == "USD"


@pytest.mark.parametrize("currency", ["GB", "POUND", "£", "12A", "", 826])
def test_bad_currency_rejected(currency: Any) -> None:
    payload = sample("shootproof")
    payload["currencyCode"] = currency
    with pytest.raises(ValidationError) as caught:
        validate_raw("shootproof", payload)
    assert "currencyCode" in error_locations(caught.value)


def test_status_words_are_case_insensitive_but_closed() -> None:
    payload = sample("shootproof")
    payload["status"] = "Canceled"
    payload["paymentStatus"] = "REFUNDED"
    model = validate_raw("shootproof", payload)
    assert isinstance(model, ShootProofOrder)
    assert (model.status, model.paymentStatus) == ("canceled", "refunded")
    payload["status"] = "shipped"
    with pytest.raises(ValidationError) as caught:
        validate_raw("shootproof", payload)
    assert "status" in error_locations(caught.value)


def test_phone_given_as_number_becomes_text() -> None:
    payload = sample("theimagefile")
    payload["customer"]["telephone"] = 447700900123
    model = validate_raw("theimagefile", payload)
    assert isinstance(model, TheImageFileOrder) and model.customer is not None
    assert model.customer.telephone == "447700900123"


@pytest.mark.parametrize("payload", [None, [], "order", 12, Decimal("1.5"), True])
def test_payload_must_be_an_object(payload: Any) -> None:
    with pytest.raises(ValidationError):
        validate_raw("shootproof", payload)


def test_unknown_source_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown source") as caught:
        validate_raw("smugmug", {})
    assert not isinstance(caught.value, ValidationError)


def test_external_order_id_checks_the_model() -> None:
    model = validate_raw("pictime", sample("pictime"))
    with pytest.raises(ValueError, match="not a raw"):
        external_order_id("shootproof", model)


def test_item_count_is_capped() -> None:
    payload = sample("theimagefile")
    payload["items"] = [{"description": "Print", "quantity": 1}] * 1001
    with pytest.raises(ValidationError) as caught:
        validate_raw("theimagefile", payload)
    assert "items" in error_locations(caught.value)
    payload["items"] = payload["items"][:1000]
    validate_raw("theimagefile", payload)


def test_api_order_ids_of_different_platforms_and_references_never_collide() -> None:
    from schemas.raw import api_order_id

    assert api_order_id("Etsy", "ETSY-2231") == "Etsy:ETSY-2231"
    assert api_order_id("A:B", "C") != api_order_id("A", "B:C")
    assert api_order_id("A%3AB", "C") != api_order_id("A:B", "C")


def test_a_whole_number_quantity_written_as_a_decimal_is_a_quantity() -> None:
    from decimal import Decimal

    from schemas.raw import validate_raw

    sale = validate_raw("api", {"source": "S", "reference": "R", "date": "2026-07-01",
                                "items": [{"description": "x", "quantity": Decimal("2.0"), "price": "1"}]})
    assert sale.items[0].quantity == 2  # type: ignore[attr-defined]

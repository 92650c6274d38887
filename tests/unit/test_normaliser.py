"""The normaliser: every demo sample, the contract's rules, and never an unexpected exception."""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import make_envelope
from pipeline.errors import GalleryflowError, NormaliseError
from pipeline.normaliser import (
    decide_status,
    normalise,
    normalise_email,
    normalise_phone,
    split_name,
)
from schemas import wire
from schemas.canonical import CanonicalOrder, StudioContext
from schemas.envelope import RawOrderEnvelope
from schemas.raw import external_order_id, validate_raw
from tests.unit.fuzzing import _paths

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"
RECEIVED = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
_studio_json = json.loads((DEMO / "studio.json").read_text(encoding="utf-8"))
STUDIO = StudioContext(**{key: _studio_json[key] for key in ("studio_id", "timezone", "country", "currency")})


def samples(source: str) -> list[dict[str, Any]]:
    data = wire.loads((DEMO / f"{source}.json").read_bytes())
    assert isinstance(data, list)
    return data


def sample(source: str, index: int = 0) -> dict[str, Any]:
    return copy.deepcopy(samples(source)[index])


def envelope(
    source: str, payload: Any, external_id: str | None = None, studio: StudioContext = STUDIO
) -> RawOrderEnvelope:
    """The envelope a connector would publish (its id from the payload, like the connectors)."""
    if external_id is None:
        try:
            external_id = external_order_id(source, validate_raw(source, payload))
        except ValueError:
            external_id = "unknown"
    fields = {
        "studio": studio,
        "source": source,
        "external_order_id": external_id,
        "received_at": RECEIVED,
        "connector_version": "test",
        "payload": payload,
    }
    if isinstance(payload, dict):
        return RawOrderEnvelope(**fields)
    return RawOrderEnvelope.model_construct(**fields)  # a broken connector's envelope


def run(source: str, payload: Any) -> CanonicalOrder:
    return normalise(envelope(source, payload))


def fails(source: str, payload: Any, match: str) -> NormaliseError:
    with pytest.raises(NormaliseError, match=match) as caught:
        run(source, payload)
    return caught.value


# --- the demo samples (values from demo/expected.json) --------------------------------------

EXPECTED = [
    # source, index, external id, order date, status, currency, total, refunded, item count
    ("shootproof", 0, "81234567", "2026-11-28", "paid", "GBP", "95.95", "0.00", 2),
    ("shootproof", 1, "81234601", "2026-11-29", "paid", "GBP", "150.00", "0.00", 1),
    ("shootproof", 2, "81234567", "2026-11-28", "paid", "GBP", "95.95", "0.00", 2),
    ("shootproof", 3, "81234567", "2026-11-28", "partially_refunded", "GBP", "95.95", "18.00", 2),
    ("pictime", 0, "PT-7781203", "2026-11-30", "paid", "GBP", "112.00", "0.00", 2),
    ("pictime", 1, "PT-7781244", "2026-12-02", "paid", "GBP", "39.60", "0.00", 1),
    ("pictime", 2, "PT-7781300", "2026-12-01", "paid", "USD", "135.00", "0.00", 1),
    ("theimagefile", 0, "TIF-2026-004411", "2026-11-30", "paid", "GBP", "64.50", "0.00", 3),
    ("theimagefile", 1, "TIF-2026-004415", "2026-12-01", "paid", "GBP", "12.00", "0.00", 2),
    ("api", 0, "Etsy:ETSY-2231", "2026-11-27", "paid", "GBP", "48.50", "0.00", 2),
    ("api", 1, "Etsy:ETSY-2231", "2026-11-27", "paid", "GBP", "48.50", "0.00", 2),
    ("api", 2, "Square:SQ-90017", "2026-11-20", "paid", "GBP", "30.00", "0.00", 1),
]


@pytest.mark.parametrize(
    ("source", "index", "order_id", "order_date", "status", "currency", "total", "refunded", "count"),
    EXPECTED,
)
def test_demo_samples(
    source: str,
    index: int,
    order_id: str,
    order_date: str,
    status: str,
    currency: str,
    total: str,
    refunded: str,
    count: int,
) -> None:
    order = run(source, sample(source, index))
    assert order.studio_id == "harbour-light"
    assert order.source == source
    assert order.external_order_id == order_id
    assert order.order_date == dt.date.fromisoformat(order_date)
    assert order.status == status
    assert order.currency == currency
    assert order.total == Decimal(total)
    assert order.refunded == Decimal(refunded)
    assert len(order.items) == count
    assert order.placed_at.utcoffset() == dt.timedelta(0)
    assert order.received_at == RECEIVED
    assert all(isinstance(value, Decimal) for value in (order.total, order.refunded))


def test_every_demo_sample_is_covered() -> None:
    counts = {source: len(samples(source)) for source in ("shootproof", "pictime", "theimagefile", "api")}
    covered = {source: sum(1 for row in EXPECTED if row[0] == source) for source in counts}
    assert covered == counts


@pytest.mark.parametrize(("source", "first", "again"), [("shootproof", 0, 2), ("api", 0, 1)])
def test_same_order_twice_normalises_identically(source: str, first: int, again: int) -> None:
    assert run(source, sample(source, first)) == run(source, sample(source, again))


def test_shootproof_detail() -> None:
    order = run("shootproof", sample("shootproof", 0))
    assert order.order_number == "10452"
    assert order.placed_at == dt.datetime(2026, 11, 28, 21, 14, 5, tzinfo=dt.UTC)
    assert order.source_updated_at is None
    assert (order.subtotal, order.discount, order.shipping, order.tax) == (
        Decimal("101.00"),
        Decimal("10.00"),
        Decimal("4.95"),
        Decimal("0.00"),
    )
    assert order.gallery_ref == "330012"
    assert order.gallery_name == "Hughes–Byrne Wedding"
    assert order.customer.model_dump() == {
        "name": "Aoife Hughes",
        "first_name": "Aoife",
        "last_name": "Hughes",
        "email": "aoife.hughes@example.com",
        "phone": "+447700900123",
        "phone_raw": "07700900123",
    }
    first, second = order.items
    assert (first.description, first.quantity, first.unit_price, first.line_total, first.kind) == (
        "8x10 Print",
        2,
        Decimal("18.00"),
        Decimal("36.00"),
        "product",
    )
    assert second.line_total == Decimal("65.00")


def test_shootproof_refund_version() -> None:
    order = run("shootproof", sample("shootproof", 3))
    assert order.source_updated_at == dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
    assert order.version_time == order.source_updated_at
    assert order.refunded == Decimal("18.00")


def test_shootproof_numbers_as_json_numbers() -> None:
    order = run("shootproof", sample("shootproof", 1))
    assert order.gallery_ref == "330012"
    assert order.total == Decimal("150.00")
    assert order.items[0].unit_price == Decimal("150")
    assert order.customer.phone is None and order.customer.phone_raw is None
    assert order.customer.email == "margaret.byrne@example.ie"


def test_pictime_detail() -> None:
    jones, patel, carter = (run("pictime", payload) for payload in samples("pictime"))
    assert jones.shipping == Decimal("7.50") and jones.discount == 0 and jones.tax == 0
    assert jones.payment_collector == "photographer" and jones.payout is None
    assert jones.gallery_ref == "p_55f1" and jones.gallery_name == "Jones Family Session"
    assert [(item.description, item.quantity, item.line_total) for item in jones.items] == [
        ("Framed Print 16x12", 1, Decimal("85.00")),
        ("Wallet Prints (set of 4)", 3, Decimal("19.50")),
    ]
    assert jones.customer.name == "Gareth Jones"
    assert (jones.customer.first_name, jones.customer.last_name) == ("Gareth", "Jones")
    assert jones.customer.phone == "+447700900456"
    # Pic-Time collected: the total stays the order total, the payout is kept beside it.
    assert patel.total == Decimal("39.60")
    assert patel.payout == Decimal("27.72")
    assert patel.payment_collector == "pictime"
    assert patel.discount == Decimal("4.40")
    assert patel.customer.phone == "+447700900321"
    # New York wall clock, London studio.
    assert carter.placed_at == dt.datetime(2026, 12, 1, 20, 45, 10, tzinfo=dt.UTC)
    assert carter.customer.phone is None and carter.customer.phone_raw is None


def test_theimagefile_total_item() -> None:
    order = run("theimagefile", sample("theimagefile", 0))
    listed, total_item = order.items[:-1], order.items[-1]
    assert [(item.description, item.quantity) for item in listed] == [
        ("10x8 Print - IMG_0042", 2),
        ("Acrylic Block 6x4 - IMG_0107", 1),
    ]
    assert all(item.unit_price is None and item.line_total is None for item in listed)
    assert all(item.kind == "product" for item in listed)
    assert total_item.kind == "order_total"
    assert total_item.description == "Order total (theimagefile)"
    assert (total_item.quantity, total_item.unit_price, total_item.line_total) == (
        1,
        Decimal("64.50"),
        Decimal("64.50"),
    )
    assert sum(item.line_total or 0 for item in order.items) == order.total
    assert order.placed_at == dt.datetime(2026, 11, 30, 18, 5, tzinfo=dt.UTC)
    assert order.gallery_ref == "OCC-1102" and order.gallery_name == "O'Connor Christening"
    assert order.customer.name == "Siobhán O'Connor"
    assert (order.customer.first_name, order.customer.last_name) == ("Siobhán", "O'Connor")
    assert order.customer.phone == "+353855550142"


def test_theimagefile_currency_given_and_default() -> None:
    payload = sample("theimagefile", 1)  # "12.00": no currency symbol
    assert run("theimagefile", payload).currency == "GBP"
    payload["currency"] = "eur"
    assert run("theimagefile", payload).currency == "EUR"
    usd_studio = STUDIO.model_copy(update={"currency": "usd"})
    order = normalise(envelope("theimagefile", sample("theimagefile", 1), studio=usd_studio))
    assert order.currency == "USD"


def test_api_items_become_product_lines() -> None:
    order = run("api", sample("api", 0))
    assert [(item.description, item.quantity, item.unit_price, item.line_total) for item in order.items] == [
        ("Printed Photo Book 8x8", 1, Decimal("45.00"), Decimal("45.00")),
        ("Gift wrap", 1, Decimal("3.50"), Decimal("3.50")),
    ]
    assert order.placed_at == dt.datetime(2026, 11, 27, tzinfo=dt.UTC)  # London midnight in GMT
    assert order.customer.phone is None and order.customer.phone_raw is None


def test_api_without_total_sums_the_lines() -> None:
    payload = sample("api", 0)
    del payload["total"]
    payload["items"][1]["quantity"] = 3
    order = run("api", payload)
    assert order.items[1].line_total == Decimal("10.50")
    assert order.total == Decimal("55.50")


def test_api_given_total_wins() -> None:
    payload = sample("api", 0)
    payload["total"] = "40.00"
    assert run("api", payload).total == Decimal("40.00")


def test_api_without_items_gets_a_total_item() -> None:
    order = run("api", sample("api", 2))
    (item,) = order.items
    assert item.description == "Order total (Square)"
    assert (item.kind, item.quantity, item.unit_price, item.line_total) == (
        "order_total",
        1,
        Decimal("30.00"),
        Decimal("30.00"),
    )
    assert order.currency == "GBP"
    assert order.customer.phone == "+447700900999"
    assert order.customer.email is None
    assert order.placed_at == dt.datetime(2026, 11, 20, 14, tzinfo=dt.UTC)


def test_api_empty_items_with_total_gets_a_total_item() -> None:
    payload = sample("api", 2)
    payload["items"] = []
    assert [item.kind for item in run("api", payload).items] == ["order_total"]


def test_api_is_always_paid() -> None:
    payload = sample("api", 2)
    payload["status"] = "refunded"
    order = run("api", payload)
    assert order.status == "paid" and order.refunded == 0


# --- status and refunds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "payment", "refunded_amount", "expected_status", "expected_refunded"),
    [
        ("completed", "paid", None, "paid", "0.00"),
        ("open", None, None, "paid", "0.00"),
        ("open", "unpaid", None, "pending_payment", "0.00"),
        ("open", "pending", None, "pending_payment", "0.00"),
        ("completed", "refunded", None, "refunded", "95.95"),
        ("completed", "refunded", "90.00", "refunded", "90.00"),
        ("completed", "partially_refunded", "18.00", "partially_refunded", "18.00"),
        ("completed", "partially_refunded", None, "partially_refunded", "0.00"),
        ("canceled", "refunded", None, "cancelled", "95.95"),
        ("canceled", "paid", None, "cancelled", "0.00"),
        ("deleted", "unpaid", None, "cancelled", "0.00"),
        ("cancelled", None, None, "cancelled", "0.00"),
    ],
)
def test_shootproof_status_and_refund(
    status: str,
    payment: str | None,
    refunded_amount: str | None,
    expected_status: str,
    expected_refunded: str,
) -> None:
    payload = sample("shootproof")
    payload["status"] = status
    payload["paymentStatus"] = payment
    if refunded_amount is not None:
        payload["refundedAmount"] = refunded_amount
    order = run("shootproof", payload)
    assert order.status == expected_status
    assert order.refunded == Decimal(expected_refunded)


@pytest.mark.parametrize(
    ("status", "expected_status", "expected_refunded"),
    [
        ("paid", "paid", "0.00"),
        (None, "paid", "0.00"),
        ("pending_payment", "pending_payment", "0.00"),
        ("cancelled", "cancelled", "0.00"),
        ("Canceled", "cancelled", "0.00"),
        ("refunded", "refunded", "112.00"),
    ],
)
def test_pictime_status_and_refund(status: str | None, expected_status: str, expected_refunded: str) -> None:
    payload = sample("pictime")
    payload["status"] = status
    order = run("pictime", payload)
    assert order.status == expected_status
    assert order.refunded == Decimal(expected_refunded)


def test_decide_status_order() -> None:
    assert decide_status("deleted", "refunded") == "cancelled"
    assert decide_status("completed", "partially_refunded") == "partially_refunded"
    assert decide_status("open", "unpaid") == "pending_payment"
    assert decide_status(None, None) == "paid"


# --- time zones ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("created", "placed_at", "order_date"),
    [
        ("2026-11-28T21:14:05+00:00", "2026-11-28T21:14:05+00:00", "2026-11-28"),
        ("2026-11-29T02:44:05+05:30", "2026-11-28T21:14:05+00:00", "2026-11-28"),
        ("2026-11-28T19:14:05-05:00", "2026-11-29T00:14:05+00:00", "2026-11-29"),
        ("2026-06-30T23:30:00+00:00", "2026-06-30T23:30:00+00:00", "2026-07-01"),  # BST
        ("2026-06-30T22:59:59Z", "2026-06-30T22:59:59+00:00", "2026-06-30"),
        ("2026-12-31T23:30:00Z", "2026-12-31T23:30:00+00:00", "2026-12-31"),  # GMT
    ],
)
def test_shootproof_offsets_and_studio_local_date(created: str, placed_at: str, order_date: str) -> None:
    payload = sample("shootproof")
    payload["created"] = created
    order = run("shootproof", payload)
    assert order.placed_at == dt.datetime.fromisoformat(placed_at)
    assert order.order_date == dt.date.fromisoformat(order_date)


def test_shootproof_naive_created_rejected() -> None:
    payload = sample("shootproof")
    payload["created"] = "2026-11-28T21:14:05"
    fails("shootproof", payload, "created: date-time has no UTC offset")


@pytest.mark.parametrize(
    ("order_date", "zone", "placed_at", "local_date"),
    [
        # Europe/London spring forward: 01:00-02:00 on 29 March 2026 does not exist; fold=0 reads it in GMT.
        ("2026-03-29 00:59:59", "Europe/London", "2026-03-29T00:59:59+00:00", "2026-03-29"),
        ("2026-03-29 01:30:00", "Europe/London", "2026-03-29T01:30:00+00:00", "2026-03-29"),
        ("2026-03-29 02:00:00", "Europe/London", "2026-03-29T01:00:00+00:00", "2026-03-29"),
        # Fall back: 01:00-02:00 on 25 October 2026 happens twice; fold=0 is the first (BST).
        ("2026-10-25 01:30:00", "Europe/London", "2026-10-25T00:30:00+00:00", "2026-10-25"),
        ("2026-10-25 02:30:00", "Europe/London", "2026-10-25T02:30:00+00:00", "2026-10-25"),
        ("2026-07-01 00:30:00", "Europe/London", "2026-06-30T23:30:00+00:00", "2026-07-01"),
        # Another zone's wall clock; the order date is the studio's (London) date.
        ("2026-12-01 20:30:00", "America/New_York", "2026-12-02T01:30:00+00:00", "2026-12-02"),
        ("2026-12-02 08:00:00", "Asia/Tokyo", "2026-12-01T23:00:00+00:00", "2026-12-01"),
        ("2026-07-01 00:30:00", None, "2026-06-30T23:30:00+00:00", "2026-07-01"),
        ("2026-07-01 00:30:00", "", "2026-06-30T23:30:00+00:00", "2026-07-01"),
    ],
)
def test_pictime_wall_clock(order_date: str, zone: str | None, placed_at: str, local_date: str) -> None:
    payload = sample("pictime")
    payload["orderDate"] = order_date
    if zone is None:
        del payload["timeZone"]
    else:
        payload["timeZone"] = zone
    order = run("pictime", payload)
    assert order.placed_at == dt.datetime.fromisoformat(placed_at)
    assert order.order_date == dt.date.fromisoformat(local_date)


def test_pictime_unknown_time_zone() -> None:
    payload = sample("pictime")
    payload["timeZone"] = "Mars/Olympus_Mons"
    fails("pictime", payload, "timeZone: unknown time zone")


@pytest.mark.parametrize(
    ("order_date", "placed_at", "local_date"),
    [
        ("30/11/2026 18:05", "2026-11-30T18:05:00+00:00", "2026-11-30"),
        ("01/07/2026 00:30", "2026-06-30T23:30:00+00:00", "2026-07-01"),
        ("29/03/2026 01:30", "2026-03-29T01:30:00+00:00", "2026-03-29"),
        ("25/10/2026 01:30", "2026-10-25T00:30:00+00:00", "2026-10-25"),
    ],
)
def test_theimagefile_studio_local(order_date: str, placed_at: str, local_date: str) -> None:
    payload = sample("theimagefile")
    payload["orderDate"] = order_date
    order = run("theimagefile", payload)
    assert order.placed_at == dt.datetime.fromisoformat(placed_at)
    assert order.order_date == dt.date.fromisoformat(local_date)


@pytest.mark.parametrize(
    ("date", "placed_at", "local_date"),
    [
        ("2026-07-01", "2026-06-30T23:00:00+00:00", "2026-07-01"),  # studio-local midnight, BST
        ("2026-01-15", "2026-01-15T00:00:00+00:00", "2026-01-15"),  # GMT
        ("2026-06-30T23:30:00+00:00", "2026-06-30T23:30:00+00:00", "2026-07-01"),
        ("2026-06-30T23:30:00Z", "2026-06-30T23:30:00+00:00", "2026-07-01"),
        ("2026-07-01T00:30:00", "2026-06-30T23:30:00+00:00", "2026-07-01"),  # naive: studio-local
        ("2026-07-01T08:00:00+09:00", "2026-06-30T23:00:00+00:00", "2026-07-01"),
        ("2026-07-01T08:00:00+10:00", "2026-06-30T22:00:00+00:00", "2026-06-30"),
    ],
)
def test_api_dates(date: str, placed_at: str, local_date: str) -> None:
    payload = sample("api", 2)
    payload["date"] = date
    order = run("api", payload)
    assert order.placed_at == dt.datetime.fromisoformat(placed_at)
    assert order.order_date == dt.date.fromisoformat(local_date)


def test_studio_time_zone_decides_the_date() -> None:
    tokyo = STUDIO.model_copy(update={"timezone": "Asia/Tokyo"})
    payload = sample("shootproof")  # 2026-11-28T21:14:05Z is 29 November in Tokyo
    assert normalise(envelope("shootproof", payload, studio=tokyo)).order_date == dt.date(2026, 11, 29)


def test_bad_studio_time_zone() -> None:
    broken = STUDIO.model_copy(update={"timezone": "Nowhere/Special"})
    with pytest.raises(NormaliseError, match="studio time zone"):
        normalise(envelope("shootproof", sample("shootproof"), studio=broken))


def test_bad_studio_currency() -> None:
    broken = STUDIO.model_copy(update={"currency": "pounds"})
    with pytest.raises(NormaliseError, match="studio currency"):
        normalise(envelope("theimagefile", sample("theimagefile"), studio=broken))


@pytest.mark.parametrize("created", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_dates_out_of_range(created: str) -> None:
    payload = sample("shootproof")
    payload["created"] = created
    fails("shootproof", payload, "out of range")


# --- customers and text ----------------------------------------------------------------------


def test_nul_bytes_are_stripped_everywhere() -> None:
    payload = sample("theimagefile")
    payload["customer"]["name"] = "\x00Siob\x00hán O'Connor\x00 "
    payload["customer"]["email"] = "siobhan\x00@example.ie"
    payload["albumName"] = "O'Connor\x00 Christening"
    payload["albumCode"] = "OCC\x00-1102"
    payload["items"][0]["description"] = "10x8\x00 Print"
    order = run("theimagefile", payload)
    assert "\x00" not in order.model_dump_json()
    assert order.customer.name == "Siobhán O'Connor"
    assert order.customer.email == "siobhan@example.ie"
    assert order.gallery_name == "O'Connor Christening"
    assert order.gallery_ref == "OCC-1102"
    assert order.items[0].description == "10x8 Print"


@pytest.mark.parametrize(
    ("name", "first", "last"),
    [
        ("Zoë 📸 Smith", "Zoë", "📸 Smith"),
        ("مريم الحسن", "مريم", "الحسن"),
        ("Siobha\u0301n O'Connor", "Siobha\u0301n", "O'Connor"),  # combining accent kept as sent
        ("Cher", "Cher", None),
        ("  Mary   Ann  de la Cruz ", "Mary", "Ann de la Cruz"),
    ],
)
def test_names_kept_intact_and_split(name: str, first: str, last: str | None) -> None:
    payload = sample("api", 2)
    payload["client_name"] = name
    customer = run("api", payload).customer
    assert customer.name == name.strip()
    assert (customer.first_name, customer.last_name) == (first, last)


@pytest.mark.parametrize("blank", ["", "   ", "\x00", None])
def test_blank_customer_fields_become_none(blank: str | None) -> None:
    payload = sample("shootproof")
    payload["customerName"] = blank
    payload["customerEmail"] = blank
    payload["customerPhone"] = blank
    customer = run("shootproof", payload).customer
    assert customer.model_dump() == {
        "name": None,
        "first_name": None,
        "last_name": None,
        "email": None,
        "phone": None,
        "phone_raw": None,
    }


def test_pictime_names_are_joined() -> None:
    payload = sample("pictime")
    payload["client"] = {"firstName": " Gareth ", "lastName": None}
    customer = run("pictime", payload).customer
    assert (customer.name, customer.first_name, customer.last_name) == ("Gareth", "Gareth", None)
    payload["client"] = {"lastName": "van der Berg", "firstName": "Anna Maria"}
    customer = run("pictime", payload).customer
    assert (customer.name, customer.first_name, customer.last_name) == (
        "Anna Maria van der Berg",
        "Anna Maria",
        "van der Berg",
    )
    del payload["client"]
    assert run("pictime", payload).customer.name is None


def test_impossible_phone_is_kept_raw_only() -> None:
    payload = sample("api", 2)
    payload["client_phone"] = " call me "
    customer = run("api", payload).customer
    assert customer.phone is None and customer.phone_raw == "call me"
    payload["client_phone"] = "12"
    customer = run("api", payload).customer
    assert customer.phone is None and customer.phone_raw == "12"


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("07700 900123", "GB", "+447700900123"),
        ("07700900123", "gb", "+447700900123"),
        ("+44 (0)7700 900123", "US", "+447700900123"),
        ("+353 85 555 0142", "GB", "+353855550142"),
        ("(201) 555-0123", "US", "+12015550123"),
        ("+44 7700 900123 4567", "GB", None),  # too long to be possible
        ("12", "GB", None),
        ("not a phone", "GB", None),
        ("", "GB", None),
        (None, "GB", None),
        ("07700 900123", "", None),  # no default region for a national number
        ("07700 900123", "ZZ", None),
        ("0" * 300, "GB", None),
    ],
)
def test_normalise_phone(raw: str | None, region: str, expected: str | None) -> None:
    assert normalise_phone(raw, region) == expected


def test_fictional_uk_numbers_are_possible_not_valid() -> None:
    number = phonenumbers.parse("07700 900123", "GB")
    assert not phonenumbers.is_valid_number(number)
    assert normalise_phone("07700 900123", "GB") == "+447700900123"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" Aoife.Hughes@Example.com ", "aoife.hughes@example.com"),
        ("STRASSE@EXAMPLE.DE", "strasse@example.de"),
        ("Straße@example.de", "strasse@example.de"),
        ("", None),
        ("   ", None),
        (None, None),
        (42, None),
    ],
)
def test_normalise_email(raw: Any, expected: str | None) -> None:
    assert normalise_email(raw) == expected


def test_split_name() -> None:
    assert split_name("Aoife Hughes") == ("Aoife", "Hughes")
    assert split_name("") == (None, None)
    assert split_name(None) == (None, None)


def test_absurdly_long_text_rejected() -> None:
    payload = sample("shootproof")
    payload["items"][0]["name"] = "x" * 2001
    fails("shootproof", payload, r"items\.0\.name is too long")
    payload = sample("shootproof")
    payload["customerName"] = "y" * 5000
    fails("shootproof", payload, "customer name is too long")
    payload = sample("shootproof")
    payload["items"][0]["name"] = "x" * 2000
    assert run("shootproof", payload).items[0].description == "x" * 2000


def test_lone_surrogate_rejected() -> None:
    payload = sample("api", 2)
    payload["client_name"] = "Dev \ud800 Sharma"
    fails("api", payload, "not valid Unicode")


def test_too_many_items() -> None:
    payload = sample("pictime")
    payload["lines"] = [{"productName": "Print", "qty": 1, "price": "1.00", "lineTotal": "1.00"}] * 1001
    fails("pictime", payload, "too many items")
    payload["lines"] = payload["lines"][:1000]
    assert len(run("pictime", payload).items) == 1000


def test_item_line_total_computed_when_missing() -> None:
    payload = sample("pictime")
    del payload["lines"][1]["lineTotal"]
    assert run("pictime", payload).items[1].line_total == Decimal("19.50")
    del payload["lines"][1]["price"]
    item = run("pictime", payload).items[1]
    assert item.unit_price is None and item.line_total is None


# --- invalid payloads ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ("shootproof", "id"),
        ("shootproof", "brandId"),
        ("shootproof", "created"),
        ("shootproof", "status"),
        ("shootproof", "currencyCode"),
        ("shootproof", "total"),
        ("shootproof", "items"),
        ("pictime", "orderId"),
        ("pictime", "orderDate"),
        ("pictime", "currency"),
        ("pictime", "orderTotal"),
        ("pictime", "lines"),
        ("theimagefile", "orderRef"),
        ("theimagefile", "orderDate"),
        ("theimagefile", "orderTotal"),
        ("theimagefile", "items"),
        ("api", "source"),
        ("api", "reference"),
        ("api", "date"),
    ],
)
def test_missing_required_field_names_it(source: str, field: str) -> None:
    payload = sample(source)
    del payload[field]
    error = fails(source, payload, f"invalid {source} payload")
    assert f"{field}: Field required" in str(error)


def test_api_without_items_or_total() -> None:
    payload = sample("api", 2)
    del payload["total"]
    fails("api", payload, "needs `items` or `total`")


@pytest.mark.parametrize(
    ("source", "mutate", "reason"),
    [
        ("shootproof", lambda p: p.update(total=["95.95"]), "total: money must be"),
        ("shootproof", lambda p: p.update(total="ninety"), "total: not an amount of money"),
        ("shootproof", lambda p: p.update(total=95.95), "total: money must not be a float"),
        ("shootproof", lambda p: p.update(items="all of them"), "items: Input should be a valid list"),
        ("shootproof", lambda p: p["items"][0].update(quantity="2"), r"items\.0\.quantity"),
        ("shootproof", lambda p: p["items"][0].update(quantity=True), r"items\.0\.quantity"),
        ("shootproof", lambda p: p["items"][0].update(quantity=-1), r"items\.0\.quantity"),
        ("shootproof", lambda p: p.update(customerName=42), "customerName"),
        ("shootproof", lambda p: p.update(billingAddress="12 Malone Road"), "billingAddress"),
        ("shootproof", lambda p: p.update(refundedAmount="-3.00"), "refundedAmount"),
        ("pictime", lambda p: p.update(client=["Gareth"]), "client"),
        ("pictime", lambda p: p.update(orderTotal=Decimal("NaN")), "orderTotal: money must be a finite"),
        ("pictime", lambda p: p.update(currency="pounds"), "currency: a currency must be"),
        ("theimagefile", lambda p: p["items"].append("print"), r"items\.2"),
        ("theimagefile", lambda p: p.update(orderTotal="£"), "orderTotal"),
        ("api", lambda p: p.update(date=20261120), "date"),
        ("api", lambda p: p.update(reference=None), "reference"),
        ("api", lambda p: p.update(source="   "), "source: an id must not be blank"),
    ],
)
def test_wrong_types_give_readable_reasons(source: str, mutate: Any, reason: str) -> None:
    payload = sample(source, 2 if source == "api" else 0)
    mutate(payload)
    fails(source, payload, reason)


@pytest.mark.parametrize("payload", [None, [], "order", 12, Decimal("1.5"), True, [{"id": 1}]])
def test_non_object_payload(payload: Any) -> None:
    fails("shootproof", payload, r"\(payload\): Input should be a valid dictionary")


def test_envelope_id_must_match_the_payload() -> None:
    with pytest.raises(NormaliseError, match="does not match"):
        normalise(envelope("pictime", sample("pictime"), external_id="PT-0000000"))


def test_unknown_source_in_a_broken_envelope() -> None:
    broken = envelope("api", sample("api", 2)).model_copy(update={"source": "smugmug"})
    with pytest.raises(NormaliseError, match="unknown source"):
        normalise(broken)


def test_normalise_error_is_a_value_error_and_ours() -> None:
    error = fails("api", {}, "invalid api payload")
    assert isinstance(error, ValueError)
    assert isinstance(error, GalleryflowError)


def test_unexpected_failure_becomes_a_normalise_error() -> None:
    broken = RawOrderEnvelope.model_construct(
        studio=None,
        source="api",
        external_order_id="Square:SQ-90017",
        received_at=RECEIVED,
        connector_version="test",
        payload=sample("api", 2),
    )
    with pytest.raises(NormaliseError, match="cannot normalise order: AttributeError"):
        normalise(broken)


def test_invalid_canonical_order_is_a_normalise_error() -> None:
    naive = envelope("api", sample("api", 2)).model_copy(update={"received_at": dt.datetime(2026, 12, 3)})
    with pytest.raises(NormaliseError, match="invalid canonical order: received_at"):
        normalise(naive)


def test_sub_cent_prices_stay_exact() -> None:
    payload = sample("api", 0)
    del payload["total"]
    payload["items"] = [{"description": "Print credit", "quantity": 3, "price": "0.125"}]
    order = run("api", payload)
    assert order.items[0].line_total == Decimal("0.375")
    assert order.total == Decimal("0.375")


def test_error_lists_at_most_ten_problems() -> None:
    payload = sample("theimagefile")
    payload["items"] = [{"description": 1, "quantity": "x"}] * 12
    error = fails("theimagefile", payload, "and 14 more")
    assert str(error).count("items.") == 10


# --- properties ------------------------------------------------------------------------------

SOURCES = ("shootproof", "pictime", "theimagefile", "api")

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(["", " ", "\x00", "2026-03-29 01:30:00", "30/11/2026 18:05", "2026-11-28T21:14:05Z"]),
    st.sampled_from(["£1,234.50", "1e400", "NaN", "GBP", "Europe/London", "paid", "refunded", "canceled"]),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def check_outcome(source: str, payload: Any) -> None:
    try:
        order = normalise(envelope(source, payload))
    except NormaliseError as error:
        assert str(error)
        return
    assert isinstance(order, CanonicalOrder)
    assert order.placed_at.utcoffset() == dt.timedelta(0)
    assert all(isinstance(item.quantity, int) and item.quantity >= 0 for item in order.items)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SOURCES), json_values)
def test_any_json_payload_gives_an_order_or_a_normalise_error(source: str, payload: Any) -> None:
    check_outcome(source, payload)


ALL_SAMPLES = [(source, index) for source in SOURCES for index in range(len(samples(source)))]


@st.composite
def broken_samples(draw: st.DrawFn) -> tuple[str, Any]:
    source, index = draw(st.sampled_from(ALL_SAMPLES))
    payload = sample(source, index)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(payload)
        if not paths:
            break
        *parents, last = draw(st.sampled_from(paths))
        target = payload
        for part in parents:
            target = target[part]
        if draw(st.booleans()) and isinstance(target, dict):
            del target[last]
        else:
            target[last] = draw(json_values)
    return source, payload


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_samples())
def test_broken_samples_give_an_order_or_a_normalise_error(case: tuple[str, Any]) -> None:
    check_outcome(*case)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.sampled_from(["GB", "US", "IE", "", "zz", "gb"]))
def test_normalise_phone_never_raises(raw: str, region: str) -> None:
    result = normalise_phone(raw, region)
    assert result is None or (result.startswith("+") and result[1:].isdigit())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_names_survive_as_sent(name: str) -> None:
    payload = sample("api", 2)
    payload["client_name"] = name
    try:
        customer = run("api", payload).customer
    except NormaliseError:
        raise AssertionError(f"a plain name was refused: {name!r}") from None
    expected = name.replace("\x00", "").strip() or None
    assert customer.name == expected
    if expected:
        assert customer.first_name == expected.split()[0]


def test_a_pound_sign_decides_the_currency_when_the_order_names_none() -> None:
    usd = StudioContext(studio_id="north-star", timezone="America/New_York", country="US", currency="USD")
    payload = {"orderRef": "T-1", "orderDate": "01/12/2026 08:15", "orderTotal": "£5",
               "items": [{"description": "Print", "quantity": 1}]}
    order = normalise(make_envelope(usd, "theimagefile", payload))
    assert (order.currency, order.total) == ("GBP", Decimal("5.00"))


def test_a_pound_sign_contradicting_the_named_currency_is_refused() -> None:
    usd = StudioContext(studio_id="north-star", timezone="America/New_York", country="US", currency="USD")
    payload = {"orderRef": "T-1", "orderDate": "01/12/2026 08:15", "orderTotal": "£5", "currency": "USD",
               "items": [{"description": "Print", "quantity": 1}]}
    with pytest.raises(NormaliseError, match="written in GBP but the order's currency is USD"):
        normalise(make_envelope(usd, "theimagefile", payload))

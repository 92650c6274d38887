"""Raw gallery orders into the canonical order: pure functions, no I/O.

``normalise`` raises ``NormaliseError`` (with a readable reason) for anything it cannot accept and
never any other exception, whatever JSON the payload holds.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from pydantic import ValidationError

from pipeline.errors import NormaliseError
from schemas import raw
from schemas.canonical import CanonicalCustomer, CanonicalItem, CanonicalOrder, SaleStatus, StudioContext
from schemas.envelope import RawOrderEnvelope

__all__ = [
    "NormaliseError",
    "decide_status",
    "describe_validation_error",
    "normalise",
    "normalise_email",
    "normalise_phone",
    "parse_money",
    "split_name",
]

MAX_TEXT = 2000
MAX_ERRORS_LISTED = 10
ZERO = Decimal("0.00")
_CANCELLED = {"canceled", "cancelled", "deleted"}
_PENDING = {"unpaid", "pending", "pending_payment"}
# Exact arithmetic: amounts and quantities are bounded, so 60 digits never round.
_EXACT = decimal.Context(prec=60, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow])


# --- public helpers --------------------------------------------------------------------------


def parse_money(value: Any) -> Decimal:
    """An amount from a JSON string (``"£1,234.50"``) or number (``int``/``Decimal``), as ``Decimal``."""
    try:
        return raw.parse_money(value)
    except ValueError as exc:
        raise NormaliseError(str(exc)) from exc


def normalise_email(value: Any) -> str | None:
    """Trimmed and case-folded; blank (or not a string) is ``None``."""
    if not isinstance(value, str):
        return None
    email = value.replace("\x00", "").strip().casefold()
    return email or None


def normalise_phone(value: str | None, region: str) -> str | None:
    """E.164 when the number parses as a *possible* number (``region`` is the default), else ``None``."""
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", "").strip()
    if not text:
        return None
    default_region = region.strip().upper() if isinstance(region, str) else None
    try:
        number = phonenumbers.parse(text, default_region or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def split_name(name: str | None) -> tuple[str | None, str | None]:
    """First token and the rest: ``"Siobhán O'Connor"`` -> ``("Siobhán", "O'Connor")``."""
    tokens = (name or "").split()
    if not tokens:
        return None, None
    return tokens[0], " ".join(tokens[1:]) or None


def decide_status(order_state: str | None, payment_state: str | None) -> SaleStatus:
    """The contract's order: cancelled, then refunded / partially refunded, then pending, else paid."""
    if order_state in _CANCELLED:
        return "cancelled"
    if payment_state == "refunded":
        return "refunded"
    if payment_state == "partially_refunded":
        return "partially_refunded"
    if payment_state in _PENDING:
        return "pending_payment"
    return "paid"


def describe_validation_error(what: str, exc: ValidationError) -> str:
    """One readable line: ``invalid shootproof payload: items.0.quantity: Field required; ...``."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = []
    for error in errors[:MAX_ERRORS_LISTED]:
        where = ".".join(str(part) for part in error["loc"]) or "(payload)"
        parts.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    more = len(errors) - MAX_ERRORS_LISTED
    return f"invalid {what}: " + "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


# --- the normaliser --------------------------------------------------------------------------


def normalise(envelope: RawOrderEnvelope) -> CanonicalOrder:
    """The canonical order for a raw envelope; ``NormaliseError`` says why when it cannot be made."""
    try:
        return _normalise(envelope)
    except NormaliseError:
        raise
    except ValidationError as exc:
        raise NormaliseError(describe_validation_error("canonical order", exc)) from exc
    except Exception as exc:  # defensive: bad data must become a dead letter, never a crash
        detail = str(exc)[:300]
        raise NormaliseError(f"cannot normalise order: {type(exc).__name__}: {detail}") from exc


class _Studio:
    """The studio's defaults, checked once."""

    def __init__(self, studio: StudioContext) -> None:
        self.studio_id = studio.studio_id
        try:
            self.zone = raw.load_zone(studio.timezone)
        except (ValueError, TypeError) as exc:
            raise NormaliseError(f"studio time zone is not usable: {exc}") from exc
        self.region = studio.country.strip().upper()
        self.currency = _studio_currency(studio.currency)


def _studio_currency(code: Any) -> str:
    text = code.strip().upper() if isinstance(code, str) else ""
    if len(text) != 3 or not text.isascii() or not text.isalpha():
        raise NormaliseError(f"studio currency is not a 3-letter ISO 4217 code: {code!r}")
    return text


def _normalise(envelope: RawOrderEnvelope) -> CanonicalOrder:
    studio = _Studio(envelope.studio)
    source = envelope.source
    _check_item_count(source, envelope.payload)
    try:
        order = raw.validate_raw(source, envelope.payload)
    except ValidationError as exc:
        raise NormaliseError(describe_validation_error(f"{source} payload", exc)) from exc
    except ValueError as exc:
        raise NormaliseError(str(exc)) from exc
    order_id = _text(raw.external_order_id(source, order), "external order id")
    if order_id != envelope.external_order_id:
        raise NormaliseError(
            f"envelope external_order_id {envelope.external_order_id!r}"
            f" does not match the payload's {order_id!r}"
        )
    fields = _BUILDERS[source](order, studio)
    fields["currency"] = _currency_agreeing_with_symbols(source, envelope.payload, order, fields["currency"])
    placed_at: dt.datetime = fields["placed_at"]
    return CanonicalOrder(
        studio_id=studio.studio_id,
        source=source,
        external_order_id=order_id,
        order_date=fields.pop("order_date", None) or _local_date(placed_at, studio.zone),
        received_at=envelope.received_at,
        **fields,
    )


def _check_item_count(source: str, payload: Any) -> None:
    items = payload.get(raw.ITEMS_FIELD.get(source, "items")) if isinstance(payload, dict) else None
    if isinstance(items, list) and len(items) > raw.MAX_ITEMS:
        raise NormaliseError(f"too many items: {len(items)} (at most {raw.MAX_ITEMS})")


# --- per source ------------------------------------------------------------------------------


def _shootproof(order: raw.ShootProofOrder, studio: _Studio) -> dict[str, Any]:
    status = decide_status(order.status, order.paymentStatus)
    items = [
        _product(item.name, item.quantity, item.unitPrice, item.total, f"items.{index}.name")
        for index, item in enumerate(order.items)
    ]
    return {
        "order_number": _text(order.orderNumber, "orderNumber"),
        "placed_at": order.created,
        "source_updated_at": order.updated,
        "status": status,
        "currency": order.currencyCode,
        "subtotal": order.subtotal,
        "shipping": order.shipping,
        "discount": order.adjustment,
        "tax": order.tax,
        "total": order.total,
        "refunded": _refunded(order.refundedAmount, order.paymentStatus, order.total),
        "gallery_ref": _text(order.eventId, "eventId"),
        "gallery_name": _text(order.eventName, "eventName"),
        "customer": _customer(order.customerName, order.customerEmail, order.customerPhone, studio.region),
        "items": items,
    }


def _pictime(order: raw.PictimeOrder, studio: _Studio) -> dict[str, Any]:
    zone = raw.load_zone(order.timeZone) if order.timeZone else studio.zone
    client = order.client or raw.PictimeClient()
    first = _text(client.firstName, "client.firstName")
    last = _text(client.lastName, "client.lastName")
    whole = " ".join(part for part in (first, last) if part) or None
    customer = _customer(whole, client.email, client.phone, studio.region)
    items = [
        _product(line.productName, line.qty, line.price, line.lineTotal, f"lines.{index}.productName")
        for index, line in enumerate(order.lines)
    ]
    return {
        "placed_at": _wall_clock_to_utc(order.orderDate, zone),
        "status": decide_status(order.status, order.status),
        "currency": order.currency,
        "shipping": order.shippingFee,
        "discount": order.discount,
        "tax": order.tax,
        "total": order.orderTotal,
        "refunded": _refunded(None, order.status, order.orderTotal),
        "payout": order.photographerPayout,
        "payment_collector": order.paymentCollector,
        "gallery_ref": _text(order.projectId, "projectId"),
        "gallery_name": _text(order.projectName, "projectName"),
        "customer": customer.model_copy(update={"first_name": first, "last_name": last}),
        "items": items,
    }


def _theimagefile(order: raw.TheImageFileOrder, studio: _Studio) -> dict[str, Any]:
    customer = order.customer or raw.TheImageFileCustomer()
    items = [
        CanonicalItem(
            description=_text(item.description, f"items.{index}.description") or "", quantity=item.quantity
        )
        for index, item in enumerate(order.items)
    ]
    items.append(_total_item("theimagefile", order.orderTotal))
    return {
        "placed_at": _wall_clock_to_utc(order.orderDate, studio.zone),
        "status": "paid",
        "currency": order.currency or studio.currency,
        "total": order.orderTotal,
        "gallery_ref": _text(order.albumCode, "albumCode"),
        "gallery_name": _text(order.albumName, "albumName"),
        "customer": _customer(customer.name, customer.email, customer.telephone, studio.region),
        "items": items,
    }


def _api(order: raw.ApiSale, studio: _Studio) -> dict[str, Any]:
    platform = _text(order.source, "source") or ""
    if isinstance(order.date, dt.datetime):
        placed_at = order.date if order.date.tzinfo else _wall_clock_to_utc(order.date, studio.zone)
        order_date = None
    else:
        placed_at = _wall_clock_to_utc(dt.datetime.combine(order.date, dt.time()), studio.zone)
        order_date = order.date
    if order.items:
        items = [
            _product(item.description, item.quantity, item.price, None, f"items.{index}.description")
            for index, item in enumerate(order.items)
        ]
        total = order.total if order.total is not None else _sum(_line_totals(items))
    else:
        total = order.total if order.total is not None else ZERO  # the raw model demands one of them
        items = [_total_item(platform, total)]
    return {
        "placed_at": placed_at,
        "order_date": order_date,
        "status": "paid",
        "currency": order.currency or studio.currency,
        "total": total,
        "customer": _customer(order.client_name, order.client_email, order.client_phone, studio.region),
        "items": items,
    }


#: Symbols that name one currency; "$" and "¥" name several, so they neither decide nor contradict.
_SYMBOL_CURRENCY = {"£": "GBP", "€": "EUR"}
_MONEY_FIELDS = {
    "shootproof": ("subtotal", "adjustment", "shipping", "tax", "total", "refundedAmount"),
    "pictime": ("shippingFee", "discount", "tax", "orderTotal", "photographerPayout"),
    "theimagefile": ("orderTotal",),
    "api": ("total",),
}
_CURRENCY_FIELD = {"shootproof": "currencyCode", "pictime": "currency", "theimagefile": "currency",
                   "api": "currency"}


def _currency_agreeing_with_symbols(source: str, payload: Any, order: Any, currency: str) -> str:
    """An amount written "£5" is in pounds: it decides an order's currency when the order names
    none (theimagefile, api), and contradicts one that names another (a dead letter, not a guess)."""
    texts = [payload.get(name) for name in _MONEY_FIELDS.get(source, ())] if isinstance(payload, dict) else []
    implied = {code for text in texts if isinstance(text, str)
               for symbol, code in _SYMBOL_CURRENCY.items() if symbol in text}
    if not implied:
        return currency
    if len(implied) > 1:
        raise NormaliseError(f"amounts are written in more than one currency: {', '.join(sorted(implied))}")
    (symbol_currency,) = implied
    named = getattr(order, _CURRENCY_FIELD[source], None)
    if named is None:
        return symbol_currency
    if named != symbol_currency:
        raise NormaliseError(f"amounts are written in {symbol_currency} but the order's currency is {named}")
    return currency


_BUILDERS: dict[str, Callable[[Any, _Studio], dict[str, Any]]] = {
    "shootproof": _shootproof,
    "pictime": _pictime,
    "theimagefile": _theimagefile,
    "api": _api,
}


# --- pieces ----------------------------------------------------------------------------------


def _text(value: str | None, field: str) -> str | None:
    """NUL bytes removed and trimmed; blank is ``None``; absurdly long or broken text is an error."""
    if value is None:
        return None
    text = value.replace("\x00", "").strip()
    if len(text) > MAX_TEXT:
        raise NormaliseError(f"{field} is too long ({len(text)} characters, at most {MAX_TEXT})")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NormaliseError(f"{field} is not valid Unicode text (lone surrogate)") from exc
    return text or None


def _customer(name: str | None, email: str | None, phone: str | None, region: str) -> CanonicalCustomer:
    whole = _text(name, "customer name")
    first, last = split_name(whole)
    phone_raw = _text(phone, "customer phone")
    return CanonicalCustomer(
        name=whole,
        first_name=first,
        last_name=last,
        email=normalise_email(_text(email, "customer email")),
        phone=normalise_phone(phone_raw, region),
        phone_raw=phone_raw,
    )


def _product(
    description: str, quantity: int, unit_price: Decimal | None, line_total: Decimal | None, field: str
) -> CanonicalItem:
    if line_total is None and unit_price is not None:
        with decimal.localcontext(_EXACT):
            line_total = quantity * unit_price
    return CanonicalItem(
        description=_text(description, field) or "",
        quantity=quantity,
        unit_price=unit_price,
        line_total=line_total,
    )


def _total_item(platform: str, total: Decimal) -> CanonicalItem:
    return CanonicalItem(
        description=f"Order total ({platform})",
        quantity=1,
        unit_price=total,
        line_total=total,
        kind="order_total",
    )


def _line_totals(items: list[CanonicalItem]) -> list[Decimal]:
    return [item.line_total for item in items if item.line_total is not None]


def _sum(amounts: list[Decimal]) -> Decimal:
    with decimal.localcontext(_EXACT):
        return sum(amounts, Decimal(0))


def _refunded(amount: Decimal | None, payment_state: str | None, total: Decimal) -> Decimal:
    if amount is not None:
        return amount
    return total if payment_state == "refunded" else ZERO


def _wall_clock_to_utc(wall: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """A local wall-clock time in ``zone`` as UTC; DST gaps and folds resolve with ``fold=0``."""
    try:
        return wall.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)
    except OverflowError as exc:
        raise NormaliseError(f"date out of range: {wall.isoformat()}") from exc


def _local_date(moment: dt.datetime, zone: ZoneInfo) -> dt.date:
    try:
        return moment.astimezone(zone).date()
    except OverflowError as exc:
        raise NormaliseError(f"date out of range: {moment.isoformat()}") from exc

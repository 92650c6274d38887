"""Raw gallery payloads, one model per source, exactly as the contract in gallery-samples/README.md.

Unknown fields are ignored (the raw payload is kept whole on the raw topic), required fields are
enforced, and money becomes ``Decimal`` at once. Values are parsed here; the normaliser decides what
they mean (time zones, statuses, the order-total item).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict, model_validator

MAX_ITEMS = 1000
MAX_QUANTITY = 1_000_000
MAX_MONEY_INTEGER_DIGITS = 13
MAX_MONEY_DECIMAL_PLACES = 8

# An optional sign, an optional currency symbol (either side of the sign), then the number:
# plain digits or digits grouped by commas, an optional fraction, an optional exponent.
_MONEY_RE = re.compile(
    r"""
    (?P<sign1>[+-]?) \s* [£$€¥]? \s* (?P<sign2>[+-]?) \s*
    (?P<number>
        (?: [0-9]{1,3}(?:,[0-9]{3})+ | [0-9]+ ) (?:\.[0-9]*)?
        | \.[0-9]+
    )
    (?P<exponent>[eE][+-]?[0-9]{1,4})?
    \s* [£$€¥]?
    """,
    re.VERBOSE,
)
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_PICTIME_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_TIF_DATE_RE = re.compile(r"[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}")
_ISO_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _show(value: Any) -> str:
    """A short repr for error messages (payloads can be huge)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- money -----------------------------------------------------------------------------------


def parse_money(value: Any) -> Decimal:
    """An amount of money from a JSON string or number (``int`` or ``Decimal``), as ``Decimal``.

    Accepts ``"18.00"``, ``"1,234.50"``, ``"£18.00"``, ``18``, ``Decimal("150.0")``. Rejects floats
    (binary fractions are not money), bools, NaN, infinities and anything that is not a number.
    Raises ``ValueError``.
    """
    if isinstance(value, bool):
        raise ValueError(f"money must be a number or a string, not a boolean ({value})")
    if isinstance(value, float):
        raise ValueError(f"money must not be a float ({_show(value)}); send a string or a JSON number")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str):
        amount = _money_from_text(value)
    else:
        raise ValueError(f"money must be a number or a string, not {type(value).__name__}")
    return _checked_amount(amount, value)


def _money_from_text(text: str) -> Decimal:
    match = _MONEY_RE.fullmatch(text.strip())
    if match is None or (match["sign1"] and match["sign2"]):
        raise ValueError(f"not an amount of money: {_show(text)}")
    sign = match["sign1"] or match["sign2"]
    number = match["number"].replace(",", "")
    try:
        return Decimal(sign + number + (match["exponent"] or ""))
    except InvalidOperation as exc:  # pragma: no cover - the pattern only lets numbers through
        raise ValueError(f"not an amount of money: {_show(text)}") from exc


def _checked_amount(amount: Decimal, original: Any) -> Decimal:
    if not amount.is_finite():
        raise ValueError(f"money must be a finite number, not {_show(original)}")
    if amount and amount.adjusted() >= MAX_MONEY_INTEGER_DIGITS:
        raise ValueError(f"amount too large: {_show(original)}")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_MONEY_DECIMAL_PLACES:
        raise ValueError(f"amount has more than {MAX_MONEY_DECIMAL_PLACES} decimal places: {_show(original)}")
    return amount


def _no_negative_zero(amount: Decimal) -> Decimal:
    return amount.copy_abs() if amount.is_zero() else amount


Money = Annotated[Decimal, BeforeValidator(parse_money), Field(ge=0), AfterValidator(_no_negative_zero)]
"""A non-negative amount (every amount in the contract is positive; discounts are subtracted)."""


# --- ids, text, codes ------------------------------------------------------------------------


def _to_id(value: Any) -> str:
    if isinstance(value, bool):
        raise ValueError("an id must be a string or an integer, not a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal) and value.is_finite() and value.adjusted() < 30:
        if value == value.to_integral_value():
            return str(int(value))
    if not isinstance(value, str):
        raise ValueError(f"an id must be a string or an integer, not {_show(value)}")
    text = value.replace("\x00", "").strip()
    if not text:
        raise ValueError("an id must not be blank")
    return text


IdStr = Annotated[str, BeforeValidator(_to_id)]
"""An id that may arrive as a JSON number or a string; compared as a string."""


def _to_phone_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


PhoneText = Annotated[str | None, BeforeValidator(_to_phone_text)]


def _to_currency(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    code = value.replace("\x00", "").strip().upper()
    if not _CURRENCY_RE.fullmatch(code):
        raise ValueError(f"a currency must be a 3-letter ISO 4217 code, not {_show(value)}")
    return code


CurrencyCode = Annotated[str, BeforeValidator(_to_currency)]


def _lower_word(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _whole_number(value: Any) -> Any:
    """2 and 2.0 are the same quantity; 2.5 (or true) is not a quantity."""
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return value


Quantity = Annotated[int, BeforeValidator(_whole_number), Strict(), Field(ge=0, le=MAX_QUANTITY)]


# --- dates -----------------------------------------------------------------------------------


def _aware_datetime(value: Any) -> dt.datetime:
    """ISO 8601 with a UTC offset, returned in UTC; a naive time is rejected."""
    if not isinstance(value, str):
        raise ValueError(f"a date-time must be an ISO 8601 string, not {_show(value)}")
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 date-time: {_show(value)}") from exc
    if moment.utcoffset() is None:
        raise ValueError(f"date-time has no UTC offset: {_show(value)}")
    return _to_utc(moment, value)


def _to_utc(moment: dt.datetime, original: Any) -> dt.datetime:
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError as exc:
        raise ValueError(f"date-time out of range: {_show(original)}") from exc


def _wall_clock(pattern: re.Pattern[str], fmt: str, label: str) -> BeforeValidator:
    def parse(value: Any) -> dt.datetime:
        if not isinstance(value, str) or not pattern.fullmatch(value.strip()):
            raise ValueError(f"date must be {label}, not {_show(value)}")
        try:
            return dt.datetime.strptime(value.strip(), fmt)
        except ValueError as exc:
            raise ValueError(f"not a real date: {_show(value)}") from exc

    return BeforeValidator(parse)


def _api_date(value: Any) -> dt.date | dt.datetime:
    """An ISO date (studio-local) or date-time (with an offset, else studio-local)."""
    if not isinstance(value, str):
        raise ValueError(f"date must be an ISO 8601 date or date-time string, not {_show(value)}")
    text = value.strip()
    try:
        if _ISO_DATE_RE.fullmatch(text):
            return dt.date.fromisoformat(text)
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 date or date-time: {_show(value)}") from exc
    return moment if moment.utcoffset() is None else _to_utc(moment, value)


def load_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ``ValueError`` when there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown time zone: {_show(name)}") from exc


def _zone_name(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    name = value.strip()
    if not name:
        return None
    load_zone(name)
    return name


AwareDateTime = Annotated[dt.datetime, BeforeValidator(_aware_datetime)]
PictimeDateTime = Annotated[
    dt.datetime, _wall_clock(_PICTIME_DATE_RE, "%Y-%m-%d %H:%M:%S", "'YYYY-MM-DD HH:MM:SS'")
]
UkDateTime = Annotated[dt.datetime, _wall_clock(_TIF_DATE_RE, "%d/%m/%Y %H:%M", "'DD/MM/YYYY HH:MM'")]
ApiDate = Annotated[dt.datetime | dt.date, BeforeValidator(_api_date)]
ZoneName = Annotated[str | None, BeforeValidator(_zone_name)]


# --- models ----------------------------------------------------------------------------------


class _Raw(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ShootProofAddress(_Raw):
    name: str | None = None
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    state: str | None = None
    postalCode: str | None = None
    country: str | None = None


class ShootProofItem(_Raw):
    id: IdStr | None = None
    photoId: IdStr | None = None
    name: str
    quantity: Quantity
    unitPrice: Money | None = None
    total: Money | None = None


class ShootProofOrder(_Raw):
    id: IdStr
    orderNumber: IdStr | None = None
    brandId: IdStr
    eventId: IdStr | None = None
    eventName: str | None = None
    created: AwareDateTime
    updated: AwareDateTime | None = None
    status: Annotated[
        Literal["open", "completed", "canceled", "cancelled", "deleted"], BeforeValidator(_lower_word)
    ]
    paymentStatus: Annotated[
        Literal["paid", "unpaid", "pending", "refunded", "partially_refunded"] | None,
        BeforeValidator(_lower_word),
    ] = None
    customerName: str | None = None
    customerEmail: str | None = None
    customerPhone: PhoneText = None
    billingAddress: ShootProofAddress | None = None
    currencyCode: CurrencyCode
    subtotal: Money | None = None
    adjustment: Money | None = None
    shipping: Money | None = None
    tax: Money | None = None
    total: Money
    items: Annotated[list[ShootProofItem], Field(max_length=MAX_ITEMS)]
    refundedAmount: Money | None = None


class PictimeClient(_Raw):
    firstName: str | None = None
    lastName: str | None = None
    email: str | None = None
    phone: PhoneText = None


class PictimeLine(_Raw):
    productName: str
    qty: Quantity
    price: Money | None = None
    lineTotal: Money | None = None


class PictimeOrder(_Raw):
    orderId: IdStr
    projectId: IdStr | None = None
    projectName: str | None = None
    orderDate: PictimeDateTime
    timeZone: ZoneName = None
    client: PictimeClient | None = None
    currency: CurrencyCode
    lines: Annotated[list[PictimeLine], Field(max_length=MAX_ITEMS)]
    shippingFee: Money | None = None
    discount: Money | None = None
    tax: Money | None = None
    orderTotal: Money
    paymentCollector: Annotated[Literal["pictime", "photographer"] | None, BeforeValidator(_lower_word)] = (
        None
    )
    photographerPayout: Money | None = None
    status: Annotated[
        Literal["paid", "pending_payment", "cancelled", "canceled", "refunded", "partially_refunded"] | None,
        BeforeValidator(_lower_word),
    ] = None


class TheImageFileCustomer(_Raw):
    name: str | None = None
    email: str | None = None
    telephone: PhoneText = None


class TheImageFileItem(_Raw):
    description: str
    quantity: Quantity


class TheImageFileOrder(_Raw):
    orderRef: IdStr
    albumName: str | None = None
    albumCode: IdStr | None = None
    orderDate: UkDateTime
    customer: TheImageFileCustomer | None = None
    items: Annotated[list[TheImageFileItem], Field(max_length=MAX_ITEMS)]
    orderTotal: Money
    currency: CurrencyCode | None = None


class ApiItem(_Raw):
    description: str
    quantity: Quantity
    price: Money


class ApiSale(_Raw):
    source: IdStr
    reference: IdStr
    date: ApiDate
    client_name: str | None = None
    client_email: str | None = None
    client_phone: PhoneText = None
    items: Annotated[list[ApiItem], Field(max_length=MAX_ITEMS)] | None = None
    total: Money | None = None
    currency: CurrencyCode | None = None

    @model_validator(mode="after")
    def _items_or_total(self) -> ApiSale:
        if not self.items and self.total is None:
            raise ValueError("an api sale needs `items` or `total`")
        return self


RAW_MODELS: dict[str, type[BaseModel]] = {
    "shootproof": ShootProofOrder,
    "pictime": PictimeOrder,
    "theimagefile": TheImageFileOrder,
    "api": ApiSale,
}

ITEMS_FIELD: dict[str, str] = {
    "shootproof": "items",
    "pictime": "lines",
    "theimagefile": "items",
    "api": "items",
}


def validate_raw(source: str, payload: Any) -> BaseModel:
    """The payload as the source's raw model; ``ValidationError`` when it breaks the contract."""
    model = RAW_MODELS.get(source) if isinstance(source, str) else None
    if model is None:
        raise ValueError(f"unknown source: {_show(source)}")
    return model.model_validate(payload)


def api_order_id(platform: str, reference: str) -> str:
    """``"<platform>:<reference>"``, unambiguous: a ``:`` (or ``%``) in the platform name is escaped, so
    platform "A:B" with reference "C" never collides with platform "A" and reference "B:C"."""
    return f"{platform.replace('%', '%25').replace(':', '%3A')}:{reference}"


def external_order_id(source: str, model: BaseModel) -> str:
    """The order's id within its source; for `api` sales ``"<platform>:<reference>"``."""
    if source == "shootproof" and isinstance(model, ShootProofOrder):
        return model.id
    if source == "pictime" and isinstance(model, PictimeOrder):
        return model.orderId
    if source == "theimagefile" and isinstance(model, TheImageFileOrder):
        return model.orderRef
    if source == "api" and isinstance(model, ApiSale):
        return api_order_id(model.source, model.reference)
    raise ValueError(f"{type(model).__name__} is not a raw {_show(source)} order")

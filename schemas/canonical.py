"""The canonical order: what the normaliser produces and the importer consumes (versioned)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal[1] = 1

Source = Literal["shootproof", "pictime", "theimagefile", "api"]
SOURCES: tuple[Source, ...] = ("shootproof", "pictime", "theimagefile", "api")
SaleStatus = Literal["paid", "pending_payment", "partially_refunded", "refunded", "cancelled"]
ItemKind = Literal["product", "order_total"]


_CENTS = Decimal("0.01")


def _to_cents_when_exact(value: Decimal) -> Decimal:
    """Write money with (at least) two decimals: 150.0 -> 150.00; 0.125 stays 0.125 (never rounded)."""
    if not value.is_finite():
        raise ValueError("money must be a finite number")
    try:
        cents = value.quantize(_CENTS)
    except InvalidOperation:
        return value
    return cents if cents == value else value


Money = Annotated[Decimal, AfterValidator(_to_cents_when_exact)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StudioContext(_Model):
    """What the normaliser needs to know of the studio (carried in the raw envelope)."""

    studio_id: str
    timezone: str = Field(description="IANA time zone, e.g. Europe/London")
    country: str = Field(description="ISO 3166 alpha-2 region, default for phone numbers")
    currency: str = Field(description="ISO 4217, default when an order has none")


class CanonicalCustomer(_Model):
    name: str | None = Field(None, description="The whole name as the source gave it")
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = Field(None, description="Trimmed and case-folded")
    phone: str | None = Field(None, description="E.164 when the number is possible, else None")
    phone_raw: str | None = Field(None, description="The phone as the source gave it")


class CanonicalItem(_Model):
    description: str
    quantity: int
    unit_price: Money | None = None
    line_total: Money | None = None
    kind: ItemKind = "product"


class CanonicalOrder(_Model):
    """One gallery order in the one shape the importer understands."""

    schema_version: Literal[1] = SCHEMA_VERSION
    studio_id: str
    source: Source
    external_order_id: str = Field(description="For `api`: '<platform>:<reference>'")
    order_number: str | None = None
    placed_at: AwareDatetime = Field(description="The moment the order was placed, UTC")
    order_date: date = Field(description="Studio-local calendar date of placed_at")
    source_updated_at: AwareDatetime | None = None
    received_at: AwareDatetime = Field(description="When the connector received this version")
    status: SaleStatus
    currency: str
    subtotal: Money | None = None
    shipping: Money | None = None
    discount: Money | None = None
    tax: Money | None = None
    total: Money
    refunded: Money = Decimal("0.00")
    payout: Money | None = Field(None, description="Photographer's payout when the gallery collected")
    payment_collector: str | None = None
    gallery_ref: str | None = Field(None, description="Gallery id as a string (eventId, projectId, albumCode)")
    gallery_name: str | None = None
    customer: CanonicalCustomer
    items: list[CanonicalItem]

    @property
    def version_time(self) -> datetime:
        """Source time of this version: its update time, else its creation time."""
        return self.source_updated_at or self.placed_at

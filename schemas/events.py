"""Events galleryflow publishes: committed sales (for reporting) and dead letters (for operators)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

from schemas.canonical import SaleStatus, Source

Stage = Literal["connector", "normaliser", "importer"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: Money in events: a plain decimal string ("0.0000001", never "1E-7"), exact.
EventMoney = Annotated[Decimal, PlainSerializer(lambda value: format(value, "f"), return_type=str)]


class SaleCommittedItem(_Model):
    description: str
    quantity: int
    unit_price: EventMoney | None
    line_total: EventMoney | None


class SaleCommitted(_Model):
    """Published on `<app>.sales.committed` after the sale is committed in PostgreSQL."""

    event_version: Literal[1] = 1
    event: Literal["created", "updated"]
    studio_id: str
    source: Source
    external_order_id: str
    sale_id: int
    order_date: date
    placed_at: AwareDatetime
    status: SaleStatus
    currency: str
    total: EventMoney
    refunded: EventMoney
    payout: EventMoney | None
    contact_id: str
    shoot_id: str | None
    items: list[SaleCommittedItem]
    committed_at: AwareDatetime


class DeadLetter(_Model):
    """Published on `<app>.deadletter`: the original message, where it was, and why it failed."""

    envelope_version: Literal[1] = 1
    id: str = Field(description="Unique id of this dead letter (for `dlq replay --id`)")
    stage: Stage
    error: str = Field(description="Why: a readable reason")
    error_type: str
    topic: str | None
    partition: int | None
    offset: int | None
    key: str | None
    studio_id: str | None = None
    source: str | None = None
    original: Any = Field(description="The original message value (JSON when it parsed, else text)")
    original_truncated: bool = Field(
        False,
        description="True when the original was too large to carry: `original` is then the start of it "
        "as text, and the whole message stays at topic/partition/offset",
    )
    replay_of: str | None = Field(
        None, description="Id of the dead letter whose replay failed again as this one"
    )
    time: AwareDatetime

"""Property tests of the raw models: any JSON value is a valid order or a readable ValidationError.

Extends tests/unit/test_raw_models.py (example-based) with hypothesis: every source's model gets
any JSON value, objects shaped like its orders, and demo samples with parts broken. Whatever passes
validation holds exact money, string ids and plain quantities, and survives the raw topic's encoding
(connectors.base.encode, then wire.loads) unchanged.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from connectors.base import encode
from schemas import raw, wire
from schemas.canonical import StudioContext
from schemas.envelope import RawOrderEnvelope
from tests.unit.fuzzing import SOURCES, payloads

#: Fuzz cases per test function and source below.
RAW_MODEL_EXAMPLES = 250
FUZZ = settings(max_examples=RAW_MODEL_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
STUDIO = StudioContext(studio_id="fuzz", timezone="Europe/London", country="GB", currency="GBP")


def _validate(source: str, payload: Any) -> BaseModel | None:
    """The model, or None for a ValidationError; any other exception fails the test."""
    try:
        return raw.validate_raw(source, payload)
    except ValidationError as exc:
        text = str(exc)
        assert text and exc.errors(), "a rejection must say why"
        return None


def _money_fields(model: BaseModel) -> list[Any]:
    found = []
    for name, value in model:
        if isinstance(value, BaseModel):
            found.extend(_money_fields(value))
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, BaseModel):
                    found.extend(_money_fields(item))
        elif name in _MONEY_NAMES:
            found.append(value)
    return found


_MONEY_NAMES = {
    "subtotal", "adjustment", "shipping", "tax", "total", "refundedAmount", "unitPrice", "price",
    "lineTotal", "shippingFee", "discount", "orderTotal", "photographerPayout",
}


def _check_valid(source: str, model: BaseModel) -> None:
    for amount in _money_fields(model):
        assert amount is None or (isinstance(amount, Decimal) and amount.is_finite() and amount >= 0)
        assert amount is None or not amount.is_signed()  # no negative zero either
    order_id = raw.external_order_id(source, model)
    assert isinstance(order_id, str) and order_id.strip() and "\x00" not in order_id
    for item in getattr(model, raw.ITEMS_FIELD[source]) or []:
        quantity = item.qty if source == "pictime" else item.quantity
        assert type(quantity) is int and 0 <= quantity <= raw.MAX_QUANTITY


@pytest.mark.parametrize("source", SOURCES)
@FUZZ
@given(data=st.data())
def test_any_json_is_a_valid_order_or_a_validation_error(source: str, data: st.DataObject) -> None:
    payload = data.draw(payloads(source))
    model = _validate(source, payload)
    if model is not None:
        _check_valid(source, model)


@pytest.mark.parametrize("source", SOURCES)
@FUZZ
@given(data=st.data())
def test_a_valid_order_survives_the_raw_topic_unchanged(source: str, data: st.DataObject) -> None:
    """What the connector publishes parses back to the same payload and the same model."""
    payload = data.draw(payloads(source))
    model = _validate(source, payload)
    if model is None:
        return
    try:
        wire.dumps(payload)
    except (wire.WireError, UnicodeEncodeError):
        return  # floats and lone surrogates cannot go on the wire (the connector dead-letters them)
    envelope = RawOrderEnvelope(
        studio=STUDIO, source=source, external_order_id=raw.external_order_id(source, model),
        received_at=dt.datetime(2026, 12, 3, tzinfo=dt.UTC), connector_version="fuzz", payload=payload,
    )
    _key, value = encode(envelope)
    back = wire.loads(value)
    assert back["payload"] == payload
    assert wire.dumps(back) == value  # what the normaliser reads is byte for byte what was written
    assert raw.validate_raw(source, back["payload"]) == model
    assert RawOrderEnvelope.model_validate(back) == envelope


@FUZZ
@given(st.one_of(st.text(max_size=12), st.integers(), st.none(), st.just("shootproof ")), st.data())
def test_unknown_sources_are_a_value_error(source: Any, data: st.DataObject) -> None:
    payload = data.draw(payloads("api"))
    if source in SOURCES:
        return
    with pytest.raises(ValueError, match="unknown source"):
        raw.validate_raw(source, payload)

"""Property tests of the normaliser stage: any bytes on the raw topic become a canonical order or a
dead letter that the broker will take, never an exception; money round-trips exactly.

tests/unit/test_normaliser.py already fuzzes ``normalise`` with any JSON payload in a valid envelope;
these go one level out (NormaliseStage._normalise_one: bytes in, bytes or DeadLetter out, with the
dead letter encoded as it is published) and one level in (the importer's parse of the canonical
topic, dead letters of any message).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pipeline import deadletter
from pipeline.importer import _parse
from pipeline.messages import Incoming
from pipeline.normalise_stage import NormaliseStage
from pipeline.normaliser import normalise
from pipeline.settings import Settings
from schemas import raw, wire
from schemas.canonical import CanonicalOrder
from schemas.envelope import ENVELOPE_OVERHEAD_BYTES, RawOrderEnvelope
from schemas.events import DeadLetter
from tests.unit.fuzzing import SOURCES, json_values, payloads, samples, texts, tricky_text

#: Fuzz cases per test function below.
STAGE_EXAMPLES = 500
MONEY_EXAMPLES = 300
FUZZ = settings(max_examples=STAGE_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

SETTINGS = Settings(app_id="fuzz", max_order_bytes=64 * 1024)
STAGE = NormaliseStage(SETTINGS, producer=None)  # type: ignore[arg-type]  # _normalise_one never sends
STUDIO = {"studio_id": "harbour-light", "timezone": "Europe/London", "country": "GB", "currency": "GBP"}
RECEIVED = "2026-12-03T12:00:00+00:00"
REPLAY = (deadletter.DEAD_LETTER_ID_HEADER, b"0123abcd")


def to_json_bytes(value: Any) -> bytes:
    """Exact JSON when possible; else ASCII JSON (a lone surrogate becomes its \\ud800 escape)."""
    try:
        return wire.dumps(value)
    except (wire.WireError, UnicodeEncodeError):
        return json.dumps(value, ensure_ascii=True, default=str).encode("ascii")


def _order_id(source: str, payload: Any) -> Any:
    try:
        return raw.external_order_id(source, raw.validate_raw(source, payload))
    except Exception:
        return "unknown"


@st.composite
def envelopes(draw: st.DrawFn) -> Any:
    """A raw envelope as a connector would write it around any payload, sometimes broken itself."""
    source = draw(st.sampled_from(SOURCES))
    payload = draw(payloads(source))
    envelope: dict[str, Any] = {
        "envelope_version": 1,
        "studio": dict(STUDIO),
        "source": source,
        "external_order_id": _order_id(source, payload),
        "received_at": RECEIVED,
        "connector_version": "fuzz",
        "payload": payload,
    }
    if draw(st.integers(0, 3)) == 0:  # break the envelope too
        keys = [*envelope, "studio.timezone", "studio.country", "studio.currency", "studio.studio_id"]
        where = draw(st.sampled_from(keys))
        junk = draw(st.one_of(tricky_text, texts, json_values()))
        target, name = (envelope["studio"], where[7:]) if where.startswith("studio.") else (envelope, where)
        if draw(st.booleans()):
            target.pop(name, None)
        else:
            target[name] = junk
    return envelope


raw_messages = st.one_of(
    st.binary(max_size=200),
    st.builds(to_json_bytes, json_values()),
    st.builds(to_json_bytes, envelopes()),
    st.builds(to_json_bytes, envelopes()),
)


def check_stage_result(message: Incoming, result: bytes | DeadLetter) -> None:
    if isinstance(result, DeadLetter):
        encoded = deadletter.encode(result)  # exactly what deadletter.publish sends
        assert len(encoded) <= deadletter.MAX_DEAD_LETTER_BYTES
        letter = json.loads(encoded)
        assert letter["stage"] == "normaliser" and letter["error"]
        assert (letter["topic"], letter["partition"], letter["offset"]) == (
            message.topic, message.partition, message.offset,
        )
        assert letter["replay_of"] == (REPLAY[1].decode() if REPLAY in message.headers else None)
        return
    assert isinstance(result, bytes)
    order = CanonicalOrder.model_validate_json(result)  # the importer can read it
    envelope = RawOrderEnvelope.model_validate(wire.loads(message.value or b""))
    assert order == normalise(envelope)
    assert order.studio_id == envelope.studio.studio_id and order.source == envelope.source


@FUZZ
@given(raw_messages, st.booleans())
@example(b'"\\ud800"', False)  # found: a lone surrogate in the original made the dead letter unencodable
@example(b"[" * 100_000, True)  # nesting past the recursion limit
@example(b'{"envelope_version": 1, "studio": {"studio_id": "\\ud800"}}', False)
def test_any_bytes_give_a_canonical_order_or_a_publishable_dead_letter(value: bytes, replay: bool) -> None:
    message = Incoming("t.orders.raw", 2, 41, b"harbour-light|api|x", value, (REPLAY,) if replay else ())
    check_stage_result(message, STAGE._normalise_one(message))


def _valid_envelope(source: str, index: int, **payload_changes: Any) -> dict[str, Any]:
    payload = {**samples(source)[index], **payload_changes}
    return {
        "envelope_version": 1, "studio": dict(STUDIO), "source": source,
        "external_order_id": _order_id(source, payload), "received_at": RECEIVED,
        "connector_version": "fuzz", "payload": payload,
    }


@pytest.mark.parametrize(
    "name",
    ["\ud800", "Ann \udfff Lee", "\x00", "🎉 \u202e\u0301"],
)
def test_bad_text_in_a_real_order_gives_an_order_or_a_publishable_dead_letter(name: str) -> None:
    """Found by the fuzzer: ``"customerName": "\\ud800"`` (a JSON escape) crashed the dead letter."""
    value = to_json_bytes(_valid_envelope("shootproof", 0, customerName=name))
    message = Incoming("t.orders.raw", 0, 7, b"k", value)
    result = STAGE._normalise_one(message)
    check_stage_result(message, result)
    if "\ud800" <= max(name) <= "\udfff":
        assert isinstance(result, DeadLetter) and "surrogate" in result.error


def test_a_raw_order_over_the_size_limit_is_a_short_dead_letter() -> None:
    limit = SETTINGS.max_order_bytes + ENVELOPE_OVERHEAD_BYTES
    note = "x" * (limit + 10)
    value = to_json_bytes(_valid_envelope("api", 2, note=note))
    message = Incoming("t.orders.raw", 1, 9, b"harbour-light|api|Square:SQ-90017", value)
    result = STAGE._normalise_one(message)
    assert isinstance(result, DeadLetter)
    assert result.error == f"raw order too large: {len(value)} bytes (at most {limit})"
    assert (result.studio_id, result.source) == ("harbour-light", "api")
    assert result.original_truncated is False  # 64 KiB fits in a dead letter whole
    big = Settings(app_id="fuzz", max_order_bytes=8 * 1024 * 1024)
    huge = to_json_bytes(_valid_envelope("api", 2, customer_note="y" * 2_000_000, client_name="z" * 3000))
    letter = NormaliseStage(big, None)._normalise_one(Incoming("t", 1, 9, b"k", huge))  # type: ignore[arg-type]
    assert isinstance(letter, DeadLetter) and "too long" in letter.error
    assert letter.original_truncated and len(deadletter.encode(letter)) < deadletter.MAX_DEAD_LETTER_BYTES


# --- money -----------------------------------------------------------------------------------

amounts = st.one_of(
    st.decimals(min_value=0, max_value=Decimal("999999999999.99"), places=2),
    st.builds(lambda c, p: Decimal(c).scaleb(-p), st.integers(0, 10**12), st.integers(0, 8)),
    st.builds(lambda c, e: Decimal(c).scaleb(e), st.integers(0, 10**6), st.integers(1, 5)),  # 1.5E+3
)


def money_forms(amount: Decimal) -> st.SearchStrategy[Any]:
    """The ways a source may write ``amount``: JSON number, plain string, £ and thousands separators."""
    forms: list[Any] = [amount, str(amount), f" {amount} "]
    if amount == amount.to_integral_value() and amount.as_tuple().exponent == 0:
        forms.append(int(amount))
    if amount.as_tuple().exponent <= 0:  # type: ignore[operator]
        forms += [f"£{amount:,}", f"{amount:,}", f"${amount}"]
    return st.sampled_from(forms)


@settings(max_examples=MONEY_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(amounts.flatmap(lambda a: st.tuples(st.just(a), money_forms(a))), st.integers(0, 1000), st.data())
def test_money_round_trips_exactly_from_raw_to_the_canonical_topic(
    case: tuple[Decimal, Any], quantity: int, data: st.DataObject
) -> None:
    amount, written = case
    price = data.draw(amounts.flatmap(lambda a: st.tuples(st.just(a), money_forms(a))))
    envelope = _valid_envelope(
        "api", 2, total=written, items=[{"description": "Print", "quantity": quantity, "price": price[1]}]
    )
    on_the_wire = wire.dumps(envelope)  # what the connector publishes
    result = STAGE._normalise_one(Incoming("t", 0, 0, b"k", on_the_wire))
    assert isinstance(result, bytes), result
    order = CanonicalOrder.model_validate_json(result)  # what the importer reads
    assert order.total == amount
    assert order.total.as_tuple().exponent >= -8  # never rounded, never float noise
    (item,) = order.items
    assert item.unit_price == price[0]
    assert item.line_total == quantity * price[0]  # exact, no float
    assert CanonicalOrder.model_validate_json(order.model_dump_json()) == order


# --- the importer's side and the dead letters -------------------------------------------------

canonical_values = st.builds(
    lambda order, nul: order.model_dump_json().replace('"Print"', '"Pr\\u0000int\\u0000"' if nul else '"Print"'),
    st.builds(
        lambda total: normalise(RawOrderEnvelope.model_validate(_valid_envelope("api", 2, total=str(total)))),
        amounts,
    ),
    st.booleans(),
)


@FUZZ
@given(st.one_of(st.binary(max_size=300), st.builds(to_json_bytes, json_values()),
                 canonical_values.map(str.encode)))
def test_the_importer_parse_gives_an_order_or_a_validation_error(value: bytes) -> None:
    """Step 1 of the importer catches ValidationError only: nothing else may come out."""
    try:
        order = _parse(value)
    except ValidationError:
        return
    assert "\x00" not in order.model_dump_json().replace("\\u0000", "\x00")  # PostgreSQL refuses NUL


@FUZZ
@given(st.binary(max_size=300) | st.builds(to_json_bytes, json_values()), st.binary(max_size=40) | st.none(),
       st.lists(st.tuples(st.sampled_from([deadletter.DEAD_LETTER_ID_HEADER, "other"]), st.binary(max_size=20)),
                max_size=3), st.sampled_from(["connector", "normaliser", "importer"]), texts)
def test_any_message_has_a_publishable_dead_letter(
    value: bytes, key: bytes | None, headers: list[tuple[str, bytes]], stage: Any, reason: str
) -> None:
    message = Incoming("t", 0, 1, key, value, tuple(headers))
    letter = deadletter.build(message, stage, reason, studio_id=reason, source=reason)
    encoded = deadletter.encode(letter)
    assert len(encoded) <= deadletter.MAX_DEAD_LETTER_BYTES
    back = DeadLetter.model_validate_json(encoded)
    assert back.id == letter.id and back.stage == stage
    replayed = [v for k, v in headers if k == deadletter.DEAD_LETTER_ID_HEADER]
    valid = bool(replayed) and re.fullmatch(rb"[A-Za-z0-9_-]{1,100}", replayed[-1]) is not None
    assert back.replay_of == (replayed[-1].decode() if valid else None)
    if isinstance(letter.original, dict | list) and not letter.original_truncated:
        assert wire.loads(wire.dumps(letter.original)) == wire.loads(value)  # numbers stay numbers


def test_dead_letter_numbers_stay_numbers() -> None:
    """Was: the dead letter wrote 95.95 as "95.95" (pydantic's Decimal), so a replay changed the bytes."""
    value = b'{"total":95.95,"items":[{"quantity":2,"price":1.50}],"big":1E+400}'
    letter = deadletter.build(Incoming("t", 0, 1, b"k", value), "normaliser", "why")
    assert wire.dumps(json.loads(deadletter.encode(letter), parse_float=Decimal)["original"]) == value


def test_received_at_survives() -> None:
    """Same bytes in, same canonical out (replay keeps received_at)."""
    envelope = _valid_envelope("pictime", 0)
    value = wire.dumps(envelope)
    first = STAGE._normalise_one(Incoming("t", 0, 0, b"k", value))
    again = STAGE._normalise_one(Incoming("t", 0, 5, b"k", value))
    assert isinstance(first, bytes) and first == again
    assert CanonicalOrder.model_validate_json(first).received_at == dt.datetime(2026, 12, 3, 12, tzinfo=dt.UTC)

"""Hypothesis strategies shared by the fuzz tests: any JSON value, shaped like what a source sends.

A value is what ``schemas.wire.loads`` can hand a model (no floats from the wire, but a float may
come from other callers, so some are mixed in), with text that PostgreSQL refuses (NUL), lone
surrogates (a ``"\\ud800"`` escape parses to one), emoji, right-to-left and combining marks.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from schemas import raw, wire

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"
SOURCES = ("shootproof", "pictime", "theimagefile", "api")

#: Every field name a source's contract knows (top level and items), so fuzzed objects reach deep
#: validation instead of stopping at "field required".
FIELDS: dict[str, list[str]] = {source: list(model.model_fields) for source, model in raw.RAW_MODELS.items()}
ITEM_FIELDS: dict[str, list[str]] = {
    "shootproof": list(raw.ShootProofItem.model_fields),
    "pictime": list(raw.PictimeLine.model_fields),
    "theimagefile": list(raw.TheImageFileItem.model_fields),
    "api": list(raw.ApiItem.model_fields),
}
PERSON_FIELDS = sorted(
    set(raw.PictimeClient.model_fields) | set(raw.TheImageFileCustomer.model_fields)
    | set(raw.ShootProofAddress.model_fields)
)

texts = st.text(st.characters(categories=["L", "M", "N", "P", "S", "Zs", "Cc", "Cf", "Cs"]), max_size=24)
tricky_text = st.sampled_from([
    "", " ", "\x00", "a\x00b", "\ud800", "🎉📷", "שרה כהן", "مريم", "Zoë", "Zoe\u0308", "e\u0301\u0301",
    "\u202eevil", "£1,234.50", "1,234.50", "$18", "-0", "+5", "1e400", "1E-9", ".5", "5.", "NaN", "∞",
    "GBP", "gbp", "usd ", "XXXX", "Europe/London", "Mars/Base", "2026-03-29 01:30:00",
    "2026-02-30 10:00:00", "30/11/2026 18:05", "31/02/2026 18:05", "2026-11-28T21:14:05Z",
    "2026-11-28T21:14:05", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "2026-11-27",
    "paid", "refunded", "partially_refunded", "canceled", "CANCELLED", "open", "deleted", "pictime",
    "photographer", "ann@example.com", " ANN@Example.COM ", "07700 900123", "+44 7700 900123",
])
decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.decimals(min_value=0, max_value=Decimal("1e13"), places=2),
    st.builds(lambda c, e: Decimal(c).scaleb(e), st.integers(-(10**15), 10**15), st.integers(-12, 20)),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**25), max_value=10**25),
    st.integers(min_value=-3, max_value=2000),
    decimals,
    st.floats(allow_nan=True),
    texts,
    tricky_text,
)


def json_values(keys: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Any]:
    """Any JSON value; object keys drawn from ``keys`` (plus random text)."""
    key_strategy = st.one_of(keys, st.text(max_size=8)) if keys is not None else st.text(max_size=8)
    return st.recursive(
        json_scalars,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(key_strategy, children, max_size=6),
        max_leaves=25,
    )


def _shaped_object(source: str) -> st.SearchStrategy[dict[str, Any]]:
    """An object with the source's field names (any subset), each holding any JSON value, items too."""
    any_value = json_values(st.sampled_from(PERSON_FIELDS + ITEM_FIELDS[source]))
    item = st.fixed_dictionaries({}, optional=dict.fromkeys(ITEM_FIELDS[source], any_value))
    person = st.fixed_dictionaries({}, optional=dict.fromkeys(PERSON_FIELDS, any_value))
    items_field = raw.ITEMS_FIELD[source]
    value_for = {items_field: st.one_of(st.lists(item, max_size=4), any_value)}
    for name in ("client", "customer", "billingAddress"):
        value_for[name] = st.one_of(person, any_value)
    return st.fixed_dictionaries({}, optional={name: value_for.get(name, any_value) for name in FIELDS[source]})


def samples(source: str) -> list[dict[str, Any]]:
    data = wire.loads((DEMO / f"{source}.json").read_bytes())
    assert isinstance(data, list)
    return data


ALL_SAMPLES = [(source, index) for source in SOURCES for index in range(len(samples(source)))]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            paths.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            paths.extend(_paths(child, (*prefix, index)))
    return paths


@st.composite
def mutated_sample(draw: st.DrawFn, source: str) -> dict[str, Any]:
    """A demo sample of ``source`` with one to four parts replaced by any JSON value or removed."""
    index = draw(st.sampled_from([i for s, i in ALL_SAMPLES if s == source]))
    payload = copy.deepcopy(samples(source)[index])
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(payload)
        *parents, last = draw(st.sampled_from(paths))
        target = payload
        for part in parents:
            target = target[part]
        if draw(st.booleans()) and isinstance(target, dict):
            del target[last]
        else:
            target[last] = draw(st.one_of(json_scalars, json_values()))
    return payload


def payloads(source: str) -> st.SearchStrategy[Any]:
    """Any JSON value, an object shaped like the source's order, or a broken sample of it."""
    return st.one_of(json_values(), _shaped_object(source), mutated_sample(source), sample_with_text(source))


TEXT_FIELDS = {
    "customerName", "customerEmail", "customerPhone", "eventName", "name", "productName", "description",
    "albumName", "projectName", "client_name", "client_email", "client_phone", "firstName", "lastName",
    "email", "phone", "telephone", "orderNumber",
}


@st.composite
def sample_with_text(draw: st.DrawFn, source: str) -> dict[str, Any]:
    """A valid demo sample whose free-text fields hold any text (NUL, emoji, RTL, surrogates...)."""
    index = draw(st.sampled_from([i for s, i in ALL_SAMPLES if s == source]))
    payload = copy.deepcopy(samples(source)[index])
    for path in _paths(payload):
        *parents, last = path
        if last in TEXT_FIELDS and draw(st.booleans()):
            target = payload
            for part in parents:
                target = target[part]
            target[last] = draw(st.one_of(texts, tricky_text))
    return payload

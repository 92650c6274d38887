"""SQL of the importer: apply one canonical order inside the caller's transaction (rules 1-8)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
import structlog

from pipeline.matching import (
    Contact,
    ContactDecision,
    ContactIndex,
    Shoot,
    decide_contact,
    decide_shoot,
    decision_record,
    name_suggestions,
)
from schemas.canonical import CanonicalOrder
from schemas.events import SaleCommitted, SaleCommittedItem

log = structlog.get_logger(__name__)

OutcomeKind = Literal["created", "updated", "unchanged", "stale", "inbox", "inbox_unchanged"]


@dataclass(frozen=True, slots=True)
class Studio:
    studio_id: str
    auto_create_contacts: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    sale_id: int | None = None


#: How many of a studio's contacts are compared by name for inbox suggestions.
MAX_SUGGESTION_POOL = 50_000


class UnknownStudioError(ValueError):
    """The order names a studio this database does not know."""


def content_hash(order: CanonicalOrder) -> str:
    """Hash of what the order says (not when we received it): equal hash means nothing changed."""
    body = order.model_dump_json(exclude={"received_at"})
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


async def load_studios(conn: asyncpg.Connection, studio_ids: set[str]) -> dict[str, Studio]:
    rows = await conn.fetch(
        "SELECT studio_id, auto_create_contacts FROM studios WHERE studio_id = ANY($1::text[])",
        list(studio_ids),
    )
    return {r["studio_id"]: Studio(r["studio_id"], r["auto_create_contacts"]) for r in rows}


async def apply_order(
    conn: asyncpg.Connection, studio: Studio, order: CanonicalOrder
) -> tuple[Outcome, str | None]:
    """Write one order (sale, items, contact, or inbox entry). Returns the outcome and, for a
    created or updated sale, the SaleCommitted event JSON to publish after the commit."""
    digest = content_hash(order)
    existing = await conn.fetchrow(
        """SELECT id, contact_id, shoot_id, received_at, source_updated_at, content_hash, seen_hashes
             FROM sales WHERE studio_id = $1 AND source = $2 AND external_order_id = $3
             FOR UPDATE""",
        studio.studio_id, order.source, order.external_order_id,
    )
    if existing is not None:
        return await _update_sale(conn, studio, order, digest, existing)

    inbox = await conn.fetchrow(
        """SELECT content_hash, seen_hashes, received_at, source_updated_at FROM inbox
            WHERE studio_id = $1 AND source = $2 AND external_order_id = $3 FOR UPDATE""",
        studio.studio_id, order.source, order.external_order_id,
    )
    verdict = version_verdict(order, digest, inbox) if inbox is not None else "newer"
    if verdict == "stale":
        _log_stale(order)
        return Outcome("stale"), None

    decision = decide_contact(order, await _contact_index(conn, studio.studio_id, order),
                              studio.auto_create_contacts)
    if decision.contact_id is None:
        if verdict == "unchanged":  # delivered again and still nobody to link it to
            return Outcome("inbox_unchanged"), None
        await _put_in_inbox(conn, studio, order, digest, decision)
        return Outcome("inbox"), None

    if decision.create is not None:
        await _create_contact(conn, studio.studio_id, decision.create)
    shoots = await _shoots_for(conn, studio.studio_id, order, decision.contact_id)
    shoot = decide_shoot(order, decision.contact_id, shoots)
    record = decision_record(decision, shoot)
    sale_id = await conn.fetchval(
        """INSERT INTO sales (studio_id, source, external_order_id, order_number, contact_id, shoot_id,
                placed_at, order_date, status, currency, subtotal, shipping, discount, tax, total,
                refunded, payout, payment_collector, gallery_ref, gallery_name, version_time,
                received_at, content_hash, decision, source_updated_at, seen_hashes)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                   $19, $20, $21, $22, $23, $24::jsonb, $25, ARRAY[$23])
           RETURNING id""",
        studio.studio_id, order.source, order.external_order_id, order.order_number,
        decision.contact_id, shoot.shoot_id, order.placed_at, order.order_date, order.status,
        order.currency, order.subtotal, order.shipping, order.discount, order.tax, order.total,
        order.refunded, order.payout, order.payment_collector, order.gallery_ref, order.gallery_name,
        order.version_time, order.received_at, digest, record, order.source_updated_at,
    )
    await _replace_items(conn, studio.studio_id, sale_id, order)
    if inbox is not None:
        await conn.execute(
            "DELETE FROM inbox WHERE studio_id = $1 AND source = $2 AND external_order_id = $3",
            studio.studio_id, order.source, order.external_order_id,
        )
    event = _event("created", sale_id, order, decision.contact_id, shoot.shoot_id)
    return Outcome("created", sale_id), event


async def _update_sale(
    conn: asyncpg.Connection,
    studio: Studio,
    order: CanonicalOrder,
    digest: str,
    existing: asyncpg.Record,
) -> tuple[Outcome, str | None]:
    """Rule 8: same order again changes nothing; a newer version updates the one sale."""
    verdict = version_verdict(order, digest, existing)
    if verdict == "unchanged":
        return Outcome("unchanged", existing["id"]), None
    if verdict == "stale":
        _log_stale(order)
        return Outcome("stale", existing["id"]), None
    sale_id = existing["id"]
    await conn.execute(
        """UPDATE sales SET order_number = $2, placed_at = $3, order_date = $4, status = $5,
                  currency = $6, subtotal = $7, shipping = $8, discount = $9, tax = $10, total = $11,
                  refunded = $12, payout = $13, payment_collector = $14, gallery_ref = $15,
                  gallery_name = $16, version_time = $17, received_at = $18, content_hash = $19,
                  source_updated_at = $20, seen_hashes = array_append(seen_hashes, $19),
                  updated_at = now()
            WHERE id = $1""",
        sale_id, order.order_number, order.placed_at, order.order_date, order.status, order.currency,
        order.subtotal, order.shipping, order.discount, order.tax, order.total, order.refunded,
        order.payout, order.payment_collector, order.gallery_ref, order.gallery_name,
        order.version_time, order.received_at, digest, order.source_updated_at,
    )
    await _replace_items(conn, studio.studio_id, sale_id, order)
    event = _event("updated", sale_id, order, existing["contact_id"], existing["shoot_id"])
    return Outcome("updated", sale_id), event


def version_verdict(
    order: CanonicalOrder, digest: str, stored: asyncpg.Record | dict[str, Any]
) -> Literal["unchanged", "stale", "newer"]:
    """Is this delivery the version already stored, an older one, or a newer one?

    - the same content: unchanged (rule 8);
    - content applied before (a webhook retry or a replay of an older version): stale, so an older
      version arriving late never overwrites a newer one, even from sources that send no update time;
    - both versions carry the source's update time: the later one wins;
    - else the one received later wins (a replay keeps its original received time).
    """
    if stored["content_hash"] == digest:
        return "unchanged"
    if digest in (stored["seen_hashes"] or ()):
        return "stale"
    ours, theirs = order.source_updated_at, stored["source_updated_at"]
    if ours is not None and theirs is not None and ours != theirs:
        return "newer" if ours > theirs else "stale"
    return "stale" if order.received_at < stored["received_at"] else "newer"


def _log_stale(order: CanonicalOrder) -> None:
    log.info(
        "older version ignored", studio_id=order.studio_id, source=order.source,
        external_order_id=order.external_order_id,
    )


async def _contact_index(conn: asyncpg.Connection, studio_id: str, order: CanonicalOrder) -> ContactIndex:
    email, phone = order.customer.email, order.customer.phone
    if not email and not phone:
        return ContactIndex()
    rows = await conn.fetch(
        f"""SELECT {_CONTACT_COLUMNS} FROM contacts
             WHERE studio_id = $1 AND (email_norm = $2 OR phone_e164 = $3)""",
        studio_id, email, phone,
    )
    return ContactIndex.of(_contact(r) for r in rows)


_CONTACT_COLUMNS = "contact_id, first_name, last_name, full_name, email_norm, phone_e164"


def _contact(row: asyncpg.Record) -> Contact:
    return Contact(
        contact_id=row["contact_id"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        full_name=row["full_name"],
        email_norm=row["email_norm"],
        phone_e164=row["phone_e164"],
    )


async def _create_contact(conn: asyncpg.Connection, studio_id: str, contact: Contact) -> None:
    await conn.execute(
        """INSERT INTO contacts (studio_id, contact_id, first_name, last_name, full_name, email,
                                 email_norm, phone, phone_e164, created_by_import)
           VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $7, true)
           ON CONFLICT (studio_id, contact_id) DO NOTHING""",
        studio_id, contact.contact_id, contact.first_name, contact.last_name, contact.full_name,
        contact.email_norm, contact.phone_e164,
    )


async def _shoots_for(
    conn: asyncpg.Connection, studio_id: str, order: CanonicalOrder, contact_id: str
) -> list[Shoot]:
    rows = await conn.fetch(
        """SELECT shoot_id, contact_id, shoot_date, status, gallery_source, gallery_ref FROM shoots
            WHERE studio_id = $1
              AND (contact_id = $2 OR (gallery_source = $3 AND gallery_ref = $4))""",
        studio_id, contact_id, order.source, order.gallery_ref,
    )
    return [Shoot(**dict(r)) for r in rows]


async def _put_in_inbox(
    conn: asyncpg.Connection,
    studio: Studio,
    order: CanonicalOrder,
    digest: str,
    decision: ContactDecision,
) -> None:
    known = {c.contact_id for c in decision.candidates}
    suggestions = name_suggestions(
        order.customer.name, await _contacts_named_like(conn, studio.studio_id, order), exclude=known
    )
    candidates = list(decision.candidates) + list(suggestions)
    details = {
        r["contact_id"]: r
        for r in await conn.fetch(
            """SELECT contact_id, full_name, first_name, last_name, email FROM contacts
                WHERE studio_id = $1 AND contact_id = ANY($2::text[])""",
            studio.studio_id, [c.contact_id for c in candidates],
        )
    }
    rendered = []
    for candidate in candidates:
        row = details.get(candidate.contact_id)
        name = None
        if row is not None:
            name = row["full_name"] or " ".join(p for p in (row["first_name"], row["last_name"]) if p)
        rendered.append({
            "contact_id": candidate.contact_id,
            "name": name,
            "email": row["email"] if row is not None else None,
            "why": candidate.why,
        })
    record = decision_record(decision, None)
    record["candidates"] = [c.as_json() for c in candidates]
    await conn.execute(
        """INSERT INTO inbox (studio_id, source, external_order_id, reason, candidates, decision,
                              canonical_order, version_time, received_at, content_hash,
                              source_updated_at, seen_hashes)
           VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7::jsonb, $8, $9, $10, $11, ARRAY[$10])
           ON CONFLICT (studio_id, source, external_order_id) DO UPDATE
              SET reason = EXCLUDED.reason, candidates = EXCLUDED.candidates,
                  decision = EXCLUDED.decision, canonical_order = EXCLUDED.canonical_order,
                  version_time = EXCLUDED.version_time, received_at = EXCLUDED.received_at,
                  content_hash = EXCLUDED.content_hash,
                  source_updated_at = EXCLUDED.source_updated_at,
                  seen_hashes = array_append(inbox.seen_hashes, EXCLUDED.content_hash),
                  updated_at = now()""",
        studio.studio_id, order.source, order.external_order_id, decision.inbox_reason,
        rendered, record, order.model_dump(mode="json"),
        order.version_time, order.received_at, digest, order.source_updated_at,
    )


async def _contacts_named_like(
    conn: asyncpg.Connection, studio_id: str, order: CanonicalOrder
) -> list[Contact]:
    """The studio's named contacts, for close-name suggestions (only for orders bound for the inbox)."""
    if not (order.customer.name or "").strip():
        return []
    rows = await conn.fetch(
        f"""SELECT {_CONTACT_COLUMNS} FROM contacts
             WHERE studio_id = $1 AND coalesce(full_name, first_name, last_name) IS NOT NULL
             LIMIT {MAX_SUGGESTION_POOL}""",
        studio_id,
    )
    return [_contact(r) for r in rows]


async def _replace_items(
    conn: asyncpg.Connection, studio_id: str, sale_id: int, order: CanonicalOrder
) -> None:
    await conn.execute("DELETE FROM sale_items WHERE sale_id = $1", sale_id)
    await conn.executemany(
        """INSERT INTO sale_items (sale_id, studio_id, position, description, quantity, unit_price,
                                   line_total, kind)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        [
            (sale_id, studio_id, position, item.description, item.quantity, item.unit_price,
             item.line_total, item.kind)
            for position, item in enumerate(order.items, start=1)
        ],
    )


def _event(
    kind: Literal["created", "updated"],
    sale_id: int,
    order: CanonicalOrder,
    contact_id: str,
    shoot_id: str | None,
) -> str:
    return SaleCommitted(
        event=kind,
        studio_id=order.studio_id,
        source=order.source,
        external_order_id=order.external_order_id,
        sale_id=sale_id,
        order_date=order.order_date,
        placed_at=order.placed_at,
        status=order.status,
        currency=order.currency,
        total=order.total,
        refunded=order.refunded,
        payout=order.payout,
        contact_id=contact_id,
        shoot_id=shoot_id,
        items=[
            SaleCommittedItem(
                description=i.description, quantity=i.quantity, unit_price=i.unit_price,
                line_total=i.line_total,
            )
            for i in order.items
        ],
        committed_at=datetime.now(UTC),
    ).model_dump_json()

"""Read models for people and tools: a studio's sales and inbox, as JSON-ready dicts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg


def money(value: Decimal | None) -> str | None:
    """A plain decimal string, never scientific notation (1E-7 is written 0.0000001)."""
    return None if value is None else format(value, "f")


async def list_sales(conn: asyncpg.Connection, studio_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT s.id, s.source, s.external_order_id, s.order_number, s.order_date, s.placed_at,
                  s.status, s.currency, s.subtotal, s.shipping, s.discount, s.tax, s.total,
                  s.refunded, s.payout, s.payment_collector, s.shoot_id, s.gallery_ref, s.decision,
                  c.contact_id, c.full_name, c.first_name, c.last_name, c.email, c.created_by_import
             FROM sales s
             JOIN contacts c ON c.studio_id = s.studio_id AND c.contact_id = s.contact_id
            WHERE s.studio_id = $1
            ORDER BY s.order_date, s.source, s.external_order_id""",
        studio_id,
    )
    items: dict[int, list[dict[str, Any]]] = {}
    for item in await conn.fetch(
        """SELECT i.sale_id, i.description, i.quantity, i.unit_price, i.line_total, i.kind
             FROM sale_items i WHERE i.studio_id = $1 ORDER BY i.sale_id, i.position""",
        studio_id,
    ):
        items.setdefault(item["sale_id"], []).append({
            "description": item["description"],
            "quantity": item["quantity"],
            "unit_price": money(item["unit_price"]),
            "line_total": money(item["line_total"]),
            "kind": item["kind"],
        })
    return [
        {
            "source": r["source"],
            "external_order_id": r["external_order_id"],
            "order_number": r["order_number"],
            "order_date": r["order_date"].isoformat(),
            "placed_at": r["placed_at"].isoformat(),
            "status": r["status"],
            "currency": r["currency"],
            "subtotal": money(r["subtotal"]),
            "shipping": money(r["shipping"]),
            "discount": money(r["discount"]),
            "tax": money(r["tax"]),
            "total": money(r["total"]),
            "refunded": money(r["refunded"]),
            "payout": money(r["payout"]),
            "payment_collector": r["payment_collector"],
            "contact": {
                "contact_id": r["contact_id"],
                "name": r["full_name"] or " ".join(p for p in (r["first_name"], r["last_name"]) if p),
                "email": r["email"],
                "created_by_import": r["created_by_import"],
            },
            "shoot_id": r["shoot_id"],
            "gallery_ref": r["gallery_ref"],
            "items": items.get(r["id"], []),
            "match_decision": r["decision"],
        }
        for r in rows
    ]


async def list_inbox(conn: asyncpg.Connection, studio_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT source, external_order_id, reason, candidates, decision, created_at, updated_at
             FROM inbox WHERE studio_id = $1 ORDER BY created_at, source, external_order_id""",
        studio_id,
    )
    return [
        {
            "source": r["source"],
            "external_order_id": r["external_order_id"],
            "reason": r["reason"],
            "candidates": r["candidates"],
            "match_decision": r["decision"],
            "received": r["created_at"].isoformat(),
        }
        for r in rows
    ]


async def count_contacts_created(conn: asyncpg.Connection, studio_id: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM contacts WHERE studio_id = $1 AND created_by_import", studio_id
        )
    )

"""Rich tables for people reading the terminal."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table


def sales_table(sales: list[dict[str, Any]]) -> Table:
    table = Table(title=f"Sales ({len(sales)})")
    for column in ("source", "order", "date", "status", "total", "refunded", "contact", "shoot", "items", "rule"):
        table.add_column(column, justify="right" if column in ("total", "refunded", "items") else "left")
    for s in sales:
        contact = s["contact"]["contact_id"] + (" (new)" if s["contact"]["created_by_import"] else "")
        table.add_row(
            s["source"], s["external_order_id"], s["order_date"], s["status"],
            f"{s['total']} {s['currency']}", s["refunded"], contact, s["shoot_id"] or "-",
            str(len(s["items"])), (s.get("match_decision") or {}).get("contact_rule", ""),
        )
    return table


def inbox_table(inbox: list[dict[str, Any]]) -> Table:
    table = Table(title=f"Inbox ({len(inbox)})")
    for column in ("source", "order", "reason", "candidates"):
        table.add_column(column)
    for entry in inbox:
        candidates = ", ".join(f"{c['contact_id']} ({c['why']})" for c in entry["candidates"]) or "-"
        table.add_row(entry["source"], entry["external_order_id"], entry["reason"], candidates)
    return table


def dlq_table(letters: list[dict[str, Any]]) -> Table:
    table = Table(title=f"Dead letters ({len(letters)})")
    for column in ("time", "id", "status", "stage", "source", "studio", "reason", "original"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        original = json.dumps(letter.get("original"), default=str)
        table.add_row(
            str(letter.get("time", ""))[:19], str(letter.get("id", "")), str(letter.get("status", "-")),
            str(letter.get("stage", "")), str(letter.get("source") or "-"),
            str(letter.get("studio_id") or "-"), str(letter.get("error", ""))[:200],
            original[:80] + ("…" if len(original) > 80 else ""),
        )
    return table

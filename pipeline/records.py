"""The studio's own records: contacts and shoots from CSV (re-import updates by id)."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import asyncpg

from pipeline.normaliser import normalise_email, normalise_phone

CONTACT_COLUMNS = ("contact_id", "first_name", "last_name", "email", "phone", "postcode")
SHOOT_COLUMNS = ("shoot_id", "contact_id", "title", "shoot_date", "status", "gallery_source", "gallery_ref")
SHOOT_STATUSES = {"confirmed", "provisional", "cancelled"}
#: Gallery sources a shoot can map to, by their spelling with case, spaces and dashes ignored.
GALLERY_SOURCES = {"shootproof": "shootproof", "pictime": "pictime", "theimagefile": "theimagefile"}


def gallery_source(value: str | None, where: str) -> str | None:
    """"Pic-Time", "pictime" and "PIC TIME" are all `pictime`; an unknown gallery is an error, not a
    mapping that silently never matches."""
    if not value:
        return None
    folded = "".join(ch for ch in value.casefold() if ch.isalnum())
    if folded not in GALLERY_SOURCES:
        raise CsvError(f"{where}: gallery_source must be one of {', '.join(sorted(GALLERY_SOURCES))}")
    return GALLERY_SOURCES[folded]


class CsvError(ValueError):
    """The CSV does not have the documented shape; the message names the line."""


def _rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str | None]]:
    text = path.read_text(encoding="utf-8-sig").replace("\x00", "")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in columns if c not in (reader.fieldnames or [])]
    if missing:
        raise CsvError(f"{path.name}: missing column(s) {', '.join(missing)}")
    rows = []
    for line, row in enumerate(reader, start=2):
        cleaned = {c: (row.get(c) or "").strip() or None for c in columns}
        if not cleaned[columns[0]]:
            raise CsvError(f"{path.name} line {line}: {columns[0]} is empty")
        cleaned["_line"] = str(line)
        rows.append(cleaned)
    return rows


async def import_contacts(conn: asyncpg.Connection, studio_id: str, path: Path) -> int:
    country = await conn.fetchval("SELECT country FROM studios WHERE studio_id = $1", studio_id)
    if country is None:
        raise CsvError(f"unknown studio {studio_id!r}")
    records = []
    for row in _rows(path, CONTACT_COLUMNS):
        first, last = row["first_name"], row["last_name"]
        full = " ".join(p for p in (first, last) if p) or None
        records.append((
            studio_id, row["contact_id"], first, last, full, row["email"], normalise_email(row["email"]),
            row["phone"], normalise_phone(row["phone"], country), row["postcode"],
        ))
    async with conn.transaction():
        await conn.executemany(
            """INSERT INTO contacts (studio_id, contact_id, first_name, last_name, full_name, email,
                                     email_norm, phone, phone_e164, postcode)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
               ON CONFLICT (studio_id, contact_id) DO UPDATE
                  SET first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
                      full_name = EXCLUDED.full_name, email = EXCLUDED.email,
                      email_norm = EXCLUDED.email_norm, phone = EXCLUDED.phone,
                      phone_e164 = EXCLUDED.phone_e164, postcode = EXCLUDED.postcode,
                      updated_at = now()""",
            records,
        )
    return len(records)


async def import_shoots(conn: asyncpg.Connection, studio_id: str, path: Path) -> int:
    if await conn.fetchval("SELECT 1 FROM studios WHERE studio_id = $1", studio_id) is None:
        raise CsvError(f"unknown studio {studio_id!r}")
    records = []
    for row in _rows(path, SHOOT_COLUMNS):
        where = f"{path.name} line {row['_line']}"
        status = (row["status"] or "").lower()
        if status not in SHOOT_STATUSES:
            raise CsvError(f"{where}: status must be one of {', '.join(sorted(SHOOT_STATUSES))}")
        try:
            shoot_date = date.fromisoformat(row["shoot_date"]) if row["shoot_date"] else None
        except ValueError as exc:
            raise CsvError(f"{where}: shoot_date is not an ISO date") from exc
        source = gallery_source(row["gallery_source"], where)
        records.append((
            studio_id, row["shoot_id"], row["contact_id"], row["title"], shoot_date, status, source,
            row["gallery_ref"] if source else None,
        ))
    async with conn.transaction():
        await conn.executemany(
            """INSERT INTO shoots (studio_id, shoot_id, contact_id, title, shoot_date, status,
                                   gallery_source, gallery_ref)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
               ON CONFLICT (studio_id, shoot_id) DO UPDATE
                  SET contact_id = EXCLUDED.contact_id, title = EXCLUDED.title,
                      shoot_date = EXCLUDED.shoot_date, status = EXCLUDED.status,
                      gallery_source = EXCLUDED.gallery_source, gallery_ref = EXCLUDED.gallery_ref,
                      updated_at = now()""",
            records,
        )
    return len(records)

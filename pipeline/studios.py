"""Studios and their API keys (random, shown once, stored as a hash)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zoneinfo
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, field_validator

KEY_PREFIX_CHARS = 12


class StudioSpec(BaseModel):
    """The fields of `demo/studio.json`."""

    model_config = ConfigDict(extra="ignore")

    studio_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)
    timezone: str
    country: str = Field(pattern=r"^[A-Za-z]{2}$")
    currency: str = Field(pattern=r"^[A-Za-z]{3}$")
    auto_create_contacts: bool = True

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("country", "currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


def hash_key(key: str) -> str:
    """Keys are 256-bit random tokens, so one SHA-256 is a safe one-way hash for them."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return "gf_" + secrets.token_urlsafe(32)


async def add_studio(conn: asyncpg.Connection, spec: StudioSpec) -> dict[str, Any]:
    """Create or update a studio. A new studio gets its first API key (returned once)."""
    async with conn.transaction():
        created = await conn.fetchval(
            """INSERT INTO studios (studio_id, name, timezone, country, currency, auto_create_contacts)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (studio_id) DO UPDATE
                  SET name = EXCLUDED.name, timezone = EXCLUDED.timezone, country = EXCLUDED.country,
                      currency = EXCLUDED.currency,
                      auto_create_contacts = EXCLUDED.auto_create_contacts, updated_at = now()
               RETURNING (xmax = 0)""",
            spec.studio_id, spec.name, spec.timezone, spec.country, spec.currency,
            spec.auto_create_contacts,
        )
        key = await issue_key(conn, spec.studio_id) if created else None
    return {"studio_id": spec.studio_id, "api_key": key, "created": bool(created)}


async def issue_key(conn: asyncpg.Connection, studio_id: str) -> str:
    key = new_key()
    await conn.execute(
        "INSERT INTO api_keys (studio_id, key_prefix, key_hash) VALUES ($1, $2, $3)",
        studio_id, key[:KEY_PREFIX_CHARS], hash_key(key),
    )
    return key


#: A revoke prefix must name one key, not "every key" ("gf_" is the start of all of them).
MIN_REVOKE_PREFIX = 8


async def revoke_key(conn: asyncpg.Connection, studio_id: str, prefix: str) -> int:
    """Revoke the studio's keys that start with ``prefix`` (at least 8 characters, taken literally)."""
    if len(prefix) < MIN_REVOKE_PREFIX:
        raise ValueError(f"give at least {MIN_REVOKE_PREFIX} characters of the key to revoke")
    result = await conn.execute(
        """UPDATE api_keys SET revoked_at = now()
            WHERE studio_id = $1 AND revoked_at IS NULL
              AND left(key_prefix, length($2)) = left($2, length(key_prefix))""",
        studio_id, prefix,
    )
    return int(result.split()[-1])


async def studio_for_key(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> str | None:
    """The studio a key belongs to, or None (unknown or revoked)."""
    if not key.startswith("gf_") or len(key) < KEY_PREFIX_CHARS + 8:
        return None
    row = await conn.fetchrow(
        "SELECT studio_id, key_hash FROM api_keys WHERE key_prefix = $1 AND revoked_at IS NULL",
        key[:KEY_PREFIX_CHARS],
    )
    if row is None or not hmac.compare_digest(row["key_hash"], hash_key(key)):
        return None
    return str(row["studio_id"])

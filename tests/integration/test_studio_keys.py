"""API keys: one studio each, stored hashed, revoked one at a time."""

from __future__ import annotations

import asyncpg
import pytest

from pipeline.studios import StudioSpec, add_studio, issue_key, revoke_key, studio_for_key

pytestmark = pytest.mark.integration


async def test_revoking_needs_a_real_prefix_and_revokes_only_that_key(db: asyncpg.Connection) -> None:
    first = (await add_studio(db, StudioSpec(studio_id="a", name="A", timezone="Europe/London",
                                             country="GB", currency="GBP")))["api_key"]
    second = await issue_key(db, "a")
    for too_short in ("", "gf_", "%", first[:7]):
        with pytest.raises(ValueError, match="at least 8 characters"):
            await revoke_key(db, "a", too_short)
    assert await revoke_key(db, "a", "gf_%%%%%%%%") == 0  # a pattern is not a prefix
    assert await revoke_key(db, "a", first[:10]) == 1
    assert await studio_for_key(db, first) is None
    assert await studio_for_key(db, second) == "a"
    stored = await db.fetch("SELECT key_hash, key_prefix FROM api_keys")
    assert all(first not in (r["key_hash"], r["key_prefix"]) for r in stored)

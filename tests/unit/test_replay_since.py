"""`galleryflow replay --from`: ISO dates and date-times (UTC when no offset) or an age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pipeline.replay import parse_since

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28", datetime(2026, 11, 28, tzinfo=UTC)),
        ("2026-11-28T21:14:05", datetime(2026, 11, 28, 21, 14, 5, tzinfo=UTC)),
        ("2026-11-28T21:14:05Z", datetime(2026, 11, 28, 21, 14, 5, tzinfo=UTC)),
        ("2026-11-28T21:14:05+01:00", datetime(2026, 11, 28, 21, 14, 5, tzinfo=timezone(timedelta(hours=1)))),
        ("30m", NOW - timedelta(minutes=30)),
        ("12h", NOW - timedelta(hours=12)),
        (" 7d ", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(weeks=2)),
        ("45s", NOW - timedelta(seconds=45)),
    ],
)
def test_parse_since(text: str, expected: datetime) -> None:
    assert parse_since(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "7 days", "2026-13-01", "-3d", "3y"])
def test_parse_since_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="--from"):
        parse_since(text, now=NOW)

"""The one UTC timestamp format: ISO 8601 ending in Z."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from streamproc.timestamps import epoch_iso, utc_iso


def test_a_moment_in_another_zone_is_written_in_utc_with_a_z() -> None:
    """03:00:00.123456 at +02:00 is 01:00:00Z, or 01:00:00.123Z to the millisecond."""
    moment = datetime(2026, 11, 26, 3, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert utc_iso(moment) == "2026-11-26T01:00:00Z"
    assert utc_iso(moment, "milliseconds") == "2026-11-26T01:00:00.123Z"


def test_epoch_seconds_are_written_the_same_way() -> None:
    """1764126000 epoch seconds is 2025-11-26T03:00:00Z."""
    assert epoch_iso(1_764_126_000.0) == "2025-11-26T03:00:00Z"

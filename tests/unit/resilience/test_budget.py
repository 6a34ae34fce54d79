"""Budget days: the local calendar day, and the first instant of the next one, in any zone."""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.resilience import budget
from streamproc.resilience.budget import budget_day, next_reset

FAST = settings(max_examples=200, deadline=None)
DAY_S = 24 * 3600.0


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> float:
    return datetime(year, month, day, hour, minute, sec, tzinfo=UTC).timestamp()


def at(zone: str, year: int, month: int, day: int, hour: int = 0) -> float:
    return datetime(year, month, day, hour, tzinfo=ZoneInfo(zone)).timestamp()


NOON = utc(2024, 6, 1, 12)
MIDNIGHT = utc(2024, 6, 2)

# Zones with awkward days: DST at midnight (Santiago, Havana, Tehran until 2022), 30-minute
# DST (Lord Howe), a skipped calendar day (Apia, 2011-12-30), fractional offsets (Kathmandu).
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",
    "America/Havana",
    "Asia/Tehran",
    "Australia/Lord_Howe",
    "Pacific/Apia",
    "Asia/Kathmandu",
]


# --- budget days ---------------------------------------------------------------------------


def test_budget_day_is_the_local_calendar_day() -> None:
    """23:30 UTC is already tomorrow in Berlin."""
    t = utc(2024, 6, 1, 23, 30)
    assert budget_day(t) == "2024-06-01"
    assert budget_day(t, "Europe/Berlin") == "2024-06-02"


def test_next_reset_is_the_next_midnight() -> None:
    """Noon resets at the following midnight; midnight itself belongs to the new day."""
    assert next_reset(NOON) == MIDNIGHT
    assert budget_day(MIDNIGHT) == "2024-06-02"
    assert next_reset(MIDNIGHT) == MIDNIGHT + DAY_S


@pytest.mark.parametrize(
    ("day", "hours"),
    [((2024, 3, 10), 23), ((2024, 11, 3), 25), ((2024, 6, 1), 24)],
)
def test_next_reset_follows_dst_in_new_york(day: tuple[int, int, int], hours: int) -> None:
    """Local days are 23 or 25 hours long across DST changes; the reset is local midnight."""
    start = at("America/New_York", *day)
    assert next_reset(start, "America/New_York") - start == hours * 3600


def test_next_reset_over_a_skipped_day() -> None:
    """Samoa skipped 2011-12-30: the day after the 29th starts at the 31st's midnight."""
    t = at("Pacific/Apia", 2011, 12, 29, 12)
    reset = next_reset(t, "Pacific/Apia")
    assert budget_day(reset - 0.001, "Pacific/Apia") == "2011-12-29"
    assert budget_day(reset, "Pacific/Apia") == "2011-12-31"


def _gap_zone(transition: int) -> ZoneInfo:
    """A zone at UTC+0 that jumps to UTC+1 at ``transition``: local 23:30 becomes 00:30."""
    names = b"AAA\0BBB\0"
    tzif = b"TZif" + b"\0" * 16 + struct.pack(">6l", 0, 0, 0, 1, 2, len(names))
    tzif += struct.pack(">l", transition) + bytes([1])
    tzif += struct.pack(">lBB", 0, 0, 0) + struct.pack(">lBB", 3600, 1, 4) + names
    return ZoneInfo.from_file(io.BytesIO(tzif), key="Test/MidnightGap")


def test_next_reset_when_midnight_falls_inside_a_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the clock jumps from 23:30 to 00:30, the new day starts at the jump, not after it."""
    jump = int(utc(2030, 3, 10, 23, 30))
    zone = _gap_zone(jump)
    real = budget._zone
    monkeypatch.setattr(budget, "_zone", lambda tz: zone if tz == "Test/MidnightGap" else real(tz))
    reset = next_reset(jump - 5 * 3600, "Test/MidnightGap")
    assert reset == jump
    assert budget_day(reset, "Test/MidnightGap") == "2030-03-11"
    assert budget_day(reset - 1, "Test/MidnightGap") == "2030-03-10"


@FAST
@given(t=st.floats(0, 2**31 - 2 * DAY_S), zone=st.sampled_from(ZONES))
def test_next_reset_is_the_first_instant_of_a_later_day(t: float, zone: str) -> None:
    """next_reset(t) is in a later budget day and the instant just before it is still today."""
    reset = next_reset(t, zone)
    assert reset > t
    assert budget_day(reset, zone) > budget_day(t, zone)
    assert budget_day(reset - 0.001, zone) == budget_day(t, zone)
    assert reset - t <= 25 * 3600


def test_an_unknown_zone_is_a_value_error() -> None:
    """A misspelt zone fails loudly, not as a silent UTC."""
    with pytest.raises(ValueError, match="unknown time zone"):
        budget_day(0.0, "Mars/Olympus")

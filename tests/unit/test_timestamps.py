"""The one UTC timestamp format: ISO 8601 ending in Z; the one clock, scaled for the bench."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from streamproc.resilience.budget import budget_day
from streamproc.settings import Settings
from streamproc.timestamps import Clock, epoch_iso, utc_iso


def test_a_moment_in_another_zone_is_written_in_utc_with_a_z() -> None:
    """03:00:00.123456 at +02:00 is 01:00:00Z, or 01:00:00.123Z to the millisecond."""
    moment = datetime(2026, 11, 26, 3, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert utc_iso(moment) == "2026-11-26T01:00:00Z"
    assert utc_iso(moment, "milliseconds") == "2026-11-26T01:00:00.123Z"


def test_epoch_seconds_are_written_the_same_way() -> None:
    """1764126000 epoch seconds is 2025-11-26T03:00:00Z."""
    assert epoch_iso(1_764_126_000.0) == "2025-11-26T03:00:00Z"


def test_the_default_clock_is_the_wall_clock() -> None:
    """Unscaled, the clock reads the wall time it is given, unchanged, and sleeps as long."""
    clock = Clock()
    assert not clock.scaled
    assert clock.at(1_764_126_000.25) == 1_764_126_000.25
    assert clock.wall_span(60.0) == 60.0


def test_a_scaled_clock_passes_a_budget_day_in_minutes() -> None:
    """At rate 72 from midnight, 20 wall minutes are a whole budget day, and a 60 s step
    is slept as 0.83 wall seconds; every process given the spec reads the same time."""
    midnight = 1_764_115_200.0  # 2025-11-26T00:00:00Z
    wall = 1_900_000_000.0
    clock = Clock.parse(f"72@{midnight}@{wall}")
    assert clock.scaled
    assert clock.at(wall) == midnight
    assert clock.at(wall + 600) == midnight + 12 * 3600
    assert budget_day(clock.at(wall + 1199.9)) == "2025-11-26"
    assert budget_day(clock.at(wall + 1200.1)) == "2025-11-27"
    assert clock.wall_span(60.0) == pytest.approx(60 / 72)
    assert Clock.parse(f"72@{midnight}@{wall}").at(wall + 1) == clock.at(wall + 1)


@pytest.mark.parametrize("spec", ["72", "0@1@2", "-3@1@2", "x@1@2", "72@1@2@3"])
def test_a_malformed_bench_clock_is_refused_at_start(spec: str) -> None:
    """A bench_clock that is not RATE@ORIGIN_S@WALL_ORIGIN_S with a positive rate is a
    settings error, not a clock that runs backwards."""
    with pytest.raises(ValidationError, match="bench_clock"):
        Settings(bench_clock=spec, _env_file=None)

"""Breaker transitions, budget burn and throughput as the console keeps them."""

from __future__ import annotations

from datetime import UTC, datetime

from streamproc.console.history import BreakerLog, BurnSeries, ThroughputMeter, day_bounds


def _rec(state: str, at: float, owner: str = "a") -> dict[str, object]:
    return {"state": state, "at": at, "owner": owner, "failures": []}


def test_breaker_log_keeps_changes_in_order_and_ignores_repeats_and_stale() -> None:
    """A record of the same state, an older one or a tombstone is no transition."""
    log = BreakerLog()
    log.on_record(_rec("closed", 10))
    log.on_record(_rec("open", 20, "b"))
    log.on_record(_rec("open", 25))  # the same state again (failures changed)
    log.on_record(_rec("closed", 15))  # older than what was seen
    log.on_record(None)
    log.on_record({"state": "closed"})  # no time: unreadable
    log.on_record(_rec("closed", 30))
    got = [(t.at, t.from_state, t.to_state, t.owner) for t in log.since(0)]
    assert got == [
        (10, None, "closed", "a"),
        (20, "closed", "open", "b"),
        (30, "open", "closed", "a"),
    ]
    assert [t.at for t in log.since(20)] == [20, 30]


def test_burn_series_coalesces_a_slot_and_restarts_on_a_new_day() -> None:
    """Samples in one 2-s slot keep the newest; a new day starts over; time never goes back."""
    burn = BurnSeries()
    burn.add(100.0, "2026-11-30", 1, 0)
    burn.add(100.5, "2026-11-30", 3, 2)
    burn.add(103.0, "2026-11-30", 5, 0)
    burn.add(99.0, "2026-11-30", 9, 9)  # before the last point: dropped
    assert [(p.at, p.spent, p.reserved) for p in burn.points] == [(100.5, 3, 2), (103.0, 5, 0)]
    burn.add(200.0, "2026-12-01", 0, 0)
    assert (burn.day, len(burn.points)) == ("2026-12-01", 1)


def test_burn_series_stays_bounded() -> None:
    """A day of samples every 2 s keeps at most 720 points, the newest among them."""
    burn = BurnSeries()
    for i in range(43_200):
        burn.add(i * 2.0, "d", i, 0)
    assert len(burn.points) <= 720
    assert burn.points[-1].spent == 43_199
    assert [p.at for p in burn.points] == sorted(p.at for p in burn.points)


def test_throughput_is_the_slope_over_the_window() -> None:
    """Records per second between the oldest sample in the window and the newest."""
    meter = ThroughputMeter(window_s=60)
    assert meter.rate() is None
    meter.add(0, 100)
    assert meter.rate() is None
    meter.add(10, 150)
    assert meter.rate() == 5.0
    for t in range(20, 200, 10):
        meter.add(t, 150 + (t - 10) * 2)
    assert meter.rate() == 2.0
    assert meter.window_s <= 70
    meter.add(200, 0)  # offsets went back: start again
    assert meter.rate() is None


def test_day_bounds_in_the_budget_zone() -> None:
    """A budget day starts at local midnight; across a DST change it is 23 or 25 hours."""
    start, end = day_bounds("2026-11-30", "UTC")
    assert datetime.fromtimestamp(start, UTC) == datetime(2026, 11, 30, tzinfo=UTC)
    assert end - start == 86_400
    start, end = day_bounds("2026-03-29", "Europe/Berlin")
    assert end - start == 23 * 3600

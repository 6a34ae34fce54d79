"""Budget days and the CreditLedger: atomic reservations, day roll-over, crash-safe restore."""

from __future__ import annotations

import io
import json
import struct
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from streamproc.resilience import budget
from streamproc.resilience.budget import (
    BudgetConfig,
    CreditLedger,
    budget_day,
    next_reset,
)
from streamproc.settings import Settings

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


def test_config_rejects_unknown_zone_and_negative_limit() -> None:
    """A misspelt zone or a negative limit fails at construction."""
    with pytest.raises(ValueError, match="time zone"):
        BudgetConfig(500, "Mars/Olympus")
    with pytest.raises(ValueError, match="daily_limit"):
        BudgetConfig(-1)


def test_config_from_settings() -> None:
    """The budget reads STREAMPROC_BUDGET_DAILY_CREDITS and _BUDGET_TIMEZONE."""
    config = BudgetConfig.from_settings(
        Settings(budget_daily_credits=600, budget_timezone="Europe/Berlin")
    )
    assert config == BudgetConfig(600, "Europe/Berlin")


# --- the ledger ------------------------------------------------------------------------------


def ledger(limit: int = 20, tz: str = "UTC") -> CreditLedger:
    return CreditLedger(BudgetConfig(limit, tz))


def test_reserve_grants_up_to_the_limit_exactly() -> None:
    """Reservations are granted while spent + reserved + amount <= limit, and not beyond."""
    books = ledger(18)
    assert books.reserve("a", 6, NOON) is not None
    assert books.reserve("b", 6, NOON) is not None
    assert books.reserve("c", 6, NOON) is not None
    assert books.remaining(NOON) == 0
    assert books.reserve("d", 6, NOON) is None
    assert books.reserve("e", 0, NOON) is not None
    assert books.reserved(NOON) == 18


def test_concurrent_reservations_cannot_overshoot() -> None:
    """Reference defect: 100 calls reserving at once get at most limit // amount grants."""
    books = ledger(500)
    grants = [books.reserve(f"lead-{i}", 6, NOON) for i in range(100)]
    assert sum(1 for g in grants if g is not None) == 500 // 6
    assert books.reserved(NOON) <= 500


def test_settle_charges_the_actual_amount() -> None:
    """Settling frees the reservation and adds the provider's actual charge to spent."""
    books = ledger(20)
    reservation = books.reserve("a", 6, NOON)
    assert reservation is not None
    assert reservation.day == "2024-06-01"
    assert books.settle("a", 4, NOON + 1)
    assert (books.spent(NOON), books.reserved(NOON), books.remaining(NOON)) == (4, 0, 16)


def test_settle_above_the_estimate_overshoots_by_at_most_the_difference() -> None:
    """An actual above the estimate can pass the limit, by (actual - estimate) at most."""
    books = ledger(12)
    books.reserve("a", 6, NOON)
    books.reserve("b", 6, NOON)
    assert books.settle("a", 9, NOON)
    assert books.spent(NOON) + books.reserved(NOON) == 12 + (9 - 6)
    assert books.remaining(NOON) == 0
    assert books.reserve("c", 0, NOON) is None


def test_release_frees_the_reservation() -> None:
    """A failed call's reservation is returned in full."""
    books = ledger(6)
    books.reserve("a", 6, NOON)
    assert books.release("a", NOON)
    assert books.remaining(NOON) == 6
    assert not books.release("a", NOON)
    assert not books.settle("a", 6, NOON)
    assert books.spent(NOON) == 0


def test_duplicate_and_negative_reservations_are_refused_loudly() -> None:
    """Reusing an outstanding id or a negative amount is a bug, not a budget refusal."""
    books = ledger()
    books.reserve("a", 6, NOON)
    with pytest.raises(ValueError, match="already outstanding"):
        books.reserve("a", 6, NOON)
    with pytest.raises(ValueError, match="amount"):
        books.reserve("b", -1, NOON)
    with pytest.raises(ValueError, match="actual"):
        books.settle("a", -1, NOON)


def test_exhaust_for_today_refuses_until_the_reset() -> None:
    """A 402 stops all reservations for the rest of the day; the next day starts fresh."""
    books = ledger(500)
    books.exhaust_for_today(NOON)
    assert books.exhausted(NOON)
    assert books.remaining(NOON) == 0
    assert books.reserve("a", 6, MIDNIGHT - 0.001) is None
    assert books.resets_at(NOON) == MIDNIGHT
    assert not books.exhausted(MIDNIGHT)
    assert books.reserve("a", 6, MIDNIGHT) is not None


def test_the_ledger_rolls_to_a_new_day() -> None:
    """After midnight spent, reserved and remaining start from zero."""
    books = ledger(20)
    books.reserve("a", 6, NOON)
    books.reserve("b", 6, NOON)
    books.settle("a", 6, NOON)
    assert books.day(MIDNIGHT) == "2024-06-02"
    assert (books.spent(MIDNIGHT), books.reserved(MIDNIGHT), books.remaining(MIDNIGHT)) == (
        0,
        0,
        20,
    )


def test_yesterdays_reservation_settling_today_is_not_charged_today() -> None:
    """A call reserved before midnight is charged to its own day, never to today's books."""
    books = ledger(20)
    books.reserve("late", 6, MIDNIGHT - 1)
    assert not books.settle("late", 6, MIDNIGHT + 1)
    assert books.spent(MIDNIGHT + 1) == 0
    assert books.remaining(MIDNIGHT + 1) == 20


def test_a_clock_stepping_back_over_midnight_does_not_roll_back() -> None:
    """The day only moves forward: a stale timestamp is booked on the current day."""
    books = ledger(20)
    books.reserve("a", 6, MIDNIGHT + 1)
    assert books.day(MIDNIGHT - 1) == "2024-06-02"
    assert books.reserved(MIDNIGHT - 1) == 6


def test_days_follow_the_configured_zone() -> None:
    """With Europe/Berlin, the books roll at 22:00 UTC in summer."""
    books = ledger(20, "Europe/Berlin")
    books.reserve("a", 6, utc(2024, 6, 1, 21, 59))
    assert books.reserved(utc(2024, 6, 1, 21, 59, 59)) == 6
    assert books.reserved(utc(2024, 6, 1, 22)) == 0


# --- snapshot / restore ----------------------------------------------------------------------


def roundtrip(books: CreditLedger, *, crashed: bool = True) -> CreditLedger:
    snapshot = json.loads(json.dumps(books.snapshot()))
    return CreditLedger.restore(books.config, snapshot, crashed=crashed)


def test_restore_after_a_crash_counts_in_flight_reservations_as_spent() -> None:
    """A crash over-counts the calls in flight at their reserved amount, never under-counts."""
    books = ledger(30)
    books.reserve("a", 6, NOON)
    books.settle("a", 5, NOON)
    books.reserve("b", 6, NOON)
    books.reserve("c", 6, NOON)
    restored = roundtrip(books)
    assert restored.spent(NOON) == 5 + 6 + 6
    assert restored.reserved(NOON) == 0
    assert restored.remaining(NOON) == 30 - 17
    assert not restored.settle("b", 1, NOON)


def test_orderly_restore_keeps_reservations_settleable() -> None:
    """With crashed=False outstanding reservations come back and can still be settled."""
    books = ledger(30)
    books.reserve("a", 6, NOON)
    restored = roundtrip(books, crashed=False)
    assert restored.reserved(NOON) == 6
    assert restored.settle("a", 2, NOON)
    assert restored.spent(NOON) == 2


def test_restore_keeps_the_exhausted_flag_and_the_day() -> None:
    """A 402 survives a restart for the rest of its day, and not beyond."""
    books = ledger(30)
    books.exhaust_for_today(NOON)
    restored = roundtrip(books)
    assert restored.reserve("a", 1, NOON + 60) is None
    assert restored.reserve("a", 1, MIDNIGHT) is not None


def test_restore_of_an_old_day_starts_the_current_day_fresh() -> None:
    """Books restored from yesterday roll over on the first call of today."""
    books = ledger(30)
    books.reserve("a", 6, NOON)
    restored = roundtrip(books)
    assert restored.spent(NOON + DAY_S) == 0


@pytest.mark.parametrize(
    "snapshot",
    [
        {},
        {"v": 2, "day": None, "spent": 0},
        {"v": 1, "day": "June", "spent": 0},
        {"v": 1, "day": "2024-06-01", "spent": -3},
        {"v": 1, "day": "2024-06-01", "spent": 0, "exhausted": "no"},
        {"v": 1, "day": "2024-06-01", "spent": 0, "reservations": [{"id": "a"}]},
        {
            "v": 1,
            "day": None,
            "spent": 0,
            "reservations": [{"id": "a", "amount": 1, "reserved_at": 0}],
        },
    ],
)
def test_restore_rejects_malformed_snapshots(snapshot: dict[str, Any]) -> None:
    """A corrupt state record is a ValueError naming the budget snapshot."""
    with pytest.raises(ValueError, match="budget snapshot"):
        CreditLedger.restore(BudgetConfig(30), snapshot)


# --- properties --------------------------------------------------------------------------------


class LedgerMachine(RuleBasedStateMachine):
    """Any interleaving of reserve / settle (actual <= estimate) / release / 402 / crash."""

    @initialize(limit=st.integers(0, 60), zone=st.sampled_from(["UTC", "America/New_York"]))
    def setup(self, limit: int, zone: str) -> None:
        self.config = BudgetConfig(limit, zone)
        self.books = CreditLedger(self.config)
        self.now = utc(2024, 3, 9, 12)  # the New York spring-forward day is within reach
        self.out: dict[str, int] = {}
        self.flagged = False  # a 402 was seen today
        self.day = budget_day(self.now, zone)
        self.next_id = 0

    def _sync_day(self) -> None:
        day = budget_day(self.now, self.config.timezone)
        if day > self.day:
            self.day = day
            self.out.clear()
            self.flagged = False

    @rule(dt=st.sampled_from([0.0, 1.0, 3600.0, 6 * 3600.0, DAY_S]))
    def tick(self, dt: float) -> None:
        self.now += dt
        self._sync_day()

    @rule(amount=st.integers(0, 15))
    def reserve(self, amount: int) -> None:
        self.next_id += 1
        rid = f"r{self.next_id}"
        spent, reserved = self.books.spent(self.now), self.books.reserved(self.now)
        expected = not self.flagged and spent + reserved + amount <= self.config.daily_limit
        granted = self.books.reserve(rid, amount, self.now)
        assert (granted is not None) == expected
        if granted is not None:
            self.out[rid] = amount

    @precondition(lambda self: bool(self.out))
    @rule(data=st.data())
    def settle(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(sorted(self.out)))
        actual = data.draw(st.integers(0, self.out[rid]))
        assert self.books.settle(rid, actual, self.now)
        del self.out[rid]

    @precondition(lambda self: bool(self.out))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(sorted(self.out)))
        assert self.books.release(rid, self.now)
        del self.out[rid]

    @rule()
    def provider_says_402(self) -> None:
        self.books.exhaust_for_today(self.now)
        self.flagged = True

    @rule()
    def crash_and_restore(self) -> None:
        spent, reserved = self.books.spent(self.now), self.books.reserved(self.now)
        snapshot = json.loads(json.dumps(self.books.snapshot()))
        self.books = CreditLedger.restore(self.config, snapshot, crashed=True)
        assert self.books.spent(self.now) == spent + reserved >= spent
        assert self.books.reserved(self.now) == 0
        self.out.clear()

    @rule()
    def orderly_restore(self) -> None:
        before = (self.books.spent(self.now), self.books.reserved(self.now))
        snapshot = json.loads(json.dumps(self.books.snapshot()))
        self.books = CreditLedger.restore(self.config, snapshot, crashed=False)
        assert (self.books.spent(self.now), self.books.reserved(self.now)) == before

    @invariant()
    def never_over_the_limit(self) -> None:
        if not hasattr(self, "books"):
            return
        spent, reserved = self.books.spent(self.now), self.books.reserved(self.now)
        assert spent + reserved <= self.config.daily_limit
        assert reserved == sum(self.out.values())
        expected = 0 if self.flagged else self.config.daily_limit - spent - reserved
        assert self.books.remaining(self.now) == expected


LedgerMachine.TestCase.settings = settings(max_examples=120, stateful_step_count=40, deadline=None)
TestLedgerMachine = LedgerMachine.TestCase


@FAST
@given(
    limit=st.integers(0, 100),
    calls=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 30)), max_size=40),
)
def test_overshoot_is_bounded_by_the_excess_of_actual_over_estimate(
    limit: int, calls: list[tuple[int, int]]
) -> None:
    """All calls reserve, then all settle: spent <= limit + sum(max(0, actual - estimate))."""
    books = ledger(limit)
    granted = [
        (f"c{i}", estimate, actual)
        for i, (estimate, actual) in enumerate(calls)
        if books.reserve(f"c{i}", estimate, NOON) is not None
    ]
    for rid, _, actual in granted:
        books.settle(rid, actual, NOON)
    excess = sum(max(0, actual - estimate) for _, estimate, actual in granted)
    assert books.spent(NOON) <= limit + excess

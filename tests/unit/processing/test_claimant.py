"""The lease claimant on a fake clock: when a lease is too old, by that clock alone."""

from __future__ import annotations

import asyncio
from typing import Any

from streamproc.processing.claimant import LeaseClaimant
from streamproc.processing.config import LeaseConfig
from streamproc.processing.writes import StateWrites
from streamproc.resilience.claims import Claim, SetLimit
from streamproc.settings import Settings
from streamproc.state.config import StateConfig
from streamproc.state.group_state import GroupState

#: 50 leads of 6 credits: the lease every test here claims (2% of 100,000 is more).
LEASE = 300


class _Clock:
    def __init__(self) -> None:
        self.t = 1_764_158_400.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        """The ticker's wait: the fake time moves on by exactly what was asked."""
        self.slept.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


async def _never(seconds: float) -> None:
    """A ticker's wait that does not end: the test alone moves the clock."""
    await asyncio.Event().wait()


def _claimant(*, ticking: bool = False, **changes: Any) -> tuple[LeaseClaimant, GroupState, _Clock]:
    clock = _Clock()
    settings = Settings.model_validate(
        {"budget_daily_credits": 100_000, "budget_claim_leads": 50, **changes}
    )
    state = GroupState(StateConfig.from_settings(settings), clock=clock, owner="unit")
    claimant = LeaseClaimant(
        LeaseConfig.from_settings(settings),
        state,
        StateWrites(),
        owner="unit",
        clock=clock,
        sleep=clock.sleep if ticking else _never,
    )
    return claimant, state, clock


async def _settle_ticks() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_an_idle_lease_is_settled_once_the_clock_passes_its_max_age() -> None:
    """One call of a 50-lead lease, then nothing: the claim stays whole until the clock
    reaches budget_claim_max_age_s, then it is settled at what was charged."""
    claimant, state, clock = _claimant(budget_claim_max_age_s=2.0)
    day = state.ledger.day_at(clock())
    lease = await claimant.slice()
    assert lease is not None
    claimant.finish(lease, 6)
    clock.t = lease.opened_at + 1.9
    assert claimant.expire() == lease.opened_at + 2.0
    assert state.ledger.outstanding(day) == LEASE
    clock.t = lease.opened_at + 2.0
    assert claimant.expire() is None
    assert state.ledger.outstanding(day) == 0
    assert state.ledger.spent(day) == 6
    await claimant.close()


async def test_the_ticker_waits_as_long_as_the_clock_says_then_settles() -> None:
    """The ticker's waits come from the clock (at most a second each): an idle lease with a
    2 s max age is settled after waits of 1 s and 1 s, and the ticker then stops."""
    claimant, state, clock = _claimant(ticking=True, budget_claim_max_age_s=2.0)
    day = state.ledger.day_at(clock())
    lease = await claimant.slice()
    assert lease is not None
    claimant.finish(lease, 6)
    await _settle_ticks()
    assert clock.slept == [1.0, 1.0]
    assert clock.t == lease.opened_at + 2.0
    assert state.ledger.outstanding(day) == 0
    assert state.ledger.spent(day) == 6
    await claimant.close()


async def test_a_call_that_ends_after_the_max_age_closes_its_lease() -> None:
    """A call outlives its lease's max age: when it ends, the lease is closed and settled
    at what it was charged, and the next call claims a new lease."""
    claimant, state, clock = _claimant(budget_claim_max_age_s=2.0)
    day = state.ledger.day_at(clock())
    lease = await claimant.slice()
    assert lease is not None
    clock.t = lease.opened_at + 2.5
    claimant.finish(lease, 4)
    assert lease.settled
    assert state.ledger.spent(day) == 4
    assert state.ledger.outstanding(day) == 0
    following = await claimant.slice()
    assert following is not None and following is not lease
    assert state.ledger.outstanding(day) == LEASE
    await claimant.close()


async def test_the_open_lease_credits_no_call_has_taken_are_its_unused_ones() -> None:
    """``unused``: the open lease's credits no call holds or was charged (the pacing
    gate's own room), 0 on another day and once the lease is closed."""
    claimant, state, clock = _claimant(budget_claim_max_age_s=2.0)
    day = state.ledger.day_at(clock())
    assert claimant.unused(day) == 0
    lease = await claimant.slice()
    assert lease is not None
    assert claimant.unused(day) == LEASE - 6  # one call holds its estimate
    claimant.finish(lease, 4)
    assert claimant.unused(day) == LEASE - 4
    assert claimant.unused("1999-01-01") == 0
    clock.t = lease.opened_at + 2.0
    claimant.expire()
    assert claimant.unused(day) == 0
    await claimant.close()


async def test_close_settles_the_open_lease_and_stops_the_ticker() -> None:
    """At shutdown the open lease is settled whatever its age, and no ticker is left."""
    claimant, state, clock = _claimant()
    day = state.ledger.day_at(clock())
    lease = await claimant.slice()
    assert lease is not None
    claimant.finish(lease, 6)
    await claimant.close()
    assert state.ledger.outstanding(day) == 0
    assert state.ledger.spent(day) == 6
    assert claimant.expire() is None


class _LimitOnTheWay(StateWrites):
    """A state topic in which an operator's new limit lands right after our first claim,
    and is read back before the claimant resumes (as the reader applies the records after
    ours in the same fetch): the claim was decided under the old limit."""

    def __init__(self, state: GroupState, day: str, limit: int) -> None:
        super().__init__()
        self.state = state
        self.claimant: LeaseClaimant | None = None
        self._limit: dict[str, Any] | None = SetLimit(day, limit).to_dict()

    @property
    def attached(self) -> bool:
        return True

    def write(self, key: str, value: dict[str, Any] | None) -> None:
        self._apply(key, value)

    async def round_trip(self, key: str, value: dict[str, Any] | None) -> None:
        self._apply(key, value)
        limit, self._limit = self._limit, None
        if limit is not None:
            self._apply("budget/limit", limit)
        await asyncio.sleep(0)

    def _apply(self, key: str, value: dict[str, Any] | None) -> None:
        self.state.apply_budget(key, value)
        assert self.claimant is not None
        self.claimant.read_back(value)


async def test_a_limit_read_while_a_claim_is_on_its_way_retires_the_lease_it_gets() -> None:
    """An operator lowers the limit to one lead's worth while our claim of a 50-lead lease
    is on its way and decided under the old limit: that lease is given back unused and
    the next is claimed under the new limit, so no more than it is handed out."""
    clock = _Clock()
    settings = Settings.model_validate({"budget_daily_credits": 100_000, "budget_claim_leads": 50})
    state = GroupState(StateConfig.from_settings(settings), clock=clock, owner="unit")
    day = state.ledger.day_at(clock())
    writes = _LimitOnTheWay(state, day, 6)
    claimant = LeaseClaimant(
        LeaseConfig.from_settings(settings), state, writes, owner="unit", clock=clock, sleep=_never
    )
    writes.claimant = claimant
    handed = 0
    while (lease := await claimant.slice()) is not None:
        handed += lease.estimate
        claimant.finish(lease, lease.estimate)
        assert handed <= 60, "the old limit's lease is still being spent"
    assert handed <= state.ledger.limit(day) == 6
    assert state.ledger.spent(day) + state.ledger.outstanding(day) <= 6
    await claimant.close()


async def test_another_days_limit_read_on_a_claims_way_leaves_todays_lease() -> None:
    """Tomorrow's limit, set today, lands while today's claim is on its way and after the
    lease is open: today's lease is kept and spent, no second claim is made for it."""
    clock = _Clock()
    settings = Settings.model_validate({"budget_daily_credits": 100_000, "budget_claim_leads": 50})
    state = GroupState(StateConfig.from_settings(settings), clock=clock, owner="unit")
    day = state.ledger.day_at(clock())
    tomorrow = state.ledger.day_at(clock() + 86_400)
    writes = _LimitEveryTime(state, tomorrow, 6)
    claimant = LeaseClaimant(
        LeaseConfig.from_settings(settings), state, writes, owner="unit", clock=clock, sleep=_never
    )
    writes.claimant = claimant
    for _ in range(10):
        lease = await claimant.slice()
        assert lease is not None
        claimant.finish(lease, lease.estimate)
        claimant.read_back(SetLimit(tomorrow, 12).to_dict())
    assert writes.claims == 1, "today's lease was given back for tomorrow's limit"
    await claimant.close()
    assert state.ledger.limit(day) == 100_000 and state.ledger.spent(day) == 60


class _LimitEveryTime(_LimitOnTheWay):
    """An operator's new limit lands after every one of our claims (a limit changed over
    and over): each claim may have been decided under the one before."""

    def __init__(self, state: GroupState, day: str, limit: int) -> None:
        super().__init__(state, day, limit)
        self.claims = 0
        self._every = SetLimit(day, limit).to_dict()

    async def round_trip(self, key: str, value: dict[str, Any] | None) -> None:
        if value is not None and value.get("type") == Claim.TYPE:
            self.claims += 1
        self._limit = self._every
        await super().round_trip(key, value)


async def test_a_limit_changed_on_every_claims_way_gives_up_after_a_few_leases() -> None:
    """However often the limit changes while our claims are on their way, the claimant
    gives back a bounded number of leases in a row and then has none for now (the call
    holds as when the budget cannot pay), rather than claiming again without end."""
    clock = _Clock()
    settings = Settings.model_validate({"budget_daily_credits": 100_000, "budget_claim_leads": 50})
    state = GroupState(StateConfig.from_settings(settings), clock=clock, owner="unit")
    day = state.ledger.day_at(clock())
    writes = _LimitEveryTime(state, day, 90_000)
    claimant = LeaseClaimant(
        LeaseConfig.from_settings(settings), state, writes, owner="unit", clock=clock, sleep=_never
    )
    writes.claimant = claimant
    assert await claimant.slice() is None
    assert 1 < writes.claims <= 8
    assert state.ledger.outstanding(day) == 0  # every lease given back unused
    await claimant.close()

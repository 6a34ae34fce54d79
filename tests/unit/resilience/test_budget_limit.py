"""The group's daily limit does not follow whichever instance opened the day first: the
lowest configured limit rules, and an instance configured higher says so once."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from streamproc.processing.claimant import LeaseClaimant
from streamproc.processing.config import LeaseConfig
from streamproc.processing.writes import StateWrites
from streamproc.resilience.claims import Claim, ClaimLedger, OpenDay
from streamproc.settings import Settings
from streamproc.state.group_state import GroupState
from streamproc.state.store import StateStore

DAY = "2025-11-26"
NOW = 1_764_158_400.0  # 2025-11-26T12:00:00Z


@given(st.lists(st.integers(0, 5_000), min_size=1, max_size=6))
def test_the_days_limit_is_the_lowest_opened_in_any_order(limits: list[int]) -> None:
    """Whatever order instances open the day in, its limit is the lowest of theirs."""
    ledger = ClaimLedger(10_000)
    for n, limit in enumerate(limits):
        ledger.apply(OpenDay(DAY, f"i{n}", limit, "UTC"))
    assert ledger.limit(DAY) == min(limits)


def test_claims_are_decided_against_the_limit_at_their_place_in_the_log() -> None:
    """A claim before the lower OpenDay was granted under the higher limit; one after it is
    refused once the lower limit is reached: every reader decides the same."""
    ledger = ClaimLedger(10_000)
    ledger.apply(OpenDay(DAY, "high", 1_000, "UTC"))
    assert ledger.apply(Claim("c1", "high", DAY, 600)) is True
    ledger.apply(OpenDay(DAY, "low", 600, "UTC"))
    assert ledger.apply(Claim("c2", "high", DAY, 6)) is False
    assert ledger.limit(DAY) == 600


class _Log:
    """The claims log in memory, read by every instance in the order written."""

    def __init__(self) -> None:
        self.states: list[GroupState] = []
        self.offset = 0

    async def append(self, key: str, value: dict[str, Any] | None) -> tuple[int, int]:
        for state in self.states:
            state.apply_budget(key, value)
        self.offset += 1
        return 0, self.offset - 1

    async def wait_applied(self, partition: int, offset: int) -> None:
        return None


def _instance(log: _Log, limit: int, owner: str) -> tuple[LeaseClaimant, GroupState]:
    settings = Settings.model_validate({"budget_daily_credits": limit, "credits_per_lead": 6})
    state = GroupState(settings, clock=lambda: NOW, owner=owner)
    log.states.append(state)
    writes = StateWrites()
    writes.attach(cast(StateStore, log))
    claimant = LeaseClaimant(
        LeaseConfig.from_settings(settings), state, writes, owner=owner, clock=lambda: NOW
    )
    return claimant, state


async def _settled() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_an_instance_configured_lower_lowers_the_day_and_the_higher_one_says_so() -> None:
    """The first instance opens the day at 1,000; one configured at 600 records its own
    limit, which rules for both; the first logs budget.limit_disagrees once, not per lease."""
    log = _Log()
    (high, high_state), (low, low_state) = _instance(log, 1_000, "high"), _instance(log, 600, "low")
    with capture_logs() as logs:
        first = await high.slice()
        await _settled()
        assert first is not None and high_state.ledger.limit(DAY) == 1_000
        assert await low.slice() is not None
        await _settled()
        assert high_state.ledger.limit(DAY) == low_state.ledger.limit(DAY) == 600
        for _ in range(3):
            high._retire(first)  # a new lease each time: the check runs at every claim
            first = await high.slice()
            await _settled()
            assert first is not None
    errors = [e for e in logs if e["event"] == "budget.limit_disagrees"]
    assert len(errors) == 1
    assert errors[0]["log_level"] == "error"
    assert (errors[0]["configured"], errors[0]["group_limit"]) == (1_000, 600)
    await high.close()
    await low.close()
    await _settled()

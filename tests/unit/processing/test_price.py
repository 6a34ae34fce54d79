"""A call that may have been billed is booked at the provider's own price, not at the global
``credits_per_lead`` estimate: by the guard, without Kafka, on a fake clock."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from streamproc.errors import ProviderTimeout
from streamproc.processing.config import GuardConfig, provider_price
from streamproc.processing.guard import ResilienceGuard
from streamproc.records.lead import Lead
from streamproc.resilience.lease import CallPrice
from streamproc.settings import Settings
from tests.unit.processing.fakes import Clock, Result

#: A person-match API's configuration: one credit per person matched.
MATCH = {"url": "http://api.example/match", "credits_per_match": 1}


def _guard(**changes: Any) -> tuple[ResilienceGuard, Clock]:
    clock = Clock()
    settings = Settings.model_validate(
        {"budget_daily_credits": 100_000, "credits_per_lead": 6, "cache_ttl_s": 0, **changes}
    )
    return ResilienceGuard(GuardConfig.from_settings(settings), clock=clock, owner="unit"), clock


def _spent(guard: ResilienceGuard, clock: Clock) -> int:
    ledger = guard.ledger
    return ledger.spent(ledger.day_at(clock()))


async def test_calls_in_flight_at_a_kill_are_booked_at_the_providers_price() -> None:
    """Three calls in flight when the lease is settled and the process dies (no correction
    ever comes) are booked at credits_per_match (3), not at credits_per_lead (18)."""
    guard, clock = _guard(provider="declarative", provider_declarative=MATCH)
    for n in range(3):
        admitted = await guard.admit(Lead(lead_id=f"L{n}", domain=f"d{n}.example"))
        assert admitted.ticket is not None
    await guard.flush()  # the lease is settled with its calls in flight; then the kill
    assert _spent(guard, clock) == 3


async def test_a_cancelled_call_is_booked_at_the_providers_price() -> None:
    """A call cut short (a rebalance, a shutdown) books the provider's price."""
    guard, clock = _guard(provider="declarative", provider_declarative=MATCH)
    admitted = await guard.admit(Lead(lead_id="L1", domain="d1.example"))
    guard.cancelled(admitted)
    await guard.flush()
    assert _spent(guard, clock) == 1


async def test_without_a_configured_price_a_timeout_books_what_answers_cost() -> None:
    """With the http provider, a timed-out call books what its answered calls were charged
    on average (1), not credits_per_lead (6)."""
    guard, clock = _guard()
    for n in range(4):
        admitted = await guard.admit(Lead(lead_id=f"L{n}", domain=f"d{n}.example"))
        guard.settle(admitted, Result({"n": n}, credits=1), None)
    timed_out = await guard.admit(Lead(lead_id="L9", domain="d9.example"))
    guard.settle(timed_out, None, ProviderTimeout("no answer", maybe_charged=True))
    await guard.flush()
    assert _spent(guard, clock) == 5


async def test_before_any_answer_the_estimate_is_booked() -> None:
    """With nothing known of the provider's price, a timeout books credits_per_lead."""
    guard, clock = _guard()
    timed_out = await guard.admit(Lead(lead_id="L9", domain="d9.example"))
    guard.settle(timed_out, None, ProviderTimeout("no answer", maybe_charged=True))
    await guard.flush()
    assert _spent(guard, clock) == 6


def test_the_price_is_read_only_where_the_provider_fixes_it() -> None:
    """credits_per_match is the price unless a credits expression reads each answer's."""
    assert provider_price(Settings(provider="declarative", provider_declarative=MATCH)) == 1
    reads = {**MATCH, "credits": "credits_consumed"}
    assert provider_price(Settings(provider="declarative", provider_declarative=reads)) is None
    assert provider_price(Settings()) is None


@given(st.lists(st.integers(0, 10), min_size=1, max_size=30))
def test_the_average_price_never_books_less_than_the_mean(charges: list[int]) -> None:
    """The average is rounded up: the books never under-count what answers cost."""
    price = CallPrice()
    for credits in charges:
        price.answered_at(credits)
    booked = price.maybe_charged(6)
    assert booked * len(charges) >= sum(charges)
    assert (booked - 1) * len(charges) < sum(charges)

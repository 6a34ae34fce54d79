"""The resilience guard without Kafka: cache, breaker policy, budget refusal, retry stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, cast

import pytest

from streamproc.errors import (
    BreakerOpen,
    BudgetExhausted,
    HoldExpired,
    LocalStall,
    NoMatch,
    ProviderCreditsExhausted,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
)
from streamproc.processing.config import GuardConfig
from streamproc.processing.guard import ResilienceGuard
from streamproc.records.lead import Lead
from streamproc.resilience.breaker import BreakerState
from streamproc.settings import Settings
from streamproc.state.store import StateStore
from tests.unit.processing.fakes import Clock, Result


def _guard(**changes: Any) -> tuple[ResilienceGuard, Clock]:
    clock = Clock()
    settings = Settings.model_validate({"budget_daily_credits": 12, **changes})
    return ResilienceGuard(GuardConfig.from_settings(settings), clock=clock, owner="unit"), clock


def _lead(i: int, domain: str | None = None) -> Lead:
    return Lead(lead_id=f"l{i}", domain=domain or f"d{i}.example")


async def _written(offset: int) -> tuple[int, int]:
    return 0, offset


async def _turns(n: int = 10) -> None:
    """Let the other tasks run until they wait (no time passes, real or fake)."""
    for _ in range(n):
        await asyncio.sleep(0)


class _Log:
    """The state topic as the guards see it: each record applied to every attached guard
    in the order the appends were called (as StateStore.append orders them)."""

    def __init__(self, *guards: ResilienceGuard) -> None:
        self.records: list[tuple[str, dict[str, Any] | None]] = []
        self.guards = list(guards)
        for guard in guards:
            guard.attach(cast(StateStore, self))

    def partition_for(self, key: str) -> int:
        return 0

    def append(self, key: str, value: dict[str, Any] | None) -> Awaitable[tuple[int, int]]:
        self.records.append((key, value))
        for guard in self.guards:
            guard.on_state(key, value, 0, len(self.records) - 1)
        return _written(len(self.records) - 1)

    async def wait_applied(self, partition: int, offset: int, timeout_s: float = 30.0) -> None:
        return None

    def claims(self) -> list[str]:
        return [k for k, v in self.records if k.endswith("/c") and v is not None]

    def replay(self, guard: ResilienceGuard) -> None:
        """A process starting now: it restores every record so far."""
        for offset, (key, value) in enumerate(self.records):
            guard.on_state(key, value, 0, offset)


async def test_second_lead_of_a_domain_is_served_from_cache() -> None:
    """A domain enriched once costs nothing the second time (source cache)."""
    guard, _ = _guard()
    first = await guard.admit(_lead(1, "acme.example"))
    guard.settle(first, Result({"company": "Acme"}), None)
    second = await guard.admit(_lead(2, "acme.example"))
    assert second.enrichment == {"company": "Acme"}
    assert second.source == "cache"


async def test_cache_entry_expires_after_ttl() -> None:
    """After the TTL the provider is asked again."""
    guard, clock = _guard(cache_ttl_s=60)
    first = await guard.admit(_lead(1, "acme.example"))
    guard.settle(first, Result({"company": "Acme"}), None)
    clock.t += 61
    again = await guard.admit(_lead(2, "acme.example"))
    assert again.enrichment is None


async def test_budget_refuses_the_call_that_would_overshoot() -> None:
    """With 12 credits at 6 per lead the third lead is budget_exhausted, retriable."""
    guard, _ = _guard()
    await guard.admit(_lead(1))
    await guard.admit(_lead(2))
    with pytest.raises(BudgetExhausted) as info:
        await guard.admit(_lead(3))
    assert info.value.retriable


async def test_released_claim_frees_its_credits() -> None:
    """A call that failed without a charge gives its reservation back."""
    guard, _ = _guard(breaker_failure_threshold=100)
    a = await guard.admit(_lead(1))
    await guard.admit(_lead(2))
    guard.settle(a, None, ProviderRejected("422"))
    third = await guard.admit(_lead(3))
    assert third.ticket is not None


async def test_open_breaker_with_dlq_policy_refuses() -> None:
    """Policy dlq: once open, leads are refused as breaker_open."""
    guard, _ = _guard(breaker_failure_threshold=2, on_breaker_open="dlq", budget_daily_credits=1000)
    for i in range(2):
        admission = await guard.admit(_lead(i))
        guard.settle(admission, None, ProviderError("503"))
    assert guard.breaker.state(guard._clock()) is BreakerState.OPEN
    with pytest.raises(BreakerOpen):
        await guard.admit(_lead(9))


async def test_failed_attempts_count_and_stop_retries_once_open() -> None:
    """Each failed attempt counts against the breaker; retries stop when it opens."""
    guard, _ = _guard(breaker_failure_threshold=3, budget_daily_credits=1000)
    admission = await guard.admit(_lead(1))
    assert await guard.may_retry(admission, ProviderError("503"))
    assert await guard.may_retry(admission, ProviderError("503"))
    assert not await guard.may_retry(admission, ProviderError("503"))
    assert guard.hold_after(ProviderError("503"))


async def test_fallback_only_when_enabled_and_provider_unavailable() -> None:
    """The local fallback guesses the company from the domain, only for outages."""
    off, _ = _guard()
    on, _ = _guard(fallback_enabled=True)
    lead = _lead(1, "big-corp.example")
    assert off.fallback(lead, ProviderError("503")) is None
    assert on.fallback(lead, ProviderRejected("422")) is None
    guessed = on.fallback(lead, ProviderError("503"))
    assert guessed is not None
    assert guessed["company"] == "Big Corp"


async def test_timeout_counts_as_spent_and_a_retry_needs_a_new_claim() -> None:
    """A timed-out call may have been billed: its claim is spent, not released, and the
    retry is refused when the budget cannot cover a second charge."""
    guard, _ = _guard(budget_daily_credits=12, breaker_failure_threshold=100)
    first = await guard.admit(_lead(1))
    timeout = ProviderTimeout("no answer", maybe_charged=True)
    assert await guard.may_retry(first, timeout)  # 6 spent, 6 claimed for the retry
    assert not await guard.may_retry(first, timeout)  # 12 spent: no room for a third
    guard.settle(first, None, timeout)
    day = guard.status().budget.day
    assert guard.ledger.spent(day) == 12
    assert guard.ledger.outstanding(day) == 0


async def test_a_failure_that_knows_its_exact_charge_is_booked_at_it() -> None:
    """A failure carrying its exact charge (a waterfall's billed misses: 4 credits, above
    the 1 an answered call cost on average) is booked at it, not at the price's guess."""
    guard, _ = _guard(budget_daily_credits=100, breaker_failure_threshold=100)
    answered = await guard.admit(_lead(1))
    guard.settle(answered, Result({"company": "Acme"}, credits=1), None)
    missed = await guard.admit(_lead(2))
    error = NoMatch("nobody found it", credits=4)
    error.charged = 4
    guard.settle(missed, None, error)
    day = guard.status().budget.day
    assert guard.ledger.spent(day) == 1 + 4


async def test_our_own_stalls_neither_count_nor_buy_a_second_claim() -> None:
    """Timeouts of a frozen process (LocalStall) never open the breaker nor feed the health
    window, are retried, and keep the one claim the call has: settled, it counts once."""
    guard, _ = _guard(budget_daily_credits=12, breaker_failure_threshold=1)
    admission = await guard.admit(_lead(1))
    stall = LocalStall("timed out while frozen", maybe_charged=True)
    for _ in range(5):
        assert await guard.may_retry(admission, stall)
    guard.settle(admission, None, stall)
    assert guard.breaker.state(guard._clock()) is BreakerState.CLOSED
    assert not guard.hold_after(stall)
    assert guard.health.success_rate(guard._clock()) is None
    day = guard.status().budget.day
    assert guard.ledger.spent(day) == 6
    assert guard.ledger.outstanding(day) == 0


async def test_answered_failure_releases_its_claim() -> None:
    """A 5xx answer was not billed: the claim is released."""
    guard, _ = _guard(budget_daily_credits=12, breaker_failure_threshold=100)
    admission = await guard.admit(_lead(1))
    guard.settle(admission, None, ProviderError("503"))
    assert guard.ledger.spent(guard.status().budget.day) == 0


async def test_cache_keeps_at_most_max_entries() -> None:
    """The in-memory cache drops the least recently used domain beyond its cap."""
    guard, _ = _guard(cache_max_entries=2, budget_daily_credits=1000)
    for i in range(3):
        admission = await guard.admit(_lead(i, f"d{i}.example"))
        guard.settle(admission, Result({"company": f"C{i}"}), None)
    assert guard.status().cache.entries == 2
    assert (await guard.admit(_lead(9, "d0.example"))).enrichment is None
    assert (await guard.admit(_lead(8, "d2.example"))).enrichment == {"company": "C2"}


async def test_one_claim_pays_for_a_lease_of_leads_and_settles_their_sum() -> None:
    """budget_claim_leads=50: 100 calls take two claims from the log, not 100; once the
    leases are closed the ledger holds exactly what the calls were charged."""
    guard, _ = _guard(budget_daily_credits=100_000, budget_claim_leads=50)
    log = _Log(guard)
    day = guard.status().budget.day
    for i in range(100):
        admission = await guard.admit(_lead(i))
        guard.settle(admission, Result({"n": i}, credits=4), None)
    assert len(log.claims()) == 2
    await guard.flush()
    assert guard.ledger.spent(day) == 400
    assert guard.ledger.outstanding(day) == 0


async def test_a_lease_is_capped_at_a_small_share_of_the_day_not_of_what_remains() -> None:
    """6,000 credits a day at 6 per lead, 50-lead leases: a lease is 2% of the day (120
    credits, 20 leads), not 50 leads or half of what remains; the budget is still used to
    the last lead."""
    guard, _ = _guard(budget_daily_credits=6_000, budget_claim_leads=50)
    day = guard.status().budget.day
    await guard.admit(_lead(0))
    assert guard.ledger.outstanding(day) == 120
    for i in range(1, 1_000):
        await guard.admit(_lead(i))
    assert guard.ledger.spent(day) + guard.ledger.outstanding(day) == 6_000
    with pytest.raises(BudgetExhausted):
        await guard.admit(_lead(1_000))


async def test_a_lease_older_than_its_max_age_is_settled_and_the_next_lead_claims_anew() -> None:
    """One call of a 50-lead lease, then the guard's clock passes budget_claim_max_age_s:
    the claim is settled at what was charged, and the next lead takes a new claim."""
    guard, clock = _guard(
        budget_daily_credits=100_000, budget_claim_leads=50, budget_claim_max_age_s=2.0
    )
    log = _Log(guard)
    day = guard.status().budget.day
    admission = await guard.admit(_lead(1))
    guard.settle(admission, Result({"n": 1}, credits=6), None)
    assert guard.ledger.outstanding(day) == 300
    clock.t += 2.0
    await guard.admit(_lead(2))
    assert len(log.claims()) == 2
    assert guard.ledger.spent(day) == 6
    assert guard.ledger.outstanding(day) == 300
    await guard.flush()


async def test_concurrent_leads_share_one_claim_in_flight() -> None:
    """Many leads admitted at once while no lease exists: one claim is made, not one each."""
    guard, _ = _guard(budget_daily_credits=100_000, budget_claim_leads=50)
    log = _Log(guard)
    admissions = await asyncio.gather(*(guard.admit(_lead(i)) for i in range(40)))
    assert all(a.ticket is not None for a in admissions)
    assert len(log.claims()) == 1


async def test_a_crowd_waiting_for_slices_takes_one_claim_per_lease() -> None:
    """200 leads admitted at once with 50-lead leases: four claims, every lead admitted,
    and the slices in flight are exactly the leads admitted."""
    guard, _ = _guard(budget_daily_credits=100_000, budget_claim_leads=50)
    log = _Log(guard)
    admissions = await asyncio.gather(*(guard.admit(_lead(i)) for i in range(200)))
    assert all(a.ticket is not None and a.ticket.lease is not None for a in admissions)
    assert len(log.claims()) == 4
    leases = {id(a.ticket.lease): a.ticket.lease for a in admissions}
    assert sum(lease.in_flight for lease in leases.values()) == 200


async def test_a_lead_cancelled_while_waiting_for_a_slice_holds_none() -> None:
    """Cancelled while its lease is being claimed: nothing stays in flight for it."""
    guard, _ = _guard(budget_daily_credits=100_000, budget_claim_leads=50)
    waiting = asyncio.ensure_future(guard.admit(_lead(1)))
    other = asyncio.ensure_future(guard.admit(_lead(2)))
    await asyncio.sleep(0)
    waiting.cancel()
    admitted = await other
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    assert admitted.ticket.lease.in_flight == 1


class _SlowLog:
    """The state topic as the guard sees it, with a round trip: each record is applied back
    to the guard in order, after a turn of the event loop and ``advance`` seconds of the
    guard's clock."""

    def __init__(self, guard: ResilienceGuard, clock: Clock, advance: float) -> None:
        self._guard, self._clock, self._advance = guard, clock, advance
        self._next = 0

    def partition_for(self, key: str) -> int:
        return 0

    async def append(self, key: str, value: dict[str, Any] | None) -> tuple[int, int]:
        offset, self._next = self._next, self._next + 1
        await asyncio.sleep(0)
        self._clock.t += self._advance
        self._guard.on_state(key, value, 0, offset)
        return 0, offset

    async def wait_applied(self, partition: int, offset: int, timeout_s: float = 30.0) -> None:
        return None


async def test_a_claims_log_slower_than_the_lease_age_still_admits() -> None:
    """Each claim takes longer (by the guard's clock) than budget_claim_max_age_s: a lease
    is aged from its grant, so it still serves the call that waited for it."""
    guard, clock = _guard(
        budget_daily_credits=100_000, budget_claim_leads=50, budget_claim_max_age_s=0.05
    )
    guard.attach(_SlowLog(guard, clock, advance=0.1))  # type: ignore[arg-type]
    admission = await asyncio.wait_for(guard.admit(_lead(1)), timeout=2)
    assert admission.ticket is not None and admission.ticket.lease is not None


async def test_after_a_402_the_open_lease_admits_no_more_calls() -> None:
    """A 402 charges nothing, so the lease's room comes back; it must still stop: the next
    lead needs a new claim, which comes after the Exhaust in the log and is refused."""
    guard, clock = _guard(budget_daily_credits=100_000, budget_claim_leads=50)
    guard.attach(_SlowLog(guard, clock, advance=0.0))  # type: ignore[arg-type]
    first = await guard.admit(_lead(1))
    guard.settle(first, None, ProviderCreditsExhausted("402"))
    with pytest.raises(BudgetExhausted):
        await guard.admit(_lead(2))
    await guard.flush()


async def test_at_shutdown_held_leads_are_released_and_new_holds_too() -> None:
    """Breaker open, policy hold: release_holds() cancels the leads waiting in the hold, and
    a lead that reaches the hold afterwards is cancelled at once."""
    guard, _ = _guard(breaker_failure_threshold=1, budget_daily_credits=1000)
    admission = await guard.admit(_lead(0))
    guard.settle(admission, None, ProviderError("503"))  # opens the breaker
    held = [asyncio.ensure_future(guard.admit(_lead(i))) for i in (1, 2)]
    await _turns()
    assert guard.holding == 2
    assert guard.release_holds() == 2
    late = asyncio.ensure_future(guard.admit(_lead(3)))
    results = await asyncio.gather(*held, late, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert guard.holding == 0


async def test_on_revocation_only_the_revoked_leads_are_released_now_and_later() -> None:
    """release_holds(tasks) cancels those of the tasks that are held, and cancels them when
    they come to a hold later; a held lead of another partition stays held."""
    guard, _ = _guard(breaker_failure_threshold=1, budget_daily_credits=1000)
    admission = await guard.admit(_lead(0))
    guard.settle(admission, None, ProviderError("503"))  # opens the breaker
    revoked = asyncio.ensure_future(guard.admit(_lead(1)))
    kept = asyncio.ensure_future(guard.admit(_lead(2)))
    gate = asyncio.Event()

    async def in_a_call_then_held() -> None:
        await gate.wait()  # stands for a provider call that fails under an open breaker
        await guard.admit(_lead(3))

    calling = asyncio.ensure_future(in_a_call_then_held())
    await _turns()
    assert guard.holding == 2
    assert guard.release_holds([revoked, calling]) == 1
    gate.set()
    for task in (revoked, calling):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not kept.done() and guard.holding == 1
    kept.cancel()
    await asyncio.gather(kept, return_exceptions=True)


async def test_a_breaker_hold_ends_with_hold_expired_after_the_max_age() -> None:
    """Breaker open for good, policy hold: a held lead is refused as HoldExpired (retriable)
    once it has waited hold_max_age_s by the guard's clock, not before."""
    guard, clock = _guard(
        breaker_failure_threshold=1, breaker_cooldown_s=10_000, hold_max_age_s=600
    )
    admission = await guard.admit(_lead(0))
    guard.settle(admission, None, ProviderError("503"))  # opens the breaker
    held = asyncio.ensure_future(guard.admit(_lead(1)))
    await _turns()
    clock.t += 599
    guard._holds.wake()
    await _turns()
    assert not held.done()
    clock.t += 1
    guard._holds.wake()
    with pytest.raises(HoldExpired) as expired:
        await asyncio.wait_for(held, 10)
    assert expired.value.retriable and "breaker" in expired.value.message


async def test_a_budget_hold_counts_its_age_from_the_days_reset() -> None:
    """Budget spent, policy hold: a held lead outlives hold_max_age_s until the reset, and
    expires hold_max_age_s after it if the budget is still refused."""
    guard, clock = _guard(budget_daily_credits=6, on_budget_exhausted="hold", hold_max_age_s=600)
    first = await guard.admit(_lead(0))
    guard.settle(first, Result({"company": "A"}), None)  # the day's 6 credits spent
    held = asyncio.ensure_future(guard.admit(_lead(1)))
    await _turns()
    resets = guard.ledger.resets_at(clock.t)
    clock.t += 700
    guard._holds.wake()
    await _turns()
    assert not held.done() and resets - clock.t > 600
    held.cancel()
    await asyncio.gather(held, return_exceptions=True)


class _StuckLog:
    """A claims log that holds every append until ``gate`` is set: a claim stays pending."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    def partition_for(self, key: str) -> int:
        return 0

    async def append(self, key: str, value: dict[str, Any] | None) -> tuple[int, int]:
        await self.gate.wait()
        return 0, 0

    async def wait_applied(self, partition: int, offset: int, timeout_s: float = 30.0) -> None:
        return None


async def test_a_probe_cancelled_while_waiting_for_its_claim_frees_the_half_open_slot() -> None:
    """Half-open with one probe slot: a probe whose lead is cancelled while its budget
    claim is pending gives the slot back, so the next lead can probe instead of holding."""
    guard, clock = _guard(
        breaker_failure_threshold=1, breaker_cooldown_s=10, budget_daily_credits=1000
    )
    first = await guard.admit(_lead(0))
    guard.settle(first, None, ProviderError("503"))  # opens the breaker
    log = _StuckLog()
    guard.attach(log)  # type: ignore[arg-type]
    clock.t += 11  # cooldown over (and the first lease too old to serve): a new claim waits
    probe = asyncio.ensure_future(guard.admit(_lead(1)))
    await _turns()
    assert guard.breaker.probes_in_flight(clock()) == 1
    probe.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await probe
    assert guard.breaker.probes_in_flight(clock()) == 0
    assert guard.breaker.state(clock()) is BreakerState.HALF_OPEN
    assert guard.breaker.try_acquire(clock()) is not None
    log.gate.set()
    await guard.flush()


async def test_a_crash_strands_at_most_one_small_lease() -> None:
    """6,000 credits a day, 45 leads admitted (three 20-lead leases), 30 of them answered,
    then the process dies without a flush: a reader of the log finds at most one lease
    (120 credits) still reserved, and every call that may have been billed counted."""
    guard, clock = _guard(budget_daily_credits=6_000, budget_claim_leads=50)
    log = _Log(guard)
    admissions = [await guard.admit(_lead(i)) for i in range(45)]
    for admission in admissions[:30]:
        guard.settle(admission, Result({"company": "C"}, credits=6), None)
    reader = ResilienceGuard(guard._config, clock=clock, owner="next-process")
    log.replay(reader)
    budget = reader.status().budget
    assert budget.reserved <= 120
    assert budget.spent + budget.reserved >= 45 * 6
    assert len(reader.ledger.outstanding_claims()) <= 1


async def test_a_closed_lease_is_settled_while_its_calls_are_still_running() -> None:
    """A 20-lead lease is used up with every call still in flight: its claim is settled at
    once at their estimates, and each call corrects it as it ends (charged 4, not 6)."""
    guard, clock = _guard(budget_daily_credits=6_000, budget_claim_leads=50)
    log = _Log(guard)
    day = guard.status().budget.day
    admissions = [await guard.admit(_lead(i)) for i in range(21)]  # the 21st: a new lease
    assert guard.ledger.outstanding(day) == 120  # the second lease only
    assert guard.ledger.spent(day) == 120  # the first, booked at 20 x 6
    for admission in admissions[:20]:
        guard.settle(admission, Result({"company": "C"}, credits=4), None)
    assert guard.ledger.spent(day) == 80
    reader = ResilienceGuard(guard._config, clock=clock, owner="next-process")
    log.replay(reader)
    assert reader.ledger.spent(day) == 80


async def test_the_budget_day_and_limit_are_the_groups_not_each_instances() -> None:
    """Instance a (12 credits, UTC) opens the day; b, set to 600 credits in a zone already
    in the next day, reports a's day and limit and is refused beyond a's 12 credits."""
    a, clock = _guard(budget_daily_credits=12)
    b = ResilienceGuard(
        GuardConfig.from_settings(
            Settings.model_validate(
                {"budget_daily_credits": 600, "budget_timezone": "Pacific/Kiritimati"}
            )
        ),
        clock=clock,
        owner="b",
    )
    _Log(a, b)
    await a.admit(_lead(1))
    assert b.status().budget.day == a.status().budget.day == "2025-11-26"
    assert b.status().budget.limit == 12
    await b.admit(_lead(2))
    with pytest.raises(BudgetExhausted, match="of 12 credits"):
        await b.admit(_lead(3))


async def test_thousands_of_settled_leases_leave_the_restored_books_small() -> None:
    """3,000 one-lead leases claimed and settled: a process restoring the whole log (not
    compacted) keeps a handful of entries, not thousands, with the spend intact."""
    guard, clock = _guard(budget_daily_credits=10**9, budget_claim_leads=1)
    log = _Log(guard)
    for i in range(3_000):
        admission = await guard.admit(_lead(i))
        guard.settle(admission, Result({"company": "C"}, credits=6), None)
    reader = ResilienceGuard(guard._config, clock=clock, owner="next-process")
    log.replay(reader)
    budget = reader.status().budget
    assert budget.spent + budget.reserved == 3_000 * 6
    assert budget.kept <= 10
    assert len(log.records) > 9_000


async def test_a_lead_finished_twice_is_booked_once() -> None:
    """Clay: a submitted lead's claim settled by its callback and again by its deadline
    counts its credits once."""
    guard, _ = _guard(
        provider_mode="clay",
        clay_webhook_urls="https://api.clay.example/hook/a",
        clay_callback_secret="s",
        budget_daily_credits=1_000,
    )
    _Log(guard)
    admission = await guard.admit(_lead(1))
    claim = guard.submitted(admission)
    assert claim is not None
    guard.finished(claim.claim_id, claim.day, 6, domain=None, data=None)
    guard.finished(claim.claim_id, claim.day, 6, domain=None, data=None)
    assert guard.ledger.spent(claim.day) == 6
    assert guard.ledger.outstanding(claim.day) == 0


async def test_a_failed_batch_call_counts_once_against_the_breaker() -> None:
    """Three leads of one failed call: the breaker and health hear one failure, the
    other two leads (``shares_call``) only give their permits back."""
    guard, _ = _guard(budget_daily_credits=1000, breaker_failure_threshold=2)
    admissions = [await guard.admit(_lead(i)) for i in range(3)]
    failure = ProviderError("503")
    for i, admission in enumerate(admissions):
        error = failure if i == 0 else ProviderError("503")
        error.shares_call = i > 0
        guard.settle(admission, None, error)
    assert guard.breaker.failures_in_window(guard._clock()) == 1
    assert guard.breaker.state(guard._clock()) is BreakerState.CLOSED


async def test_a_slice_won_after_its_lead_was_cancelled_is_given_back() -> None:
    """A batch retry asks for a new slice (the timed-out attempt's is spent) in the batch
    task; the lead's own task is cancelled meanwhile (a rebalance) and the guard told so.
    The slice that comes afterwards was never used: it is finished at 0, not left on the
    dead ticket to be settled at the estimate."""
    guard, _ = _guard(budget_daily_credits=1000, budget_claim_leads=1)
    admission = await guard.admit(_lead(1))
    timeout = ProviderTimeout("no answer", maybe_charged=True)
    retry = asyncio.ensure_future(guard.may_retry(admission, timeout))
    await asyncio.sleep(0)  # waiting for the next lease
    assert not retry.done()
    guard.cancelled(admission)
    assert not await retry
    await guard.flush()
    day = guard.status().budget.day
    assert (guard.ledger.spent(day), guard.ledger.outstanding(day)) == (6, 0)


def _control(action: str, at: float, **extra: Any) -> dict[str, Any]:
    return {"paused": action == "pause", "action": action, "by": "ops", "why": "unit",
            "at": at, "limit": None, "day": None, **extra}  # fmt: skip


async def test_a_pause_holds_leads_before_any_claim_and_never_expires_them() -> None:
    """Paused: a lead is held with no claim written and no breaker failure, past
    hold_max_age_s; a resume admits it under a claim."""
    guard, clock = _guard(hold_max_age_s=60, breaker_failure_threshold=1)
    log = _Log(guard)
    await log.append("control/spending", _control("pause", clock.t))
    held = asyncio.ensure_future(guard.admit(_lead(1)))
    await _turns()
    clock.t += 3_600
    guard._holds.wake()
    await _turns()
    assert not held.done() and guard.holding == 1
    assert log.claims() == []
    assert guard.status().budget.paused
    assert guard.breaker.state(clock.t) is BreakerState.CLOSED
    await log.append("control/spending", _control("resume", clock.t))
    admission = await asyncio.wait_for(held, 10)
    assert admission.ticket is not None and len(log.claims()) == 1


async def test_a_pause_that_lands_while_a_lead_waits_for_its_slice_holds_it() -> None:
    """The lead passed the pause check and waits for its lease's claim; the pause is read
    before the claim comes back: the lead is held (its slice settled at nothing), not
    called; resumed, it goes."""
    guard, clock = _guard(breaker_failure_threshold=1)
    log = _Log(guard)
    admitting = asyncio.ensure_future(guard.admit(_lead(1)))
    # The claim is in the log; its round trip is still to come back to the lead.
    await asyncio.sleep(0)
    await log.append("control/spending", _control("pause", clock.t))
    await _turns()
    assert not admitting.done(), "a lead was admitted to a provider call while paused"
    assert guard.holding == 1
    await log.append("control/spending", _control("resume", clock.t))
    admission = await asyncio.wait_for(admitting, 10)
    assert admission.ticket is not None
    guard.settle(admission, Result({"n": 1}, credits=6), None)
    day = guard.status().budget.day
    assert guard.ledger.spent(day) == 6, "the slice set aside during the pause was counted"


async def test_a_retry_waits_for_the_resume_and_claims_nothing_while_paused() -> None:
    """An attempt timed out just as the group paused: its retry (a new call needing a new
    claim) waits for the resume, with no claim written meanwhile."""
    guard, clock = _guard(budget_daily_credits=12, breaker_failure_threshold=100)
    log = _Log(guard)
    admission = await guard.admit(_lead(1))
    claims = len(log.claims())
    await log.append("control/spending", _control("pause", clock.t))
    retry = asyncio.ensure_future(
        guard.may_retry(admission, ProviderTimeout("no answer", maybe_charged=True))
    )
    await _turns()
    assert not retry.done() and len(log.claims()) == claims
    await log.append("control/spending", _control("resume", clock.t))
    assert await asyncio.wait_for(retry, 10)


async def test_a_process_restored_during_a_pause_stays_paused() -> None:
    """A guard that restores a log whose last control record is a pause holds its leads."""
    first, clock = _guard()
    log = _Log(first)
    await log.append("control/spending", _control("pause", clock.t))
    restarted = ResilienceGuard(
        GuardConfig.from_settings(Settings.model_validate({"budget_daily_credits": 12})),
        clock=clock,
        owner="r",
    )
    log.replay(restarted)
    held = asyncio.ensure_future(restarted.admit(_lead(1)))
    await _turns()
    assert not held.done() and restarted.status().budget.paused
    held.cancel()
    await asyncio.gather(held, return_exceptions=True)


async def test_a_lowered_limit_retires_the_open_lease_of_every_instance() -> None:
    """Two instances with open leases of 10 leads (limit 600, 6 each); the limit set to
    what is reserved: neither admits another lead from its lease, and each settles its
    lease so the books hold only what was used."""
    settings = Settings.model_validate({"budget_daily_credits": 600, "budget_claim_leads": 10})
    clock = Clock()
    a = ResilienceGuard(GuardConfig.from_settings(settings), clock=clock, owner="a")
    b = ResilienceGuard(GuardConfig.from_settings(settings), clock=clock, owner="b")
    log = _Log(a, b)
    first = await a.admit(_lead(1))
    await b.admit(_lead(2))
    a.settle(first, Result({"company": "A"}, credits=6), None)
    day = a.ledger.day_at(clock.t)
    await log.append(f"budget/{day}/limit/x", {"type": "limit", "day": day, "limit": 12})
    assert a.status().budget.limit == b.status().budget.limit == 12
    # a: 6 spent; b: 6 in flight; nothing remains under 12
    with pytest.raises(BudgetExhausted):
        await a.admit(_lead(3))
    with pytest.raises(BudgetExhausted):
        await b.admit(_lead(4))
    assert a.ledger.spent(day) + a.ledger.outstanding(day) == 12

"""The resilience guard: breaker, group-wide budget, health and cache around each call.

This is the I/O shell around the pure machines of ``streamproc.resilience``. It is fed
every record of the state topic (through :meth:`ResilienceGuard.on_state`), so the
breaker, the claims ledger and the cache are the same in every instance of the group.

Per lead, :meth:`ResilienceGuard.admit`:

1. answers from the **cache** (:mod:`streamproc.processing.cache`: by default the
   company-level fields of an answer for the lead's domain, never for a freemail domain)
   when one was stored within the TTL (one call per cache key in flight per process:
   concurrent leads of a key wait for the first); expired keys are tombstoned in passing;
2. asks the **breaker** for a permit; while it is open the lead is held (policy ``hold``:
   the coroutine waits, the lane's window fills, the partition stops being fetched) or
   dead-lettered as ``breaker_open`` (policy ``dlq``), or given the local fallback;
3. takes a slice of the process's **credit lease**: a budget claim of
   ``budget_claim_leads * credits_per_lead`` journaled to the state topic's budget
   partition, used once the claims log has granted it (see
   :mod:`streamproc.resilience.lease`). The provider is called only under a granted
   claim, so concurrent calls in one or many instances cannot overshoot.

After the call, :meth:`settle` reports to the breaker and the health window, returns the
slice with the provider's actual charge (the lease's claim is settled with the sum once
the lease is closed and idle), and stores the result in the cache. Budget and cache
writes go out at once, outside the lead's transaction: they must survive even when the
lead is processed again after a crash (a cached result is what keeps a lead from being
paid for twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamproc.errors import (
    BreakerOpen,
    BudgetExhausted,
    LeadError,
    ProviderAuthError,
    ProviderCreditsExhausted,
)
from streamproc.logs import get_logger
from streamproc.processing.cache import CacheHit
from streamproc.processing.group_state import BREAKER_KEY, GroupState, iso_or_none
from streamproc.processing.handler import Admission, CallResult
from streamproc.records.lead import Lead
from streamproc.records.status import GuardStatus, HealthWindowStatus
from streamproc.resilience.breaker import BreakerState, CircuitBreaker, Permit, Transition
from streamproc.resilience.claims import Claim, ClaimLedger, ClaimStatus, Settle
from streamproc.resilience.health import HealthMonitor
from streamproc.resilience.journal import Record
from streamproc.resilience.lease import CreditLease, lease_amount
from streamproc.settings import BreakerPolicy, BudgetPolicy, Settings
from streamproc.state.store import StateStore

__all__ = ["ResilienceGuard", "fallback_enrichment"]

log = get_logger(__name__)

#: How often a held lead re-checks when nothing woke it (a missed wake-up costs this much).
_HOLD_POLL_S = 1.0
#: Expired cache keys tombstoned per admitted lead: a backlog (a TTL's worth of keys after a
#: long stop) goes out over the next leads, not as one burst of writes in front of one lead.
_TOMBSTONES_PER_LEAD = 32


@dataclass(slots=True)
class _Ticket:
    breaker: CircuitBreaker
    permit: Permit
    lease: CreditLease | None
    cache_key: str | None
    flight: asyncio.Future[None] | None


def fallback_enrichment(lead: Lead) -> dict[str, Any] | None:
    """A local guess from the domain alone; clearly marked by ``source: fallback``."""
    domain = lead.lookup_domain
    if not domain:
        return None
    label = domain.split(".")[0].replace("-", " ").strip()
    return {"domain": domain, "company": lead.company or label.title(), "guessed": True}


class ResilienceGuard:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._transition_hook = on_transition
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._store: StateStore | None = None
        self._changed = asyncio.Event()
        self._state = GroupState(
            settings,
            clock=clock,
            owner=self.owner,
            on_transition=self._on_transition,
            on_change=self._wake,
        )
        self._journal = self._state.journal
        self._cache = self._state.cache
        #: Claims whose settle this process journaled and has not read back yet: a second
        #: finish of the same claim (Clay) must not book it twice.
        self._settling: set[str] = set()
        self.health = HealthMonitor(window_s=settings.health_window_s)
        #: Clay keeps each lead's claim with its pending record: one lead per claim there.
        self._lease_leads = 1 if settings.provider_mode == "clay" else settings.budget_claim_leads
        self._lease: CreditLease | None = None
        #: Calls waiting for a slice, served in order by one task that claims leases.
        self._slice_waiters: deque[asyncio.Future[CreditLease | None]] = deque()
        self._leasing: asyncio.Task[None] | None = None
        self._flights: dict[str, asyncio.Future[None]] = {}
        self._writes: set[asyncio.Future[Any]] = set()
        self.transitions: list[Transition] = []
        #: The lead tasks waiting in a hold (breaker open, budget spent, policy hold).
        self._held: set[asyncio.Task[Any]] = set()
        self._releasing = False

    @property
    def breaker(self) -> CircuitBreaker:
        """The group's breaker (replaced when another process's transition is adopted)."""
        return self._state.breaker

    @property
    def ledger(self) -> ClaimLedger:
        return self._state.ledger

    # --- wiring ---------------------------------------------------------------------------

    def attach(self, store: StateStore) -> None:
        self._store = store

    def on_state(self, key: str, value: dict[str, Any] | None, partition: int, offset: int) -> None:
        """Apply one record of the state topic (restore and tail alike)."""
        self._state.on_state(key, value, partition, offset)
        if key.startswith("budget/"):
            self._read_back(value)

    def _read_back(self, value: dict[str, Any] | None) -> None:
        """A budget record came back from the topic: our own settle is journaled."""
        if (
            value is not None
            and value.get("type") == Settle.TYPE
            and value.get("writer") == self._journal.writer
        ):
            self._settling.discard(value.get("claim_id", ""))

    def _on_transition(self, transition: Transition) -> None:
        self.transitions.append(transition)
        if self._transition_hook is not None:
            self._transition_hook(transition)
        level = log.warning if transition.to_state is BreakerState.OPEN else log.info
        level(
            "breaker.transition",
            from_state=transition.from_state.value,
            to_state=transition.to_state.value,
            reason=transition.reason,
        )
        if transition.to_state is not BreakerState.HALF_OPEN:
            self._write(
                BREAKER_KEY,
                {**self.breaker.snapshot(), "owner": self.owner, "at": transition.at},
            )
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, until: float | None) -> None:
        timeout = _HOLD_POLL_S
        if until is not None:
            timeout = max(0.01, min(timeout, until - self._clock()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def _write(self, key: str, value: dict[str, Any] | None) -> None:
        if self._store is None:
            return
        # StateStore.append fixes the record's place in the log at the call, so writes
        # land in the order issued here (the budget's settles and tombstones need that).
        task = asyncio.ensure_future(self._store.append(key, value))
        self._writes.add(task)
        task.add_done_callback(self._write_done)

    def _write_done(self, task: asyncio.Future[Any]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("state.write_failed", error=repr(task.exception()))

    async def flush(self) -> None:
        """Settle the current lease and wait for the state writes issued so far (before
        shutdown, once no call is in flight any more)."""
        if self._leasing is not None:
            # A claim on its way would otherwise be granted after we settled: its credits
            # would stay reserved until the day resets.
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._leasing), 10)
        if self._lease is not None:
            self._expire(self._lease)
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    # --- the Guard protocol ---------------------------------------------------------------

    async def admit(self, lead: Lead) -> Admission:
        for expired in self._cache.expired(self._clock(), _TOMBSTONES_PER_LEAD):
            self._write(f"cache/{expired}", None)
        key = self._cache.key_for(domain=lead.lookup_domain, email=lead.email)
        hit = await self._cached(key)
        if hit is not None:
            return Admission(enrichment=hit.data, source="cache", cache=hit)
        flight: asyncio.Future[None] | None = None
        if key is not None:
            flight = asyncio.get_running_loop().create_future()
            self._flights[key] = flight
        try:
            permit, lease = await self._permit_and_claim(lead)
        except BaseException:
            self._land(key, flight)
            raise
        return Admission(token=_Ticket(self.breaker, permit, lease, key, flight))

    async def _cached(self, key: str | None) -> CacheHit | None:
        if key is None:
            return None
        while True:
            hit = self._cache.get(key, self._clock())
            if hit is not None:
                return hit
            flight = self._flights.get(key)
            if flight is None:
                return None
            # Another lead with this key is being enriched: its answer may serve us.
            await asyncio.shield(flight)

    async def _permit_and_claim(self, lead: Lead) -> tuple[Permit, CreditLease | None]:
        s = self._settings
        while True:
            now = self._clock()
            breaker = self.breaker
            permit = breaker.try_acquire(now)
            if permit is None:
                reopens = breaker.reopens_at(now)
                if s.on_breaker_open is BreakerPolicy.DLQ:
                    raise BreakerOpen(f"breaker open until {iso_or_none(reopens)}")
                await self._hold(reopens)
                continue
            try:
                lease = await self._slice()
            except BaseException:
                # A half-open probe's slot must come back when its lead is cancelled (or its
                # claim fails) while waiting for a slice, or the breaker stays half-open
                # with every later lead held.
                breaker.release(permit, self._clock())
                raise
            if lease is not None or s.credits_per_lead == 0:
                return permit, lease
            breaker.release(permit, now)
            day = self.ledger.day_at(now)
            resets = self.ledger.resets_at(now)
            if s.on_budget_exhausted is BudgetPolicy.DLQ:
                spent, reserved = self.ledger.spent(day), self.ledger.outstanding(day)
                raise BudgetExhausted(
                    f"daily budget used up ({spent} spent + {reserved} reserved of "
                    f"{self.ledger.limit(day)} credits on {day}); resets at {iso_or_none(resets)}"
                )
            await self._hold(resets)

    async def _hold(self, until: float | None) -> None:
        task = asyncio.current_task()
        if self._releasing and task is not None:
            task.cancel()  # shutting down: a lead that comes to a hold now is released too
            await asyncio.sleep(0)
        if task is not None:
            self._held.add(task)
        try:
            await self._wait_change(until)
        finally:
            if task is not None:
                self._held.discard(task)

    @property
    def holding(self) -> int:
        """Leads waiting in a hold now."""
        return len(self._held)

    def release_holds(self) -> int:
        """Cancel the leads waiting in a hold (at shutdown): they are not calling the
        provider, so nothing is at stake, and waiting for a breaker's cooldown would only
        spend the shutdown grace. They are read again from the committed offset."""
        self._releasing = True
        held = list(self._held)
        for task in held:
            task.cancel()
        return len(held)

    async def _slice(self) -> CreditLease | None:
        """A slice of the current lease, or None when the budget cannot pay for one more
        call. When the lease is used up, callers queue and one task claims the next lease
        and hands its slices out in order: a thousand calls waiting for a lease cost one
        claim per lease, not a thousand wake-ups per lease."""
        if self._settings.credits_per_lead == 0:
            return None
        if not self._slice_waiters and self._take_current():
            return self._lease
        waiter: asyncio.Future[CreditLease | None] = asyncio.get_running_loop().create_future()
        self._slice_waiters.append(waiter)
        if self._leasing is None:
            self._leasing = asyncio.get_running_loop().create_task(self._serve_waiters())
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                granted = waiter.result()
                if granted is not None:  # handed a slice as we were cancelled: unused
                    self._finish_slice(granted, 0)
            raise

    def _take_current(self) -> bool:
        """Take a slice of the current lease; False (and the lease retired) when it cannot."""
        lease = self._lease
        if lease is None:
            return False
        now = self._clock()
        day = self.ledger.day_at(now)
        if lease.take(now, day, exhausted=self.ledger.exhausted(day)):
            return True
        self._lease = None
        self._settle_if_due(lease)
        return False

    async def _serve_waiters(self) -> None:
        waiters = self._slice_waiters
        try:
            while waiters:
                while waiters and (waiters[0].done() or self._take_current()):
                    waiter = waiters.popleft()
                    if not waiter.done():
                        waiter.set_result(self._lease)
                if not waiters:
                    return
                lease = await self._open_lease(self.ledger.day_at(self._clock()))
                if lease is None:  # the budget cannot pay for one more call now
                    while waiters:
                        waiter = waiters.popleft()
                        if not waiter.done():
                            waiter.set_result(None)
                    return
                self._lease = lease
        except BaseException as exc:
            while waiters:  # a failed claim fails the calls that waited for it
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(
                        exc if isinstance(exc, Exception) else asyncio.CancelledError()
                    )
            if not isinstance(exc, Exception):
                raise
        finally:
            self._leasing = None

    async def _open_lease(self, day: str) -> CreditLease | None:
        s = self._settings
        estimate = s.credits_per_lead
        # Days before yesterday are over for the group: their records go from the topic.
        self._append(self._journal.stale(self.ledger.horizon))
        if not self.ledger.is_open(day):
            self._append(self._journal.open_day(day, s.budget_daily_credits, s.budget_timezone))
        # Small, so a crash strands little (see streamproc.resilience.lease).
        wanted = lease_amount(
            estimate, self._lease_leads, self.ledger.limit(day), s.budget_lease_max_share
        )
        for amount in dict.fromkeys((wanted, estimate)):  # the lead's own share, if refused
            # The local view lags other instances; the log decides, so this check only
            # saves a record that would be refused.
            if self.ledger.remaining(day) < amount:
                continue
            claim = Claim(uuid.uuid4().hex, self.owner, day, amount)
            if await self._granted(claim):
                # Aged from the grant, not the request: a slow claims log must not make a
                # lease too old to use the moment it is granted.
                lease = CreditLease(
                    claim,
                    estimate,
                    self._clock(),
                    s.budget_claim_max_age_s,
                    settle_when_closed=s.provider_mode != "clay",
                )
                asyncio.get_running_loop().call_later(s.budget_claim_max_age_s, self._expire, lease)
                return lease
        return None

    async def _granted(self, claim: Claim) -> bool:
        if self._store is None:
            return self.ledger.apply(claim) is True
        key, value = self._journal.claim(claim)
        partition, offset = await self._store.append(key, value)
        await self._store.wait_applied(partition, offset)
        granted = self.ledger.is_granted(claim.claim_id) is True
        if not granted:
            self._append(self._journal.refused(claim))
        return granted

    def _expire(self, lease: CreditLease) -> None:
        lease.close()
        if self._lease is lease:
            self._lease = None
        self._settle_if_due(lease)

    def _finish_slice(self, lease: CreditLease, charged: int) -> None:
        correction = lease.finish(charged)
        if correction:
            self._append(self._journal.correct(lease.day, correction))
        if lease.closed and self._lease is lease:
            self._lease = None
        self._settle_if_due(lease)

    def _settle_if_due(self, lease: CreditLease) -> None:
        """A closed lease is settled at once, its calls in flight at their estimate (they
        correct it when they end): a closed lease holds nothing a crash could strand."""
        if lease.due():
            self._settle_claim(lease.claim.claim_id, lease.day, lease.settle())

    def _settle_claim(self, claim_id: str, day: str, actual: int) -> None:
        self._settling.add(claim_id)
        self._append(self._journal.settle(claim_id, day, actual))

    def _append(self, records: list[Record]) -> None:
        """Journal budget records, in order (applied at once when there is no store)."""
        for key, value in records:
            if self._store is None:
                self._state.apply_budget(key, value)
                self._read_back(value)
            else:
                self._write(key, value)

    def settle(
        self, admission: Admission, result: CallResult | None, error: LeadError | None
    ) -> None:
        ticket = admission.token
        if not isinstance(ticket, _Ticket):
            return
        now = self._clock()
        if ticket.breaker is self.breaker:
            if result is not None:
                self.breaker.record_success(ticket.permit, now)
            elif error is not None and error.counts_against_breaker:
                self.breaker.record_failure(ticket.permit, now)
            else:
                self.breaker.release(ticket.permit, now)
        if result is not None or (error is not None and error.counts_against_breaker):
            self.health.record(result is not None, now)
        if ticket.lease is not None:
            lease, ticket.lease = ticket.lease, None
            if result is not None:
                charged = result.credits
            elif error is not None and error.maybe_charged:
                charged = lease.estimate  # no answer, maybe a bill: never under-count
            else:
                charged = 0
            self._finish_slice(lease, charged)
        if isinstance(error, ProviderCreditsExhausted):
            day = self.ledger.day_at(now)
            log.error("provider.credits_exhausted", day=day)
            if self._lease is not None:
                # No more calls on this lease: a 402 charges nothing, so without this its
                # freed room would keep admitting calls until the Exhaust comes back.
                self._expire(self._lease)
            self._append(self._journal.exhaust(day))
        if isinstance(error, ProviderAuthError):
            log.error("provider.auth_failed", message=error.message)
        if result is not None and ticket.cache_key is not None:
            self._remember(ticket.cache_key, result.data, now)
        self._land(ticket.cache_key, ticket.flight)

    def cancelled(self, admission: Admission) -> None:
        """A call cut short: it may have been billed, so its slice counts the estimate
        (over-count, never under-count)."""
        ticket = admission.token
        if isinstance(ticket, _Ticket):
            if ticket.breaker is self.breaker:
                self.breaker.release(ticket.permit, self._clock())
            if ticket.lease is not None:
                lease, ticket.lease = ticket.lease, None
                self._finish_slice(lease, lease.estimate)
            self._land(ticket.cache_key, ticket.flight)

    def _land(self, key: str | None, flight: asyncio.Future[None] | None) -> None:
        if flight is None:
            return
        if key is not None and self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.done():
            flight.set_result(None)

    # --- asynchronous providers (Clay) -------------------------------------------------------

    def submitted(self, admission: Admission) -> Claim | None:
        """An admitted lead was accepted by an asynchronous provider (a Clay webhook row).

        The submission worked, so the breaker hears a success; the claim stays outstanding
        (returned, to be kept with the pending lead) until :meth:`finished` settles it.
        """
        ticket = admission.token
        if not isinstance(ticket, _Ticket):
            return None
        if ticket.breaker is self.breaker:
            self.breaker.record_success(ticket.permit, self._clock())
        self._land(ticket.cache_key, ticket.flight)
        lease, ticket.lease = ticket.lease, None
        if lease is None:
            return None
        lease.detached = True  # one lead per lease here (see __init__): the claim is its own
        return lease.claim

    def finished(
        self,
        claim_id: str | None,
        day: str | None,
        credits: int,
        *,
        domain: str | None,
        data: dict[str, Any] | None,
    ) -> None:
        """A submitted lead is finished: by its result (``data``), an error row or its
        deadline (``data`` None). Settles its claim at ``credits`` (for a timeout, the
        estimate: the provider may well have charged), feeds the health window, caches data
        (by ``domain``: with ``cache_key`` email a Clay answer is not cached, the pending
        lead keeps no address).

        Called after the lead's output is committed; a crash before it leaves the claim
        outstanding: the budget over-counts, it never under-counts.
        """
        now = self._clock()
        self.health.record(data is not None, now)
        if claim_id is not None and day is not None and self._first_settle(claim_id):
            self._settle_claim(claim_id, day, credits)
        key = self._cache.key_for(domain=domain, email=None)
        if data is not None and key is not None:
            self._remember(key, data, now)

    def _first_settle(self, claim_id: str) -> bool:
        """False when the claim's settle is already journaled (a lead finished twice)."""
        if claim_id in self._settling:
            return False
        return self.ledger.status(claim_id) not in (ClaimStatus.SETTLED, ClaimStatus.RELEASED)

    def _remember(self, key: str, data: dict[str, Any], now: float) -> None:
        """Cache what of an enrichment may be cached, here and, for the group and the next
        start, in the state topic."""
        record = self._cache.put(key, data, now)
        if record is not None:
            self._write(f"cache/{key}", record)

    def fallback(self, lead: Lead, error: LeadError) -> dict[str, Any] | None:
        """The local fallback for a lead the provider could not serve, when enabled."""
        if not self._settings.fallback_enabled:
            return None
        if error.error_class.value not in ("provider_error", "provider_timeout", "breaker_open"):
            return None
        return fallback_enrichment(lead)

    async def may_retry(self, admission: Admission, error: LeadError) -> bool:
        """Every failed attempt counts against the breaker; retries stop once it opened.

        An attempt that may have been billed (no answer came back) keeps its claim as
        spent, and the retry needs a claim of its own: without one, no retry.
        """
        ticket = admission.token
        if not isinstance(ticket, _Ticket) or ticket.breaker is not self.breaker:
            return False
        now = self._clock()
        if error.counts_against_breaker:
            self.breaker.record_failure(ticket.permit, now)
            self.health.record(False, now)
        if self.breaker.state(now) is not BreakerState.CLOSED:
            return False
        if error.maybe_charged and ticket.lease is not None:
            old, ticket.lease = ticket.lease, None
            self._finish_slice(old, old.estimate)
            ticket.lease = await self._slice()
            return ticket.lease is not None
        return True

    def hold_after(self, error: LeadError) -> bool:
        return (
            error.counts_against_breaker
            and self._settings.on_breaker_open is BreakerPolicy.HOLD
            and self.breaker.state(self._clock()) is not BreakerState.CLOSED
        )

    # --- reading ----------------------------------------------------------------------------

    def status(self) -> GuardStatus:
        """The group's breaker, budget and cache, and this process's health and holds."""
        now = self._clock()
        shared = self._state.status(now)
        health = HealthWindowStatus(
            status=self.health.status(now).value, success_rate=self.health.success_rate(now)
        )
        return GuardStatus(
            breaker=shared.breaker,
            budget=shared.budget,
            cache=shared.cache,
            health=health,
            holding=self.holding,
        )

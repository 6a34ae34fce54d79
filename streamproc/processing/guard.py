"""The resilience guard: breaker, group-wide budget, health and cache around each call.

Per lead, :meth:`ResilienceGuard.admit` answers from the lead's **receipt** when an earlier
run of it was already answered (:mod:`streamproc.resilience.receipts`: the whole answer it
paid for, nothing charged again), else from the **cache** when it can (one call per cache
key in flight per process: later leads of the key wait for the first; never the lead that
paid for the entry), asks the
**breaker** for a permit (while it is open the lead is held, dead-lettered as
``breaker_open`` or given the local fallback, as the policy says), and takes a slice of
the process's **credit lease** (:mod:`streamproc.processing.claimant`): the provider is
called only under a granted claim. :meth:`~ResilienceGuard.settle` reports the call to the
breaker and the health window, books its charge, journals the answer's receipt and caches
its company-level fields. Budget, receipt and cache records go out at once, outside the
lead's transaction: they must survive even when the lead is processed again after a crash
(the receipt keeps the lead from being paid for twice). The receipt's tombstone goes in the
lead's own transaction (``Admission.after``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from streamproc.errors import (
    BreakerOpen,
    BudgetExhausted,
    ErrorClass,
    HoldExpired,
    LeadError,
    LocalStall,
    ProviderAuthError,
    ProviderCreditsExhausted,
)
from streamproc.logs import get_logger
from streamproc.processing.claimant import LeaseClaimant
from streamproc.processing.config import GuardConfig
from streamproc.processing.handler import Admission, CallResult
from streamproc.processing.holds import Holds
from streamproc.processing.writes import StateWrites
from streamproc.records.lead import Lead, Source
from streamproc.records.outcome import OutRecord
from streamproc.records.status import GuardStatus, HealthWindowStatus
from streamproc.resilience.breaker import BreakerState, CircuitBreaker, Permit, Transition
from streamproc.resilience.claims import Claim, ClaimLedger
from streamproc.resilience.health import HealthMonitor
from streamproc.resilience.lease import CallPrice, CreditLease
from streamproc.resilience.pacing_step import PacingFold
from streamproc.resilience.receipts import PREFIX as RECEIPT_PREFIX
from streamproc.resilience.receipts import carry
from streamproc.settings import BreakerPolicy, BudgetPolicy
from streamproc.state.group_state import BREAKER_KEY, GroupState, iso_or_none
from streamproc.state.store import StateStore

__all__ = ["ResilienceGuard", "Ticket", "fallback_enrichment"]

log = get_logger(__name__)

#: Expired cache keys tombstoned per admitted lead: a backlog (a TTL's worth of keys after a
#: long stop) goes out over the next leads, not as one burst of writes in front of one lead.
_TOMBSTONES_PER_LEAD = 32


@dataclass(slots=True)
class Ticket:
    """What :meth:`ResilienceGuard.admit` holds for one call until it is settled: the
    admission's ``ticket``, which the handler (and Clay's submission) passes back."""

    breaker: CircuitBreaker
    permit: Permit
    lease: CreditLease | None
    cache_key: str | None
    flight: asyncio.Future[None] | None
    lead_id: str
    #: The lead's receipt id (None: no receipt is kept, e.g. a Clay submission).
    receipt: str | None
    #: Settled or cancelled: a slice won afterwards (a batch's retry, awaited in the
    #: batch's task) belongs to no call and is given back (``may_retry``).
    over: bool = False


#: The failures the local fallback answers: the provider could not be asked, or did not
#: answer; not those that say something of the lead itself (no match, rejected).
_FALLBACK_FOR = frozenset(
    {ErrorClass.PROVIDER_ERROR, ErrorClass.PROVIDER_TIMEOUT, ErrorClass.BREAKER_OPEN}
)


def _earliest(first: float | None, second: float) -> float:
    return second if first is None else min(first, second)


def _counts(error: LeadError) -> bool:
    """Whether a failure counts against the breaker here: once per call, so not for the
    other leads of a failed batch call (``shares_call``)."""
    return error.counts_against_breaker and not error.shares_call


def fallback_enrichment(lead: Lead) -> dict[str, Any] | None:
    """A local guess from the domain alone; clearly marked by ``source: fallback``."""
    domain = lead.lookup_domain
    if not domain:
        return None
    label = domain.split(".")[0].replace("-", " ").strip()
    return {"domain": domain, "company": lead.company or label.title(), "guessed": True}


class ResilienceGuard:
    """The handler's :class:`~streamproc.processing.handler.Guard`: admits, settles and
    holds leads around the provider call.

    A thin shell over the group's state as this process knows it (:class:`GroupState`, fed
    every state-topic record through :meth:`on_state`, so every instance of the group has
    the same breaker, budget and cache), the lease claimant, the holds and the state
    writes; one injected ``clock`` (epoch seconds) drives them all.
    """

    def __init__(
        self,
        config: GuardConfig,
        *,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._transition_hook = on_transition
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._holds = Holds(clock)
        self._writes = StateWrites()
        self._state = GroupState(
            config.state,
            clock=clock,
            owner=self.owner,
            on_transition=self._on_transition,
            on_change=self._holds.wake,
        )
        #: The operator's pause, read by every lead (one fold for the guard's life).
        self._spending = self._state.spending
        self._claimant = LeaseClaimant(
            config.lease,
            self._state,
            self._writes,
            owner=self.owner,
            clock=clock,
        )
        self.health = HealthMonitor(window_s=config.health_window_s)
        self._price = CallPrice(config.price)
        self._flights: dict[str, asyncio.Future[None]] = {}
        self.transitions: list[Transition] = []

    @property
    def breaker(self) -> CircuitBreaker:
        """The group's breaker (replaced when another process's transition is adopted)."""
        return self._state.breaker

    @property
    def ledger(self) -> ClaimLedger:
        return self._state.ledger

    @property
    def pacing(self) -> PacingFold:
        """The group's pacing step, as folded from the state topic."""
        return self._state.pacing

    # --- wiring ---------------------------------------------------------------------------

    def attach(self, store: StateStore) -> None:
        self._writes.attach(store)

    def on_state(self, key: str, value: dict[str, Any] | None, partition: int, offset: int) -> None:
        """Apply one record of the state topic (restore and tail alike)."""
        self._state.on_state(key, value, partition, offset)
        if key.startswith("budget/"):
            self._claimant.read_back(value)

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
            record = {**self.breaker.snapshot(), "owner": self.owner, "at": transition.at}
            self._writes.write(BREAKER_KEY, record)
        self._holds.wake()

    async def flush(self) -> None:
        """Settle the current lease and wait for the state writes issued so far (before
        shutdown, once no call is in flight any more)."""
        await self._claimant.close()
        await self._writes.drain()

    # --- the Guard protocol ---------------------------------------------------------------

    async def admit(self, lead: Lead, receipt: str | None = None) -> Admission[Ticket]:
        state, now = self._state, self._clock()
        cache = state.cache
        for expired in cache.expired(now, _TOMBSTONES_PER_LEAD):
            self._writes.write(f"cache/{expired}", None)
        receipts = state.receipts
        if receipts:
            for expired in receipts.expired(now, _TOMBSTONES_PER_LEAD):
                self._writes.write(RECEIPT_PREFIX + expired, None)
        key = cache.key_for(domain=lead.lookup_domain, email=lead.email)
        while True:
            if receipt is not None and (paid := receipts.get(receipt)) is not None:
                # Answered before and not yet committed: the same answer, whole, for free.
                return Admission(
                    enrichment=dict(paid.data),
                    credits=paid.credits,
                    after=self._done(receipt, paid.home),
                )
            if key is None:
                break
            hit = cache.get(key, self._clock(), lead.lead_id)
            if hit is not None:
                return Admission(enrichment=hit.data, source=Source.CACHE, cache=hit)
            waiting = self._flights.get(key)
            if waiting is None:
                break
            # Another lead with this key is being enriched: its answer may serve us (its
            # company fields; or, a copy of this very lead, its receipt).
            await asyncio.shield(waiting)
        flight: asyncio.Future[None] | None = None
        if key is not None:
            flight = asyncio.get_running_loop().create_future()
            self._flights[key] = flight
        try:
            permit, lease = await self._permit_and_claim()
        except BaseException:
            self._land(key, flight)
            raise
        ticket = Ticket(self.breaker, permit, lease, key, flight, lead.lead_id, receipt)
        return Admission(ticket=ticket)

    def _done(self, receipt: str, home: str | None) -> list[OutRecord] | None:
        """The receipt's tombstone, to commit with the lead's output, on the partition of
        the record that carries the receipt (``home``), so every reader applies it after."""
        record = self._writes.record(RECEIPT_PREFIX + receipt, None, beside=home)
        return None if record is None else [record]

    async def _permit_and_claim(self) -> tuple[Permit, CreditLease | None]:
        s, ledger = self._config, self._state.ledger
        #: When this lead first came to a hold (the guard's clock): its age counts from it.
        since: float | None = None
        while True:
            if self._spending.paused:
                # An operator's pause: no claim, no call, and no DLQ however long it lasts
                # (a hold's age counts anew after it: docs/budget.md, "Levers"). Not a
                # failure: the breaker hears nothing.
                since = None
                await self._holds.hold(None)
                continue
            now = self._clock()
            breaker = self.breaker
            permit = breaker.try_acquire(now)
            if permit is None:
                reopens = breaker.reopens_at(now)
                if s.on_breaker_open is BreakerPolicy.DLQ:
                    raise BreakerOpen(f"breaker open until {iso_or_none(reopens)}")
                since = now if since is None else since
                expires = since + s.hold_max_age_s
                self._expire(
                    now, expires, f"the breaker to close (open until {iso_or_none(reopens)})"
                )
                await self._holds.hold(_earliest(reopens, expires))
                continue
            try:
                lease = await self._claimant.slice()
            except BaseException:
                # A half-open probe's slot must come back when its lead is cancelled (or its
                # claim fails) while waiting for a slice, or the breaker stays half-open
                # with every later lead held.
                breaker.release(permit, self._clock())
                raise
            if self._spending.paused:
                # Paused while this lead waited for its slice (a claim's round trip): no
                # call; the slice goes back unspent.
                breaker.release(permit, self._clock())
                if lease is not None:
                    self._claimant.finish(lease, 0)
                continue
            if lease is not None or self._claimant.estimate == 0:
                return permit, lease
            breaker.release(permit, now)
            day = ledger.day_at(now)
            resets = ledger.resets_at(now)
            if s.on_budget_exhausted is BudgetPolicy.DLQ:
                spent, reserved = ledger.spent(day), ledger.outstanding(day)
                raise BudgetExhausted(
                    f"daily budget used up ({spent} spent + {reserved} reserved of "
                    f"{ledger.limit(day)} credits on {day}); resets at {iso_or_none(resets)}"
                )
            since = now if since is None else since
            # A budget hold is meant to last until the reset: its age counts from there.
            expires = max(since, resets) + s.hold_max_age_s
            self._expire(
                now, expires, f"the daily budget of {day} (resets at {iso_or_none(resets)})"
            )
            await self._holds.hold(min(resets, expires))

    def _expire(self, now: float, expires: float, waiting_for: str) -> None:
        """Raise HoldExpired once a held lead's hold is past its maximum age."""
        if now >= expires:
            raise HoldExpired(
                f"held longer than hold_max_age_s ({self._config.hold_max_age_s:g}s) "
                f"waiting for {waiting_for}"
            )

    def lease_unused(self, day: str) -> int:
        """Credits of this process's open lease of ``day`` no call has taken yet."""
        return self._claimant.unused(day)

    def lease_open(self, day: str) -> tuple[str, int] | None:
        """This process's open lease of ``day``: its claim id and untaken credits."""
        return self._claimant.open_lease(day)

    @property
    def paused(self) -> bool:
        """Spending is paused by an operator (docs/budget.md, "Levers")."""
        return self._spending.paused

    @property
    def holding(self) -> int:
        """Leads waiting in a hold now."""
        return self._holds.count

    def release_holds(self, tasks: Collection[asyncio.Task[Any]] | None = None) -> int:
        """Cancel the leads waiting in a hold, and any that comes to one later: all of them
        (at shutdown) or the lead tasks ``tasks`` (of revoked partitions); they are read
        again from the committed offset."""
        return self._holds.release(tasks)

    def settle(
        self, admission: Admission[Ticket], result: CallResult | None, error: LeadError | None
    ) -> None:
        ticket = admission.ticket
        if ticket is None:
            return
        ticket.over = True
        now = self._clock()
        if ticket.breaker is self.breaker:
            if result is not None:
                self.breaker.record_success(ticket.permit, now)
            elif error is not None and _counts(error):
                self.breaker.record_failure(ticket.permit, now)
            else:
                self.breaker.release(ticket.permit, now)
        if result is not None or (error is not None and _counts(error)):
            self.health.record(result is not None, now)
        if ticket.lease is not None:
            lease, ticket.lease = ticket.lease, None
            if result is not None:
                charged = result.credits
                self._price.answered_at(charged)
            elif error is not None and error.charged is not None:
                # The exact charge of a call that failed after spending (a waterfall's
                # billed misses and failed steps), never a guess below it.
                charged = error.charged
            elif error is not None and error.maybe_charged:
                # No answer, maybe a bill: at the provider's own price, not a global guess.
                charged = self._price.maybe_charged(lease.estimate)
            else:
                charged = 0
            self._claimant.finish(lease, charged)
        if isinstance(error, ProviderCreditsExhausted):
            self._claimant.credits_exhausted(now)
        if isinstance(error, ProviderAuthError) and not error.shares_call:
            log.error("provider.auth_failed", message=error.message)
        if result is not None:
            self._keep(admission, ticket, result, now)
        self._land(ticket.cache_key, ticket.flight)

    def _keep(
        self, admission: Admission[Ticket], ticket: Ticket, result: CallResult, now: float
    ) -> None:
        """Journal the answer's receipt and cache its company fields: in one record, the
        cache entry carrying the receipt, when the lead has a cache key (one state record
        per lead, as before receipts); else the receipt alone. The cache entry names the
        lead that paid for it, which it never answers: that lead has its receipt."""
        key, rid, data = ticket.cache_key, ticket.receipt, result.data
        record = None if key is None else self._state.cache.put(key, data, now, ticket.lead_id)
        home: str | None = None
        if rid is not None:
            if record is not None:
                home = f"cache/{key}"
                carry(record, rid, data, result.credits)
                self._state.receipts.put(rid, data, result.credits, now, home)
            else:
                home = RECEIPT_PREFIX + rid
                receipt = self._state.receipts.put(rid, data, result.credits, now, home)
                self._writes.write(home, receipt)
            admission.after = self._done(rid, home)
        if record is not None:
            self._writes.write(f"cache/{key}", record)

    def cancelled(self, admission: Admission[Ticket]) -> None:
        """A call cut short: it may have been billed, so its slice counts what such a call
        costs (the provider's price; over-count, never under-count)."""
        ticket = admission.ticket
        if ticket is not None:
            ticket.over = True
            if ticket.breaker is self.breaker:
                self.breaker.release(ticket.permit, self._clock())
            if ticket.lease is not None:
                lease, ticket.lease = ticket.lease, None
                self._claimant.finish(lease, self._price.maybe_charged(lease.estimate))
            self._land(ticket.cache_key, ticket.flight)

    def _land(self, key: str | None, flight: asyncio.Future[None] | None) -> None:
        if flight is None:
            return
        if key is not None and self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.done():
            flight.set_result(None)

    # --- asynchronous providers (Clay) -------------------------------------------------------

    def submitted(self, admission: Admission[Ticket]) -> Claim | None:
        """An admitted lead was accepted by an asynchronous provider (a Clay webhook row).

        The submission worked, so the breaker hears a success; the claim stays outstanding
        (returned, to be kept with the pending lead) until :meth:`finished` settles it.
        """
        ticket = admission.ticket
        if ticket is None:
            return None
        if ticket.breaker is self.breaker:
            self.breaker.record_success(ticket.permit, self._clock())
        self._land(ticket.cache_key, ticket.flight)
        lease, ticket.lease = ticket.lease, None
        return None if lease is None else self._claimant.hand_over(lease)

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
        if claim_id is not None and day is not None:
            self._claimant.finished(claim_id, day, credits)
        key = self._state.cache.key_for(domain=domain, email=None)
        if data is not None and key is not None:
            self._remember(key, data, now)

    def _remember(
        self, key: str, data: dict[str, Any], now: float, origin: str | None = None
    ) -> None:
        """Cache what of an enrichment may be cached, here and, for the group and the next
        start, in the state topic; ``origin``: the lead that paid for it."""
        record = self._state.cache.put(key, data, now, origin)
        if record is not None:
            self._writes.write(f"cache/{key}", record)

    def fallback(self, lead: Lead, error: LeadError) -> dict[str, Any] | None:
        """The local fallback for a lead the provider could not serve, when enabled."""
        if not self._config.fallback_enabled:
            return None
        if error.error_class not in _FALLBACK_FOR:
            return None
        return fallback_enrichment(lead)

    async def may_retry(self, admission: Admission[Ticket], error: LeadError) -> bool:
        """Every failed attempt counts against the breaker (our own stalls excepted);
        retries stop once it opened.

        An attempt that may have been billed (no answer came back) keeps its claim as
        spent, and the retry needs a claim of its own: without one, no retry.
        """
        ticket = admission.ticket
        if ticket is None or ticket.breaker is not self.breaker:
            return False
        now = self._clock()
        if _counts(error):
            self.breaker.record_failure(ticket.permit, now)
            self.health.record(False, now)
        if isinstance(error, LocalStall):
            # Our own stall says nothing of the provider, whatever the breaker's state: the
            # retry carries the same Idempotency-Key, so the provider bills the lead once at
            # most, and the slice it holds already covers that (MAX_STALLS bounds it).
            return True
        if self.breaker.state(now) is not BreakerState.CLOSED:
            return False
        while self._spending.paused and not ticket.over:
            # Paused between two attempts: the retry is a new call, so it waits for the
            # resume like any lead (no claim, no call meanwhile).
            await self._holds.hold(None)
        if error.maybe_charged and ticket.lease is not None:
            old, ticket.lease = ticket.lease, None
            self._claimant.finish(old, self._price.maybe_charged(old.estimate))
            lease = await self._claimant.slice()
            if ticket.over:
                # The lead was cancelled while this waited (in a batch the wait runs in the
                # batch's task, not the lead's): no call will use the slice.
                if lease is not None:
                    self._claimant.finish(lease, 0)
                return False
            ticket.lease = lease
            return lease is not None
        return True

    def hold_after(self, error: LeadError) -> bool:
        return (
            error.counts_against_breaker
            and self._config.on_breaker_open is BreakerPolicy.HOLD
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
            holding=self._holds.count,
        )

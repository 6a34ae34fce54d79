"""The process's side of the group-wide budget: credit leases claimed from the claims log.

A call is made only under a slice of a granted lease (see
:mod:`streamproc.resilience.lease`); the claimant claims leases, hands out their slices,
settles them and books Clay's claims. Its one clock decides when a lease is too old: it is
read at each slice and finish, and a ticker task whose every wait is computed from that
clock closes an idle lease once it passes its maximum age, so its unused credits go back
to the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from streamproc.logs import get_logger
from streamproc.processing.config import LeaseConfig
from streamproc.processing.writes import StateWrites
from streamproc.resilience.claims import Claim, ClaimStatus, SetLimit, Settle
from streamproc.resilience.journal import Record
from streamproc.resilience.lease import CreditLease, lease_amount
from streamproc.state.group_state import GroupState

__all__ = ["LeaseClaimant"]

log = get_logger(__name__)

#: Longest wait of the ticker before it reads the clock again (a clock may jump).
_TICK_MAX_S = 1.0
#: Shortest wait: a lease the clock says is not quite due yet is not polled in a busy loop.
_TICK_MIN_S = 0.01
#: How long shutdown waits for a claim on its way through the claims log.
_CLAIM_IN_FLIGHT_S = 10.0
#: Leases in a row given back because a new limit was read while their claim was on its
#: way: each takes an operator's limit change within one claim's round trip, so more than
#: this is a limit changed over and over; no lease then (as when the budget cannot pay:
#: the calls hold and are woken by the next budget record), not a claim loop without end.
_LIMIT_RACES = 3


class LeaseClaimant:
    """Claims leases, hands out one slice per call, and settles what the calls were charged.

    One lease is open at a time. Calls that find it used up queue, and one task claims the
    next lease and serves them in order: a thousand calls waiting for a lease cost one claim,
    not a thousand wake-ups. Budget records go to ``writes``, or straight into ``state``
    while no store is attached. ``clock`` is epoch seconds; the ticker waits with ``sleep``
    for as long as ``clock`` says the current lease has left.
    """

    def __init__(
        self,
        config: LeaseConfig,
        state: GroupState,
        writes: StateWrites,
        *,
        owner: str,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._config = config
        self._state = state
        self._ledger = state.ledger
        self._journal = state.journal
        self._writes = writes
        self._owner = owner
        self._clock = clock
        self._sleep = sleep
        self._lease: CreditLease | None = None
        self._waiters: deque[asyncio.Future[CreditLease | None]] = deque()
        self._leasing: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        #: Claims whose settle this process journaled and has not read back yet: a second
        #: finish of the same claim (Clay) must not book it twice.
        self._settling: set[str] = set()
        #: Days on which this instance's limit was found not to be the group's (logged).
        self._disagreed: set[str] = set()
        #: Operators' limit changes read back so far, per budget day: a claim on its way
        #: while one for its day is read may have been decided under the limit before it
        #: (see :meth:`_open_lease`). Another day's limit (tomorrow's, set today) does not
        #: touch today's claims.
        self._limits_read: dict[str, int] = {}

    @property
    def estimate(self) -> int:
        """Credits one call reserves (the provider's price, else ``credits_per_lead``)."""
        return self._config.estimate

    # --- slices ------------------------------------------------------------------------------

    async def slice(self) -> CreditLease | None:
        """A slice of the current lease, or None when the budget cannot pay for one more
        call (or calls are free)."""
        if self._config.estimate == 0:
            return None
        if not self._waiters and self._take_current():
            return self._lease
        waiter: asyncio.Future[CreditLease | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._leasing is None:
            self._leasing = asyncio.get_running_loop().create_task(self._serve_waiters())
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                granted = waiter.result()
                if granted is not None:  # handed a slice as we were cancelled: unused
                    self.finish(granted, 0)
            raise

    def unused(self, day: str) -> int:
        """Credits of this process's open lease of ``day`` no call has taken yet (0: none
        open): the pacing gate's room of its own (docs/budget.md)."""
        lease = self._open_of(day)
        return 0 if lease is None else max(0, lease.claim.amount - lease.committed)

    def open_lease(self, day: str) -> tuple[str, int] | None:
        """This process's open lease of ``day``: its claim id and :meth:`unused` credits
        (None: none open), which pacing publishes as the other instances' room."""
        lease = self._open_of(day)
        return None if lease is None else (lease.claim.claim_id, self.unused(day))

    def _open_of(self, day: str) -> CreditLease | None:
        lease = self._lease
        if lease is None or lease.closed or lease.detached or lease.day != day:
            return None
        return lease

    def finish(self, lease: CreditLease, charged: int) -> None:
        """A slice's call is over; it was charged ``charged`` credits (0: nothing)."""
        correction = lease.finish(charged)
        if correction:
            self._append(self._journal.correct(lease.day, correction))
        if lease.closed and self._lease is lease:
            self._lease = None
        self._settle_if_due(lease)
        self.expire()

    def hand_over(self, lease: CreditLease) -> Claim:
        """The lease's one lead was submitted (Clay): its claim is settled by :meth:`finished`."""
        lease.detached = True
        return lease.claim

    def _take_current(self) -> bool:
        """Take a slice of the current lease; False (and the lease retired) when it cannot."""
        lease = self._lease
        if lease is None:
            return False
        now = self._clock()
        day = self._ledger.day_at(now)
        if lease.take(now, day, exhausted=self._ledger.exhausted(day)):
            return True
        self._lease = None
        self._settle_if_due(lease)
        return False

    async def _serve_waiters(self) -> None:
        waiters = self._waiters
        try:
            while waiters:
                while waiters and (waiters[0].done() or self._take_current()):
                    waiter = waiters.popleft()
                    if not waiter.done():
                        waiter.set_result(self._lease)
                if not waiters:
                    return
                lease = await self._open_lease(self._ledger.day_at(self._clock()))
                if lease is None:  # the budget cannot pay for one more call now
                    while waiters:
                        waiter = waiters.popleft()
                        if not waiter.done():
                            waiter.set_result(None)
                    return
                self._lease = lease
                self._start_ticker()
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

    # --- claims ------------------------------------------------------------------------------

    async def _open_lease(self, day: str) -> CreditLease | None:
        for _ in range(_LIMIT_RACES + 1):
            limits_read = self._limits_read.get(day, 0)
            lease = await self._claim_lease(day)
            if lease is None or self._limits_read.get(day, 0) == limits_read:
                return lease
            # A new limit was read back while the claim was on its way (the reader
            # applies the records after ours before this task resumes): it may have been
            # granted under the old limit, which the current lease's retirement
            # (read_back) could not reach. Given back unused, the next is claimed under
            # the new one.
            self._retire(lease)
        log.warning("budget.limit_races", day=day, leases_given_back=_LIMIT_RACES + 1)
        return None

    async def _claim_lease(self, day: str) -> CreditLease | None:
        config, ledger = self._config, self._ledger
        # Days before yesterday are over for the group: their records go from the topic.
        self._append(self._journal.stale(ledger.horizon))
        if not ledger.is_open(day) or (
            ledger.limit(day) > config.daily_limit and not ledger.limit_set(day)
        ):
            # Not open, or open with a higher limit than ours: ours is recorded and, the
            # lowest, rules the group's day (docs/budget.md); an operator's limit rules
            # over every configured one.
            self._append(self._journal.open_day(day, config.daily_limit, config.timezone))
        self._check_limit(day)
        # Small, so a crash strands little (see streamproc.resilience.lease).
        wanted = lease_amount(
            config.estimate, config.leads_per_lease, ledger.limit(day), config.max_share
        )
        for amount in dict.fromkeys((wanted, config.estimate)):  # the lead's share, if refused
            # The local view lags other instances; the log decides, so this check only
            # saves a record that would be refused.
            if ledger.remaining(day) < amount:
                continue
            claim = Claim(uuid.uuid4().hex, self._owner, day, amount)
            if await self._granted(claim):
                # Aged from the grant, not the request: a slow claims log must not make a
                # lease too old to use the moment it is granted.
                return CreditLease(
                    claim,
                    config.estimate,
                    self._clock(),
                    config.max_age_s,
                    settle_when_closed=config.settle_when_closed,
                )
        return None

    def _check_limit(self, day: str) -> None:
        """Say once a day, as an error, that this instance's configured limit is not the
        group's: the group runs on the lowest (an instance configured higher obeys it)."""
        limit = self._ledger.limit(day)
        if limit >= self._config.daily_limit or day in self._disagreed:
            return
        if self._ledger.limit_set(day):
            return  # set by an operator, for the group: not a disagreement
        self._disagreed.add(day)
        log.error(
            "budget.limit_disagrees",
            day=day,
            configured=self._config.daily_limit,
            group_limit=limit,
            rule="the lowest budget_daily_credits of the group's instances rules the day",
        )

    async def _granted(self, claim: Claim) -> bool:
        if not self._writes.attached:
            return self._ledger.apply(claim) is True
        await self._writes.round_trip(*self._journal.claim(claim))
        granted = self._ledger.is_granted(claim.claim_id) is True
        if not granted:
            self._append(self._journal.refused(claim))
        return granted

    # --- expiry, on the clock ----------------------------------------------------------------

    def expire(self) -> float | None:
        """Close and settle the current lease once the clock says it is older than its
        maximum age; returns when the current lease will be (None: no lease open)."""
        lease = self._lease
        if lease is None:
            return None
        if self._clock() - lease.opened_at < lease.max_age_s:
            return lease.opened_at + lease.max_age_s
        self._retire(lease)
        return None

    def _start_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while (due := self.expire()) is not None:
            wait = due - self._clock()
            await self._sleep(min(_TICK_MAX_S, max(_TICK_MIN_S, wait)))

    def _retire(self, lease: CreditLease) -> None:
        lease.close()
        if self._lease is lease:
            self._lease = None
        self._settle_if_due(lease)

    # --- settling ----------------------------------------------------------------------------

    def credits_exhausted(self, now: float) -> None:
        """The provider answered 402 at ``now``: no more calls on the current lease (a 402
        charges nothing, so its room would keep admitting calls until the Exhaust comes
        back), and the day is exhausted for the group."""
        day = self._ledger.day_at(now)
        log.error("provider.credits_exhausted", day=day)
        if self._lease is not None:
            self._retire(self._lease)
        self._append(self._journal.exhaust(day))

    def finished(self, claim_id: str, day: str, credits: int) -> None:
        """A submitted lead's claim is over at ``credits``; booked once however often."""
        if claim_id in self._settling:
            return
        if self._ledger.status(claim_id) is ClaimStatus.SETTLED:
            return
        self._settle_claim(claim_id, day, credits)

    def read_back(self, value: dict[str, Any] | None) -> None:
        """A budget record came back from the topic: our own settle is journaled; an
        operator's new limit retires the current lease (its unused room was granted under
        the old limit: the next lease is claimed under the new one)."""
        if value is not None and value.get("type") == SetLimit.TYPE:
            day = str(value.get("day"))
            self._limits_read[day] = self._limits_read.get(day, 0) + 1
            if self._lease is not None and self._lease.day == day:
                log.info("budget.limit_changed", day=day, limit=value.get("limit"))
                self._retire(self._lease)
            return
        if (
            value is not None
            and value.get("type") == Settle.TYPE
            and value.get("writer") == self._journal.writer
        ):
            self._settling.discard(value.get("claim_id", ""))

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
            if self._writes.attached:
                self._writes.write(key, value)
            else:
                self._state.apply_budget(key, value)
                self.read_back(value)

    async def close(self) -> None:
        """Settle the current lease and stop the ticker (at shutdown, no call in flight)."""
        if self._leasing is not None:
            # A claim on its way would otherwise be granted after we settled: its credits
            # would stay reserved until the day resets.
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._leasing), _CLAIM_IN_FLIGHT_S)
        if self._lease is not None:
            self._retire(self._lease)
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

"""A credit lease: one granted budget claim that pays for many leads of one process.

Claiming per lead costs state-topic records and a round trip through the claims log for
every call (about a fifth of the CPU at a thousand leads per second). A process instead
claims ``n * credits_per_lead`` at once and hands out *slices* of it locally, one per call.

The budget's guarantee holds per lease as it held per claim: a slice is handed out only
while ``charged + in_flight * estimate + estimate <= amount``, where a finished call counts
what it was charged; so the lease's calls never spend more than it reserved, except by a
call charged more than the estimate (the same overshoot per call as before). A lease is
closed when it is full, when it is older than its maximum age, when the budget day changes
or when the day is exhausted.

**Settled when closed, not when idle.** The claim is settled the moment the lease closes,
at what it has committed (``charged`` plus the estimate of every call still in flight,
which may all have been billed): its unused credits go back to the group at once, and a
closed lease holds nothing a crash could strand. Each call still in flight then reports a
*correction* when it ends (its charge minus the estimate), which the guard adds to its
running total, so once every call is over the books hold exactly what was charged.

What a lease costs: while it is open, other instances see its whole amount as reserved; a
process killed with its lease open strands that lease's unused credits until the day
resets (over-counting, never under-counting). A process has at most one lease open, and
:func:`lease_amount` keeps it small: at most ``budget_claim_leads`` calls' worth and at
most ``max_share`` of the day's limit, never a share of what remains.

Pure and synchronous: the guard journals the claim and the settle; the clock is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamproc.resilience.claims import Claim

__all__ = ["CallPrice", "CreditLease", "lease_amount"]


def lease_amount(estimate: int, leads: int, limit: int, max_share: float) -> int:
    """Credits one lease claims: ``leads`` calls at ``estimate`` each, cut to the whole calls
    that fit in ``max_share`` of the day's ``limit``, and never less than one call.

    That is also what a crash can strand (see the module docstring). 0 when calls are free.
    """
    if estimate <= 0:
        return 0
    by_share = int(limit * max_share) // estimate
    return max(1, min(leads, by_share)) * estimate


@dataclass(slots=True)
class CreditLease:
    claim: Claim
    #: Credits one call is expected to cost (``credits_per_lead``).
    estimate: int
    opened_at: float
    max_age_s: float
    #: Calls holding a slice, not yet finished.
    in_flight: int = 0
    #: What the finished calls were charged.
    charged: int = 0
    closed: bool = False
    #: The claim was handed to somebody else to settle (Clay: the pending lead keeps it).
    detached: bool = False
    #: The settle was journaled; from now on each finished call reports a correction.
    settled: bool = False
    #: What the journal holds for this lease: the settle, plus the corrections since.
    booked: int = 0
    #: False: settled only once idle as well as closed (Clay: a lease is one lead, whose
    #: claim goes to the pending lead once submitted and is settled by its callback).
    settle_when_closed: bool = True

    @property
    def day(self) -> str:
        return self.claim.day

    @property
    def committed(self) -> int:
        """Credits this lease can no longer hand out: charged plus the in-flight estimates."""
        return self.charged + self.in_flight * self.estimate

    def has_room(self) -> bool:
        return self.committed + self.estimate <= self.claim.amount

    def take(self, now: float, day: str, *, exhausted: bool = False) -> bool:
        """Hand out one slice (True), or close the lease (False) when it cannot."""
        if self.closed:
            return False
        if exhausted or day != self.day or now - self.opened_at >= self.max_age_s:
            self.closed = True
            return False
        if not self.has_room():
            self.closed = True
            return False
        self.in_flight += 1
        return True

    def finish(self, charged: int) -> int:
        """One slice's call is over; it was charged ``charged`` (0: nothing).

        Returns the correction to journal: ``charged - estimate`` once the lease is settled
        (the settle booked this call at its estimate), else 0.
        """
        if self.in_flight <= 0:
            raise ValueError("finish without a slice in flight")
        if charged < 0:
            raise ValueError("charged must be >= 0")
        self.in_flight -= 1
        self.charged += charged
        if not self.has_room():
            self.closed = True
        if not self.settled:
            return 0
        correction = charged - self.estimate
        self.booked += correction
        return correction

    def close(self) -> None:
        self.closed = True

    def due(self) -> bool:
        """Whether the claim should be settled now: closed (and idle, unless
        :attr:`settle_when_closed`), not settled, not detached."""
        idle = self.settle_when_closed or self.in_flight == 0
        return self.closed and idle and not self.settled and not self.detached

    def settle(self) -> int:
        """Mark the claim settled; returns what to book for it: :attr:`committed`."""
        if not self.due():
            raise ValueError("settle of a lease that is open, detached or settled")
        self.settled = True
        self.booked = self.committed
        return self.booked


@dataclass(slots=True)
class CallPrice:
    """What one call costs, as far as this process can know.

    ``configured``: the provider's own fixed price per lead (a declarative provider's
    ``credits_per_match``), when it has one; it is then also what a lease reserves per
    call. A call that may have been billed but brought no answer (cut by a timeout, a
    cancel, a kill) is booked at :meth:`maybe_charged`: that price, else what this
    provider's answered calls were charged on average (rounded up, so a mix of 0s and 1s
    books 1), else the lease's ``estimate`` (``credits_per_lead``), never the global
    estimate when the provider has told us better.
    """

    configured: int | None = None
    charged: int = 0
    answered: int = 0

    def answered_at(self, credits: int) -> None:
        """An answered call was charged ``credits``."""
        self.charged += credits
        self.answered += 1

    def maybe_charged(self, estimate: int) -> int:
        if self.configured is not None:
            return self.configured
        if self.answered == 0:
            return estimate
        return -(-self.charged // self.answered)

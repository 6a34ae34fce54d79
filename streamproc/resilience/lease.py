"""A credit lease: one granted budget claim that pays for many leads of one process.

Claiming per lead costs two state-topic records and a round trip through the claims log
for every call (about a fifth of the CPU at a thousand leads per second). A process
instead claims ``n * credits_per_lead`` at once and hands out *slices* of it locally, one
per call; the claim is settled once, with the sum of what its calls were charged, when the
lease is closed and its last call has finished.

The budget's guarantee holds per lease as it held per claim: a slice is handed out only
while ``charged + in_flight * estimate + estimate <= amount``, where a finished call counts
what it was charged; so the lease's calls never spend more than it reserved, except by a
call charged more than the estimate (the same overshoot per call as before). A lease is
closed when it is full, when it is older than its maximum age, when the budget day changes
or when the day is exhausted; its unused credits return to the group when it settles.

What a lease costs: while it is open, other instances see its whole amount as reserved; a
process killed with its lease open strands the lease's unused credits until the day
resets (over-counting, never under-counting). Both are bounded by the lease's size, which
the guard keeps to at most half the remaining budget.

Pure and synchronous: the guard journals the claim and the settle; the clock is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamproc.resilience.claims import Claim

__all__ = ["CreditLease"]


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
    #: The settle was journaled; nothing may change any more.
    settled: bool = False

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

    def finish(self, charged: int) -> None:
        """One slice's call is over; it was charged ``charged`` (0: nothing)."""
        if self.in_flight <= 0:
            raise ValueError("finish without a slice in flight")
        if charged < 0:
            raise ValueError("charged must be >= 0")
        self.in_flight -= 1
        self.charged += charged
        if not self.has_room():
            self.closed = True

    def close(self) -> None:
        self.closed = True

    def due(self) -> bool:
        """Whether the claim should be settled now (closed, idle, not settled or detached)."""
        return self.closed and self.in_flight == 0 and not self.settled and not self.detached

"""Whether it is safe to feed leads back to the provider now: the replayer's pre-flight.

Pure: reads the group's :class:`~streamproc.records.status.StateStatus` (restored from the
state topic) and says why replaying now would be a mistake, or ``None``.

* breaker **open**: the provider is failing; replayed leads would come straight back to
  the DLQ, each burning an attempt. (Half-open is allowed: the processor lets its probes
  through and holds the rest.)
* budget **exhausted** (the provider answered 402) or **spent** (less than one lead's
  estimate left today): the leads would be dead-lettered as ``budget_exhausted`` again.
"""

from __future__ import annotations

from streamproc.errors import ReplayRefused
from streamproc.records.status import StateStatus

__all__ = ["ReplayRefused", "budget_warning", "refusal_reason"]


def refusal_reason(status: StateStatus, credits_per_lead: int) -> str | None:
    """One line saying why replaying now is unsafe, or ``None`` when it is safe."""
    breaker = status.breaker
    if breaker.state == "open":
        until = breaker.reopens_at or "its cooldown ends"
        return (
            f"the circuit breaker is open until {until}: the provider is failing and "
            "replayed leads would go straight back to the DLQ"
        )
    budget = status.budget
    if budget.exhausted:
        return (
            f"the provider reported its credits exhausted (402) on {budget.day}; "
            f"the budget resets at {budget.resets_at}"
        )
    if credits_per_lead > 0 and budget.remaining < credits_per_lead:
        return (
            f"the daily credit budget is spent ({budget.spent}+{budget.reserved} of "
            f"{budget.limit} credits on {budget.day}); it resets at {budget.resets_at}"
        )
    return None


def budget_warning(
    status: StateStatus, credits_per_lead: int, leads: int, *, at_most: bool = False
) -> str | None:
    """A warning when today's budget cannot pay for ``leads`` replayed leads, else ``None``
    (``at_most``: ``leads`` is an upper bound, as before a run has read the DLQ).

    Not a refusal: some of them may be answered from the cache, and the rest come back as
    ``budget_exhausted`` (retriable after the reset). But each such trip uses an attempt, so
    the operator should know before, and can use ``--limit``.
    """
    if credits_per_lead <= 0 or leads <= 0:
        return None
    budget = status.budget
    affordable = max(budget.remaining, 0) // credits_per_lead
    if affordable >= leads:
        return None
    return (
        f"today's budget has {budget.remaining} credits left, about {affordable} leads at "
        f"{credits_per_lead} credits each, for {'up to ' if at_most else ''}{leads} leads to "
        "replay: the rest would come "
        f"back as budget_exhausted, each using an attempt; consider --limit {affordable} or "
        f"waiting for the reset at {budget.resets_at}"
    )

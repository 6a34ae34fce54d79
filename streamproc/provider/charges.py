"""One request's charge split across its leads: for APIs that bill a request, not a lead.

An API may report what a request cost only as a whole: in a response header (People Data
Labs' ``x-call-credits-spent``) or at the top of a bulk answer (Apollo's
``credits_consumed``). The budget settles per lead, so the total is split by one rule
(docs/provider.md, "Credits"):

* the total is shared by the leads **matched** (the ones the API bills, by its own
  documentation), evenly; the remainder of the division goes one credit each to the first
  matched leads in request order;
* when no lead of the request matched and the total is still above 0 (an API that bills
  misses), it is shared by every lead of the request the same way.

The shares are whole credits and always add up to the total exactly: the group's budget
counts what the API says it charged, no more and no less. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["split_total"]


def split_total(total: int, matched: Sequence[bool]) -> list[int]:
    """Each lead's share of ``total`` whole credits (``matched[i]``: lead ``i`` matched)."""
    if total < 0:
        raise ValueError("a charge is never negative")
    if not matched:
        return []
    takers = [i for i, hit in enumerate(matched) if hit] or list(range(len(matched)))
    each, rest = divmod(total, len(takers))
    shares = [0] * len(matched)
    for rank, index in enumerate(takers):
        shares[index] = each + (1 if rank < rest else 0)
    return shares

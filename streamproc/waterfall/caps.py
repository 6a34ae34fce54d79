"""A provider's credit cap per day: its own limit, or a share of the group's daily budget.

A waterfall member with a cap is not asked (``Unavailable``: the lead goes on to the next
provider) once what it charged today, what its calls in flight may still charge, and its
next call's worst case would pass the cap. "Today" is the hit ledger's UTC day, and what
it charged is every instance's (:meth:`~.ledger.HitLedger.credits`), so the group shares
one cap; other instances' charges arrive with their totals, about once a second. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamproc.errors import ConfigError

__all__ = ["CAP_KEYS", "CreditCap", "daily_cap"]

#: The keys of a ``[streamproc.providers.<name>]`` table that set its cap.
CAP_KEYS = frozenset({"max_credits_per_day", "budget_share"})


@dataclass(frozen=True, slots=True)
class CreditCap:
    """At most ``limit`` credits a day for one provider, the whole group together."""

    limit: int

    def admits(self, spent_today: int, in_flight: int, worst: int) -> bool:
        """Whether one more call fits: a call priced at 0 still counts 1 credit here, so a
        provider whose price is not configured stops at its cap, not one call past it."""
        return spent_today + in_flight + max(worst, 1) <= self.limit


def daily_cap(table: Mapping[str, Any], name: str, budget_daily_credits: int) -> CreditCap | None:
    """The cap of provider instance ``name`` from its table: ``max_credits_per_day`` (a
    whole number of credits) and ``budget_share`` (a fraction of ``budget_daily_credits``,
    rounded down); both set, the lower; neither, None."""
    limits: list[int] = []
    own = table.get("max_credits_per_day")
    if own is not None:
        if not isinstance(own, int) or isinstance(own, bool) or own < 0:
            raise ConfigError(f"providers.{name}.max_credits_per_day must be a whole number >= 0")
        limits.append(own)
    share = table.get("budget_share")
    if share is not None:
        if not isinstance(share, int | float) or isinstance(share, bool) or not 0 < share <= 1:
            raise ConfigError(
                f"providers.{name}.budget_share must be a fraction of the daily budget, "
                "above 0 and at most 1"
            )
        limits.append(math.floor(share * budget_daily_credits))
    return CreditCap(min(limits)) if limits else None

"""The guard's status as typed records: what ``/status``, metrics, the replayer's safety
check and ``state show`` read.

Plain frozen data, built by the guard (:mod:`streamproc.processing.guard`) and the state
view; :meth:`GuardStatus.to_dict` is the ``/status`` JSON. Times are ISO 8601 UTC strings
(``None``: not applicable), credits whole numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "BreakerStatus",
    "BudgetStatus",
    "CacheStatus",
    "GuardStatus",
    "HealthWindowStatus",
    "LaneStatus",
    "StateStatus",
]


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """The provider's circuit breaker: ``closed``, ``half_open`` or ``open``."""

    state: str
    #: When an open breaker lets its first probe through; None unless open.
    reopens_at: str | None
    failures_in_window: int


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """The group's credit budget for its current day (day, limit and zone from the claims
    log, not this process's settings)."""

    day: str
    timezone: str
    limit: int
    spent: int
    #: Held by granted claims not yet settled (calls in flight anywhere in the group).
    reserved: int
    remaining: int
    #: The provider answered 402 today.
    exhausted: bool
    resets_at: str | None
    #: Budget entries this process keeps in memory (what a restore costs).
    kept: int
    #: An operator paused spending for the group (``streamproc budget pause``).
    paused: bool = False
    #: The operator's last change: paused, action, by, why, at, limit, day (None: none).
    control: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CacheStatus:
    """The enrichment cache of this process."""

    #: Answers held in memory.
    entries: int


@dataclass(frozen=True, slots=True)
class HealthWindowStatus:
    """The provider's success rate over the health window (None before any call)."""

    status: str
    success_rate: float | None


@dataclass(frozen=True, slots=True)
class StateStatus:
    """The state the group shares through the state topic: breaker, budget, cache."""

    breaker: BreakerStatus
    budget: BudgetStatus
    cache: CacheStatus

    def to_dict(self) -> dict[str, Any]:
        """As JSON: ``breaker``, ``budget`` and ``cache`` objects of the fields above."""
        b, d = self.breaker, self.budget
        return {
            "breaker": {
                "state": b.state,
                "reopens_at": b.reopens_at,
                "failures_in_window": b.failures_in_window,
            },
            "budget": {
                "day": d.day,
                "timezone": d.timezone,
                "limit": d.limit,
                "spent": d.spent,
                "reserved": d.reserved,
                "remaining": d.remaining,
                "exhausted": d.exhausted,
                "resets_at": d.resets_at,
                "kept": d.kept,
                "paused": d.paused,
                "control": d.control,
            },
            "cache": {"entries": self.cache.entries},
        }


@dataclass(frozen=True, slots=True)
class GuardStatus(StateStatus):
    """A running guard's status: the shared state plus what only its process knows."""

    health: HealthWindowStatus
    #: Leads waiting in a hold now (breaker open or budget spent, policy ``hold``).
    holding: int

    def to_dict(self) -> dict[str, Any]:
        """The ``/status`` JSON (the guard's part of it)."""
        shared = StateStatus.to_dict(self)
        return {
            "breaker": shared["breaker"],
            "budget": shared["budget"],
            "health": {"status": self.health.status, "success_rate": self.health.success_rate},
            "cache": shared["cache"],
            "holding": self.holding,
        }


@dataclass(frozen=True, slots=True)
class LaneStatus:
    """One partition assigned to this process, as ``/status`` shows it under ``lanes``."""

    partition: int
    #: False while its lane is not open (opening, or waiting to retry a failed opening).
    open: bool
    committed_offset: int | None
    #: Leads in its window (processing, held, or finished and waiting for a commit).
    in_flight: int
    #: Its fetching is paused (window full, failing commits, or not open).
    paused: bool
    #: Commits (or openings, when not open) that failed in a row.
    failures: int
    #: Seconds until the next try after those failures (0: none pending).
    retry_in_s: float
    #: Seconds without progress although records wait (None: not stalled).
    stalled_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "open": self.open,
            "committed_offset": self.committed_offset,
            "in_flight": self.in_flight,
            "paused": self.paused,
            "failures": self.failures,
            "retry_in_s": self.retry_in_s,
            "stalled_s": self.stalled_s,
        }

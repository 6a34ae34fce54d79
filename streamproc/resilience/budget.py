"""Budget days: the calendar day a credit budget is for, and when it ends, in an IANA zone.

The group-wide budget (:mod:`streamproc.resilience.claims`) books each claim on a budget
day and resets at its end. Times are **epoch seconds**; days are ISO dates
(``YYYY-MM-DD``), which order correctly as strings. A day's end is the first instant of a
later day in its zone, which is not always midnight (DST gaps, skipped days).
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["budget_day", "day_end", "next_reset"]


@lru_cache(maxsize=32)
def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}") from None


def _local_date(epoch_s: float, tz: str) -> date:
    return datetime.fromtimestamp(epoch_s, _zone(tz)).date()


def budget_day(epoch_s: float, tz: str = "UTC") -> str:
    """The budget day (ISO date, ``YYYY-MM-DD``) that contains ``epoch_s`` in zone ``tz``."""
    return _local_date(epoch_s, tz).isoformat()


def next_reset(epoch_s: float, tz: str = "UTC") -> float:
    """Epoch seconds of the first instant after ``epoch_s`` that lies in a later budget day.

    That is the next local midnight, except where a DST change (or a skipped day, as in
    Pacific/Apia in 2011) makes midnight not exist; then it is the first instant of the
    next day that does exist. ``budget_day(next_reset(t)) > budget_day(t)`` always.
    """
    zone = _zone(tz)
    today = _local_date(epoch_s, tz)
    tomorrow = today + timedelta(days=1)
    # fold=0 resolves a non-existent midnight (in a DST gap) to an instant after the gap,
    # and an ambiguous one to its first occurrence, so it is never early.
    candidate = datetime.combine(tomorrow, time(0), tzinfo=zone).timestamp()
    if _local_date(candidate - 1, tz) <= today:
        return candidate
    # Midnight fell inside a gap that started before it: the day begins at the gap's end.
    # Offsets and transitions are whole seconds, so search the whole seconds in between.
    lo, hi = math.floor(epoch_s), int(candidate)  # date(lo) <= today < date(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _local_date(mid, tz) > today:
            hi = mid
        else:
            lo = mid
    return float(hi)


def day_end(day: str, tz: str = "UTC") -> float:
    """Epoch seconds of the first instant after budget day ``day`` (ISO date) in zone ``tz``.

    ``next_reset`` of noon that day: no zone changes its offset at noon, so noon exists
    (except on a skipped day, whose noon resolves into the next day; it ends a day later).
    """
    noon = datetime.combine(date.fromisoformat(day), time(12), tzinfo=_zone(tz)).timestamp()
    return next_reset(noon, tz)

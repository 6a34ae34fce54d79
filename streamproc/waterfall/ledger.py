"""Each provider's hits per segment, as the whole group sees them.

Every process counts its own answers, per segment, provider and UTC day, and appends the
running totals to the state topic under its own key::

    waterfall/hits/<segment>/<provider>/<YYYY-MM-DD>/<instance>  ->  {"calls", "hits", "credits"}

A later record of a key replaces the earlier one (the topic is compacted, and a total is
idempotent: a record read twice, or compacted away behind a newer one, changes nothing), so
the fold below is the same in every process that read the same records, whatever their
order across keys. A :class:`HitLedger` sums the keys of the last ``window_days`` days, so
old answers age out and a provider that changed is seen as it is now. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

__all__ = ["PREFIX", "HitLedger", "LocalCounts", "ProviderSummary", "Tally", "tally_key"]

PREFIX = "waterfall/hits/"


@dataclass(frozen=True, slots=True)
class Tally:
    """Calls made, calls that found something, credits charged."""

    calls: int = 0
    hits: int = 0
    credits: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.calls + other.calls, self.hits + other.hits, self.credits + other.credits)

    def to_json(self) -> dict[str, int]:
        return {"calls": self.calls, "hits": self.hits, "credits": self.credits}


@dataclass(frozen=True, slots=True)
class ProviderSummary:
    """One provider's tally with what an operator reads off it: the fill rate (hits per
    call) and the credits per found answer (every credit it charged, misses included, over
    its hits); None where there is nothing to divide by."""

    tally: Tally

    @property
    def fill_rate(self) -> float | None:
        return self.tally.hits / self.tally.calls if self.tally.calls else None

    @property
    def credits_per_found(self) -> float | None:
        return self.tally.credits / self.tally.hits if self.tally.hits else None

    def to_json(self) -> dict[str, Any]:
        rate, cost = self.fill_rate, self.credits_per_found
        return {
            **self.tally.to_json(),
            "fill_rate": None if rate is None else round(rate, 4),
            "credits_per_found": None if cost is None else round(cost, 4),
        }


def tally_key(segment: str, provider: str, day: date, instance: str) -> str:
    """The state key of one instance's totals (names are validated to carry no ``/``)."""
    return f"{PREFIX}{segment}/{provider}/{day.isoformat()}/{instance}"


def _tally(value: Mapping[str, Any]) -> Tally | None:
    numbers = [value.get(name) for name in ("calls", "hits", "credits")]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
        return None
    calls, hits, credits = numbers
    assert isinstance(calls, int) and isinstance(hits, int) and isinstance(credits, int)
    return Tally(calls, min(hits, calls), credits)


class HitLedger:
    """The fold of the ``waterfall/hits/`` records."""

    def __init__(self) -> None:
        self._latest: dict[tuple[str, str, date, str], Tally] = {}
        #: Credits by provider and day, every segment and instance: kept as records come,
        #: so a credit cap reads the group's day without a sum over every key.
        self._credits: dict[tuple[str, date], int] = {}

    def apply(self, key: str, value: Mapping[str, Any] | None) -> None:
        """Fold one state record (others are ignored; a tombstone forgets its key; a value
        that is not a tally is ignored, as a record of a newer version would be)."""
        if not key.startswith(PREFIX):
            return
        parts = key[len(PREFIX) :].split("/")
        if len(parts) != 4:
            return
        segment, provider, day_text, instance = parts
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            return
        where = (segment, provider, day, instance)
        tally = None if value is None else _tally(value)
        if value is not None and tally is None:
            return
        before = self._latest.pop(where, None)
        if tally is not None:
            self._latest[where] = tally
        change = (0 if tally is None else tally.credits) - (0 if before is None else before.credits)
        if change:
            self._credits[(provider, day)] = self._credits.get((provider, day), 0) + change

    def credits(self, provider: str, day: date) -> int:
        """Every instance's credits charged by ``provider`` on ``day``, all segments."""
        return self._credits.get((provider, day), 0)

    def tally(self, segment: str, provider: str, today: date, window_days: int) -> Tally:
        """Every instance's totals for ``provider`` in ``segment`` over the window ending
        ``today`` (inclusive)."""
        first = today - timedelta(days=window_days - 1)
        total = Tally()
        for (seg, prov, day, _), counted in self._latest.items():
            if seg == segment and prov == provider and first <= day <= today:
                total = total + counted
        return total

    def by_provider(self, today: date, window_days: int) -> dict[str, ProviderSummary]:
        """Every provider's totals over the window ending ``today`` (inclusive), summed
        over segments and instances, by provider name."""
        first = today - timedelta(days=window_days - 1)
        totals: dict[str, Tally] = {}
        for (_, prov, day, _), counted in self._latest.items():
            if first <= day <= today:
                totals[prov] = totals.get(prov, Tally()) + counted
        return {name: ProviderSummary(totals[name]) for name in sorted(totals)}

    def summary(self, today: date, window_days: int) -> dict[str, Any]:
        """Per provider, ``today``'s numbers and the window's, as JSON: what ``state show``
        and the console print (docs/waterfall.md, "Per provider")."""
        day = self.by_provider(today, 1)
        window = self.by_provider(today, window_days)
        return {
            "day": today.isoformat(),
            "window_days": window_days,
            "providers": [
                {
                    "provider": name,
                    "today": day.get(name, ProviderSummary(Tally())).to_json(),
                    "window": counted.to_json(),
                }
                for name, counted in window.items()
            ],
        }


class LocalCounts:
    """One instance's running totals, and the record that publishes each change."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        self._counts: dict[tuple[str, str, date], Tally] = {}

    def observe(
        self, segment: str, provider: str, day: date, *, hit: bool, credits: int
    ) -> tuple[str, dict[str, int]]:
        """Count one answer; the (key, value) to append to the state topic."""
        where = (segment, provider, day)
        now = self._counts.get(where, Tally()) + Tally(1, int(hit), credits)
        self._counts[where] = now
        return tally_key(segment, provider, day, self.instance), now.to_json()

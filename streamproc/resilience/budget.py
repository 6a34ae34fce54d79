"""The daily credit budget: budget days, and a reserve/settle ledger for one process.

Credits are reserved before a provider call and settled with the provider's actual charge
after it, in one pure object, so no interleaving of concurrent calls can grant more than
the limit (the reference checked and recorded in two steps, and concurrent calls
overshot). The group-wide variant, shared by several processes through one Kafka
partition, is :mod:`streamproc.resilience.claims`; it uses the same :func:`budget_day`.

Clock: every ``now`` is **epoch seconds**, because snapshots survive restarts and budget
days are calendar days in ``BudgetConfig.timezone``.

Rules worth knowing (:class:`CreditLedger`):

* A reservation is granted only if ``spent + reserved + amount <= daily_limit`` and the day
  has not been exhausted by the provider (402).
* The ledger rolls to a new budget day on the first call whose ``now`` falls in a later
  day: spent, reserved and the exhausted flag start from zero. Outstanding reservations of
  the old day are forgotten: a call reserved before midnight and settled after it is
  charged to the day it was reserved in, whose books are closed, so its settle or release
  is ignored and never touches today's numbers. A ``now`` in an *earlier* day (a clock
  stepping back over midnight) is treated as the current day; the ledger never rolls back.
* Settling with ``actual`` above the reserved estimate adds ``actual`` to spent. That is
  the only way past the limit, and the overshoot is bounded: ``spent + reserved <=
  daily_limit + sum(max(0, actual - amount))`` over the day's settled reservations, since
  no reservation is granted while the day is at or over its limit. With ``actual <=
  amount`` the limit holds exactly.
* Crash semantics: a snapshot carries the outstanding reservations. ``restore(...,
  crashed=True)`` (the default) counts them as spent at their reserved amount, because
  the calls may have been paid for: a crash may over-count, it never under-counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from streamproc.settings import Settings

__all__ = [
    "BudgetConfig",
    "CreditLedger",
    "Reservation",
    "budget_day",
    "day_end",
    "next_reset",
]

#: Version of the :meth:`CreditLedger.snapshot` format; bump on incompatible changes.
SNAPSHOT_VERSION = 1


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


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """The group-wide daily credit limit, and the IANA zone whose midnight resets it."""

    daily_limit: int
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if self.daily_limit < 0:
            raise ValueError("daily_limit must be >= 0")
        _zone(self.timezone)

    @classmethod
    def from_settings(cls, settings: Settings) -> BudgetConfig:
        """The budget from ``STREAMPROC_BUDGET_DAILY_CREDITS`` and ``_BUDGET_TIMEZONE``."""
        return cls(daily_limit=settings.budget_daily_credits, timezone=settings.budget_timezone)


@dataclass(frozen=True, slots=True)
class Reservation:
    """Credits set aside for one call, in budget day ``day``; ``reserved_at`` is epoch s."""

    reservation_id: str
    amount: int
    day: str
    reserved_at: float


class CreditLedger:
    """One process's credit books for the current budget day. Not thread-safe.

    The day is fixed by the first call that passes ``now`` (or by ``day=``) and then moves
    forward only.
    """

    def __init__(self, config: BudgetConfig, *, day: str | None = None) -> None:
        self._config = config
        self._day = day
        self._spent = 0
        self._reserved = 0
        self._exhausted = False
        self._reservations: dict[str, Reservation] = {}

    @property
    def config(self) -> BudgetConfig:
        return self._config

    # --- queries -------------------------------------------------------------------------

    def day(self, now: float) -> str:
        """The budget day the books are for at ``now`` (rolls first)."""
        return self._roll(now)

    def spent(self, now: float) -> int:
        """Credits settled today."""
        self._roll(now)
        return self._spent

    def reserved(self, now: float) -> int:
        """Credits held by today's outstanding reservations."""
        self._roll(now)
        return self._reserved

    def remaining(self, now: float) -> int:
        """Credits still grantable today: 0 once exhausted, else ``limit - spent - reserved``.

        Whether that covers one more call (``remaining < credits_per_lead``) is the caller's
        decision; :meth:`reserve` is the one that counts.
        """
        self._roll(now)
        if self._exhausted:
            return 0
        return max(0, self._config.daily_limit - self._spent - self._reserved)

    def exhausted(self, now: float) -> bool:
        """True once a 402 was seen today or ``remaining`` is 0.

        (A zero-credit reservation is still granted at the limit, unless a 402 was seen.)
        """
        return self.remaining(now) <= 0

    def resets_at(self, now: float) -> float:
        """Epoch seconds at which today's books close and a fresh day starts."""
        self._roll(now)
        return next_reset(now, self._config.timezone)

    def outstanding(self) -> list[Reservation]:
        """Today's outstanding reservations, oldest first."""
        return list(self._reservations.values())

    # --- the call protocol -----------------------------------------------------------------

    def reserve(self, reservation_id: str, amount: int, now: float) -> Reservation | None:
        """Set ``amount`` credits aside for one call; ``None`` when the budget refuses it.

        ``reservation_id`` must not name an outstanding reservation (``ValueError``).
        """
        if amount < 0:
            raise ValueError("amount must be >= 0")
        day = self._roll(now)
        if reservation_id in self._reservations:
            raise ValueError(f"reservation {reservation_id!r} is already outstanding")
        if self._exhausted or self._spent + self._reserved + amount > self._config.daily_limit:
            return None
        reservation = Reservation(reservation_id, amount, day, now)
        self._reservations[reservation_id] = reservation
        self._reserved += amount
        return reservation

    def settle(self, reservation_id: str, actual: int, now: float) -> bool:
        """The call was charged ``actual`` credits; false if the reservation is unknown.

        Unknown includes a reservation from a past budget day (charged to that day).
        """
        if actual < 0:
            raise ValueError("actual must be >= 0")
        self._roll(now)
        reservation = self._reservations.pop(reservation_id, None)
        if reservation is None:
            return False
        self._reserved -= reservation.amount
        self._spent += actual
        return True

    def release(self, reservation_id: str, now: float) -> bool:
        """The call failed and cost nothing: frees the reservation; false if unknown."""
        self._roll(now)
        reservation = self._reservations.pop(reservation_id, None)
        if reservation is None:
            return False
        self._reserved -= reservation.amount
        return True

    def exhaust_for_today(self, now: float) -> None:
        """The provider answered 402: refuse every reservation until the next reset."""
        self._roll(now)
        self._exhausted = True

    # --- persistence -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """JSON-able books, outstanding reservations included."""
        return {
            "v": SNAPSHOT_VERSION,
            "day": self._day,
            "spent": self._spent,
            "exhausted": self._exhausted,
            "reservations": [
                {"id": r.reservation_id, "amount": r.amount, "reserved_at": r.reserved_at}
                for r in self._reservations.values()
            ],
        }

    @classmethod
    def restore(
        cls, config: BudgetConfig, snapshot: Mapping[str, Any], *, crashed: bool = True
    ) -> CreditLedger:
        """Books from :meth:`snapshot` output; ``ValueError`` on a malformed one.

        ``crashed=True``: outstanding reservations are counted as spent at their reserved
        amount (their calls may have been paid for; over-count, never under-count).
        ``crashed=False`` (an orderly handover): they come back outstanding and can still be
        settled or released.
        """
        if snapshot.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported budget snapshot version {snapshot.get('v')!r}")
        try:
            day = snapshot["day"]
            if day is not None:
                day = date.fromisoformat(day).isoformat()
            spent = _count(snapshot["spent"], "spent")
            exhausted = snapshot.get("exhausted", False)
            if not isinstance(exhausted, bool):
                raise ValueError("exhausted must be a boolean")
            reservations = [
                Reservation(
                    reservation_id=str(item["id"]),
                    amount=_count(item["amount"], "amount"),
                    day=day,
                    reserved_at=float(item["reserved_at"]),
                )
                for item in snapshot.get("reservations", [])
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed budget snapshot: {exc}") from None
        if reservations and day is None:
            raise ValueError("malformed budget snapshot: reservations without a day")
        ledger = cls(config, day=day)
        ledger._spent = spent
        ledger._exhausted = exhausted
        for reservation in reservations:
            if crashed:
                ledger._spent += reservation.amount
            elif reservation.reservation_id not in ledger._reservations:
                ledger._reservations[reservation.reservation_id] = reservation
                ledger._reserved += reservation.amount
        return ledger

    # --- internals -------------------------------------------------------------------------

    def _roll(self, now: float) -> str:
        today = budget_day(now, self._config.timezone)
        if self._day is None or today > self._day:
            self._day = today
            self._spent = 0
            self._reserved = 0
            self._exhausted = False
            self._reservations.clear()
        return self._day


def _count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{field} must be a non-negative integer")
    return value

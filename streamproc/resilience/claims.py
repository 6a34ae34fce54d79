"""The group-wide credit budget as a deterministic ledger over an ordered, compacted log.

Every process applies the same claims log, in the same order, to a :class:`ClaimLedger`,
so all reach the same decision for every :class:`Claim` without talking to each other.
The decision rule, the group's day and limit, settles with writer totals, compaction and
the bounds on what a crash costs: docs/budget.md. Pure: no Kafka, events are frozen
dataclasses with ``to_dict``/``from_dict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any, ClassVar, TypeAlias

from streamproc.resilience.budget import budget_day, day_end

__all__ = [
    "Claim",
    "ClaimEvent",
    "ClaimLedger",
    "ClaimStatus",
    "Exhaust",
    "OpenDay",
    "SetLimit",
    "Settle",
    "event_from_dict",
]


def _check_id(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} must be a non-empty string")
    return value


def _check_day(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("day must be an ISO date string")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"day must be an ISO date (YYYY-MM-DD), got {value!r}") from None
    if parsed.isoformat() != value:
        # Days are compared as strings; only the canonical form orders correctly.
        raise ValueError(f"day must be in YYYY-MM-DD form, got {value!r}")
    return value


def _check_count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{field} must be a non-negative integer")
    return value


def _expect_type(data: Mapping[str, Any], tag: str) -> None:
    if data.get("type") != tag:
        raise ValueError(f"expected an event of type {tag!r}, got {data.get('type')!r}")


def _field(data: Mapping[str, Any], name: str) -> object:
    try:
        return data[name]
    except KeyError:
        raise ValueError(f"claim event without {name!r}") from None


def _day_before(day: str) -> str:
    return (date.fromisoformat(day) - timedelta(days=1)).isoformat()


@dataclass(frozen=True, slots=True)
class OpenDay:
    """``owner`` opens budget day ``day`` with its ``limit`` and ``timezone`` (IANA).

    The day's limit is the lowest of its OpenDays so far in the log (an instance configured
    lower writes its own); its timezone is the first one's.
    """

    TYPE: ClassVar[str] = "day"

    day: str
    owner: str
    limit: int
    timezone: str

    def __post_init__(self) -> None:
        _check_day(self.day)
        _check_id(self.owner, "owner")
        _check_count(self.limit, "limit")
        _check_id(self.timezone, "timezone")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "day": self.day,
            "owner": self.owner,
            "limit": self.limit,
            "timezone": self.timezone,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OpenDay:
        _expect_type(data, cls.TYPE)
        return cls(
            day=_check_day(_field(data, "day")),
            owner=_check_id(_field(data, "owner"), "owner"),
            limit=_check_count(_field(data, "limit"), "limit"),
            timezone=_check_id(_field(data, "timezone"), "timezone"),
        )


@dataclass(frozen=True, slots=True)
class Claim:
    """``owner`` asks for ``amount`` credits of budget day ``day`` (ISO date).

    ``limit`` is read only from logs without :class:`OpenDay` records: there, the first
    claim of a day carrying one fixes the day's limit.
    """

    TYPE: ClassVar[str] = "claim"

    claim_id: str
    owner: str
    day: str
    amount: int
    limit: int | None = None

    def __post_init__(self) -> None:
        _check_id(self.claim_id, "claim_id")
        _check_id(self.owner, "owner")
        _check_day(self.day)
        _check_count(self.amount, "amount")
        if self.limit is not None:
            _check_count(self.limit, "limit")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": self.TYPE,
            "claim_id": self.claim_id,
            "owner": self.owner,
            "day": self.day,
            "amount": self.amount,
        }
        if self.limit is not None:
            data["limit"] = self.limit
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Claim:
        _expect_type(data, cls.TYPE)
        limit = data.get("limit")
        return cls(
            claim_id=_check_id(_field(data, "claim_id"), "claim_id"),
            owner=_check_id(_field(data, "owner"), "owner"),
            day=_check_day(_field(data, "day")),
            amount=_check_count(_field(data, "amount"), "amount"),
            limit=None if limit is None else _check_count(limit, "limit"),
        )


@dataclass(frozen=True, slots=True)
class Settle:
    """Claim ``claim_id`` of day ``day`` is over; it was booked at ``actual`` credits.

    ``writer`` and ``total`` (both or neither): ``writer`` has booked ``total`` credits on
    ``day`` in all, this settle included (see the module docstring).
    """

    TYPE: ClassVar[str] = "settle"

    claim_id: str
    day: str
    actual: int
    writer: str | None = None
    total: int | None = None

    def __post_init__(self) -> None:
        _check_id(self.claim_id, "claim_id")
        _check_day(self.day)
        _check_count(self.actual, "actual")
        if (self.writer is None) != (self.total is None):
            raise ValueError("a settle has both writer and total, or neither")
        if self.writer is not None:
            _check_id(self.writer, "writer")
            _check_count(self.total, "total")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": self.TYPE,
            "claim_id": self.claim_id,
            "day": self.day,
            "actual": self.actual,
        }
        if self.writer is not None:
            data["writer"] = self.writer
            data["total"] = self.total
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settle:
        _expect_type(data, cls.TYPE)
        writer = data.get("writer")
        total = data.get("total")
        return cls(
            claim_id=_check_id(_field(data, "claim_id"), "claim_id"),
            day=_check_day(_field(data, "day")),
            actual=_check_count(_field(data, "actual"), "actual"),
            writer=None if writer is None else _check_id(writer, "writer"),
            total=None if total is None else _check_count(total, "total"),
        )


@dataclass(frozen=True, slots=True)
class Exhaust:
    """The provider's own credits are gone (402) for budget day ``day``."""

    TYPE: ClassVar[str] = "exhaust"

    day: str

    def __post_init__(self) -> None:
        _check_day(self.day)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "day": self.day}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Exhaust:
        _expect_type(data, cls.TYPE)
        return cls(day=_check_day(_field(data, "day")))


@dataclass(frozen=True, slots=True)
class SetLimit:
    """An operator set budget day ``day``'s limit to ``limit`` (``streamproc budget
    set-limit``): from this record on, claims of the day are decided against it, whatever
    the day's OpenDays say; a later SetLimit of the day replaces it."""

    TYPE: ClassVar[str] = "limit"

    day: str
    limit: int

    def __post_init__(self) -> None:
        _check_day(self.day)
        _check_count(self.limit, "limit")

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "day": self.day, "limit": self.limit}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SetLimit:
        _expect_type(data, cls.TYPE)
        return cls(
            day=_check_day(_field(data, "day")),
            limit=_check_count(_field(data, "limit"), "limit"),
        )


ClaimEvent: TypeAlias = OpenDay | Claim | Settle | Exhaust | SetLimit

_EVENT_TYPES: dict[
    str, type[OpenDay] | type[Claim] | type[Settle] | type[Exhaust] | type[SetLimit]
] = {cls.TYPE: cls for cls in (OpenDay, Claim, Settle, Exhaust, SetLimit)}


def event_from_dict(data: Mapping[str, Any]) -> ClaimEvent:
    """The event a ``to_dict`` produced; ``ValueError`` for anything else.

    All readers must treat a ``ValueError`` the same way (skip the record) to stay in step.
    """
    tag = data.get("type")
    event_type = _EVENT_TYPES.get(tag) if isinstance(tag, str) else None
    if event_type is None:
        raise ValueError(f"unknown claim event type {tag!r}")
    return event_type.from_dict(data)


class ClaimStatus(StrEnum):
    GRANTED = "granted"  # outstanding: counted at its amount
    REFUSED = "refused"
    SETTLED = "settled"  # counted at its actual charge


@dataclass(slots=True)
class _Entry:
    claim: Claim | None  # None: known only from a legacy Settle (its Claim was never seen)
    day: str
    granted: bool
    status: ClaimStatus


@dataclass(slots=True)
class _Day:
    spent: int = 0
    outstanding: int = 0
    exhausted: bool = False
    #: The lowest limit of the day's OpenDays (or a legacy limited Claim's); None: not
    #: opened yet.
    limit: int | None = None
    zone: str | None = None
    #: The operator's limit for the day (the latest SetLimit); rules over ``limit``.
    set_limit: int | None = None
    #: writer -> the total of its latest Settle of this day.
    writers: dict[str, int] = field(default_factory=dict)


class ClaimLedger:
    """Group-wide books, rebuilt identically by every reader of the claims log.

    ``daily_limit`` and ``timezone`` are this reader's own settings: they apply only to a
    day the log has not opened yet (and to the first day of a group with no log at all).
    """

    def __init__(self, daily_limit: int, timezone: str = "UTC") -> None:
        self._limit = _check_count(daily_limit, "daily_limit")
        budget_day(0.0, timezone)  # ValueError for an unknown zone, now rather than later
        self._timezone = timezone
        self._entries: dict[str, _Entry] = {}
        self._days: dict[str, _Day] = {}
        # The latest day opened in the log; days before the one before it are forgotten.
        self._current: str | None = None
        self._horizon: str | None = None

    @property
    def daily_limit(self) -> int:
        """This reader's own limit (see :meth:`limit` for a day's)."""
        return self._limit

    @property
    def horizon(self) -> str | None:
        """Days before this one are forgotten (``None``: none yet)."""
        return self._horizon

    @property
    def current_day(self) -> str | None:
        """The latest budget day opened in the log, ``None`` before any."""
        return self._current

    # --- applying the log --------------------------------------------------------------------

    def apply(self, event: ClaimEvent) -> bool | None:
        """Apply the next event of the log; for a :class:`Claim`, whether it is granted."""
        if isinstance(event, Claim):
            return self._claim(event)
        if self._forgotten(event.day):
            return None
        if isinstance(event, OpenDay):
            book = self._book(event.day)
            # The lowest wins: no instance spends past its own configured limit, whichever
            # instance happened to open the day first.
            if book.limit is None or event.limit < book.limit:
                book.limit = event.limit
            if book.zone is None:
                book.zone = event.timezone
            self._advance(event.day)
        elif isinstance(event, Settle):
            self._settle(event)
        elif isinstance(event, SetLimit):
            self._book(event.day).set_limit = event.limit
        else:
            self._book(event.day).exhausted = True
        return None

    def drop(self, claim_id: str) -> None:
        """The claim's record was tombstoned: forget it, as compaction will.

        Claimants tombstone only claims that are over (refused or settled), so in
        practice this frees memory and changes no total.
        """
        entry = self._entries.pop(claim_id, None)
        if entry is None or entry.claim is None or entry.status is not ClaimStatus.GRANTED:
            return
        book = self._days.get(entry.day)
        if book is not None:
            book.outstanding -= entry.claim.amount

    def _claim(self, claim: Claim) -> bool:
        seen = self._entries.get(claim.claim_id)
        if seen is not None:
            return seen.granted  # a duplicate record: same answer, counted once
        if self._forgotten(claim.day):
            return False
        book = self._book(claim.day)
        if book.limit is None and claim.limit is not None:
            book.limit = claim.limit  # a log from before OpenDay: its first limit rules
        self._advance(claim.day)
        limit = self.limit(claim.day)
        granted = not book.exhausted and book.spent + book.outstanding + claim.amount <= limit
        if granted:
            book.outstanding += claim.amount
        status = ClaimStatus.GRANTED if granted else ClaimStatus.REFUSED
        self._entries[claim.claim_id] = _Entry(claim, claim.day, granted, status)
        return granted

    def _settle(self, event: Settle) -> None:
        entry = self._entries.get(event.claim_id)
        if event.writer is not None and event.total is not None:
            book = self._book(event.day)
            book.spent += event.total - book.writers.get(event.writer, 0)
            book.writers[event.writer] = event.total
            if entry is not None and entry.status is ClaimStatus.GRANTED:
                self._finish(entry)
            elif entry is not None and entry.status is ClaimStatus.REFUSED:
                entry.status = ClaimStatus.SETTLED
            return
        if entry is None:
            # Credits were spent under a claim we never saw; count them where they say.
            self._book(event.day).spent += event.actual
            self._entries[event.claim_id] = _Entry(None, event.day, False, ClaimStatus.SETTLED)
            return
        if entry.status is ClaimStatus.GRANTED:
            self._finish(entry)
            self._book(entry.day).spent += event.actual
        elif entry.status is ClaimStatus.REFUSED:
            # The call should not have been made; it was, so it is paid for.
            entry.status = ClaimStatus.SETTLED
            self._book(entry.day).spent += event.actual

    def _finish(self, entry: _Entry) -> None:
        assert entry.claim is not None  # only a seen Claim can be GRANTED
        self._book(entry.day).outstanding -= entry.claim.amount
        entry.status = ClaimStatus.SETTLED

    def _advance(self, day: str) -> None:
        """``day`` was opened: it is the group's day if later, and older days are dropped."""
        if self._current is None or day > self._current:
            self._current = day
            self.forget_before(_day_before(day))

    # --- the group's day ---------------------------------------------------------------------

    def zone(self, day: str | None = None) -> str:
        """The IANA zone whose midnight ends ``day`` (default: the current day): the day's
        own, else the current day's, else this reader's."""
        for candidate in (day, self._current):
            book = None if candidate is None else self._days.get(candidate)
            if book is not None and book.zone is not None and _known_zone(book.zone):
                return book.zone
        return self._timezone

    def day_at(self, now: float) -> str:
        """The budget day a claim made at ``now`` (epoch s) is for: the group's current
        day, or a later one once ``now`` is past midnight in the current day's zone."""
        local = budget_day(now, self.zone())
        if self._current is not None and self._current > local:
            return self._current
        return local

    def resets_at(self, now: float) -> float:
        """Epoch seconds at which the day of :meth:`day_at` ends, in its zone."""
        day = self.day_at(now)
        return day_end(day, self.zone(day))

    def is_open(self, day: str) -> bool:
        """Whether the log has fixed ``day``'s limit and zone (an OpenDay was applied)."""
        book = self._days.get(day)
        return book is not None and book.limit is not None and book.zone is not None

    def limit(self, day: str) -> int:
        """``day``'s limit: the operator's (a SetLimit), else fixed by the log once the day
        is opened, else this reader's."""
        book = self._days.get(day)
        if book is not None and book.set_limit is not None:
            return book.set_limit
        return self._limit if book is None or book.limit is None else book.limit

    def limit_set(self, day: str) -> bool:
        """Whether an operator set ``day``'s limit (a SetLimit was applied)."""
        book = self._days.get(day)
        return book is not None and book.set_limit is not None

    # --- queries -----------------------------------------------------------------------------

    def is_granted(self, claim_id: str) -> bool | None:
        """The decision on a claim; ``None`` when its Claim has not been applied (yet), or
        was forgotten."""
        entry = self._entries.get(claim_id)
        if entry is None or entry.claim is None:
            return None
        return entry.granted

    def status(self, claim_id: str) -> ClaimStatus | None:
        """Where a claim stands; ``None`` when its Claim has not been applied (yet), or
        was forgotten."""
        entry = self._entries.get(claim_id)
        if entry is None or entry.claim is None:
            return None
        return entry.status

    def spent(self, day: str) -> int:
        """Credits settled for ``day``."""
        book = self._days.get(day)
        return 0 if book is None else book.spent

    def writer_total(self, day: str, writer: str) -> int:
        """The total of ``writer``'s latest settle of ``day`` in the log (0 if none)."""
        book = self._days.get(day)
        return 0 if book is None else book.writers.get(writer, 0)

    def outstanding(self, day: str) -> int:
        """Credits held by granted, unsettled claims of ``day``."""
        book = self._days.get(day)
        return 0 if book is None else book.outstanding

    def exhausted(self, day: str) -> bool:
        """Whether an :class:`Exhaust` was applied for ``day`` (or the day is forgotten)."""
        book = self._days.get(day)
        return self._forgotten(day) or (book is not None and book.exhausted)

    def remaining(self, day: str) -> int:
        """Credits a claim of ``day`` can still get under the day's limit (0 if exhausted)."""
        if self.exhausted(day):
            return 0
        return max(0, self.limit(day) - self.spent(day) - self.outstanding(day))

    def outstanding_claims(self, owner: str | None = None) -> list[Claim]:
        """Granted claims not yet settled, optionally only ``owner``'s."""
        return [
            entry.claim
            for entry in self._entries.values()
            if entry.status is ClaimStatus.GRANTED
            and entry.claim is not None
            and (owner is None or entry.claim.owner == owner)
        ]

    def size(self) -> int:
        """How many things the ledger keeps (claims, days, writer totals): what a restore
        costs in memory. Bounded by open claims and two days' books, not by history."""
        return (
            len(self._entries)
            + len(self._days)
            + sum(len(book.writers) for book in self._days.values())
        )

    # --- housekeeping ------------------------------------------------------------------------

    def forget_before(self, day: str) -> int:
        """Drop every day before ``day`` (ISO date) and its claims; returns claims dropped.

        Later events for a forgotten day are refused (claims) or ignored (the rest). The
        horizon only moves forward; opening a day moves it (see the module docstring).
        """
        day = _check_day(day)
        if self._horizon is not None and day <= self._horizon:
            return 0
        self._horizon = day
        old = [claim_id for claim_id, entry in self._entries.items() if entry.day < day]
        for claim_id in old:
            del self._entries[claim_id]
        for old_day in [d for d in self._days if d < day]:
            del self._days[old_day]
        return len(old)

    # --- internals ---------------------------------------------------------------------------

    def _forgotten(self, day: str) -> bool:
        return self._horizon is not None and day < self._horizon

    def _book(self, day: str) -> _Day:
        book = self._days.get(day)
        if book is None:
            book = self._days[day] = _Day()
        return book


def _known_zone(tz: str) -> bool:
    # A zone this host's tzdata lacks falls back to the reader's own, rather than failing
    # every budget decision.
    try:
        budget_day(0.0, tz)
    except ValueError:
        return False
    return True

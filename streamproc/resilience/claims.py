"""The group-wide credit budget as a deterministic ledger over an ordered log of claims.

Several processes share one daily limit by writing their claims to a single Kafka
partition and each reading that partition back in log order. Every reader applies the
same events in the same order to a :class:`ClaimLedger`, so every reader reaches the same
decision for every :class:`Claim`, and a process calls the provider only once its own
claim has come back from the log *granted*. Nothing here knows about Kafka: events are
frozen dataclasses with ``to_dict``/``from_dict`` for JSON.

Decision rule, for a ``Claim(claim_id, owner, day, amount)``::

    granted  iff  not exhausted(day)
             and  spent(day) + outstanding(day) + amount <= limit

where ``outstanding(day)`` is the sum of granted claims of that day not yet settled or
released, and ``limit`` is the claim's own ``limit`` when set, else the ledger's
``daily_limit``. (A claimant that stamps its configured limit on its claims keeps every
reader agreeing even while instances run with different settings, for example during a
rolling configuration change.)

Other events, each idempotent (the first terminal event for a claim wins; repeats change
nothing):

* ``Settle(claim_id, day, actual)``: a granted claim's call was charged ``actual``: its
  amount leaves ``outstanding`` and ``actual`` joins ``spent``. A settle for a claim that
  was refused, or that this ledger never saw, still adds ``actual`` to ``spent(day)``:
  credits were spent, and the books never under-count.
* ``Release(claim_id, day)``: a granted claim's call failed and cost nothing.
* ``Exhaust(day)``: the provider answered 402; every later claim of that day is refused.

Claims of an owner that died stay outstanding, hence counted, until some process settles
or releases them: a crash over-counts, it never under-counts. When every call is made
under a granted claim and settles with ``actual <= amount``, a day's ``spent +
outstanding`` never exceeds the limit; a larger ``actual`` can overshoot it by at most
``actual - amount`` per claim, since nothing more is granted while the day is at its limit.

Memory grows with the claims seen; :meth:`ClaimLedger.forget_before` drops old days. It is
the only operation not driven by the log, so it only changes decisions for forgotten days
(their claims are refused, their other events ignored): call it for days before yesterday.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, ClassVar, Literal, TypeAlias

__all__ = [
    "Claim",
    "ClaimEvent",
    "ClaimLedger",
    "ClaimStatus",
    "Exhaust",
    "Release",
    "Settle",
    "event_from_dict",
]

#: Version of the :meth:`ClaimLedger.snapshot` format; bump on incompatible changes.
SNAPSHOT_VERSION = 1


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


@dataclass(frozen=True, slots=True)
class Claim:
    """``owner`` asks for ``amount`` credits of budget day ``day`` (ISO date).

    ``limit``, when set, is the daily limit this claim is judged against (the claimant's
    configured limit); ``None`` means the ledger's own.
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
    """Claim ``claim_id`` of day ``day`` was charged ``actual`` credits."""

    TYPE: ClassVar[str] = "settle"

    claim_id: str
    day: str
    actual: int

    def __post_init__(self) -> None:
        _check_id(self.claim_id, "claim_id")
        _check_day(self.day)
        _check_count(self.actual, "actual")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "claim_id": self.claim_id,
            "day": self.day,
            "actual": self.actual,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settle:
        _expect_type(data, cls.TYPE)
        return cls(
            claim_id=_check_id(_field(data, "claim_id"), "claim_id"),
            day=_check_day(_field(data, "day")),
            actual=_check_count(_field(data, "actual"), "actual"),
        )


@dataclass(frozen=True, slots=True)
class Release:
    """Claim ``claim_id`` of day ``day`` cost nothing (the call failed)."""

    TYPE: ClassVar[str] = "release"

    claim_id: str
    day: str

    def __post_init__(self) -> None:
        _check_id(self.claim_id, "claim_id")
        _check_day(self.day)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "claim_id": self.claim_id, "day": self.day}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Release:
        _expect_type(data, cls.TYPE)
        return cls(
            claim_id=_check_id(_field(data, "claim_id"), "claim_id"),
            day=_check_day(_field(data, "day")),
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


ClaimEvent: TypeAlias = Claim | Settle | Release | Exhaust

_EVENT_TYPES: dict[str, type[Claim] | type[Settle] | type[Release] | type[Exhaust]] = {
    cls.TYPE: cls for cls in (Claim, Settle, Release, Exhaust)
}


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
    RELEASED = "released"


@dataclass(slots=True)
class _Entry:
    claim: Claim | None  # None: known only from a Settle (its Claim was never seen)
    day: str
    granted: bool
    status: ClaimStatus


@dataclass(slots=True)
class _Day:
    spent: int = 0
    outstanding: int = 0
    exhausted: bool = False


_Terminal = Literal[ClaimStatus.SETTLED, ClaimStatus.RELEASED]


class ClaimLedger:
    """Group-wide books, rebuilt identically by every reader of the claims log."""

    def __init__(self, daily_limit: int) -> None:
        self._limit = _check_count(daily_limit, "daily_limit")
        self._entries: dict[str, _Entry] = {}
        self._days: dict[str, _Day] = {}
        # Days before this one are forgotten (see forget_before).
        self._horizon: str | None = None

    @property
    def daily_limit(self) -> int:
        return self._limit

    # --- applying the log --------------------------------------------------------------------

    def apply(self, event: ClaimEvent) -> bool | None:
        """Apply the next event of the log; for a :class:`Claim`, whether it is granted."""
        if isinstance(event, Claim):
            return self._claim(event)
        if self._forgotten(event.day):
            return None
        if isinstance(event, Settle):
            self._settle(event)
        elif isinstance(event, Release):
            self._release(event)
        else:
            self._book(event.day).exhausted = True
        return None

    def _claim(self, claim: Claim) -> bool:
        seen = self._entries.get(claim.claim_id)
        if seen is not None:
            return seen.granted  # a duplicate record: same answer, counted once
        if self._forgotten(claim.day):
            return False
        book = self._book(claim.day)
        limit = self._limit if claim.limit is None else claim.limit
        granted = not book.exhausted and book.spent + book.outstanding + claim.amount <= limit
        if granted:
            book.outstanding += claim.amount
        status = ClaimStatus.GRANTED if granted else ClaimStatus.REFUSED
        self._entries[claim.claim_id] = _Entry(claim, claim.day, granted, status)
        return granted

    def _settle(self, event: Settle) -> None:
        entry = self._entries.get(event.claim_id)
        if entry is None:
            # Credits were spent under a claim we never saw; count them where they say.
            self._book(event.day).spent += event.actual
            self._entries[event.claim_id] = _Entry(None, event.day, False, ClaimStatus.SETTLED)
            return
        if entry.status is ClaimStatus.GRANTED:
            self._finish(entry, ClaimStatus.SETTLED)
            self._book(entry.day).spent += event.actual
        elif entry.status is ClaimStatus.REFUSED:
            # The call should not have been made; it was, so it is paid for.
            entry.status = ClaimStatus.SETTLED
            self._book(entry.day).spent += event.actual

    def _release(self, event: Release) -> None:
        entry = self._entries.get(event.claim_id)
        if entry is not None and entry.status is ClaimStatus.GRANTED:
            self._finish(entry, ClaimStatus.RELEASED)

    def _finish(self, entry: _Entry, status: _Terminal) -> None:
        assert entry.claim is not None  # only a seen Claim can be GRANTED
        self._book(entry.day).outstanding -= entry.claim.amount
        entry.status = status

    # --- queries -----------------------------------------------------------------------------

    def is_granted(self, claim_id: str) -> bool | None:
        """The decision on a claim; ``None`` when its Claim has not been applied (yet)."""
        entry = self._entries.get(claim_id)
        if entry is None or entry.claim is None:
            return None
        return entry.granted

    def status(self, claim_id: str) -> ClaimStatus | None:
        """Where a claim stands; ``None`` when its Claim has not been applied (yet)."""
        entry = self._entries.get(claim_id)
        if entry is None or entry.claim is None:
            return None
        return entry.status

    def spent(self, day: str) -> int:
        """Credits settled for ``day``."""
        book = self._days.get(day)
        return 0 if book is None else book.spent

    def outstanding(self, day: str) -> int:
        """Credits held by granted, unsettled, unreleased claims of ``day``."""
        book = self._days.get(day)
        return 0 if book is None else book.outstanding

    def exhausted(self, day: str) -> bool:
        """Whether an :class:`Exhaust` was applied for ``day`` (or the day is forgotten)."""
        book = self._days.get(day)
        return self._forgotten(day) or (book is not None and book.exhausted)

    def remaining(self, day: str) -> int:
        """Credits a claim of ``day`` can still get under the ledger's limit (0 if exhausted)."""
        if self.exhausted(day):
            return 0
        return max(0, self._limit - self.spent(day) - self.outstanding(day))

    def outstanding_claims(self, owner: str | None = None) -> list[Claim]:
        """Granted claims not yet settled or released, optionally only ``owner``'s."""
        return [
            entry.claim
            for entry in self._entries.values()
            if entry.status is ClaimStatus.GRANTED
            and entry.claim is not None
            and (owner is None or entry.claim.owner == owner)
        ]

    # --- housekeeping ------------------------------------------------------------------------

    def forget_before(self, day: str) -> int:
        """Drop every day before ``day`` (ISO date) and its claims; returns claims dropped.

        Later events for a forgotten day are refused (claims) or ignored (the rest). The
        horizon only moves forward.
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

    def snapshot(self) -> dict[str, Any]:
        """JSON-able ledger state, to resume reading the log after the last applied event."""
        claims: list[dict[str, Any]] = []
        settles: list[dict[str, Any]] = []
        for claim_id, entry in self._entries.items():
            if entry.claim is None:
                settles.append({"claim_id": claim_id, "day": entry.day})
            else:
                claims.append(
                    {
                        **entry.claim.to_dict(),
                        "status": entry.status.value,
                        "granted": entry.granted,
                    }
                )
        return {
            "v": SNAPSHOT_VERSION,
            "horizon": self._horizon,
            "days": {
                day: {"spent": book.spent, "exhausted": book.exhausted}
                for day, book in self._days.items()
            },
            "claims": claims,
            "orphan_settles": settles,
        }

    @classmethod
    def restore(cls, daily_limit: int, snapshot: Mapping[str, Any]) -> ClaimLedger:
        """A ledger from :meth:`snapshot` output; ``ValueError`` on a malformed one."""
        if snapshot.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported claims snapshot version {snapshot.get('v')!r}")
        ledger = cls(daily_limit)
        try:
            horizon = snapshot.get("horizon")
            ledger._horizon = None if horizon is None else _check_day(horizon)
            for day, book in snapshot["days"].items():
                ledger._days[_check_day(day)] = _Day(
                    spent=_check_count(book["spent"], "spent"),
                    exhausted=bool(book["exhausted"]),
                )
            for item in snapshot["claims"]:
                claim = Claim.from_dict(
                    {k: v for k, v in item.items() if k not in ("status", "granted")}
                )
                status = ClaimStatus(item["status"])
                granted = item["granted"]
                if not isinstance(granted, bool):
                    raise ValueError("granted must be a boolean")
                ledger._entries[claim.claim_id] = _Entry(claim, claim.day, granted, status)
                if status is ClaimStatus.GRANTED:
                    ledger._book(claim.day).outstanding += claim.amount
            for item in snapshot.get("orphan_settles", []):
                claim_id = _check_id(item["claim_id"], "claim_id")
                ledger._entries[claim_id] = _Entry(
                    None, _check_day(item["day"]), False, ClaimStatus.SETTLED
                )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"malformed claims snapshot: {exc}") from None
        return ledger

    # --- internals ---------------------------------------------------------------------------

    def _forgotten(self, day: str) -> bool:
        return self._horizon is not None and day < self._horizon

    def _book(self, day: str) -> _Day:
        book = self._days.get(day)
        if book is None:
            book = self._days[day] = _Day()
        return book

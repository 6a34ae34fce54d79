"""What one process writes to the claims log, under which keys, and what it tombstones.

The claims log is a compacted topic (see :mod:`streamproc.state.store`): compaction keeps
the latest record per key and drops a key once its latest record is a tombstone. The
:class:`~streamproc.resilience.claims.ClaimLedger` is built so that the log can shrink to
the open claims and two days' totals without changing any total; this module is the
writer's side of that bargain. Keys (all under ``budget/<day>/``):

=========================  ==========================================================
``<claim>/c``              a :class:`Claim`; tombstoned once the claim is over (refused
                           at once; settled once the writer settles a later claim)
``<claim>/s``              a :class:`Settle` with the writer's running total; the
                           writer's newest is kept, older ones are tombstoned with
                           their claim
``fix/<writer>-fix-<n>``   a correction: a :class:`Settle` of no claim carrying the
                           writer's new total; tombstoned at the writer's next settle
``open/<owner>``           an :class:`OpenDay`; never rewritten, so the first one of a
                           day keeps its place in the log until the day is tombstoned
``exhausted``              an :class:`Exhaust`
``limit/<nonce>``          a :class:`SetLimit` (an operator's ``budget set-limit``);
                           every one of the day is kept, in log order, until the day is
                           tombstoned, so a restore decides claims as the live readers did
=========================  ==========================================================

Every key of a day before yesterday (as the ledger's horizon says) is tombstoned by the
next process to claim: :meth:`BudgetJournal.stale` hands them out once.

Pure and synchronous: it returns ``(key, value)`` records, ``None`` for a tombstone, and
the shell appends them in the order given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from streamproc.resilience.claims import Claim, Exhaust, OpenDay, Settle

__all__ = ["BudgetJournal", "Record", "claim_key", "limit_key", "parse_key"]

#: A state-topic record: key and JSON value, or ``None`` for a tombstone.
Record: TypeAlias = tuple[str, dict[str, Any] | None]

#: Keys of forgotten days remembered for tombstoning: after an upgrade the topic may hold
#: a long history of unique keys; the rest go out in later sweeps, memory stays bounded.
STALE_KEYS_MAX = 10_000


def claim_key(day: str, claim_id: str) -> str:
    return f"budget/{day}/{claim_id}/c"


def limit_key(day: str, nonce: str) -> str:
    """The key of a :class:`SetLimit`: unique, so that compaction keeps every limit change of
    the day where it was, not only the last one (claims between two changes were decided
    against the first)."""
    return f"budget/{day}/limit/{nonce}"


def _settle_key(day: str, claim_id: str) -> str:
    return f"budget/{day}/{claim_id}/s"


@dataclass(frozen=True, slots=True)
class _Key:
    day: str
    #: The claim id of a ``<claim>/c`` key; None for every other key.
    claim_id: str | None


def parse_key(key: str) -> _Key | None:
    """The day (and claim id, for a claim's key) of a ``budget/...`` key; None otherwise."""
    parts = key.split("/")
    if len(parts) < 3 or parts[0] != "budget" or not parts[1]:
        return None
    is_claim = len(parts) == 4 and parts[3] == "c" and parts[2] != "open"
    claim_id = parts[2] if is_claim else None
    return _Key(parts[1], claim_id)


class BudgetJournal:
    """One writer's running totals and the budget keys it knows to be live."""

    def __init__(self, writer: str) -> None:
        self.writer = writer
        self._totals: dict[str, int] = {}
        # day -> (claim id, actual) of this writer's newest settle: its records are kept.
        self._latest: dict[str, tuple[str, int]] = {}
        self._opened: set[str] = set()
        # day -> keys of corrections since this writer's newest settle (see correct()).
        self._fix_keys: dict[str, list[str]] = {}
        self._fixes = 0
        self._live: dict[str, set[str]] = {}
        self._stale_count = 0

    # --- records to write ------------------------------------------------------------------

    def open_day(self, day: str, limit: int, timezone: str) -> list[Record]:
        """The OpenDay for ``day``, once per day and writer (the first in the log rules)."""
        if day in self._opened:
            return []
        self._opened.add(day)
        event = OpenDay(day, self.writer, limit, timezone)
        return [(f"budget/{day}/open/{self.writer}", event.to_dict())]

    @staticmethod
    def claim(claim: Claim) -> Record:
        return claim_key(claim.day, claim.claim_id), claim.to_dict()

    @staticmethod
    def refused(claim: Claim) -> list[Record]:
        """A refused claim is over: tombstone it, or a restore after compaction (which
        sees less before it) might grant it and count it forever."""
        return [(claim_key(claim.day, claim.claim_id), None)]

    def settle(self, claim_id: str, day: str, actual: int) -> list[Record]:
        """Settle a claim at ``actual``; the previous settled claim's records go."""
        total = self._totals.get(day, 0) + actual
        self._totals[day] = total
        records = [self._settle(claim_id, day, actual, total)]
        previous = self._latest.get(day)
        self._latest[day] = (claim_id, actual)
        if previous is not None and previous[0] != claim_id:
            # Written after the new total, so no reader (live or restoring after compaction)
            # ever misses the credits the previous settle carried.
            records += [(claim_key(day, previous[0]), None), (_settle_key(day, previous[0]), None)]
        records += [(key, None) for key in self._fix_keys.pop(day, [])]
        return records

    def correct(self, day: str, correction: int) -> list[Record]:
        """A call of a settled lease cost ``correction`` more (or less) than its estimate:
        a settle of its own carries the writer's new total.

        Its own key, not the newest settle's written again: compaction would keep only that
        later copy, and the settled claim's record before it would count as outstanding,
        for a reader restoring from the compacted log, over every claim in between, refusing
        claims the live readers granted. Corrections go with the writer's next settle.
        """
        if correction == 0 or self._latest.get(day) is None:
            return []
        total = max(0, self._totals.get(day, 0) + correction)
        self._totals[day] = total
        self._fixes += 1
        fix_id = f"{self.writer}-fix-{self._fixes}"
        key = f"budget/{day}/fix/{fix_id}"
        self._fix_keys.setdefault(day, []).append(key)
        # ``actual`` 0: a reader books the writer's total, which carries the correction.
        return [(key, Settle(fix_id, day, 0, self.writer, total).to_dict())]

    def _settle(self, claim_id: str, day: str, actual: int, total: int) -> Record:
        event = Settle(claim_id, day, actual, self.writer, total)
        return _settle_key(day, claim_id), event.to_dict()

    @staticmethod
    def exhaust(day: str) -> list[Record]:
        return [(f"budget/{day}/exhausted", Exhaust(day).to_dict())]

    def total(self, day: str) -> int:
        """What this writer has booked on ``day`` so far."""
        return self._totals.get(day, 0)

    # --- keys in the log -------------------------------------------------------------------

    def track(self, key: str, live: bool, horizon: str | None) -> None:
        """A record of ``key`` was read from the log (``live``: not a tombstone)."""
        parsed = parse_key(key)
        if parsed is None:
            return
        stale = horizon is not None and parsed.day < horizon
        keys = self._live.get(parsed.day)
        if not live:
            if keys is not None and key in keys:
                keys.discard(key)
                # Approximate (a key may have turned stale since): it only paces the cap.
                self._stale_count = max(0, self._stale_count - stale)
                if not keys:
                    del self._live[parsed.day]
            return
        if keys is not None and key in keys:
            return
        if stale:
            if self._stale_count >= STALE_KEYS_MAX:
                return
            self._stale_count += 1
        self._live.setdefault(parsed.day, set()).add(key)

    def stale(self, horizon: str | None) -> list[Record]:
        """Tombstones for every live key of a day before ``horizon``, each handed out once;
        this writer's bookkeeping for those days goes too."""
        if horizon is None:
            return []
        records: list[Record] = []
        for day in [d for d in self._live if d < horizon]:
            records += [(key, None) for key in sorted(self._live.pop(day))]
        for old in [d for d in self._totals if d < horizon]:
            del self._totals[old]
        for old in [d for d in self._latest if d < horizon]:
            del self._latest[old]
        for old in [d for d in self._fix_keys if d < horizon]:
            del self._fix_keys[old]
        self._opened = {d for d in self._opened if d >= horizon}
        self._stale_count = sum(len(k) for d, k in self._live.items() if d < horizon)
        return records

    def live_keys(self) -> int:
        """Budget keys known to be live in the log (what a restore keeps besides the ledger)."""
        return sum(len(keys) for keys in self._live.values())

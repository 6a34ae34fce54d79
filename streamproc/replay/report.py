"""What a replay run did (or, for ``--dry-run``, would do): counts by outcome and class.

Pure: the replayer counts into a :class:`ReplayReport` only what it has *committed* (a dry
run counts what it read), and the CLI renders it as text or JSON.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from streamproc.replay.decision import Outcome

__all__ = ["ReplayReport", "StopReason"]

#: Why the run ended: the end offsets seen at start were reached, ``--limit`` records
#: matched, a signal asked it to stop, the safety check failed during the run, or an
#: error stopped it (what is counted was committed all the same).
StopReason = Literal["end", "limit", "interrupted", "unsafe", "failed", "running"]


@dataclass
class ReplayReport:
    dry_run: bool
    filters: str
    max_attempts: int
    #: ``(outcome, error_class) -> records``.
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    transactions: int = 0
    stop_reason: StopReason = "running"
    elapsed_s: float = 0.0
    #: Set when the run did not start (the safety check refused it) or stopped on an error.
    refusal: str | None = None
    #: Set when today's budget cannot pay for what is (or would be) replayed.
    budget_warning: str | None = None
    #: Of the parked records, those parked because the DLQ holds only part of their value
    #: (``streamproc.value.truncated``): never replayed, whatever their class and attempt.
    truncated: int = 0

    def add(self, outcome: Outcome, error_class: str, n: int = 1) -> None:
        self.counts[(outcome, error_class)] += n

    def merge(self, other: Counter[tuple[str, str]]) -> None:
        self.counts.update(other)

    def total(self, outcome: str) -> int:
        return sum(n for (o, _), n in self.counts.items() if o == outcome)

    @property
    def read(self) -> int:
        return sum(self.counts.values())

    def by_class(self) -> dict[str, dict[str, int]]:
        """``{error_class: {"replay": n, "park": n, "skip": n}}``, classes sorted."""
        out: dict[str, dict[str, int]] = {}
        for (outcome, error_class), n in sorted(self.counts.items(), key=lambda kv: kv[0][1]):
            row = out.setdefault(error_class, {"replay": 0, "park": 0, "skip": 0})
            row[outcome] = row.get(outcome, 0) + n
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "filters": self.filters,
            "max_attempts": self.max_attempts,
            "read": self.read,
            "replayed": self.total("replay"),
            "parked": self.total("park"),
            "parked_truncated": self.truncated,
            "skipped": self.total("skip"),
            "by_error_class": self.by_class(),
            "transactions": self.transactions,
            "stop_reason": self.stop_reason,
            "refusal": self.refusal,
            "budget_warning": self.budget_warning,
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def render_text(self, *, raw: str, parked: str, dlq: str) -> str:
        """The operator's summary: a table by error class and one line of totals."""
        verb = "would be" if self.dry_run else "were"
        head = "DRY RUN: nothing was written or committed. " if self.dry_run else ""
        lines = [
            f"{head}filters: {self.filters}; max attempts: {self.max_attempts}",
            f"{'error class':<20}{'replay':>8}{'park':>8}{'skip':>8}",
        ]
        for error_class, row in self.by_class().items():
            lines.append(f"{error_class:<20}{row['replay']:>8}{row['park']:>8}{row['skip']:>8}")
        lines.append(
            f"{'total':<20}{self.total('replay'):>8}{self.total('park'):>8}{self.total('skip'):>8}"
        )
        lines.append(
            f"{self.read} records read from {dlq}: {self.total('replay')} {verb} replayed to "
            f"{raw}, {self.total('park')} {verb} parked in {parked}, {self.total('skip')} "
            f"did not match the filters"
            + (" and stay in the DLQ" if self.dry_run else f" and {verb} put back in {dlq}")
        )
        if self.truncated:
            lines.append(
                f"{self.truncated} of the parked {verb} truncated in the DLQ (only their first "
                "bytes were kept): never replayed, their whole value is at their origin"
            )
        ending = {
            "end": "stopped at the end offsets seen at start",
            "limit": "stopped at --limit",
            "interrupted": "interrupted: stopped after the last committed transaction; "
            "run again to continue",
            "unsafe": f"stopped because it is no longer safe to replay: {self.refusal}",
            "failed": "stopped by the error below; what is counted above was committed",
            "running": "still running",
        }[self.stop_reason]
        if not self.dry_run:
            ending += f"; {self.transactions} transactions"
        lines.append(f"{ending}; {self.elapsed_s:.1f} s")
        if self.dry_run and self.refusal:
            lines.append(f"NOTE: a real run would refuse to start now: {self.refusal}")
        if self.budget_warning:
            lines.append(f"NOTE: {self.budget_warning}")
        return "\n".join(lines)

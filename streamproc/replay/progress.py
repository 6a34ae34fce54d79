"""Progress of a replay run: a rich progress bar on a terminal, log lines otherwise.

Both sinks read the run's :class:`~streamproc.replay.report.ReplayReport` after each
committed transaction, so what they show was committed. The total is the number of
offsets between the group's position and the end offsets seen at start: an upper bound of
the records (transaction markers take offsets too), so the bar may finish early.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

from streamproc.logs import get_logger
from streamproc.ops.metrics import Metrics
from streamproc.replay.report import ReplayReport

__all__ = [
    "LogProgress",
    "MetricsProgress",
    "NullProgress",
    "ProgressSink",
    "RichProgress",
    "eta_s",
    "make_progress",
]

log = get_logger("streamproc.replay")


def eta_s(done: int, total: int | None, elapsed_s: float) -> float | None:
    """Seconds left at the average pace so far; ``None`` when it cannot be told yet."""
    if total is None or done <= 0 or elapsed_s <= 0:
        return None
    left = max(total - done, 0)
    return left * elapsed_s / done


class ProgressSink(Protocol):
    def start(self, total: int | None) -> None:
        """The run starts; ``total`` records at most (``None`` with ``--follow``)."""
        ...

    def update(self, report: ReplayReport) -> None:
        """A transaction was committed (or, in a dry run, a batch was read)."""
        ...

    def note(self, message: str) -> None:
        """Something the operator should see now (a pause, a resume)."""
        ...

    def finish(self) -> None: ...


class NullProgress:
    def start(self, total: int | None) -> None:
        return None

    def update(self, report: ReplayReport) -> None:
        return None

    def note(self, message: str) -> None:
        return None

    def finish(self) -> None:
        return None


class LogProgress:
    """A ``replay.progress`` log line at most every ``interval_s``, and one at the end."""

    def __init__(
        self, *, interval_s: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._total: int | None = None
        self._started = 0.0
        self._last_logged = 0.0
        self._last: ReplayReport | None = None

    def start(self, total: int | None) -> None:
        self._total = total
        self._started = self._last_logged = self._clock()
        log.info("replay.started", records_at_most=total)

    def fields(self, report: ReplayReport) -> dict[str, Any]:
        elapsed = self._clock() - self._started
        eta = eta_s(report.read, self._total, elapsed)
        return {
            "read": report.read,
            "of_at_most": self._total,
            "replayed": report.total("replay"),
            "parked": report.total("park"),
            "skipped": report.total("skip"),
            "per_s": round(report.read / elapsed, 1) if elapsed > 0 else None,
            "eta_s": None if eta is None else round(eta, 1),
        }

    def update(self, report: ReplayReport) -> None:
        self._last = report
        now = self._clock()
        if now - self._last_logged >= self._interval_s:
            self._last_logged = now
            log.info("replay.progress", **self.fields(report))

    def note(self, message: str) -> None:
        log.warning("replay.note", message=message)

    def finish(self) -> None:
        if self._last is not None:
            log.info("replay.progress", **self.fields(self._last))


class RichProgress:
    """A progress bar on stderr: records read of the total, outcome counts, ETA."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]replay"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        self._task: Any = None

    def start(self, total: int | None) -> None:
        self._progress.start()
        self._task = self._progress.add_task("replay", total=total, counts="")

    def update(self, report: ReplayReport) -> None:
        counts = (
            f"replayed {report.total('replay')}  parked {report.total('park')}  "
            f"skipped {report.total('skip')}"
        )
        self._progress.update(self._task, completed=report.read, counts=counts)

    def note(self, message: str) -> None:
        self._progress.console.print(f"[yellow]{message}[/]")

    def finish(self) -> None:
        task = self._progress.tasks[0] if self._progress.tasks else None
        if task is not None and task.total is not None:
            self._progress.update(self._task, total=task.completed)
        self._progress.stop()


class MetricsProgress:
    """Feeds the replay metrics (``streamproc_replay_records_total{action}``,
    ``streamproc_replay_remaining_records``) from the committed report, then ``inner``."""

    def __init__(self, metrics: Metrics, inner: ProgressSink) -> None:
        self._metrics = metrics
        self._inner = inner
        self._total: int | None = None
        self._counted = {"replay": 0, "park": 0}

    def start(self, total: int | None) -> None:
        self._total = total
        if total is not None:
            self._metrics.set_replay_remaining(total)
        self._inner.start(total)

    def update(self, report: ReplayReport) -> None:
        if not report.dry_run:  # a dry run moves nothing: nothing to count as replayed
            for outcome, action in (("replay", "replayed"), ("park", "parked")):
                done = report.total(outcome)
                for _ in range(done - self._counted[outcome]):
                    self._metrics.replay_record(action)
                self._counted[outcome] = done
        if self._total is not None:
            self._metrics.set_replay_remaining(self._total - report.read)
        self._inner.update(report)

    def note(self, message: str) -> None:
        self._inner.note(message)

    def finish(self) -> None:
        self._inner.finish()


def make_progress(enabled: bool = True) -> ProgressSink:
    """A bar on a terminal, log lines otherwise; nothing when disabled."""
    if not enabled:
        return NullProgress()
    if sys.stderr.isatty():
        return RichProgress()
    return LogProgress()

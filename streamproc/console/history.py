"""What the console draws over time: breaker transitions, the budget's burn, throughput.

Pure and synchronous; times are epoch seconds handed in by the caller (its clock), so the
same objects serve a processor and ``streamproc console``. Bounded: a process that runs
for months keeps a day of each.

* :class:`BreakerLog`: the breaker records of the state topic (``breaker/provider``, one
  per transition to open or closed, each with its time ``at``), as a list of transitions.
  The topic is compacted, so a restore sees the transitions not yet compacted away, and
  every later one as it is written.
* :class:`BurnSeries`: the budget's ``spent`` and ``reserved`` sampled while the console
  watches. The claims log carries totals, not the times they were reached, so the points
  start when this process started watching; before that only the day's start (0 spent,
  by definition) is known.
* :class:`ThroughputMeter`: records per second from a growing total (the sum of the
  group's committed offsets), over a sliding window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["BreakerLog", "BurnPoint", "BurnSeries", "ThroughputMeter", "Transition", "day_bounds"]

#: Transitions remembered: far more than a day of a flapping breaker shows usefully.
_MAX_TRANSITIONS = 500
#: Burn points in the same slot of this length replace each other: a restore reads
#: thousands of budget records in a second, and a chart has no use for them one by one.
_MIN_GAP_S = 2.0
#: Points kept per day; past it, every second older point goes (the shape stays).
_MAX_POINTS = 720


def day_bounds(day: str, timezone: str) -> tuple[float, float]:
    """Epoch seconds of the start and end of budget day ``day`` (ISO date) in ``timezone``."""
    zone = ZoneInfo(timezone)
    first = date.fromisoformat(day)
    start = datetime.combine(first, time(), zone)
    end = datetime.combine(date.fromordinal(first.toordinal() + 1), time(), zone)
    return start.timestamp(), end.timestamp()


@dataclass(frozen=True, slots=True)
class Transition:
    at: float
    from_state: str | None
    to_state: str
    owner: str | None


class BreakerLog:
    """Transitions read from ``breaker/provider`` records, oldest first."""

    def __init__(self) -> None:
        self._transitions: deque[Transition] = deque(maxlen=_MAX_TRANSITIONS)
        self._state: str | None = None
        self._at = float("-inf")

    def on_record(self, value: dict[str, Any] | None) -> None:
        """One breaker record; a repeat of the current state or an older one is no change."""
        if value is None:
            return
        state, at = value.get("state"), value.get("at")
        if not isinstance(state, str) or not isinstance(at, int | float) or at <= self._at:
            return
        owner = value.get("owner")
        if state != self._state:
            self._transitions.append(
                Transition(float(at), self._state, state, owner if isinstance(owner, str) else None)
            )
        self._state, self._at = state, float(at)

    def since(self, start: float) -> list[Transition]:
        return [t for t in self._transitions if t.at >= start]


@dataclass(frozen=True, slots=True)
class BurnPoint:
    at: float
    spent: int
    reserved: int


class BurnSeries:
    """Today's ``spent``/``reserved`` as sampled; a new budget day starts a new series."""

    def __init__(self) -> None:
        self.day: str | None = None
        self.points: list[BurnPoint] = []

    def add(self, at: float, day: str, spent: int, reserved: int) -> None:
        if day != self.day:
            self.day, self.points = day, []
        point = BurnPoint(at, spent, reserved)
        if self.points and at < self.points[-1].at:
            return
        if self.points and at // _MIN_GAP_S == self.points[-1].at // _MIN_GAP_S:
            self.points[-1] = point  # the same slot: keep its newest value
            return
        self.points.append(point)
        if len(self.points) > _MAX_POINTS:
            half = len(self.points) // 2
            self.points = self.points[:half:2] + self.points[half:]


class ThroughputMeter:
    """Records per second over the last ``window_s``, from samples of a growing total."""

    def __init__(self, window_s: float = 60.0) -> None:
        self._window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, at: float, total: int) -> None:
        if self._samples:
            last_at, last_total = self._samples[-1]
            if at <= last_at:
                return
            if total < last_total:
                self._samples.clear()  # offsets went back (a reset group): start again
        self._samples.append((at, total))
        while len(self._samples) > 2 and at - self._samples[1][0] >= self._window_s:
            self._samples.popleft()

    def rate(self) -> float | None:
        """Records per second, or ``None`` before two samples."""
        if len(self._samples) < 2:
            return None
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0)

    @property
    def window_s(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        return self._samples[-1][0] - self._samples[0][0]

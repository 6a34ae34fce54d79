"""UTC timestamps as streamproc writes them: ISO 8601 ending in ``Z``.

DLQ headers, ``dlq stats``, replay filters, ``/status`` and error messages all use this one
form (``2026-11-26T03:00:00.123Z``), so the same moment reads the same everywhere.

:class:`Clock` is the one clock a ``streamproc run`` reads the budget day's time from: the
wall clock, or (a bench and test hook only, ``bench_clock``) a scaled one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

__all__ = ["Clock", "Timespec", "epoch_iso", "utc_iso"]

#: How much of the time is written (as :meth:`datetime.isoformat`'s ``timespec``).
Timespec = Literal["auto", "seconds", "milliseconds", "microseconds"]


def utc_iso(moment: datetime, timespec: Timespec = "seconds") -> str:
    """``moment`` (timezone-aware) in UTC: ``2026-11-26T03:00:00Z``."""
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def epoch_iso(epoch_s: float, timespec: Timespec = "seconds") -> str:
    """Epoch seconds in UTC: ``2026-11-26T03:00:00Z``."""
    return utc_iso(datetime.fromtimestamp(epoch_s, UTC), timespec)


@dataclass(frozen=True, slots=True)
class Clock:
    """Epoch seconds as the process reads them (callable, as every ``now``/``clock``).

    The default is the wall clock. Scaled (``bench_clock``, for ``python -m bench.day
    --e2e`` only): it runs ``rate`` times as fast as the wall clock and reads ``origin_s``
    at wall time ``wall_origin_s``, so every process given the same three numbers reads the
    same time, and a budget day passes in ``86400 / rate`` wall seconds.
    """

    rate: float = 1.0
    origin_s: float = 0.0
    wall_origin_s: float = 0.0

    def __call__(self) -> float:
        return self.at(time.time())

    @property
    def scaled(self) -> bool:
        return self.rate != 1.0 or self.origin_s != self.wall_origin_s

    def at(self, wall_s: float) -> float:
        """The clock's reading at wall time ``wall_s`` (epoch seconds)."""
        if not self.scaled:
            return wall_s
        return self.origin_s + (wall_s - self.wall_origin_s) * self.rate

    def wall_span(self, span_s: float) -> float:
        """How many wall seconds ``span_s`` of this clock's seconds last (what to sleep)."""
        return span_s / self.rate

    @classmethod
    def parse(cls, spec: str) -> Clock:
        """``RATE@ORIGIN_S@WALL_ORIGIN_S`` (``bench_clock``'s form); ``ValueError`` else."""
        parts = spec.split("@")
        if len(parts) != 3:
            raise ValueError("expected RATE@ORIGIN_S@WALL_ORIGIN_S")
        rate, origin_s, wall_origin_s = (float(p) for p in parts)
        if not rate > 0 or rate > 10_000:
            raise ValueError("the rate must be above 0 and at most 10000")
        return cls(rate, origin_s, wall_origin_s)

"""A token bucket: ``rate_per_s`` sustained, ``burst`` at once, and pauses (``Retry-After``).

Pure: ``now`` (seconds of any monotonic clock) is an argument. Clay's submissions and the
synchronous providers' calls (:mod:`streamproc.processing.pacing`) and ``replay --rate``
(:mod:`streamproc.replay.rate`) are paced by it. It is written as the *generic cell rate
algorithm*: instead of a token count it keeps the theoretical arrival time (``tat``) of the
next slot, which makes two things exact that a counter makes awkward:

* callers queue in order: each :meth:`TokenBucket.take` reserves the next free slot and
  returns how long to wait for it, so ``n`` concurrent callers are spread at ``1/rate``
  apart after the burst, never stampeding together when a token comes back;
* a ``Retry-After`` pause (:meth:`TokenBucket.pause_until`) moves every later slot behind
  the pause, and the burst does not refill during it: after a 429 the endpoint sees the
  sustained rate, not a burst.

An idle bucket keeps at most ``burst`` slots of credit, so a quiet period is never made up
for by a bigger burst than that.
"""

from __future__ import annotations

import math

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate_per_s`` sustained, up to ``burst`` at once after a quiet period."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        if not (math.isfinite(rate_per_s) and rate_per_s > 0):
            raise ValueError("rate_per_s must be a finite number > 0")
        if burst < 1:
            raise ValueError("burst must be >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._interval = 1.0 / rate_per_s
        # How far ahead of real time the schedule may run: burst - 1 intervals.
        self._tolerance = (burst - 1) * self._interval
        self._tat = -math.inf
        self.blocked_until = -math.inf

    def take(self, now: float) -> float:
        """Reserve the next slot; returns the seconds to wait for it (0: go now)."""
        tat = max(self._tat, now)
        allowed_at = max(tat - self._tolerance, self.blocked_until)
        self._tat = max(tat, allowed_at + self._tolerance) + self._interval
        return max(0.0, allowed_at - now)

    def set_rate(self, rate_per_s: float, burst: int, now: float) -> None:
        """Go on at a new rate and burst from ``now``: slots already reserved keep their
        times; the next one is a new interval after the last, and the credit of a quiet
        period is capped at the new burst."""
        if not (math.isfinite(rate_per_s) and rate_per_s > 0):
            raise ValueError("rate_per_s must be a finite number > 0")
        if burst < 1:
            raise ValueError("burst must be >= 1")
        self._tat = max(self._tat, now - self._tolerance) - self._interval
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._interval = 1.0 / rate_per_s
        self._tolerance = (burst - 1) * self._interval
        self._tat = max(self._tat + self._interval, now - self._tolerance)

    def pause_until(self, until: float) -> None:
        """No slot before ``until``; after it, the sustained rate without a burst."""
        if until <= self.blocked_until:
            return
        self.blocked_until = until
        self._tat = max(self._tat, until + self._tolerance)

    def available(self, now: float) -> int:
        """Slots that :meth:`take` would grant without waiting right now (for status)."""
        if now < self.blocked_until:
            return 0
        ahead = max(self._tat, now) - now
        return max(0, min(self.burst, math.floor((self._tolerance - ahead) / self._interval) + 1))

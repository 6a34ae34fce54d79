"""Pacing of submissions to a rate-limited endpoint: a token bucket, and ``Retry-After`` pauses.

:class:`TokenBucket` is pure (the clock is a parameter, in seconds of any monotonic clock).
It is a token bucket written as the *generic cell rate algorithm*: instead of a token count
it keeps the theoretical arrival time (``tat``) of the next submission, which makes two
things exact that a counter makes awkward:

* callers queue in order: each :meth:`TokenBucket.take` reserves the next free slot and
  returns how long to wait for it, so ``n`` concurrent callers are spread at ``1/rate``
  apart after the burst, never stampeding together when a token comes back;
* a ``Retry-After`` pause (:meth:`TokenBucket.pause_until`) moves every later slot behind
  the pause, and the burst does not refill during it: after a 429 the endpoint sees the
  sustained rate, not a burst.

:class:`Pacer` is the thin async shell (sleep and clock injectable for tests).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

__all__ = ["Pacer", "TokenBucket"]


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


class Pacer:
    """Waits for a :class:`TokenBucket` slot, and honours pauses set while waiting."""

    def __init__(
        self,
        bucket: TokenBucket,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.bucket = bucket
        self._clock = clock
        self._sleep = sleep

    async def acquire(self) -> None:
        """Return when this caller may submit (a cancelled waiter's slot is simply unused)."""
        delay = self.bucket.take(self._clock())
        if delay > 0:
            await self._sleep(delay)
        # A 429 seen by another caller while we slept pushes us behind its pause too.
        while (wait := self.bucket.blocked_until - self._clock()) > 0:
            await self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """Hold every submission for ``seconds`` from now (a ``Retry-After``)."""
        if seconds > 0 and math.isfinite(seconds):
            self.bucket.pause_until(self._clock() + seconds)

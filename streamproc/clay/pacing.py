"""Pacing of Clay submissions: waits for a :class:`TokenBucket` slot, honours ``Retry-After``.

The thin async shell of :mod:`streamproc.resilience.token_bucket` (sleep and clock
injectable for tests).

Clay's rate limit is per table, not per process, so the group shares it: each instance
paces at its share, ``clay_rate_per_s`` times the fraction of the input topic's partitions
assigned to it (:meth:`Pacer.share`, called on every rebalance). With partitions spread
evenly that is rate / members; unevenly, each member's share follows its load, and the
shares of the whole group add up to the table's rate (docs/clay.md, "Several instances").
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from streamproc.resilience.token_bucket import TokenBucket

__all__ = ["Pacer"]


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
        #: The group's rate and burst; this process paces at its share of them.
        self.group_rate_per_s = bucket.rate_per_s
        self.group_burst = bucket.burst
        self.fraction = 1.0

    def share(self, assigned: int, total: int) -> None:
        """Pace at ``assigned / total`` of the group's rate: this process reads ``assigned``
        of the input topic's ``total`` partitions. With none assigned (for now) it keeps one
        partition's share, for the leads of a revoked partition still finishing."""
        if total <= 0:
            return
        fraction = min(1.0, max(assigned, 1) / total)
        if fraction == self.fraction:
            return
        self.fraction = fraction
        burst = max(1, math.floor(self.group_burst * fraction))
        self.bucket.set_rate(self.group_rate_per_s * fraction, burst, self._clock())

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

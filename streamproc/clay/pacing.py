"""Pacing of Clay submissions: waits for a :class:`TokenBucket` slot, honours ``Retry-After``.

The thin async shell of :mod:`streamproc.resilience.token_bucket` (sleep and clock
injectable for tests).
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

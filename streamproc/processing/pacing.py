"""Pacing of calls to a rate-limited API: waits for a :class:`TokenBucket` slot, honours
``Retry-After`` and what the API says of its quota.

The thin async shell of :mod:`streamproc.resilience.token_bucket` (sleep and clock
injectable for tests). Clay's submissions and the synchronous providers' calls
(``provider_rate_per_s``, ``provider_rate_per_min``) are paced by it.

An API's rate limit is per key (Clay's per table), not per process, so the group shares
it: each instance paces at its share, the rate times the fraction of the input topic's
partitions assigned to it (:meth:`Pacer.share`, called on every rebalance). With
partitions spread evenly that is rate / members; unevenly, each member's share follows its
load, and the shares of the whole group add up to the API's rate (docs/clay.md, "Several
instances"). What the API's answers say of the quota left (:meth:`Pacer.learn`) lowers the
pace further until the quota's window resets.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from streamproc.provider.config import ProviderConfig
from streamproc.resilience.rate_limit import Quota, quota_pace
from streamproc.resilience.token_bucket import TokenBucket

__all__ = ["Pacer", "provider_pacer"]


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
        #: The pace the API's quota allows (requests/s), learned from an answer, until
        #: ``_cap_until`` (when the quota's window resets).
        self._cap_per_s: float | None = None
        self._cap_until = -math.inf

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
        self._apply(self._clock())

    def learn(self, quota: Quota) -> None:
        """Pace so that this process's share of the quota an answer states lasts until its
        window resets (no faster than the configured share); none left: pause until then."""
        now = self._clock()
        pace = quota_pace(quota, self.fraction)
        if pace is None:
            return
        if pace == 0:
            self.bucket.pause_until(now + quota.reset_in_s)
            return
        self._cap_per_s, self._cap_until = pace, now + quota.reset_in_s
        self._apply(now)

    def _apply(self, now: float) -> None:
        """Set the bucket to the share of the group's rate, lowered to the learned pace
        (without a burst: a quota running short is no time for one) while it holds."""
        rate = self.group_rate_per_s * self.fraction
        burst = max(1, math.floor(self.group_burst * self.fraction))
        if self._cap_per_s is not None and self._cap_per_s < rate:
            rate, burst = self._cap_per_s, 1
        if (rate, burst) != (self.bucket.rate_per_s, self.bucket.burst):
            self.bucket.set_rate(rate, burst, now)

    async def acquire(self) -> None:
        """Return when this caller may submit (a cancelled waiter's slot is simply unused)."""
        now = self._clock()
        if self._cap_per_s is not None and now >= self._cap_until:
            self._cap_per_s = None  # the quota's window reset: back to the configured pace
            self._apply(now)
        delay = self.bucket.take(now)
        if delay > 0:
            await self._sleep(delay)
        # A 429 seen by another caller while we slept pushes us behind its pause too.
        while (wait := self.bucket.blocked_until - self._clock()) > 0:
            await self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """Hold every submission for ``seconds`` from now (a ``Retry-After``)."""
        if seconds > 0 and math.isfinite(seconds):
            self.bucket.pause_until(self._clock() + seconds)


def provider_pacer(config: ProviderConfig) -> Pacer | None:
    """The pacer of a provider's calls at its rate limit, or ``None`` when it has none."""
    rate = config.rate_limit_per_s
    return None if rate is None else Pacer(TokenBucket(rate, config.rate_burst))

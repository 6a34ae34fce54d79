"""Provider health: the success rate over a true sliding window, in bounded memory.

Outcomes are counted in buckets of ``bucket_s`` seconds (1 s by default) kept in a deque,
so memory is at most ``ceil(window_s / bucket_s) + 1`` buckets however many calls a second are
made. Old buckets are evicted on every :meth:`HealthMonitor.record` *and* on every read
(the reference only reset its window when it was read, so an unread monitor reported
stale outcomes forever).

Resolution: a bucket counts while any part of it lies inside the window, so at ``now`` the
counts cover every outcome in ``(now - window_s, now]`` plus, at the old edge, outcomes up
to ``bucket_s`` older than that. Exactly: an outcome recorded at ``t`` is counted iff
``(floor(t / bucket_s) + 1) * bucket_s > now - window_s``.

Clock: any seconds, monotonic or epoch, as long as one monitor sees one clock (nothing here
is persisted). An outcome recorded with a ``now`` earlier than the newest bucket (a clock
step backwards) is added to the newest bucket.

Thresholds: ``healthy`` when the rate is above ``healthy_above``, ``degraded`` when above
``degraded_above``, else ``unhealthy`` (strictly above: exactly 95 % is degraded). With no
outcomes in the window the status is ``healthy``: silence is not evidence of failure (the
breaker and budget decide whether calls are made at all).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["HealthCounts", "HealthMonitor", "HealthStatus"]


class HealthStatus(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True)
class HealthCounts:
    """Outcomes in the window at one instant."""

    successes: int
    failures: int

    @property
    def total(self) -> int:
        return self.successes + self.failures


class _Bucket:
    __slots__ = ("failures", "index", "successes")

    def __init__(self, index: int) -> None:
        self.index = index
        self.successes = 0
        self.failures = 0


class HealthMonitor:
    """Sliding-window success rate of the provider calls. Not thread-safe."""

    def __init__(
        self,
        window_s: float = 300.0,
        healthy_above: float = 0.95,
        degraded_above: float = 0.80,
        *,
        bucket_s: float = 1.0,
    ) -> None:
        if not window_s > 0:
            raise ValueError("window_s must be > 0")
        if not 0 < bucket_s <= window_s:
            raise ValueError("bucket_s must be > 0 and <= window_s")
        if not 0.0 <= degraded_above <= healthy_above <= 1.0:
            raise ValueError("need 0 <= degraded_above <= healthy_above <= 1")
        self.window_s = window_s
        self.bucket_s = bucket_s
        self.healthy_above = healthy_above
        self.degraded_above = degraded_above
        self._buckets: deque[_Bucket] = deque()
        # Running totals over the buckets in the deque, so reads are O(evicted), not O(window).
        self._successes = 0
        self._failures = 0

    def record(self, success: bool, now: float) -> None:
        """Count one call outcome at ``now``."""
        self._evict(now)
        index = math.floor(now / self.bucket_s)
        buckets = self._buckets
        if not buckets or index > buckets[-1].index:
            buckets.append(_Bucket(index))
        bucket = buckets[-1]
        if success:
            bucket.successes += 1
            self._successes += 1
        else:
            bucket.failures += 1
            self._failures += 1

    def counts(self, now: float) -> HealthCounts:
        """Successes and failures in the window at ``now``."""
        self._evict(now)
        return HealthCounts(self._successes, self._failures)

    def success_rate(self, now: float) -> float | None:
        """Fraction of calls in the window that succeeded; ``None`` with no calls in it."""
        counts = self.counts(now)
        return None if counts.total == 0 else counts.successes / counts.total

    def status(self, now: float) -> HealthStatus:
        """``healthy`` / ``degraded`` / ``unhealthy`` by the rate; ``healthy`` with no data."""
        rate = self.success_rate(now)
        if rate is None or rate > self.healthy_above:
            return HealthStatus.HEALTHY
        if rate > self.degraded_above:
            return HealthStatus.DEGRADED
        return HealthStatus.UNHEALTHY

    def buckets(self) -> int:
        """Buckets held right now (at most ``ceil(window_s / bucket_s) + 1``)."""
        return len(self._buckets)

    def _evict(self, now: float) -> None:
        horizon = now - self.window_s
        buckets = self._buckets
        while buckets and (buckets[0].index + 1) * self.bucket_s <= horizon:
            old = buckets.popleft()
            self._successes -= old.successes
            self._failures -= old.failures

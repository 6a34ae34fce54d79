"""``--rate``: pace re-injected records to at most N per second.

:class:`RateLimiter` is pure (the clock is a parameter): :meth:`RateLimiter.reserve` books
the next slot and says how long to wait for it. Slots are ``1/rate`` seconds apart; an idle
limiter keeps at most ``burst`` slots of credit, so a pause is never made up for by a
burst bigger than that. :func:`pace` is the asyncio shell: it sleeps until the slot, and
returns early (``False``) when asked to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

__all__ = ["RateLimiter", "pace"]


class RateLimiter:
    """At most ``rate_per_s`` reservations per second, after a burst of ``burst``."""

    def __init__(
        self,
        rate_per_s: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate_per_s = rate_per_s
        self.interval_s = 1.0 / rate_per_s
        self._burst = burst
        self._clock = clock
        #: The time of the next free slot (a "theoretical arrival time", as in GCRA).
        self._next = clock()

    def reserve(self) -> float:
        """Book one slot; the seconds to wait before using it (0 when it is free now)."""
        now = self._clock()
        earliest = now - (self._burst - 1) * self.interval_s
        slot = max(self._next, earliest)
        self._next = slot + self.interval_s
        return max(0.0, slot - now)


async def pace(limiter: RateLimiter | None, stop: asyncio.Event) -> bool:
    """Wait for the next slot; ``False`` (at once) if ``stop`` is set before it comes."""
    if stop.is_set():
        return False
    if limiter is None:
        return True
    delay = limiter.reserve()
    if delay > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
    return not stop.is_set()

"""Whether this process could run while a call was pending: our stalls are not the provider's.

A call times out when its timer fires, and the timer fires on our event loop. When the
loop could not run (the process frozen by ``SIGSTOP``, a stalled VM, a throttled CPU, a
long GC pause or a callback that hogged the loop), every call in flight times out the
moment it runs again, although the provider may have answered long before: its answer is
sitting in the socket. Counting those timeouts against the breaker opens it on what we did,
not on what the provider did (issue 19).

:class:`LoopTicks` is the pure core: fed the times at which the loop ran a periodic tick,
it answers whether the loop went silent for longer than ``stall_s`` during a window.
:class:`LoopWatch` is the shell: it schedules the tick on the running loop. Both read one
monotonic clock, the retry driver's (``time.monotonic``): a ``SIGSTOP`` freezes the process,
not the clock, so the gap shows as a tick that came late.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

__all__ = ["STALL_S", "TICK_S", "LoopTicks", "LoopWatch"]

#: How often the loop is asked to tick: cheap (one timer callback), and fine enough that a
#: stall of :data:`STALL_S` is never mistaken for the tick's own period.
TICK_S = 0.1
#: A silence longer than this, beyond the tick's period, is a stall of ours. A loop that is
#: merely busy is late by its longest callback (milliseconds to a few hundred on a loaded
#: machine); a second is a process that could not run, and a tenth of the default
#: ``provider_timeout_s``, so a call that lost it did not get the time it was given.
STALL_S = 1.0
#: Gaps are kept this long (seconds): longer than any call's window (``provider_timeout_s``
#: is at most 600 s), so a timeout is always judged on every gap its call lived through.
_KEEP_S = 900.0


class LoopTicks:
    """The gaps in the loop's ticks, on one monotonic clock (seconds).

    ``stall_s`` is the silence, beyond ``tick_s``, that counts as a stall. Nothing here
    reads a clock: the caller passes the time of each tick and of each question.
    """

    def __init__(self, *, tick_s: float = TICK_S, stall_s: float = STALL_S) -> None:
        self._limit_s = tick_s + stall_s
        self._last: float | None = None
        self._gaps: deque[tuple[float, float]] = deque()

    def tick(self, at: float) -> None:
        """The loop ran its tick at ``at``."""
        last, self._last = self._last, at
        if last is not None and at - last > self._limit_s:
            self._gaps.append((last, at))
        while self._gaps and self._gaps[0][1] < at - _KEEP_S:
            self._gaps.popleft()

    def reset(self) -> None:
        """Forget every tick: no longer watched, nothing is known (so nothing is a stall)."""
        self._last = None
        self._gaps.clear()

    def stalled(self, start: float, end: float) -> bool:
        """Whether the loop was silent for longer than the limit at some time within
        ``[start, end]``: between two ticks, or since the last tick up to ``end`` (a
        timeout judged on waking, before the tick had its turn). Unknown (no tick yet) is
        not a stall, nor is an empty window."""
        last = self._last
        if last is None or end <= start:
            return False
        if end - last > self._limit_s:
            return True
        return any(gap_end > start and gap_start < end for gap_start, gap_end in self._gaps)


class LoopWatch:
    """Ticks :class:`LoopTicks` on the running loop every ``tick_s`` (from :meth:`start` to
    :meth:`stop`); :meth:`stalled` is what a :class:`~.driver.RetryDriver` asks."""

    def __init__(
        self,
        *,
        tick_s: float = TICK_S,
        stall_s: float = STALL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tick_s = tick_s
        self._clock = clock
        self.ticks = LoopTicks(tick_s=tick_s, stall_s=stall_s)
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start ticking on the running loop; calling it twice is harmless."""
        if self._handle is None:
            self._tick()

    def stop(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()
        # Unwatched, the last tick grows old: every later timeout would look like a stall.
        self.ticks.reset()

    def _tick(self) -> None:
        self.ticks.tick(self._clock())
        self._handle = asyncio.get_running_loop().call_later(self._tick_s, self._tick)

    def stalled(self, start: float, end: float) -> bool:
        """Whether this process could not run for a while between ``start`` and ``end``
        (monotonic seconds)."""
        return self.ticks.stalled(start, end)

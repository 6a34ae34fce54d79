"""Leads held while the breaker is open or the budget spent (policy ``hold``)."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable, Collection
from typing import Any

__all__ = ["Holds"]

#: How often a held lead re-checks when nothing woke it (a missed wake-up costs this much).
_HOLD_POLL_S = 1.0
#: The shortest wait: a hold whose end the clock says is just past is not a busy loop.
_HOLD_MIN_S = 0.01


class Holds:
    """The lead tasks waiting in a hold, and the wake-up that makes them check again.

    A hold ends at :meth:`wake` (the breaker or the budget changed) or when the injected
    clock reaches the hold's end, read at least every second. At shutdown,
    :meth:`release` cancels every held lead and every lead that comes to a hold later; on a
    revocation, :meth:`release` of the revoked partitions' lead tasks does so for them.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._changed = asyncio.Event()
        self._held: set[asyncio.Task[Any]] = set()
        self._releasing = False
        #: Lead tasks of revoked partitions: released now or whenever they come to a hold.
        self._doomed: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()

    @property
    def count(self) -> int:
        """Leads waiting in a hold now."""
        return len(self._held)

    def wake(self) -> None:
        """Something a held lead waits for changed: every hold checks again."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def hold(self, until: float | None) -> None:
        """Wait in a hold until a wake-up, or until ``until`` (epoch s) by the clock."""
        task = asyncio.current_task()
        if task is not None and (self._releasing or task in self._doomed):
            task.cancel()  # shutting down or revoked: a lead that comes to a hold now is
            await asyncio.sleep(0)  # released too
        if task is not None:
            self._held.add(task)
        try:
            timeout = _HOLD_POLL_S
            if until is not None:
                timeout = max(_HOLD_MIN_S, min(timeout, until - self._clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        finally:
            if task is not None:
                self._held.discard(task)

    def release(self, tasks: Collection[asyncio.Task[Any]] | None = None) -> int:
        """Cancel the held leads, all of them (``None``: at shutdown) or those of ``tasks``
        (a revocation's), and the same leads whenever they come to a hold later; returns
        how many were held. They are not calling the provider, so nothing is at stake, and
        waiting for a breaker's cooldown would only spend the grace (and, on a revocation,
        the group's rebalance). They are read again from the committed offset."""
        if tasks is None:
            self._releasing = True
            held = list(self._held)
        else:
            self._doomed.update(tasks)
            held = [task for task in tasks if task in self._held]
        for task in held:
            task.cancel()
        return len(held)

"""The deadline sweeper: pending leads whose callback never came become ``provider_timeout``.

Every instance runs one. It finishes (through the :class:`~streamproc.clay.finisher.Finisher`,
so a submission is dead-lettered at most once, and never after its callback was published)
the pending submissions that :meth:`PendingRegistry.due` gives it:

* its own submissions as soon as their deadline passes;
* other instances' submissions ``clay_orphan_grace_s`` later: the submitter normally gets
  there first without contention, and a submitter that died (or restarted under a new
  instance id) still has its leads swept.

Deadlines are wall-clock instants stored with the pending lead, so a restart keeps them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from streamproc.clay.pending import PendingLead, PendingRegistry, Submission
from streamproc.logs import get_logger

__all__ = ["Sweeper"]

log = get_logger(__name__)

Expire = Callable[[PendingLead], Awaitable[None]]


class Sweeper:
    """One background task; :meth:`start` and :meth:`stop` (aiokafka style)."""

    def __init__(
        self,
        registry: PendingRegistry,
        expire: Expire,
        *,
        owner: str,
        orphan_grace_s: float,
        interval_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self._expire = expire
        self._owner = owner
        self._grace = orphan_grace_s
        self._interval = interval_s
        self._clock = clock
        self._busy: dict[Submission, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="clay-sweeper")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._busy.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._busy.clear()

    def sweep(self) -> int:
        """Start finishing every lead due now (not already being finished); returns how many."""
        started = 0
        for lead in self._registry.due(self._clock(), self._owner, self._grace):
            if lead.submission in self._busy:
                continue
            task = asyncio.get_running_loop().create_task(
                self._expire_one(lead), name=f"clay-expire-{lead.lead_id}"
            )
            self._busy[lead.submission] = task
            started += 1
        return started

    async def _expire_one(self, lead: PendingLead) -> None:
        try:
            await self._expire(lead)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # retried at the next sweep: the lead is still pending
            log.warning("clay.sweep_failed", lead_id=lead.lead_id, error=repr(exc))
        finally:
            self._busy.pop(lead.submission, None)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.sweep()

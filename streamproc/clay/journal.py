"""The count journal: this process's webhook counts made durable in the state topic.

A row is counted *before* it is POSTed (:mod:`streamproc.clay.submission`), so a crash can
only over-count a webhook; the count is durable once its state record is written (acks=all).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from streamproc.clay.webhooks import WebhookRotation
from streamproc.state.store import StateStore

__all__ = ["CountJournal"]


class CountJournal:
    """Makes this process's webhook counts durable, coalescing concurrent writers.

    :meth:`flush` returns once a state record holding the count as it was at the call is
    written (acks=all): one write covers every caller that queued behind the one in flight.
    """

    def __init__(self, store: StateStore, rotation: WebhookRotation) -> None:
        self._store = store
        self._rotation = rotation
        self._version: Counter[str] = Counter()
        self._durable: Counter[str] = Counter()
        self._locks: dict[str, asyncio.Lock] = {}

    async def flush(self, wid: str) -> None:
        self._version[wid] += 1
        wanted = self._version[wid]
        lock = self._locks.setdefault(wid, asyncio.Lock())
        async with lock:
            if self._durable[wid] >= wanted:
                return
            version = self._version[wid]
            key, value = self._rotation.record(wid)
            await self._store.append(key, value)
            self._durable[wid] = max(self._durable[wid], version)

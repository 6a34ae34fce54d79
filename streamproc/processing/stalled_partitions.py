"""Notices a partition left behind: records to read, nothing in flight, no progress.

A partition whose fetching stopped without a reason (left paused by a race, a fetch
position lost with a coordinator) looks from outside like an idle, healthy process: ready,
nothing logged, lag never falling. :class:`StallWatch` is fed what the processor sees
and says which partitions have made no progress for ``after_s`` although they could.

Pure: the clock is a parameter; the processor's watch task does the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PartitionView", "StallWatch"]


@dataclass(frozen=True, slots=True)
class PartitionView:
    """One assigned partition as the processor sees it at one moment."""

    partition: int
    #: Records of the partition past the group's committed offset.
    lag: int
    #: Leads of the partition in the lane's window (held, calling, or done and uncommitted).
    in_flight: int
    committed_offset: int


class StallWatch:
    """Partitions with ``lag > 0``, no lead in flight and a committed offset unchanged for
    ``after_s`` seconds. A partition with leads in flight (a hold, a slow provider, a
    failing commit in backoff) is busy, not stalled: its own mechanisms report it."""

    def __init__(self, after_s: float) -> None:
        self._after_s = after_s
        #: partition -> (committed offset last seen, since when it was idle with lag).
        self._idle_since: dict[int, tuple[int, float]] = {}
        self._stalled: dict[int, float] = {}

    def observe(self, views: list[PartitionView], now: float) -> list[int]:
        """Feed the assigned partitions (all of them: the others are forgotten); returns
        the partitions that became stalled by this observation."""
        seen = {view.partition for view in views}
        for gone in set(self._idle_since) - seen:
            del self._idle_since[gone]
        for gone in set(self._stalled) - seen:
            del self._stalled[gone]
        became = []
        for view in views:
            if view.lag <= 0 or view.in_flight > 0:
                self._idle_since.pop(view.partition, None)
                self._stalled.pop(view.partition, None)
                continue
            offset, since = self._idle_since.get(view.partition, (view.committed_offset, now))
            if offset != view.committed_offset:
                offset, since = view.committed_offset, now
                self._stalled.pop(view.partition, None)
            self._idle_since[view.partition] = (offset, since)
            if now - since >= self._after_s and view.partition not in self._stalled:
                self._stalled[view.partition] = since
                became.append(view.partition)
        return became

    def progressed(self, partition: int) -> None:
        """``partition`` committed: whatever the last look found, it is not stalled now."""
        self._idle_since.pop(partition, None)
        self._stalled.pop(partition, None)

    def stalled(self, now: float) -> dict[int, float]:
        """Stalled partitions and for how many seconds they have made no progress."""
        return {p: now - since for p, since in self._stalled.items()}

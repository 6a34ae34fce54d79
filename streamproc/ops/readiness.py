"""Readiness of a processor: what ``/readyz`` answers, with the reasons when it is not ready.

Ready means *this process can serve its role*: the state topic was restored (breaker,
budget, cache and Clay's pending submissions are the group's, not defaults, so a Clay
callback that reaches this process is answered right), its consumer is in the group, and
it is not shutting down. An orchestrator may route to it and a rollout may go on.

Not ready either while a partition of this process is *stalled*: records behind it,
nothing in flight and no progress for ``stall_after_s`` (the processor's stall watch). That
is a defect of this process, not of the provider or the group, and taking the pod out (and
alerting) beats a lag that never falls while everything looks well.

Two things are deliberately left out:

* **Partitions.** A group has at most as many busy members as its topic has partitions;
  the others are standbys that take over in a rebalance and, in Clay mode, answer
  callbacks. A rollout with more replicas than partitions must still become ready. A
  rebalance does not make a member leave the group, so readiness does not flap with it.
* **The breaker.** It is the group's (shared through the state topic), so it opens on
  every process at once: failing readiness on it would take every pod out of the Service
  together, Clay's callbacks with them, and stall a rollout for a provider outage that a
  restart cannot cure. It is on ``/status`` and ``/metrics``, where the alerts read it.

The check is pure: it reads the three conditions each time it is asked.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Readiness", "ReadinessCheck"]

#: (ready, reasons): what ``OpsServer``'s ``ready_fn`` returns.
Readiness = tuple[bool, list[str]]


def _never() -> bool:
    return False


def _none() -> list[int]:
    return []


class ReadinessCheck:
    """Callable as ``ready_fn`` for :class:`~streamproc.ops.http.OpsServer`.

    ``state_restored``, ``in_group`` and ``stopping`` are read on each call (in ``App``:
    ``store.restored.is_set``, ``processor.joined.is_set`` and its stop event's
    ``is_set``); ``stalled`` lists this process's stalled partitions. The reasons come in a
    stable order: restore, group, shutdown, stalls.
    """

    def __init__(
        self,
        *,
        state_restored: Callable[[], bool],
        in_group: Callable[[], bool],
        stopping: Callable[[], bool] = _never,
        stalled: Callable[[], list[int]] = _none,
    ) -> None:
        self._state_restored = state_restored
        self._in_group = in_group
        self._stopping = stopping
        self._stalled = stalled

    def __call__(self) -> Readiness:
        reasons: list[str] = []
        if not self._state_restored():
            reasons.append("state not restored")
        if not self._in_group():
            reasons.append("consumer not in the group")
        if self._stopping():
            reasons.append("shutting down")
        stalled = self._stalled()
        if stalled:
            reasons.append("partitions stalled: " + ", ".join(str(p) for p in stalled))
        return (not reasons, reasons)

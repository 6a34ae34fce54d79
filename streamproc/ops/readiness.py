"""Readiness of a processor: what ``/readyz`` answers, with the reasons when it is not ready.

Ready means: the state topic was restored (breaker, budget and cache are the group's, not
defaults), the consumer owns at least one partition, and the breaker is not *stuck*: out of
``closed`` for longer than ``stuck_after_cooldowns`` cooldowns. One open spell is the
breaker doing its job and says nothing about this instance; open → half-open → open over
and over means the provider (or our key) is broken and somebody should look.

The check is pure apart from the time it keeps: when it first saw the breaker leave
``closed``. It learns that from being asked (``/readyz`` is polled) and, more precisely,
from :meth:`ReadinessCheck.breaker_changed` if the shell calls it on each transition.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

__all__ = ["Readiness", "ReadinessCheck"]

#: (ready, reasons): what ``OpsServer``'s ``ready_fn`` returns.
Readiness = tuple[bool, list[str]]

#: Below this, "stuck" would flap with a short test cooldown; an operator needs minutes.
_MIN_STUCK_S: Final = 60.0


class ReadinessCheck:
    """Callable as ``ready_fn`` for :class:`~streamproc.ops.http.OpsServer`.

    ``state_restored``, ``partitions_assigned`` and ``breaker_state`` are read on each call
    (e.g. ``store.restored.is_set``, ``processor.assigned.is_set`` and
    ``lambda: guard.status().breaker.state``). ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        *,
        state_restored: Callable[[], bool],
        partitions_assigned: Callable[[], bool],
        breaker_state: Callable[[], str],
        cooldown_s: float,
        stuck_after_cooldowns: float = 3.0,
        require_partitions: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._state_restored = state_restored
        self._partitions_assigned = partitions_assigned
        self._breaker_state = breaker_state
        self._stuck_after_s = max(cooldown_s * stuck_after_cooldowns, _MIN_STUCK_S)
        self._cooldowns = stuck_after_cooldowns
        self._require_partitions = require_partitions
        self._clock = clock
        self._not_closed_since: float | None = None

    @property
    def stuck_after_s(self) -> float:
        return self._stuck_after_s

    def breaker_changed(self, to_state: str) -> None:
        """Note a breaker transition as it happens (more precise than polling alone)."""
        self._observe(to_state)

    def _observe(self, state: str) -> float | None:
        now = self._clock()
        if state == "closed":
            self._not_closed_since = None
        elif self._not_closed_since is None:
            self._not_closed_since = now
        return None if self._not_closed_since is None else now - self._not_closed_since

    def __call__(self) -> Readiness:
        reasons: list[str] = []
        if not self._state_restored():
            reasons.append("state not restored")
        if self._require_partitions and not self._partitions_assigned():
            reasons.append("no partitions assigned")
        not_closed_s = self._observe(self._breaker_state())
        if not_closed_s is not None and not_closed_s > self._stuck_after_s:
            reasons.append(
                f"breaker stuck open for {not_closed_s:.0f} s "
                f"(> {self._cooldowns:g} cooldowns, {self._stuck_after_s:.0f} s)"
            )
        return (not reasons, reasons)

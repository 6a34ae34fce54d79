"""The group's shared state as one process knows it: breaker, claims ledger, cache and
receipts.

Pure and synchronous: it folds the records of the state topic (restore and tail alike) and
reads its status on the injected clock; it writes nothing. The guard
(:mod:`streamproc.processing.guard`) drives it and journals what it decides; ``state show``
and the replayer read one of their own (:meth:`GroupState.reader`) as their
:class:`~streamproc.state.view.StateView`.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from streamproc.logs import get_logger
from streamproc.records.status import BreakerStatus, BudgetStatus, CacheStatus, StateStatus
from streamproc.resilience.breaker import CircuitBreaker, Transition
from streamproc.resilience.cache import EnrichmentCache
from streamproc.resilience.claims import ClaimLedger, event_from_dict
from streamproc.resilience.journal import BudgetJournal, parse_key
from streamproc.resilience.pacing_step import PacingFold
from streamproc.resilience.receipts import ReceiptBook, carries
from streamproc.resilience.spending import CONTROL_KEY, SpendingFold
from streamproc.state.config import StateConfig
from streamproc.timestamps import epoch_iso

__all__ = ["BREAKER_KEY", "GroupState", "iso_or_none"]

log = get_logger(__name__)

BREAKER_KEY = "breaker/provider"


class GroupState:
    """The breaker, the claims ledger and the cache, rebuilt from the state topic.

    ``on_transition`` hears every change of the breaker made here (by a call's outcome or
    by the clock); ``on_change`` is called after each budget record and each breaker adopted
    from another process (what a held lead waits for).
    """

    def __init__(
        self,
        config: StateConfig,
        *,
        clock: Callable[[], float],
        owner: str,
        on_transition: Callable[[Transition], None] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.owner = owner
        self._clock = clock
        self._transition_hook = on_transition
        self._on_change = on_change
        self.breaker = CircuitBreaker(config.breaker, on_transition=self._transitioned)
        self._breaker_changed_at = 0.0
        self.ledger = ClaimLedger(config.budget_daily_credits, config.budget_timezone)
        # A writer's running totals start at 0, so its id must be new with every process (a
        # reused id would replace an earlier process's totals): the owner plus a nonce.
        self.journal = BudgetJournal(f"{owner}-{uuid.uuid4().hex[:8]}")
        self.cache = EnrichmentCache(config.cache)
        self.receipts = ReceiptBook(
            ttl_s=config.receipt_ttl_s, max_entries=config.receipt_max_entries
        )
        #: The operator's pause and limit changes (``control/spending``).
        self.spending = SpendingFold()
        #: The group's pacing step and the offers it ranks on (``pacing/``).
        self.pacing = PacingFold()

    @classmethod
    def reader(cls, config: StateConfig, *, clock: Callable[[], float] = time.time) -> GroupState:
        """A view to restore the state into and read, under an owner id no processor has
        (it must never take a breaker record for its own)."""
        owner = f"state-reader-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        return cls(config, clock=clock, owner=owner)

    def on_state(self, key: str, value: dict[str, Any] | None, partition: int, offset: int) -> None:
        """Apply one record of the state topic; an unreadable one is logged and skipped."""
        kind, _, rest = key.partition("/")
        try:
            if kind == "budget":
                self.apply_budget(key, value)
            elif kind == "breaker" and value is not None:
                self._adopt_breaker(value)
            elif kind == "cache":
                self.cache.apply(rest, value, self._clock())
                if value is not None and carries(value):
                    self.receipts.carried(key, value, self._clock())
            elif kind == "receipt":
                self.receipts.apply(rest, value, self._clock())
            elif key == CONTROL_KEY:
                self._control(value)
            elif kind == "pacing":
                self.pacing.apply(key, value)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("state.unreadable_record", key=key, offset=offset, error=str(exc))

    def apply_budget(self, key: str, value: dict[str, Any] | None) -> None:
        """One record of the claims log: an event, or a tombstone of a claim that is over."""
        self.journal.track(key, value is not None, self.ledger.horizon)
        if value is not None:
            self.ledger.apply(event_from_dict(value))
        else:
            parsed = parse_key(key)
            if parsed is not None and parsed.claim_id is not None:
                self.ledger.drop(parsed.claim_id)
        self._changed()

    def _control(self, value: dict[str, Any] | None) -> None:
        control = self.spending.apply(value)
        if control is not None:
            log.warning(
                "spending.control",
                action=control.action.value,
                paused=control.paused,
                limit=control.limit,
                day=control.day,
                by=control.by,
                why=control.why,
                at=epoch_iso(control.at),
            )
        self._changed()

    def _adopt_breaker(self, value: dict[str, Any]) -> None:
        at = float(value.get("at", 0.0))
        if value.get("owner") == self.owner or at <= self._breaker_changed_at:
            return
        snapshot = {k: v for k, v in value.items() if k not in ("owner", "at")}
        self.breaker = CircuitBreaker.restore(
            self.breaker.config, snapshot, on_transition=self._transitioned
        )
        self._breaker_changed_at = at
        log.info("breaker.adopted", state=snapshot.get("state"), from_owner=value.get("owner"))
        self._changed()

    def _transitioned(self, transition: Transition) -> None:
        self._breaker_changed_at = transition.at
        if self._transition_hook is not None:
            self._transition_hook(transition)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def pacing_status(self) -> dict[str, Any] | None:
        """The group's latest pacing step (``pacing/step``; None: none written yet)."""
        current = self.pacing.current
        return None if current is None else current.status()

    def status(self, now: float | None = None) -> StateStatus:
        """Breaker, budget and cache at ``now`` (default: the clock)."""
        now = self._clock() if now is None else now
        ledger, breaker = self.ledger, self.breaker
        day = ledger.day_at(now)
        return StateStatus(
            breaker=BreakerStatus(
                state=breaker.state(now).value,
                reopens_at=iso_or_none(breaker.reopens_at(now)),
                failures_in_window=breaker.failures_in_window(now),
            ),
            budget=BudgetStatus(
                day=day,
                timezone=ledger.zone(day),
                limit=ledger.limit(day),
                spent=ledger.spent(day),
                reserved=ledger.outstanding(day),
                remaining=ledger.remaining(day),
                exhausted=ledger.exhausted(day),
                resets_at=iso_or_none(ledger.resets_at(now)),
                kept=ledger.size() + self.journal.live_keys(),
                paused=self.spending.paused,
                control=self.spending.status(),
            ),
            cache=CacheStatus(entries=len(self.cache)),
        )


def iso_or_none(epoch_s: float | None) -> str | None:
    """``epoch_s`` as an ISO 8601 UTC string; None stays None."""
    return None if epoch_s is None else epoch_iso(epoch_s)

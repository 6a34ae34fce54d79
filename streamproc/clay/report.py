"""What Clay mode tells its operator: counts, metrics, the webhooks' alerts, ``/status``.

Nothing here decides anything: the other parts of :class:`~streamproc.clay.ClayService`
call it when something happened, and the metrics scrape and ``/status`` read it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from streamproc.clay.pending import PendingRegistry
from streamproc.clay.receiver import CallbackResult, Refusal
from streamproc.clay.webhooks import WebhookRotation
from streamproc.errors import ErrorClass
from streamproc.logs import get_logger
from streamproc.ops.metrics import CLAY_CALLBACK_RESULTS, Metrics
from streamproc.records.lead import Source
from streamproc.records.outcome import OutcomeKind

__all__ = ["ClayReport"]

log = get_logger(__name__)


class ClayReport:
    """The counts (``submitted``, ``timed_out``, ``callback_<result>``) and the metrics of
    one process's Clay mode; the webhook rotation's warnings, each logged once per episode."""

    def __init__(
        self,
        registry: PendingRegistry,
        rotation: WebhookRotation,
        metrics: Metrics | None,
        *,
        owner: str,
    ) -> None:
        self._registry = registry
        self._rotation = rotation
        self._metrics = metrics
        self._owner = owner
        self.counts: Counter[str] = Counter()
        self._rotations_seen = 0
        self._alerted_low = False
        self._alerted_out = False
        if metrics is not None:
            metrics.on_scrape(self._observe)

    def committed(self, outcome: OutcomeKind, error_class: ErrorClass | None, credits: int) -> None:
        """A lead finished here was committed with ``outcome``."""
        if self._metrics is not None:
            source = Source.PROVIDER if outcome is OutcomeKind.ENRICHED else None
            self._metrics.lead_committed(outcome, error_class, source, credits)

    def callback_answered(self, result: CallbackResult | Refusal) -> None:
        """The receiver answered a callback with ``result``."""
        self.counts[f"callback_{result.value}"] += 1
        if self._metrics is not None:
            # The metric's label set is fixed; a result it does not list yet is a 4xx
            # refusal of an authenticated request, which bad_request counts too.
            label = result.value if result in CLAY_CALLBACK_RESULTS else Refusal.BAD_REQUEST.value
            self._metrics.clay_callback(label)

    def check_capacity(self) -> None:
        """After the webhook counts moved: rotations counted, running low and out logged."""
        rotation = self._rotation
        if rotation.rotations > self._rotations_seen:
            for _ in range(rotation.rotations - self._rotations_seen):
                if self._metrics is not None:
                    self._metrics.clay_rotation()
            self._rotations_seen = rotation.rotations
            current = rotation.current
            log.warning(
                "clay.webhook_rotated",
                to_index=current,
                webhook=None if current is None else rotation.ids[current],
                previous_rows=None if not current else rotation.rows(current - 1),
                limit=rotation.limit,
            )
        low = rotation.capacity_low()
        if low and not self._alerted_low:
            log.error(
                "clay.webhooks_nearly_used_up",
                last_webhook_rows=rotation.rows(len(rotation.ids) - 1),
                limit=rotation.limit,
                remaining_rows=rotation.remaining_rows(),
                action="add Clay webhooks to STREAMPROC_CLAY_WEBHOOK_URLS",
            )
        self._alerted_low = low
        out = rotation.exhausted()
        if out and not self._alerted_out:
            log.critical(
                "clay.webhooks_used_up",
                webhooks=len(rotation.ids),
                action="leads are held in the topic until a webhook is added",
            )
        self._alerted_out = out

    def _observe(self) -> None:
        assert self._metrics is not None
        rotation = self._rotation
        self._metrics.set_clay(
            pending=len(self._registry),
            webhooks=[(i, wid, rotation.rows(i)) for i, wid in enumerate(rotation.ids)],
            limit=rotation.limit,
            remaining=rotation.remaining_rows(),
            current=None if rotation.exhausted() else rotation.current,
            capacity_low=rotation.capacity_low(),
        )

    def status(self, *, holding: int, finisher: dict[str, Any]) -> dict[str, Any]:
        """The ``clay`` part of ``/status``, with the leads ``holding`` for a webhook and
        the ``finisher``'s stats."""
        rotation = self._rotation
        return {
            "pending": len(self._registry),
            "pending_submitted_here": self._registry.owned_by(self._owner),
            "webhooks": rotation.snapshot(),
            "current_webhook": rotation.current,
            "remaining_rows": rotation.remaining_rows(),
            "capacity_low": rotation.capacity_low(),
            "holding": holding,
            "counts": dict(self.counts),
            "finisher": finisher,
        }

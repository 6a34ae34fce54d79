"""The Clay mode of one process: submit leads, receive callbacks, sweep deadlines.

:class:`ClayService` is the thin public class in front of the workers of this package; it
implements the handler's :class:`~streamproc.processing.handler.Deferred` seam (what a lane
calls for each lead) and the receiver's :class:`~streamproc.clay.receiver.CallbackSink`
(what a callback is handed to). See :mod:`streamproc.clay` for the protocol and the
exactly-once argument. Each of its jobs is a module of its own:

* turns to submit and webhook rows (:mod:`.turns`), the webhook counts made durable
  (:mod:`.journal`), the submission itself (:mod:`.submissions`, over :mod:`.submitter`);
* a callback completed (:mod:`.completer`), a deadline passed (:mod:`.expiry`, driven by
  :mod:`.sweeper`), both finished through :mod:`.finisher`;
* counts, metrics, alerts and ``/status`` (:mod:`.report`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from streamproc.clay.callback import Callback
from streamproc.clay.completer import Completer
from streamproc.clay.config import ClayConfig
from streamproc.clay.expiry import Expiry
from streamproc.clay.finisher import Finish, Finished, Finisher
from streamproc.clay.journal import CountJournal
from streamproc.clay.pending import PENDING_PREFIX, PendingRegistry
from streamproc.clay.receiver import CallbackReceiver, CallbackResult
from streamproc.clay.report import ClayReport
from streamproc.clay.submissions import Submissions
from streamproc.clay.submitter import ClaySubmitter
from streamproc.clay.sweeper import Sweeper
from streamproc.clay.turns import Reservation, Turns
from streamproc.clay.webhooks import KEY_PREFIX as WEBHOOK_PREFIX
from streamproc.clay.webhooks import WebhookRotation
from streamproc.logs import get_logger
from streamproc.ops.metrics import Metrics
from streamproc.processing.guard import ResilienceGuard, Ticket
from streamproc.processing.handler import Admission, RawRecord
from streamproc.records.lead import Lead
from streamproc.records.outcome import OutRecord
from streamproc.state.store import StateStore

__all__ = ["ClayService", "Reservation"]

log = get_logger(__name__)


class ClayService:
    """Clay mode for one process: the handler's deferred provider and the callback side.

    For the lane it reserves a webhook row and submits an admitted lead (returning the
    pending record to commit with the offset); for Clay it receives callbacks, and with
    its finisher and sweeper finishes each submission once, across the group
    (docs/clay.md). Started after the state restore, so its registry of pending
    submissions and webhook counts is complete.
    """

    def __init__(
        self,
        config: ClayConfig,
        guard: ResilienceGuard,
        store: StateStore,
        metrics: Metrics | None = None,
        *,
        processor_version: str,
        clock: Callable[[], float] = time.time,
        utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        secret = config.callback_secret
        if secret is None:
            raise ValueError("clay mode needs clay_callback_secret")
        self._guard = guard
        self._store = store
        self.owner = guard.owner
        self.registry = PendingRegistry(on_change=self._registry_changed)
        self.rotation = WebhookRotation(
            list(config.webhook_urls),
            owner=self.owner,
            limit=config.webhook_row_limit,
            headroom=config.webhook_headroom_rows,
            alert_ratio=config.webhook_alert_ratio,
        )
        self.report = ClayReport(self.registry, self.rotation, metrics, owner=self.owner)
        self.counts: Counter[str] = self.report.counts
        self.turns = Turns(
            self.rotation,
            concurrency=config.submit_concurrency,
            on_reserve=self.report.check_capacity,
        )
        self.submitter = ClaySubmitter(
            config,
            transport=transport,
            on_attempt=metrics.clay_submission if metrics is not None else None,
        )
        self.submissions = Submissions(
            guard,
            store,
            self.rotation,
            CountJournal(store, self.rotation),
            self.submitter,
            self.counts,
            owner=self.owner,
            deadline_s=config.deadline_s,
            clock=clock,
        )
        self.finisher = Finisher(
            config,
            config.kafka,
            store,
            self.registry,
            group_id=config.group_id,
        )
        self.completer = Completer(
            self.registry,
            guard,
            self._finish,
            self.report,
            topic_enriched=config.topic_enriched,
            topic_dlq=config.topic_dlq,
            callback_wait_s=config.callback_wait_s,
            credits_per_lead=config.credits_per_lead,
            processor={"name": "streamproc", "version": processor_version},
            utcnow=utcnow,
        )
        self.expiry = Expiry(
            guard,
            self._finish,
            self.report,
            topic_dlq=config.topic_dlq,
            owner=self.owner,
            utcnow=utcnow,
        )
        self.sweeper = Sweeper(
            self.registry,
            self.expiry.expire,
            owner=self.owner,
            orphan_grace_s=config.orphan_grace_s,
            interval_s=config.sweep_interval_s,
            clock=clock,
        )
        self.receiver = CallbackReceiver(
            self,
            mode=config.callback_auth,
            secret=secret.get_secret_value(),
            auth_header=config.callback_auth_header,
            max_bytes=config.callback_max_bytes,
            on_result=self.report.callback_answered,
        )
        self._started = False

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Started, with the state topic restored (so the registry is complete)."""
        return self._started and self._store.restored.is_set()

    @property
    def holding(self) -> int:
        """Leads waiting for a webhook row now."""
        return self.turns.holding

    async def start(self) -> None:
        """After the state store restored: the registry and the counts are complete."""
        await self.submitter.start()
        self.sweeper.start()
        self._started = True
        self.completer.open()
        self.report.check_capacity()
        log.info(
            "clay.started",
            pending=len(self.registry),
            webhooks=len(self.rotation.urls),
            remaining_rows=self.rotation.remaining_rows(),
            deadline_s=self.config.deadline_s,
        )

    async def stop(self) -> None:
        self._started = False
        self.completer.close()  # callbacks waiting for their lead: 503 now
        await self.sweeper.stop()
        await self.finisher.stop()
        await self.submitter.close()

    # --- the state topic -------------------------------------------------------------------

    def on_state(self, key: str, value: dict[str, Any] | None, partition: int, offset: int) -> None:
        """Apply a ``clay/...`` record of the state topic (restore and tail alike)."""
        try:
            if key.startswith(PENDING_PREFIX):
                self.registry.apply(key[len(PENDING_PREFIX) :], value)
            elif key.startswith(WEBHOOK_PREFIX):
                self.rotation.apply(key[len(WEBHOOK_PREFIX) :], value)
                self.turns.capacity_changed()
        except ValueError as exc:
            log.warning("clay.unreadable_state_record", key=key, offset=offset, error=str(exc))

    def _registry_changed(self, lead_id: str) -> None:
        self.completer.registry_changed(lead_id)

    async def _finish(self, job: Finish) -> Finished:
        # Looked up at each call: a test puts its own finisher in place after construction.
        return await self.finisher.finish(job)

    # --- the Deferred seam (called by the lead handler) ------------------------------------

    async def reserve(self, lead: Lead) -> Reservation:
        """This lead's turn to submit, and a webhook row for it (:meth:`Turns.reserve`)."""
        return await self.turns.reserve()

    def release(self, slot: Reservation) -> None:
        """End the lead's turn; its row goes back unless it was submitted."""
        self.turns.release(slot)

    async def submit(
        self,
        slot: Reservation,
        record: RawRecord,
        lead: Lead,
        obj: dict[str, Any],
        attempt: int,
        admission: Admission[Ticket],
    ) -> list[OutRecord]:
        """POST the lead to its webhook; returns the pending-lead record for its transaction."""
        assert not slot.used
        return await self.submissions.submit(slot, record, lead, obj, attempt, admission)

    # --- callbacks (called by the receiver) ------------------------------------------------

    async def complete(self, callback: Callback) -> CallbackResult:
        """Publish the submission a callback is about, once (:meth:`Completer.complete`)."""
        return await self.completer.complete(callback)

    # --- reading ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The ``clay`` part of ``/status``."""
        return self.report.status(holding=self.turns.holding, finisher=self.finisher.stats())

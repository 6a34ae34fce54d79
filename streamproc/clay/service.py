"""The Clay mode of one process: submit leads, receive callbacks, sweep deadlines.

:class:`ClayService` is the thin public class in front of the workers of this package; it
implements the handler's :class:`~streamproc.processing.handler.Deferred` seam (what a lane
calls for each lead) and the receiver's :class:`~streamproc.clay.receiver.CallbackSink`
(what a callback is handed to). See :mod:`streamproc.clay` for the protocol and the
exactly-once argument.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from streamproc.clay.callback import Callback
from streamproc.clay.finisher import Finish, Finisher, FinishUnavailable
from streamproc.clay.outputs import dead_letter_record, enriched_record
from streamproc.clay.pending import (
    PENDING_PREFIX,
    ClaimRef,
    PendingLead,
    PendingRegistry,
    pending_key,
)
from streamproc.clay.receiver import CallbackReceiver, CallbackResult
from streamproc.clay.submitter import ClaySubmitter, webhook_row
from streamproc.clay.sweeper import Sweeper
from streamproc.clay.webhooks import KEY_PREFIX as WEBHOOK_PREFIX
from streamproc.clay.webhooks import Slot, WebhookRotation
from streamproc.errors import (
    ErrorClass,
    InternalError,
    LeadError,
    ProviderRejected,
)
from streamproc.logs import get_logger
from streamproc.ops.metrics import CLAY_CALLBACK_RESULTS, Metrics
from streamproc.processing.guard import ResilienceGuard
from streamproc.processing.handler import Admission, RawRecord
from streamproc.records.dlq import Origin
from streamproc.records.lead import Lead
from streamproc.records.outcome import OutRecord
from streamproc.settings import Settings
from streamproc.state.store import StateStore

__all__ = ["ClayService", "Reservation"]

log = get_logger(__name__)

#: Largest original record (value plus headers) submitted: the pending record carries it
#: base64-encoded (x 4/3) and must stay under the state topic's 1 MiB message limit.
MAX_SUBMITTED_BYTES = 600 * 1024
#: How often a lead held for want of a webhook looks again when nothing woke it.
_HOLD_POLL_S = 5.0


class Reservation:
    """A lead's turn to submit and its webhook row, from :meth:`ClayService.reserve` to
    :meth:`ClayService.release`. ``used``: the row was submitted (or given back)."""

    __slots__ = ("released", "slot", "used")

    def __init__(self, slot: Slot) -> None:
        self.slot = slot
        self.used = False
        self.released = False


class _CountJournal:
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
        settings: Settings,
        guard: ResilienceGuard,
        store: StateStore,
        metrics: Metrics | None = None,
        *,
        processor_version: str,
        clock: Callable[[], float] = time.time,
        utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if settings.clay_callback_secret is None:
            raise ValueError("clay mode needs clay_callback_secret")
        self._settings = settings
        self._guard = guard
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._utcnow = utcnow
        self._processor = {"name": "streamproc", "version": processor_version}
        self.owner = guard.owner
        self.registry = PendingRegistry(on_change=self._registry_changed)
        self.rotation = WebhookRotation(
            [str(url) for url in settings.clay_webhook_urls],
            owner=self.owner,
            limit=settings.clay_webhook_row_limit,
            headroom=settings.clay_webhook_headroom_rows,
            alert_ratio=settings.clay_webhook_alert_ratio,
        )
        self._journal = _CountJournal(store, self.rotation)
        self.submitter = ClaySubmitter(
            settings,
            transport=transport,
            on_attempt=metrics.clay_submission if metrics is not None else None,
        )
        self.finisher = Finisher(settings, store, self.registry)
        self.sweeper = Sweeper(
            self.registry,
            self._expire,
            owner=self.owner,
            orphan_grace_s=settings.clay_orphan_grace_s,
            interval_s=settings.clay_sweep_interval_s,
            clock=clock,
        )
        self.receiver = CallbackReceiver(
            self,
            mode=settings.clay_callback_auth,
            secret=settings.clay_callback_secret.get_secret_value(),
            auth_header=settings.clay_callback_auth_header,
            max_bytes=settings.clay_callback_max_bytes,
            on_result=self._callback_answered,
        )
        #: Callbacks waiting for their lead to show up, by lead id.
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        #: Set when webhook counts change (for leads held while all webhooks are used up).
        self._capacity = asyncio.Event()
        self._turns = asyncio.Semaphore(settings.clay_submit_concurrency)
        self._started = False
        self._rotations_seen = 0
        self._alerted_low = False
        self._alerted_out = False
        self.holding = 0
        self.counts: Counter[str] = Counter()
        if metrics is not None:
            metrics.on_scrape(self._observe)

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Started, with the state topic restored (so the registry is complete)."""
        return self._started and self._store.restored.is_set()

    async def start(self) -> None:
        """After the state store restored: the registry and the counts are complete."""
        await self.submitter.start()
        self.sweeper.start()
        self._started = True
        self._check_capacity()
        log.info(
            "clay.started",
            pending=len(self.registry),
            webhooks=len(self.rotation.urls),
            remaining_rows=self.rotation.remaining_rows(),
            deadline_s=self._settings.clay_deadline_s,
        )

    async def stop(self) -> None:
        self._started = False
        for lead_id in list(self._waiters):  # callbacks waiting for their lead: 503 now
            self._registry_changed(lead_id)
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
                self._capacity.set()
        except ValueError as exc:
            log.warning("clay.unreadable_state_record", key=key, offset=offset, error=str(exc))

    def _registry_changed(self, lead_id: str) -> None:
        for waiter in self._waiters.pop(lead_id, ()):
            if not waiter.done():
                waiter.set_result(None)

    # --- the Deferred seam (called by the lead handler) ------------------------------------

    async def reserve(self, lead: Lead) -> Reservation:
        """This lead's turn to submit, and a webhook row for it.

        Turns are taken in arrival order (offset order within a partition), at most
        ``clay_submit_concurrency`` at once. Without that bound, a lead queued for the pacer
        behind hundreds of others would hold back its partition's commit (lanes commit in
        offset order) for all that time, and the pending records of leads submitted after
        it would stay invisible while their callbacks come in. With it, a submitted lead's
        pending record commits within about concurrency / rate seconds.

        Held (no credits reserved) while every webhook is used up.
        """
        await self._turns.acquire()
        try:
            while True:
                slot = self.rotation.reserve()
                self._check_capacity()
                if slot is not None:
                    return Reservation(slot)
                self.holding += 1
                self._capacity.clear()
                try:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._capacity.wait(), _HOLD_POLL_S)
                finally:
                    self.holding -= 1
        except BaseException:
            self._turns.release()
            raise

    def release(self, slot: Any) -> None:
        """End the lead's turn; its row goes back unless it was submitted."""
        if not isinstance(slot, Reservation) or slot.released:
            return
        slot.released = True
        self._turns.release()
        if not slot.used:
            slot.used = True
            self.rotation.release(slot.slot)

    async def submit(
        self,
        slot: Any,
        record: RawRecord,
        lead: Lead,
        obj: dict[str, Any],
        attempt: int,
        admission: Admission,
    ) -> list[OutRecord]:
        """POST the lead to its webhook; returns the pending-lead record for its transaction."""
        assert isinstance(slot, Reservation) and not slot.used
        value = record.value or b""
        # Kafka allows a null header value; it is kept as empty bytes.
        headers = tuple((k, v or b"") for k, v in record.headers)
        size = len(value) + sum(len(k) + len(v) for k, v in headers)
        if size > MAX_SUBMITTED_BYTES:
            raise ProviderRejected(
                f"lead too large for clay mode ({size} bytes > {MAX_SUBMITTED_BYTES})"
            )
        correlation_id = uuid.uuid4().hex
        row = webhook_row(obj, lead.lead_id, correlation_id)
        wid = slot.slot.webhook_id
        # Counted durably *before* the POST: a crash can only over-count a webhook.
        self.rotation.submitting(slot.slot)
        slot.used = True
        try:
            await self._journal.flush(wid)
        except Exception as exc:
            raise InternalError(f"cannot record the webhook count: {type(exc).__name__}") from exc

        async def keep_trying(exc: LeadError) -> bool:
            (log.debug if exc.error_class is ErrorClass.RATE_LIMITED else log.warning)(
                "clay.submit_attempt_failed",
                lead_id=lead.lead_id,
                error_class=exc.error_class.value,
                error=exc.message,
            )
            retry = await self._guard.may_retry(admission, exc)
            if retry and exc.maybe_charged:
                # Clay may have taken the row already: the retry is another row on the
                # webhook (and the guard took another claim for it).
                self.rotation.another_row(slot.slot)
                await self._journal.flush(wid)
            return retry

        try:
            await self.submitter.submit(slot.slot.url, row, keep_trying=keep_trying)
        except LeadError as exc:
            if not exc.maybe_charged:  # a definite "no": the last row is not on the webhook
                self.rotation.not_accepted(slot.slot)
                with contextlib.suppress(Exception):
                    await self._journal.flush(wid)
            raise
        claim = self._guard.submitted(admission)
        now = self._clock()
        pending = PendingLead(
            lead_id=lead.lead_id,
            correlation_id=correlation_id,
            deadline=now + self._settings.clay_deadline_s,
            submitted_at=now,
            owner=self.owner,
            attempt=attempt,
            origin=Origin(record.topic, record.partition, record.offset, record.timestamp),
            key=record.key,
            value=value,
            headers=headers,
            webhook=wid,
            domain=lead.lookup_domain,
            claim=None if claim is None else ClaimRef(claim.claim_id, claim.day, claim.amount),
        )
        self.counts["submitted"] += 1
        return [self._store.record(pending_key(lead.lead_id, correlation_id), pending.to_dict())]

    # --- callbacks (called by the receiver) ------------------------------------------------

    async def complete(self, callback: Callback) -> CallbackResult:
        """Publish the submission a callback is about, once; see :class:`CallbackReceiver`.

        Only the submission named by the callback's correlation id is finished: a callback
        of another submission of the same lead (an earlier one, replayed, or one whose
        pending record was lost in a crash) never finishes this one with its data.
        """
        lead_id, correlation_id = callback.lead_id, callback.correlation_id
        lead = await self._known(lead_id, correlation_id)
        if not self._started:
            raise FinishUnavailable("shutting down")
        if lead is None:
            return self._not_pending(lead_id, correlation_id)
        s = self._settings
        now = self._utcnow()

        def build(pending: PendingLead) -> list[OutRecord]:
            if callback.error is not None:
                message = f"clay reported an error: {callback.error}"
                return [
                    dead_letter_record(
                        s.topic_dlq,
                        pending,
                        ErrorClass.PROVIDER_ERROR,
                        message,
                        retriable=True,
                        now=now,
                    )
                ]
            assert callback.data is not None
            return [
                enriched_record(
                    s.topic_enriched,
                    pending,
                    callback.data,
                    credits=self._credits(pending, callback),
                    now=now,
                    processor=self._processor,
                )
            ]

        finished = await self.finisher.finish(Finish(lead_id, correlation_id, build))
        if not finished.published or finished.lead is None:
            return CallbackResult.DUPLICATE
        pending = finished.lead
        credits = self._credits(pending, callback)
        claim = pending.claim
        self._guard.finished(
            claim.claim_id if claim else None,
            claim.day if claim else None,
            credits,
            domain=pending.domain,
            data=callback.data,
        )
        # The answer says what the callback was; the lead's own outcome (a refused output
        # replaced by its DLQ record) is in the outcome metric and the log.
        if finished.replaced is not None:
            self._committed("dlq", finished.replaced.error_class.value, credits)
        elif callback.error is not None:
            self._committed("dlq", ErrorClass.PROVIDER_ERROR.value, credits)
        else:
            self._committed("enriched", None, credits)
        return CallbackResult.ERROR_ROW if callback.error is not None else CallbackResult.ENRICHED

    def _not_pending(self, lead_id: str, correlation_id: str) -> CallbackResult:
        """The answer to a callback whose submission is not pending."""
        if self.registry.is_done(lead_id, correlation_id):
            return CallbackResult.DUPLICATE
        if self.registry.has_pending(lead_id):
            # Authenticated, but about a submission we never made or forgot long ago: a
            # forged or replayed correlation id, or the row of a submission whose pending
            # record a crash lost (that lead's later submission gets its own callback).
            log.warning(
                "clay.callback_correlation_mismatch",
                lead_id=lead_id,
                correlation_id=correlation_id,
            )
            return CallbackResult.CORRELATION_MISMATCH
        return CallbackResult.UNKNOWN_LEAD

    async def _known(self, lead_id: str, correlation_id: str) -> PendingLead | None:
        """The pending submission, waiting a little for it: a fast callback may beat the
        commit of its pending record. None when it is finished already or never shows up."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self._settings.clay_callback_wait_s
        while True:
            lead = self.registry.get(lead_id, correlation_id)
            if (
                lead is not None
                or self.registry.is_done(lead_id, correlation_id)
                or not self._started
            ):
                return lead
            left = until - loop.time()
            if left <= 0:
                return None
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(lead_id, []).append(waiter)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(waiter), left)
            finally:
                waiters = self._waiters.get(lead_id)
                if waiters is not None and waiter in waiters:
                    waiters.remove(waiter)
                    if not waiters:
                        del self._waiters[lead_id]

    def _credits(self, pending: PendingLead, callback: Callback) -> int:
        if callback.credits is not None:
            return callback.credits
        return pending.claim.amount if pending.claim else self._settings.credits_per_lead

    # --- deadlines (called by the sweeper) -------------------------------------------------

    async def _expire(self, lead: PendingLead) -> None:
        s = self._settings
        now = self._utcnow()
        waited = max(0.0, lead.deadline - lead.submitted_at)
        message = f"no callback from clay within {waited:g}s of submission"

        def build(pending: PendingLead) -> list[OutRecord]:
            return [
                dead_letter_record(
                    s.topic_dlq,
                    pending,
                    ErrorClass.PROVIDER_TIMEOUT,
                    message,
                    retriable=True,
                    now=now,
                )
            ]

        finished = await self.finisher.finish(Finish(lead.lead_id, lead.correlation_id, build))
        if not finished.published:
            return
        claim = lead.claim
        # Clay may well have run (and charged for) the row: settle at the estimate.
        self._guard.finished(
            claim.claim_id if claim else None,
            claim.day if claim else None,
            claim.amount if claim else 0,
            domain=None,
            data=None,
        )
        self.counts["timed_out"] += 1
        replaced = finished.replaced
        error_class = ErrorClass.PROVIDER_TIMEOUT if replaced is None else replaced.error_class
        self._committed("dlq", error_class.value, 0)
        log.info(
            "clay.lead_timed_out",
            lead_id=lead.lead_id,
            waited_s=waited,
            own=lead.owner == self.owner,
        )

    # --- reading ---------------------------------------------------------------------------

    def _committed(self, outcome: str, error_class: str | None, credits: int) -> None:
        if self._metrics is not None:
            source = "provider" if outcome == "enriched" else None
            self._metrics.lead_committed(outcome, error_class, source, credits)

    def _callback_answered(self, result: str) -> None:
        self.counts[f"callback_{result}"] += 1
        if self._metrics is not None:
            # The metric's label set is fixed; a result it does not list yet is a 4xx
            # refusal of an authenticated request, which bad_request counts too.
            label = result if result in CLAY_CALLBACK_RESULTS else "bad_request"
            self._metrics.clay_callback(label)

    def _check_capacity(self) -> None:
        rotation = self.rotation
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
        rotation = self.rotation
        self._metrics.set_clay(
            pending=len(self.registry),
            webhooks=[(i, wid, rotation.rows(i)) for i, wid in enumerate(rotation.ids)],
            limit=rotation.limit,
            remaining=rotation.remaining_rows(),
            current=None if rotation.exhausted() else rotation.current,
            capacity_low=rotation.capacity_low(),
        )

    def status(self) -> dict[str, Any]:
        """The ``clay`` part of ``/status``."""
        rotation = self.rotation
        return {
            "pending": len(self.registry),
            "pending_submitted_here": self.registry.owned_by(self.owner),
            "webhooks": rotation.snapshot(),
            "current_webhook": rotation.current,
            "remaining_rows": rotation.remaining_rows(),
            "capacity_low": rotation.capacity_low(),
            "holding": self.holding,
            "counts": dict(self.counts),
            "finisher": self.finisher.stats(),
        }

"""Completing a callback: the submission it names finished once, or the answer why not.

The receiver (:mod:`streamproc.clay.receiver`) hands each valid, authenticated callback to
:meth:`Completer.complete` (through :class:`~streamproc.clay.ClayService`, its
``CallbackSink``); docs/clay.md, step 3.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

from streamproc.clay.callback import Callback
from streamproc.clay.finisher import Finish, FinishJob, FinishUnavailable
from streamproc.clay.outputs import dead_letter_record, enriched_record
from streamproc.clay.pending import PendingLead, PendingRegistry
from streamproc.clay.receiver import CallbackResult
from streamproc.clay.report import ClayReport
from streamproc.errors import ErrorClass
from streamproc.logs import get_logger
from streamproc.processing.guard import ResilienceGuard
from streamproc.records.outcome import OutcomeKind, OutRecord

__all__ = ["Completer"]

log = get_logger(__name__)


class Completer:
    """Finishes the submission a callback is about (through ``finish``), settles its claim
    with the guard and reports the lead's outcome.

    Closed until :meth:`open`: a callback then is answered "come back later"
    (:class:`FinishUnavailable`). A callback may beat the commit of its pending record: it
    waits up to ``callback_wait_s`` for it, woken by :meth:`registry_changed`.
    """

    def __init__(
        self,
        registry: PendingRegistry,
        guard: ResilienceGuard,
        finish: FinishJob,
        report: ClayReport,
        *,
        topic_enriched: str,
        topic_dlq: str,
        callback_wait_s: float,
        credits_per_lead: int,
        processor: dict[str, str],
        utcnow: Callable[[], datetime],
    ) -> None:
        self._registry = registry
        self._guard = guard
        self._finish = finish
        self._report = report
        self._topic_enriched = topic_enriched
        self._topic_dlq = topic_dlq
        self._callback_wait_s = callback_wait_s
        self._credits_per_lead = credits_per_lead
        self._processor = processor
        self._utcnow = utcnow
        self._open = False
        #: Callbacks waiting for their lead to show up, by lead id.
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    def open(self) -> None:
        """Callbacks are completed from now on (the registry is complete)."""
        self._open = True

    def close(self) -> None:
        """Shutting down: callbacks waiting for their lead are answered now (503)."""
        self._open = False
        for lead_id in list(self._waiters):
            self.registry_changed(lead_id)

    def registry_changed(self, lead_id: str) -> None:
        """A submission of ``lead_id`` came or went: its waiting callbacks look again."""
        for waiter in self._waiters.pop(lead_id, ()):
            if not waiter.done():
                waiter.set_result(None)

    async def complete(self, callback: Callback) -> CallbackResult:
        """Publish the submission a callback is about, once; see :class:`CallbackReceiver`.

        Only the submission named by the callback's correlation id is finished: a callback
        of another submission of the same lead (an earlier one, replayed, or one whose
        pending record was lost in a crash) never finishes this one with its data.
        """
        lead_id, correlation_id = callback.lead_id, callback.correlation_id
        lead = await self._known(lead_id, correlation_id)
        if not self._open:
            raise FinishUnavailable("shutting down")
        if lead is None:
            return self._not_pending(lead_id, correlation_id)
        now = self._utcnow()

        def build(pending: PendingLead) -> list[OutRecord]:
            if callback.error is not None:
                message = f"clay reported an error: {callback.error}"
                return [
                    dead_letter_record(
                        self._topic_dlq,
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
                    self._topic_enriched,
                    pending,
                    callback.data,
                    credits=self._credits(pending, callback),
                    now=now,
                    processor=self._processor,
                )
            ]

        finished = await self._finish(Finish(lead_id, correlation_id, build))
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
            self._report.committed(OutcomeKind.DLQ, finished.replaced.error_class, credits)
        elif callback.error is not None:
            self._report.committed(OutcomeKind.DLQ, ErrorClass.PROVIDER_ERROR, credits)
        else:
            self._report.committed(OutcomeKind.ENRICHED, None, credits)
        return CallbackResult.ERROR_ROW if callback.error is not None else CallbackResult.ENRICHED

    def _not_pending(self, lead_id: str, correlation_id: str) -> CallbackResult:
        """The answer to a callback whose submission is not pending."""
        if self._registry.is_done(lead_id, correlation_id):
            return CallbackResult.DUPLICATE
        if self._registry.has_pending(lead_id):
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
        until = loop.time() + self._callback_wait_s
        while True:
            lead = self._registry.get(lead_id, correlation_id)
            if (
                lead is not None
                or self._registry.is_done(lead_id, correlation_id)
                or not self._open
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
        return pending.claim.amount if pending.claim else self._credits_per_lead

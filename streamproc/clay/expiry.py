"""A submission past its deadline: finished with a retriable ``provider_timeout`` DLQ
record, its claim settled at the estimate. The sweeper (:mod:`streamproc.clay.sweeper`)
decides when; this decides what (docs/clay.md, step 4)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime

from streamproc.clay.finisher import Finish, FinishJob
from streamproc.clay.outputs import dead_letter_record
from streamproc.clay.pending import PendingLead
from streamproc.clay.report import ClayReport
from streamproc.errors import ErrorClass
from streamproc.logs import get_logger
from streamproc.processing.guard import ResilienceGuard
from streamproc.records.outcome import OutcomeKind, OutRecord

__all__ = ["Expiry"]

log = get_logger(__name__)


class Expiry:
    """Finishes expired submissions (through ``finish``) as DLQ records to ``topic_dlq``;
    counts ``timed_out`` in ``report.counts``."""

    def __init__(
        self,
        guard: ResilienceGuard,
        finish: FinishJob,
        report: ClayReport,
        *,
        topic_dlq: str,
        owner: str,
        utcnow: Callable[[], datetime],
    ) -> None:
        self._guard = guard
        self._finish = finish
        self._report = report
        self._counts: Counter[str] = report.counts
        self._topic_dlq = topic_dlq
        self._owner = owner
        self._utcnow = utcnow

    async def expire(self, lead: PendingLead) -> None:
        """Finish ``lead``, whose deadline passed, unless something finished it first."""
        now = self._utcnow()
        waited = max(0.0, lead.deadline - lead.submitted_at)
        message = f"no callback from clay within {waited:g}s of submission"

        def build(pending: PendingLead) -> list[OutRecord]:
            return [
                dead_letter_record(
                    self._topic_dlq,
                    pending,
                    ErrorClass.PROVIDER_TIMEOUT,
                    message,
                    retriable=True,
                    now=now,
                )
            ]

        finished = await self._finish(Finish(lead.lead_id, lead.correlation_id, build))
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
        self._counts["timed_out"] += 1
        replaced = finished.replaced
        error_class = ErrorClass.PROVIDER_TIMEOUT if replaced is None else replaced.error_class
        self._report.committed(OutcomeKind.DLQ, error_class, 0)
        log.info(
            "clay.lead_timed_out",
            lead_id=lead.lead_id,
            waited_s=waited,
            own=lead.owner == self._owner,
        )

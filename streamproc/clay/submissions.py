"""Submitting an admitted lead: its row counted durably, POSTed, and its pending record.

The lane calls :meth:`Submissions.submit` with a turn from :mod:`streamproc.clay.turns`;
the record it returns is committed with the lead's offset (docs/clay.md, steps 1 and 2).
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from streamproc.clay.journal import CountJournal
from streamproc.clay.pending import ClaimRef, PendingLead, pending_key
from streamproc.clay.submitter import ClaySubmitter, webhook_row
from streamproc.clay.turns import Reservation
from streamproc.clay.webhooks import WebhookRotation
from streamproc.errors import ErrorClass, InternalError, LeadError, ProviderRejected
from streamproc.logs import get_logger
from streamproc.processing.guard import ResilienceGuard, Ticket
from streamproc.processing.handler import Admission, RawRecord
from streamproc.records.dlq import Origin
from streamproc.records.lead import Lead
from streamproc.records.outcome import OutRecord
from streamproc.state.store import StateStore

__all__ = ["MAX_SUBMITTED_BYTES", "Submissions"]

log = get_logger(__name__)

#: Largest original record (value plus headers) submitted: the pending record carries it
#: base64-encoded (x 4/3) and must stay under the state topic's 1 MiB message limit.
MAX_SUBMITTED_BYTES = 600 * 1024


class Submissions:
    """Submits admitted leads to their webhook rows; counts ``submitted`` in ``counts``.

    Each pending submission is due ``deadline_s`` after it was made (on ``clock``).
    """

    def __init__(
        self,
        guard: ResilienceGuard,
        store: StateStore,
        rotation: WebhookRotation,
        journal: CountJournal,
        submitter: ClaySubmitter,
        counts: Counter[str],
        *,
        owner: str,
        deadline_s: float,
        clock: Callable[[], float],
    ) -> None:
        self._guard = guard
        self._store = store
        self._rotation = rotation
        self._journal = journal
        self._submitter = submitter
        self._counts = counts
        self._owner = owner
        self._deadline_s = deadline_s
        self._clock = clock

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
        self._rotation.submitting(slot.slot)
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
                self._rotation.another_row(slot.slot)
                await self._journal.flush(wid)
            return retry

        try:
            await self._submitter.submit(slot.slot.url, row, keep_trying=keep_trying)
        except LeadError as exc:
            if not exc.maybe_charged:  # a definite "no": the last row is not on the webhook
                self._rotation.not_accepted(slot.slot)
                with contextlib.suppress(Exception):
                    await self._journal.flush(wid)
            raise
        claim = self._guard.submitted(admission)
        now = self._clock()
        pending = PendingLead(
            lead_id=lead.lead_id,
            correlation_id=correlation_id,
            deadline=now + self._deadline_s,
            submitted_at=now,
            owner=self._owner,
            attempt=attempt,
            origin=Origin(record.topic, record.partition, record.offset, record.timestamp),
            key=record.key,
            value=value,
            headers=headers,
            webhook=wid,
            domain=lead.lookup_domain,
            claim=None if claim is None else ClaimRef(claim.claim_id, claim.day, claim.amount),
        )
        self._counts["submitted"] += 1
        return [self._store.record(pending_key(lead.lead_id, correlation_id), pending.to_dict())]

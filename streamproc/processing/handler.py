"""One lead, start to finish: decode, guard, enrich, and build the records to publish.

The handler never raises for a lead: every failure becomes a DLQ outcome, so one bad
record can neither stop nor stall the line. Only cancellation propagates.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from streamproc.errors import InternalError, LeadError
from streamproc.logs import get_logger
from streamproc.processing.outcome import Outcome, OutcomeKind, OutRecord
from streamproc.records.dlq import Failure, Headers, Origin, attempt_of, encode_dlq_headers
from streamproc.records.lead import Lead, decode_lead
from streamproc.settings import Settings

__all__ = ["Admission", "Enricher", "Guard", "LeadHandler", "OpenGuard", "RawRecord"]

log = get_logger(__name__)


class RawRecord(Protocol):
    """The parts of an aiokafka ``ConsumerRecord`` the handler reads."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers


class CallResult(Protocol):
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def credits(self) -> int: ...
    @property
    def attempts(self) -> int: ...


class Enricher(Protocol):
    async def enrich(
        self,
        lead: Mapping[str, Any],
        lead_id: str,
        *,
        keep_trying: Callable[[LeadError], bool] | None = None,
    ) -> CallResult: ...


@dataclass(slots=True)
class Admission:
    """The guard's answer for one lead: call the provider, or use what it already has."""

    enrichment: dict[str, Any] | None = None
    source: str = "provider"
    #: Opaque to the handler; the guard uses it to settle what it reserved.
    token: Any = None
    state_updates: list[OutRecord] = field(default_factory=list)


class Guard(Protocol):
    """Breaker, budget and cache in front of the provider (see ``streamproc.resilience``)."""

    async def admit(self, lead: Lead) -> Admission:
        """Admit a call, answer from the cache, wait (hold policies) or raise a LeadError."""
        ...

    def settle(
        self, admission: Admission, result: CallResult | None, error: LeadError | None
    ) -> list[OutRecord]:
        """Record the call's outcome; returns state updates to commit with the lead."""
        ...

    def cancelled(self, admission: Admission) -> None:
        """The lead's processing was cancelled mid-call (rebalance, shutdown)."""
        ...

    def fallback(self, lead: Lead, error: LeadError) -> dict[str, Any] | None:
        """Local enrichment for a lead the provider could not serve, or None."""
        ...

    def may_retry(self, admission: Admission, error: LeadError) -> bool:
        """An attempt of an admitted call failed with ``error``: may it retry in-process?"""
        ...

    def hold_after(self, error: LeadError) -> bool:
        """Whether a failed lead is held and admitted again instead of dead-lettered."""
        ...


class OpenGuard:
    """A guard that admits every call: no breaker, no budget, no cache."""

    async def admit(self, lead: Lead) -> Admission:
        return Admission()

    def settle(
        self, admission: Admission, result: CallResult | None, error: LeadError | None
    ) -> list[OutRecord]:
        return []

    def cancelled(self, admission: Admission) -> None:
        return None

    def fallback(self, lead: Lead, error: LeadError) -> dict[str, Any] | None:
        return None

    def may_retry(self, admission: Admission, error: LeadError) -> bool:
        return True

    def hold_after(self, error: LeadError) -> bool:
        return False


class LeadHandler:
    def __init__(
        self,
        settings: Settings,
        enricher: Enricher,
        guard: Guard,
        *,
        processor_version: str,
        utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._enricher = enricher
        self._guard = guard
        self._utcnow = utcnow
        self._processor = {"name": "streamproc", "version": processor_version}

    async def handle(self, record: RawRecord) -> Outcome:
        attempt = attempt_of(record.headers)
        lead_id: str | None = None
        try:
            lead, obj = decode_lead(record.value, max_bytes=self._settings.max_lead_bytes)
            lead_id = lead.lead_id
            try:
                return await self._enrich(record, lead, obj, attempt)
            except LeadError as exc:
                cause = exc.cause if isinstance(exc, _WithState) else exc
                guessed = self._guard.fallback(lead, cause)
                if guessed is None:
                    raise
                state = exc.state if isinstance(exc, _WithState) else []
                return self._enriched(record, lead, obj, attempt, guessed, "fallback", 0, state)
        except LeadError as exc:
            return self._dead_letter(record, exc, attempt, lead_id)
        except Exception as exc:  # a bug of ours must not stop the line
            log.exception("lead.internal_error", lead_id=lead_id, offset=record.offset)
            error = InternalError(f"internal error: {exc.__class__.__name__}")
            return self._dead_letter(record, error, attempt, lead_id)

    async def _enrich(
        self, record: RawRecord, lead: Lead, obj: dict[str, Any], attempt: int
    ) -> Outcome:
        state: list[OutRecord] = []
        while True:
            admission = await self._guard.admit(lead)
            state += admission.state_updates
            if admission.enrichment is not None:
                return self._enriched(
                    record, lead, obj, attempt, admission.enrichment, admission.source, 0, state
                )
            try:
                result = await self._enricher.enrich(
                    obj,
                    lead.lead_id,
                    keep_trying=functools.partial(self._guard.may_retry, admission),
                )
            except LeadError as exc:
                state += self._guard.settle(admission, None, exc)
                if self._guard.hold_after(exc):
                    continue  # the breaker opened under us: hold the lead, do not dead-letter it
                raise _WithState(exc, state) from exc
            except BaseException:
                self._guard.cancelled(admission)
                raise
            state += self._guard.settle(admission, result, None)
            enrichment, source, credits = result.data, "provider", result.credits
            break
        return self._enriched(record, lead, obj, attempt, enrichment, source, credits, state)

    def _enriched(
        self,
        record: RawRecord,
        lead: Lead,
        obj: dict[str, Any],
        attempt: int,
        enrichment: dict[str, Any],
        source: str,
        credits: int,
        state: list[OutRecord],
    ) -> Outcome:
        enriched = {
            **obj,
            "enrichment": enrichment,
            "enrichment_meta": {
                "source": source,
                "credits": credits,
                "attempt": attempt,
                "enriched_at": self._utcnow().isoformat().replace("+00:00", "Z"),
                "processor": self._processor,
            },
        }
        out = OutRecord(
            self._settings.topic_enriched,
            record.key if record.key is not None else lead.lead_id.encode(),
            orjson.dumps(enriched),
            list(record.headers),
        )
        return Outcome(
            OutcomeKind.ENRICHED,
            [out, *state],
            lead.lead_id,
            attempt,
            source=source,
            credits=credits,
        )

    def _dead_letter(
        self, record: RawRecord, exc: LeadError, attempt: int, lead_id: str | None
    ) -> Outcome:
        state = exc.state if isinstance(exc, _WithState) else []
        cause = exc.cause if isinstance(exc, _WithState) else exc
        headers = encode_dlq_headers(
            record.headers,
            Failure(cause.error_class, cause.message, cause.retriable),
            Origin(record.topic, record.partition, record.offset, record.timestamp),
            attempt,
            self._utcnow(),
        )
        key = record.key if record.key is not None else (lead_id.encode() if lead_id else None)
        out = OutRecord(self._settings.topic_dlq, key, record.value, headers)
        return Outcome(
            OutcomeKind.DLQ, [out, *state], lead_id, attempt, error_class=cause.error_class.value
        )


class _WithState(LeadError):
    """A lead failure that still carries state updates (the settled reservation)."""

    def __init__(self, cause: LeadError, state: list[OutRecord]) -> None:
        super().__init__(cause.message)
        self.cause = cause
        self.state = state

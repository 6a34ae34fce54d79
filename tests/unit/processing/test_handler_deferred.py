"""The handler's asynchronous-provider seam (Clay mode) and the guard's submit/finish calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from streamproc.errors import ProviderRejected
from streamproc.processing.config import GuardConfig, HandlerConfig
from streamproc.processing.guard import ResilienceGuard
from streamproc.processing.handler import Admission, LeadHandler, RawRecord
from streamproc.records.lead import Lead, Source
from streamproc.records.outcome import OutcomeKind, OutRecord
from streamproc.resilience.budget import budget_day
from streamproc.resilience.cache import CacheHit
from streamproc.settings import CacheKey, Settings
from tests.unit.processing.stub_guard import OpenGuard


@dataclass
class _Record:
    topic: str = "leads.raw"
    partition: int = 0
    offset: int = 7
    timestamp: int = 0
    key: bytes | None = b"L1"
    value: bytes | None = field(
        default_factory=lambda: orjson.dumps({"lead_id": "L1", "domain": "acme.example"})
    )
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class _Deferred:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.reserved = 0
        self.released: list[Any] = []
        self.submitted: list[str] = []
        self.rows: list[dict[str, Any]] = []

    async def reserve(self, lead: Lead) -> Any:
        self.reserved += 1
        return f"slot-{self.reserved}"

    def release(self, slot: Any) -> None:
        self.released.append(slot)

    async def submit(
        self,
        slot: Any,
        record: RawRecord,
        lead: Lead,
        obj: dict[str, Any],
        attempt: int,
        admission: Admission,
    ) -> list[OutRecord]:
        if self.error is not None:
            raise self.error
        self.submitted.append(lead.lead_id)
        self.rows.append(dict(obj))
        return [OutRecord("state", b"clay/pending/L1", b"{}", [], 1)]


class _CachingGuard(OpenGuard):
    async def admit(self, lead: Lead, receipt: str | None = None) -> Admission:
        hit = CacheHit({"company": "Acme"}, CacheKey.DOMAIN, stored_at=1.0)
        return Admission(enrichment=hit.data, source=Source.CACHE, cache=hit)


def _handler(deferred: _Deferred, guard: Any = None) -> LeadHandler:
    return LeadHandler(
        HandlerConfig.from_settings(Settings()),
        None,
        guard or OpenGuard(),
        processor_version="t",
        deferred=deferred,
    )


async def test_a_submitted_lead_commits_its_pending_record_and_no_output() -> None:
    """The outcome is 'submitted' and carries only the deferred's state record."""
    deferred = _Deferred()
    outcome = await _handler(deferred).handle(_Record())
    assert outcome.kind is OutcomeKind.SUBMITTED
    assert [r.topic for r in outcome.records] == ["state"]
    assert deferred.submitted == ["L1"]
    assert deferred.released == ["slot-1"]


async def test_a_refused_submission_is_dead_lettered_and_its_slot_released() -> None:
    """A LeadError from submit ends in the DLQ with its class; the webhook slot goes back."""
    deferred = _Deferred(ProviderRejected("clay answered 422"))
    outcome = await _handler(deferred).handle(_Record())
    assert outcome.kind is OutcomeKind.DLQ
    assert outcome.error_class == "provider_rejected"
    assert deferred.released == ["slot-1"]


async def test_a_cache_hit_is_enriched_at_once_without_a_submission() -> None:
    """A domain in the cache needs no Clay row: enriched from cache, slot released."""
    deferred = _Deferred()
    outcome = await _handler(deferred, _CachingGuard()).handle(_Record())
    assert outcome.kind is OutcomeKind.ENRICHED
    assert outcome.source == "cache"
    assert deferred.submitted == []
    assert deferred.released == ["slot-1"]


async def test_invalid_input_never_reaches_the_provider() -> None:
    """Non-JSON input is invalid_payload before any webhook slot is reserved."""
    deferred = _Deferred()
    outcome = await _handler(deferred).handle(_Record(value=b"{nope"))
    assert outcome.error_class == "invalid_payload"
    assert deferred.reserved == 0


async def test_the_claim_stays_outstanding_from_submit_until_finished() -> None:
    """submitted() returns the granted claim and keeps it reserved; finished() settles it at
    the charged credits and caches the data by domain."""
    now = 1_764_158_400.0
    # Clay mode claims one lead at a time (its pending lead keeps the claim).
    settings = Settings(budget_daily_credits=60, budget_claim_leads=1)
    guard = ResilienceGuard(GuardConfig.from_settings(settings), clock=lambda: now, owner="u")
    day = budget_day(now)
    admission = await guard.admit(Lead(lead_id="L1", domain="acme.example"))
    claim = guard.submitted(admission)
    assert claim is not None
    assert guard.ledger.outstanding(day) == 6
    guard.finished(claim.claim_id, claim.day, 4, domain="acme.example", data={"company": "A"})
    assert guard.ledger.outstanding(day) == 0
    assert guard.ledger.spent(day) == 4
    cached = await guard.admit(Lead(lead_id="L2", domain="acme.example"))
    assert cached.source == "cache"


async def test_with_lead_fields_clay_gets_our_names_and_the_raw_record_is_kept() -> None:
    """docs/schema-registry.md: the provider gets streamproc's names. Clay's row is built
    from the mapped lead fields; the record submitted (kept for the output) is the raw one."""
    from streamproc.registry.codec import ShapedJsonCodec

    settings = Settings(lead_fields={"lead_id": "/id", "email": "contact.email"})
    raw = orjson.dumps({"id": 5, "contact": {"email": "p@acme.example"}})
    deferred = _Deferred()
    handler = LeadHandler(
        HandlerConfig.from_settings(settings),
        None,
        OpenGuard(),
        processor_version="t",
        deferred=deferred,
        codec=ShapedJsonCodec(settings),
    )
    record = _Record(key=b"5", value=raw)
    outcome = await handler.handle(record)
    assert outcome.kind is OutcomeKind.SUBMITTED
    assert deferred.rows == [{"lead_id": "5", "email": "p@acme.example"}]
    assert record.value == raw

"""The handler's synchronous path: what it publishes is the published model's record."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from streamproc.errors import BreakerOpen, LeadError, ProviderError
from streamproc.processing.config import HandlerConfig
from streamproc.processing.handler import Admission, CallResult, LeadHandler
from streamproc.records.lead import EnrichedLead, Lead
from streamproc.records.outcome import OutcomeKind
from streamproc.settings import Settings
from tests.unit.processing.stub_guard import OpenGuard


@dataclass
class _Record:
    topic: str = "leads.raw"
    partition: int = 0
    offset: int = 3
    timestamp: int = 0
    key: bytes | None = b"L1"
    value: bytes | None = field(
        default_factory=lambda: orjson.dumps(
            {"lead_id": "L1", "domain": "acme.example", "crm": {"id": 7}}
        )
    )
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class _Result:
    data: dict[str, Any]
    credits: int
    attempts: int = 1


class _Enricher:
    def __init__(self, *errors: LeadError) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def enrich(
        self,
        lead: Any,
        lead_id: str,
        *,
        keep_trying: Callable[[LeadError], Awaitable[bool]] | None = None,
    ) -> CallResult:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return _Result({"company": "Acme"}, 6)


class _HoldingGuard(OpenGuard):
    """Holds a lead whose call failed because the breaker opened; counts admissions."""

    def __init__(self) -> None:
        self.admitted = 0
        self.settled: list[str] = []

    async def admit(self, lead: Lead, receipt: str | None = None) -> Admission:
        self.admitted += 1
        return Admission()

    def settle(self, admission: Admission, result: Any, error: LeadError | None) -> None:
        self.settled.append("error" if error else "ok")

    def hold_after(self, error: LeadError) -> bool:
        return isinstance(error, BreakerOpen)


def _handler(enricher: _Enricher, guard: Any = None) -> LeadHandler:
    return LeadHandler(
        HandlerConfig.from_settings(Settings()),
        enricher,
        guard or OpenGuard(),
        processor_version="9.9",
    )


async def test_an_enriched_record_is_a_valid_enriched_lead() -> None:
    """The value published to leads.enriched validates as the EnrichedLead model that
    schemas/ publishes, with the lead's unknown fields passed through."""
    outcome = await _handler(_Enricher()).handle(_Record())
    assert outcome.kind is OutcomeKind.ENRICHED
    (out,) = outcome.records
    published = EnrichedLead.model_validate_json(out.value or b"")
    assert published.enrichment == {"company": "Acme"}
    assert published.enrichment_meta.source == "provider"
    assert published.enrichment_meta.credits == 6
    assert published.enrichment_meta.processor.version == "9.9"
    assert orjson.loads(out.value or b"")["crm"] == {"id": 7}


async def test_a_lead_held_by_the_breaker_is_admitted_again_not_dead_lettered() -> None:
    """The breaker opened under the call: the failure is settled, the lead admitted again,
    and its second call's answer is published."""
    guard = _HoldingGuard()
    enricher = _Enricher(BreakerOpen("open"))
    outcome = await _handler(enricher, guard).handle(_Record())
    assert outcome.kind is OutcomeKind.ENRICHED
    assert (guard.admitted, enricher.calls, guard.settled) == (2, 2, ["error", "ok"])


async def test_a_failure_that_is_not_held_is_dead_lettered_once() -> None:
    """A provider error the guard does not hold: settled once, dead-lettered."""
    guard = _HoldingGuard()
    outcome = await _handler(_Enricher(ProviderError("500")), guard).handle(_Record())
    assert outcome.kind is OutcomeKind.DLQ and outcome.error_class == "provider_error"
    assert (guard.admitted, guard.settled) == (1, ["error"])


@dataclass
class _Steps:
    data: dict[str, Any]
    credits: int
    attempts: int
    steps: list[dict[str, Any]]


class _Waterfall(_Enricher):
    """An enricher that says which providers it tried (a waterfall's)."""

    has_steps = True

    async def enrich(
        self,
        lead: Any,
        lead_id: str,
        *,
        keep_trying: Callable[[LeadError], Awaitable[bool]] | None = None,
    ) -> CallResult:
        steps = [
            {"provider": "finder", "outcome": "missed", "credits": 0},
            {"provider": "people", "outcome": "found", "credits": 2},
        ]
        return _Steps({"email": "pat@acme.example"}, 2, 2, steps)


async def test_a_waterfalls_lead_says_which_providers_were_tried() -> None:
    """A waterfall's steps are the published meta's ``providers``, valid as the model;
    one provider's lead has no ``providers`` at all."""
    outcome = await _handler(_Waterfall()).handle(_Record())
    (out,) = outcome.records
    published = EnrichedLead.model_validate_json(out.value or b"")
    assert published.enrichment_meta.providers is not None
    assert [(s.provider, s.outcome, s.credits) for s in published.enrichment_meta.providers] == [
        ("finder", "missed", 0),
        ("people", "found", 2),
    ]
    assert published.enrichment_meta.credits == 2
    (single,) = (await _handler(_Enricher()).handle(_Record())).records
    assert "providers" not in orjson.loads(single.value or b"")["enrichment_meta"]

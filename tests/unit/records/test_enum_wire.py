"""The strings the code's enums become where they are written: DLQ headers, the enriched
lead's JSON, metric labels. The code carries the enums; these strings are what consumers,
dashboards and alerts read, so each member's string is pinned here, whole."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import get_args

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamproc.clay.receiver import CallbackResult, Refusal
from streamproc.errors import ErrorClass
from streamproc.ops.metrics import CLAY_CALLBACK_RESULTS, Metrics
from streamproc.processing.handler import enriched_value
from streamproc.records.dlq import ERROR_CLASS, Failure, Origin, encode_dlq_headers
from streamproc.records.lead import EnrichedLead, EnrichmentSource, Source
from streamproc.records.outcome import OutcomeKind
from streamproc.resilience.cache import CacheHit, CacheKey

ERROR_CLASSES = {
    ErrorClass.INVALID_PAYLOAD: "invalid_payload",
    ErrorClass.PROVIDER_REJECTED: "provider_rejected",
    ErrorClass.NO_MATCH: "no_match",
    ErrorClass.PROVIDER_ERROR: "provider_error",
    ErrorClass.PROVIDER_TIMEOUT: "provider_timeout",
    ErrorClass.RATE_LIMITED: "rate_limited",
    ErrorClass.BREAKER_OPEN: "breaker_open",
    ErrorClass.BUDGET_EXHAUSTED: "budget_exhausted",
    ErrorClass.BELOW_FLOOR: "below_floor",
    ErrorClass.DEFERRAL_EXPIRED: "deferral_expired",
    ErrorClass.UNREADABLE_RECORD: "unreadable_record",
    ErrorClass.UNKNOWN_SCHEMA: "unknown_schema",
    ErrorClass.UNDECODABLE_PAYLOAD: "undecodable_payload",
    ErrorClass.OUTPUT_TOO_LARGE: "output_too_large",
    ErrorClass.OUTPUT_REFUSED: "output_refused",
    ErrorClass.HOLD_EXPIRED: "hold_expired",
    ErrorClass.INTERNAL: "internal",
}
SOURCES = {Source.PROVIDER: "provider", Source.CACHE: "cache", Source.FALLBACK: "fallback"}
OUTCOMES = {
    OutcomeKind.ENRICHED: "enriched",
    OutcomeKind.DLQ: "dlq",
    OutcomeKind.SUBMITTED: "submitted",
    OutcomeKind.DEFERRED: "deferred",
}
CALLBACK_ANSWERS = {
    CallbackResult.ENRICHED: "enriched",
    CallbackResult.ERROR_ROW: "error_row",
    CallbackResult.DUPLICATE: "duplicate",
    CallbackResult.UNKNOWN_LEAD: "unknown_lead",
    CallbackResult.CORRELATION_MISMATCH: "correlation_mismatch",
    Refusal.UNAUTHORIZED: "unauthorized",
    Refusal.BAD_REQUEST: "bad_request",
    Refusal.TOO_LARGE: "too_large",
    Refusal.UNAVAILABLE: "unavailable",
}
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _labels(metrics: Metrics, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {
        frozenset(s.labels.items()): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
        if s.name == name
    }


def test_every_member_is_pinned() -> None:
    """A member added to an enum must be given its wire string here too."""
    assert set(ErrorClass) == ERROR_CLASSES.keys()
    assert set(Source) == SOURCES.keys()
    assert set(OutcomeKind) == OUTCOMES.keys()
    assert {*CallbackResult, *Refusal} == CALLBACK_ANSWERS.keys()


@pytest.mark.parametrize("member", list(ErrorClass))
def test_an_error_class_is_written_to_the_dlq_header_as_its_string(member: ErrorClass) -> None:
    """The ``streamproc.error.class`` header of a DLQ record carries the class's string."""
    headers = encode_dlq_headers(
        [], Failure(member, "m", False), Origin("leads.raw", 0, 1, 2), 1, NOW
    )
    assert dict(headers)[ERROR_CLASS] == ERROR_CLASSES[member].encode()


@pytest.mark.parametrize("member", list(Source))
def test_a_source_is_written_to_the_enriched_lead_as_its_string(member: Source) -> None:
    """``enrichment_meta.source`` is the source's string, on the fast path and the model's."""
    cache = CacheHit({"company": "Acme"}, CacheKey.DOMAIN, 1.0) if member is Source.CACHE else None
    value = enriched_value(
        {"lead_id": "L1", "domain": "acme.com"},
        {"company": "Acme"},
        source=member,
        credits=0,
        attempt=1,
        enriched_at=NOW,
        processor={"name": "streamproc", "version": "9"},
        cache=cache,
    )
    assert orjson.loads(value)["enrichment_meta"]["source"] == SOURCES[member]
    assert EnrichedLead.model_validate_json(value).enrichment_meta.source == SOURCES[member]


def test_the_sources_are_those_of_the_published_schema() -> None:
    """The model's Literal (what schemas/enriched-lead.schema.json lists) has the same values."""
    assert set(get_args(EnrichmentSource)) == set(SOURCES.values())


def test_outcomes_classes_and_sources_are_the_lead_metric_labels() -> None:
    """``streamproc_leads_out_total`` is labelled by the members' strings, never their names."""
    metrics = Metrics()
    for source in Source:
        metrics.lead_committed(OutcomeKind.ENRICHED, None, source, 0)
    for error_class in ErrorClass:
        metrics.lead_committed(OutcomeKind.DLQ, error_class, None, 0)
    counted = {k for k, v in _labels(metrics, "streamproc_leads_out_total").items() if v == 1}
    enriched = {
        frozenset({("outcome", "enriched"), ("error_class", "none"), ("source", s)})
        for s in SOURCES.values()
    }
    dead = {
        frozenset({("outcome", "dlq"), ("error_class", c), ("source", "none")})
        for c in ERROR_CLASSES.values()
    }
    assert counted == enriched | dead


def test_every_callback_answer_has_its_own_metric_label() -> None:
    """Each answer of the Clay receiver is a label of ``streamproc_clay_callbacks_total``."""
    assert set(CLAY_CALLBACK_RESULTS) == set(CALLBACK_ANSWERS.values())
    metrics = Metrics()
    for answer in CALLBACK_ANSWERS:
        metrics.clay_callback(answer.value)
    counted = _labels(metrics, "streamproc_clay_callbacks_total")
    assert counted == {frozenset({("result", s)}): 1 for s in CALLBACK_ANSWERS.values()}

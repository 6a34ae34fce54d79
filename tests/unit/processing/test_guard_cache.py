"""The guard's use of the cache, without Kafka: keys per lead, what it journals, tombstones,
and how a cached answer reads in the enriched lead."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import pytest
from pydantic import ValidationError

from streamproc.processing.config import GuardConfig
from streamproc.processing.guard import ResilienceGuard
from streamproc.processing.handler import enriched_value
from streamproc.records.lead import EnrichedLead, EnrichmentMeta, Lead, Source
from streamproc.resilience.cache import CacheHit
from streamproc.settings import CacheKey, Settings
from streamproc.state.store import StateStore
from tests.unit.processing.fakes import Clock, Result

PERSON = {"full_name": "Jane Doe", "title": "CFO", "phone": "+1-555-0100"}
COMPANY = {"company": "Acme", "domain": "acme.example", "industry": "retail"}


class _Store:
    """Records what the guard appends to the state topic."""

    def __init__(self) -> None:
        self.appended: list[tuple[str, dict[str, Any] | None]] = []

    async def append(self, key: str, value: dict[str, Any] | None) -> tuple[int, int]:
        self.appended.append((key, value))
        return 1, len(self.appended) - 1


def _guard(**changes: Any) -> tuple[ResilienceGuard, Clock, _Store]:
    clock = Clock()
    # No credits per lead: these tests are about the cache, not the budget's claims.
    settings = Settings.model_validate({"credits_per_lead": 0, **changes})
    guard = ResilienceGuard(GuardConfig.from_settings(settings), clock=clock, owner="unit")
    store = _Store()
    guard.attach(cast(StateStore, store))
    return guard, clock, store


def _lead(lead_id: str, email: str) -> Lead:
    return Lead(lead_id=lead_id, email=email)


async def _drain() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_the_second_person_of_a_company_gets_company_fields_only() -> None:
    """Jane's answer carries her title; John, same domain, gets the company's fields."""
    guard, clock, _ = _guard()
    jane = await guard.admit(_lead("l1", "jane@acme.example"))
    guard.settle(jane, Result({**COMPANY, **PERSON}), None)
    clock.t += 5
    john = await guard.admit(_lead("l2", "john@acme.example"))
    assert john.source == "cache"
    assert john.enrichment == COMPANY
    assert john.cache == CacheHit(COMPANY, CacheKey.DOMAIN, clock.t - 5)


async def test_freemail_leads_neither_wait_for_nor_use_each_other() -> None:
    """Two gmail.com leads at once are two calls: no shared flight, nothing cached."""
    guard, _, store = _guard()
    ann, bob = await asyncio.wait_for(
        asyncio.gather(
            guard.admit(_lead("l1", "ann@gmail.com")), guard.admit(_lead("l2", "bob@gmail.com"))
        ),
        timeout=1,
    )
    assert ann.ticket is not None and bob.ticket is not None
    guard.settle(ann, Result({"company": "Gmail", **PERSON}), None)
    again = await guard.admit(_lead("l3", "ann@gmail.com"))
    assert again.enrichment is None
    await _drain()
    assert [key for key, _ in store.appended if key.startswith("cache/")] == []


async def test_the_state_topic_gets_only_the_allowed_fields() -> None:
    """What is journaled for the group is the filtered answer, never the person's."""
    guard, clock, store = _guard()
    first = await guard.admit(_lead("l1", "jane@acme.example"))
    guard.settle(first, Result({**COMPANY, **PERSON}), None)
    await _drain()
    assert store.appended == [
        ("cache/acme.example", {"data": COMPANY, "stored_at": clock.t, "lead": "l1"})
    ]


async def test_by_email_the_same_person_gets_the_whole_answer_and_others_none() -> None:
    """cache_key email with every field: Jane again is served her answer, John is not."""
    guard, _, _ = _guard(cache_key="email", cache_fields="*")
    first = await guard.admit(_lead("l1", "jane@acme.example"))
    guard.settle(first, Result({**COMPANY, **PERSON}), None)
    again = await guard.admit(_lead("l2", "Jane@acme.example"))
    other = await guard.admit(_lead("l3", "john@acme.example"))
    assert again.enrichment == {**COMPANY, **PERSON}
    assert again.cache is not None and again.cache.key is CacheKey.EMAIL
    assert other.enrichment is None


async def test_cache_off_serves_nothing_and_journals_nothing() -> None:
    """cache_key off: every lead is a call, no cache record is written."""
    guard, _, store = _guard(cache_key="off")
    first = await guard.admit(_lead("l1", "jane@acme.example"))
    guard.settle(first, Result(COMPANY), None)
    second = await guard.admit(_lead("l2", "john@acme.example"))
    await _drain()
    assert second.enrichment is None
    assert store.appended == []


async def test_an_expired_entry_is_not_restored_and_is_tombstoned() -> None:
    """A restored entry past its TTL serves nobody; the next lead tombstones its key."""
    guard, clock, store = _guard(cache_ttl_s=3600)
    guard.on_state("cache/old.example", {"data": COMPANY, "stored_at": clock.t - 7200}, 1, 0)
    guard.on_state("cache/new.example", {"data": COMPANY, "stored_at": clock.t - 60}, 1, 1)
    assert guard.status().cache.entries == 1
    lead = await guard.admit(_lead("l1", "amy@old.example"))
    assert lead.enrichment is None
    await _drain()
    assert ("cache/old.example", None) in store.appended
    assert ("cache/new.example", None) not in store.appended


async def test_a_clay_answer_is_cached_by_domain_with_company_fields() -> None:
    """finished() caches what a Clay callback brought, filtered, under the domain key."""
    guard, _, _ = _guard()
    guard.finished(None, None, 0, domain="acme.example", data={**COMPANY, **PERSON})
    served = await guard.admit(_lead("l1", "john@acme.example"))
    assert served.enrichment == COMPANY


def test_enriched_value_says_when_and_by_what_a_lead_was_cached() -> None:
    """A cached lead's enrichment_meta has cache_key and cached_at, and validates."""
    hit = CacheHit(COMPANY, CacheKey.DOMAIN, 1_764_158_400.0)
    at = datetime(2025, 11, 26, 12, 0, tzinfo=UTC)
    value = enriched_value(
        {"lead_id": "l1", "email": "john@acme.example"},
        hit.data,
        source=Source.CACHE,
        credits=0,
        attempt=1,
        enriched_at=at,
        processor={"name": "streamproc", "version": "t"},
        cache=hit,
    )
    meta = orjson.loads(value)["enrichment_meta"]
    assert meta["cache_key"] == "domain"
    assert meta["cached_at"] == "2025-11-26T12:00:00Z"
    parsed = EnrichedLead.model_validate_json(value)
    assert parsed.enrichment_meta.cache_key == "domain"


def test_a_provider_answer_has_no_cache_fields() -> None:
    """Without a cache hit enrichment_meta is as before: no cache_key, no cached_at."""
    value = enriched_value(
        {"lead_id": "l1", "email": "john@acme.example"},
        COMPANY,
        source=Source.PROVIDER,
        credits=6,
        attempt=1,
        enriched_at=datetime(2025, 11, 26, tzinfo=UTC),
        processor={"name": "streamproc", "version": "t"},
    )
    meta = orjson.loads(value)["enrichment_meta"]
    assert "cache_key" not in meta and "cached_at" not in meta
    EnrichedLead.model_validate_json(value)


def test_the_model_refuses_a_cache_source_without_its_key() -> None:
    """source cache and cache_key/cached_at come together, as the schema says."""
    base = {
        "credits": 0,
        "attempt": 1,
        "enriched_at": "2025-11-26T00:00:00Z",
        "processor": {"name": "streamproc", "version": "t"},
    }
    with pytest.raises(ValidationError, match="exactly when source is cache"):
        EnrichmentMeta.model_validate({**base, "source": "cache"})
    with pytest.raises(ValidationError, match="exactly when source is cache"):
        EnrichmentMeta.model_validate(
            {**base, "source": "provider", "cache_key": "domain", "cached_at": base["enriched_at"]}
        )

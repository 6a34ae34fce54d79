"""The enrichment cache on the real broker with the real mock provider: it never crosses people."""

from __future__ import annotations

import asyncio
import time
import zlib
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from streamproc.app import App
from streamproc.settings import DEFAULT_CACHE_FIELDS, Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce, read_all

#: The columns the mock returns for a lead with an e-mail: the person's, never to be shared.
PERSON_FIELDS = {"full_name", "title", "seniority", "phone", "linkedin_url"}


def _lead(lead_id: str, email: str) -> tuple[bytes, bytes]:
    return lead_id.encode(), orjson.dumps({"lead_id": lead_id, "email": email})


async def _write_state(settings: Settings, records: list[tuple[str, dict[str, Any]]]) -> None:
    """Write cache records where the processor's own writes of those keys go (compaction and
    tombstones act per partition)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for key, value in records:
            partition = 1 + zlib.crc32(key.encode()) % (settings.topic_partitions - 1)
            await producer.send_and_wait(
                settings.topic_state, orjson.dumps(value), key=key.encode(), partition=partition
            )
    finally:
        await producer.stop()


async def _run(settings: Settings) -> dict[str, dict[str, Any]]:
    """Process what is in leads.raw; every enriched lead by its id (each exactly once)."""
    await asyncio.wait_for(App(settings).run(stop_when_idle_s=2.0), timeout=90)
    enriched = await read_all(settings, settings.topic_enriched)
    dlq = await read_all(settings, settings.topic_dlq)
    assert dlq == [], "no lead of this test is dead-lettered"
    bodies = [orjson.loads(r.value or b"") for r in enriched]
    by_id = {body["lead_id"]: body for body in bodies}
    assert len(by_id) == len(bodies), "a lead was published twice"
    return by_id


def _own_person(body: dict[str, Any]) -> bool:
    """The person columns of an enriched lead, if any, are those of its own e-mail."""
    enrichment = body["enrichment"]
    if "full_name" not in enrichment:
        return True
    local = body["email"].partition("@")[0]
    return bool(enrichment["full_name"] == local.replace(".", " ").title())


async def test_a_cached_answer_never_carries_another_persons_fields(topics: Settings) -> None:
    """Two people of one company: the second gets only company fields from the cache (and
    says so in enrichment_meta); two gmail.com people are never served from the cache."""
    leads = [
        _lead("acme-1", "jane.doe@acme.example"),
        _lead("acme-2", "john.roe@acme.example"),
        _lead("gmail-1", "ann.lee@gmail.com"),
        _lead("gmail-2", "bob.kay@gmail.com"),
    ]
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=20)) as url:
        settings = configure(topics, provider_url=f"{url}/enrich", budget_daily_credits=1000)
        await produce(settings, leads)
        by_id = await _run(settings)
        async with httpx.AsyncClient() as client:
            stats = (await client.get(f"{url}/stats")).json()

    assert set(by_id) == {"acme-1", "acme-2", "gmail-1", "gmail-2"}
    crossed = [lead_id for lead_id, body in by_id.items() if not _own_person(body)]
    assert crossed == [], f"leads published with another person's data: {crossed}"

    acme = {by_id[i]["enrichment_meta"]["source"]: by_id[i] for i in ("acme-1", "acme-2")}
    assert set(acme) == {"provider", "cache"}, "one acme lead is called, the other cached"
    called, cached = acme["provider"], acme["cache"]
    assert set(called["enrichment"]) >= PERSON_FIELDS, "the caller keeps its own person fields"
    assert cached["enrichment_meta"]["source"] == "cache"
    assert cached["enrichment_meta"]["cache_key"] == "domain"
    assert cached["enrichment_meta"]["credits"] == 0
    assert "cached_at" in cached["enrichment_meta"]
    assert set(cached["enrichment"]) <= set(DEFAULT_CACHE_FIELDS)
    assert cached["enrichment"]["company"] == called["enrichment"]["company"]

    for lead_id in ("gmail-1", "gmail-2"):
        meta = by_id[lead_id]["enrichment_meta"]
        assert meta["source"] == "provider", f"{lead_id} was served from the cache"
        assert "cache_key" not in meta
    assert stats["calls"] == 3, "one call for acme, one per gmail.com person"

    state = {
        (r.key or b"").decode(): r.value for r in await read_all(settings, settings.topic_state)
    }
    assert "cache/gmail.com" not in state, "a freemail domain is never cached"
    stored = orjson.loads(state["cache/acme.example"] or b"null")
    assert set(stored["data"]) <= set(DEFAULT_CACHE_FIELDS), "the topic holds no person data"


async def test_expired_entries_are_tombstoned_and_never_restored(topics: Settings) -> None:
    """An expired entry in the state topic is not served after a restart and is tombstoned;
    an entry an older version stored with person fields serves its company fields only."""
    now = time.time()
    ttl_s = 3600.0
    await _write_state(
        topics,
        [
            ("cache/old.example", {"data": {"company": "Old"}, "stored_at": now - 2 * ttl_s}),
            (
                "cache/legacy.example",
                {"data": {"company": "Legacy", "title": "CFO", "phone": "1"}, "stored_at": now},
            ),
        ],
    )
    leads = [_lead("old-1", "amy.poe@old.example"), _lead("legacy-1", "kim.yu@legacy.example")]
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=5)) as url:
        settings = configure(
            topics, provider_url=f"{url}/enrich", budget_daily_credits=1000, cache_ttl_s=ttl_s
        )
        await produce(settings, leads)
        by_id = await _run(settings)

    assert by_id["old-1"]["enrichment_meta"]["source"] == "provider", "expired entry served"
    legacy = by_id["legacy-1"]
    assert legacy["enrichment_meta"]["source"] == "cache"
    assert legacy["enrichment"] == {"company": "Legacy"}
    state = [r for r in await read_all(settings, settings.topic_state) if r.key]
    old = [r.value for r in state if r.key == b"cache/old.example"]
    # The expired entry, its tombstone, then the answer of the provider call it forced.
    assert len(old) == 3, old
    assert old[0] is not None and old[1] is None and old[2] is not None
    assert orjson.loads(old[2])["stored_at"] > now

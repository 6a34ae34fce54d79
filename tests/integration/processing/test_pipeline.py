"""The pipeline end to end on the real broker with the real mock provider over HTTP."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import orjson

from streamproc.app import App
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce, read_all


def _lead(lead_id: str, domain: str) -> bytes:
    return orjson.dumps(
        {"lead_id": lead_id, "email": f"x@{domain}", "domain": domain, "crm_id": {"deep": [1, 2]}}
    )


async def _run_until_idle(settings: Settings) -> App:
    app = App(settings)
    await asyncio.wait_for(app.run(stop_when_idle_s=2.0), timeout=90)
    return app


async def test_mixed_batch_lands_each_lead_once_with_its_reason(topics: Settings) -> None:
    """Success, 5xx beyond retries, 4xx, 429-then-200 and malformed input each end in exactly
    one of leads.enriched or leads.dlq, with the right error class and headers."""
    records: list[tuple[bytes | None, bytes | None]] = []
    expected: dict[str, str] = {}
    for i in range(40):
        records.append((f"ok-{i}".encode(), _lead(f"ok-{i}", f"co{i}.example")))
        expected[f"ok-{i}"] = "enriched"
    for i in range(5):
        records.append((f"fail-{i}".encode(), _lead(f"fail-{i}", f"c{i}.fail.test")))
        expected[f"fail-{i}"] = "provider_error"
        records.append((f"rej-{i}".encode(), _lead(f"rej-{i}", f"c{i}.reject.test")))
        expected[f"rej-{i}"] = "provider_rejected"
        records.append((f"rl-{i}".encode(), _lead(f"rl-{i}", f"c{i}.ratelimit.test")))
        expected[f"rl-{i}"] = "enriched"
    malformed = [
        b"{nope",
        b"[1]",
        orjson.dumps({"email": "a@b.example"}),
        orjson.dumps({"lead_id": "nodomain"}),
        b"\xff\xfe",
    ]
    for i, value in enumerate(malformed):
        records.append((f"bad-{i}".encode(), value))
        expected[f"bad-{i}"] = "invalid_payload"
    headers = [("traceparent", b"00-trace-01")]

    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=5, seed=1)) as url:
        settings = configure(
            topics,
            **{
                "provider_url": f"{url}/enrich",
                "provider_max_retries": 2,
                "provider_backoff_base_s": 0.01,
                "provider_backoff_max_s": 0.05,
                # this test is about classification; the planted 5xx must not trip the breaker
                "breaker_failure_threshold": 1000,
            },
        )
        await produce(settings, records, headers=headers)
        app = await _run_until_idle(settings)
        async with httpx.AsyncClient() as client:
            stats = (await client.get(f"{url}/stats")).json()

    enriched = await read_all(settings, settings.topic_enriched)
    dlq = await read_all(settings, settings.topic_dlq)
    seen = Counter([r.key.decode() for r in enriched + dlq if r.key])
    assert set(seen) == set(expected), "a lead is missing or unknown"
    assert all(n == 1 for n in seen.values()), (
        f"duplicates: {[k for k, n in seen.items() if n > 1]}"
    )

    for r in enriched:
        body = orjson.loads(r.value or b"")
        assert expected[body["lead_id"]] == "enriched"
        assert body["crm_id"] == {"deep": [1, 2]}, "unknown fields pass through"
        assert body["enrichment"]["domain"] == body["domain"]
        assert body["enrichment_meta"]["source"] == "provider"
        assert body["enrichment_meta"]["credits"] == 6
        assert body["enrichment_meta"]["attempt"] == 1
    original = dict(records)
    for r in dlq:
        key = (r.key or b"").decode()
        assert r.headers["streamproc.error.class"].decode() == expected[key]
        assert r.value == original[r.key], "DLQ keeps the original bytes"
        assert r.headers["traceparent"] == b"00-trace-01", "original headers kept"
        assert r.headers["streamproc.attempt"] == b"1"
        assert r.headers["streamproc.original.topic"].decode() == settings.topic_raw
        retriable = r.headers["streamproc.error.retriable"]
        assert retriable == (b"true" if expected[key] == "provider_error" else b"false")
        assert b"T" in r.headers["streamproc.failed_at"]

    # 5xx was retried to the limit: 1 call + 2 retries per failing lead.
    assert stats["by_status"]["500"] == 5 * 3
    assert stats["by_status"]["429"] == 5
    assert stats["credits"] == 6 * 45
    assert app.processor.stats.committed == len(records)


async def test_nothing_is_left_behind_in_the_group(topics: Settings) -> None:
    """After a run the group's committed offsets equal the end of every partition."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=1)) as url:
        settings = configure(topics, **{"provider_url": f"{url}/enrich"})
        await produce(
            settings, [(f"k{i}".encode(), _lead(f"k{i}", "a.example")) for i in range(30)]
        )
        await _run_until_idle(settings)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.group_id,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic_raw, p) for p in range(3)]
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            assert (await consumer.committed(tp) or 0) == ends[tp]
    finally:
        await consumer.stop()

"""Exactly-once through SIGKILLs: every lead lands once in leads.enriched or leads.dlq."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce, read_all
from tests.integration.procs import ProcessorProcess, wait_for_no_members

LEADS = 5000
KILLS = 6


async def _landed(settings: Settings) -> Counter[str]:
    enriched = await read_all(settings, settings.topic_enriched)
    dlq = await read_all(settings, settings.topic_dlq)
    return Counter((r.key or b"").decode() for r in enriched + dlq)


@pytest.mark.slow
async def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    topics: Settings, tmp_path: Path
) -> None:
    """5,000 leads, the processor SIGKILLed 6 times at random moments and restarted: each
    lead_id is exactly once across leads.enriched and leads.dlq (read_committed)."""
    rng = random.Random(20261126)
    records = []
    for i in range(LEADS):
        domain = f"d{i}.fail.test" if i % 50 == 0 else f"d{i}.example"
        records.append((f"L{i}".encode(), orjson.dumps({"lead_id": f"L{i}", "domain": domain})))
    async with serve_mock_provider(
        MockProviderConfig(port=0, latency_ms=20, latency_jitter_ms=15, seed=3)
    ) as url:
        settings = configure(
            topics,
            **{
                "provider_url": f"{url}/enrich",
                "provider_max_retries": 1,
                "provider_backoff_base_s": 0.01,
                "provider_backoff_max_s": 0.02,
                "budget_daily_credits": 10**9,
                "commit_interval_ms": 100,
                # the breaker must not open on the planted failures (1 in 50)
                "breaker_failure_threshold": 1000,
            },
        )
        await produce(settings, records)
        proc = ProcessorProcess(settings, tmp_path, "crash")
        try:
            for _ in range(KILLS):
                proc.start()
                await asyncio.sleep(rng.uniform(2.5, 6.0))
                assert proc.alive(), proc.log_tail()
                proc.kill()
            await wait_for_no_members(settings)
            proc.start("--stop-when-idle-s", "3")
            code = await asyncio.to_thread(proc.wait, 240)
            assert code == 0, proc.log_tail()
        finally:
            proc.stop()
        async with httpx.AsyncClient() as client:
            stats = (await client.get(f"{url}/stats")).json()

    landed = await _landed(settings)
    expected = {f"L{i}" for i in range(LEADS)}
    missing = expected - set(landed)
    twice = [k for k, n in landed.items() if n > 1]
    print(
        f"crash test: starts={proc.starts} provider_calls={stats['calls']} "
        f"charged_twice={stats['duplicates_charged']} missing={len(missing)} twice={len(twice)}"
    )
    assert not missing, f"{len(missing)} leads missing, e.g. {sorted(missing)[:5]}"
    assert not twice, f"{len(twice)} leads twice, e.g. {twice[:5]}"
    assert set(landed) == expected

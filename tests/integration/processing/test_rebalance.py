"""Partitions moving between instances neither lose nor duplicate leads."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce, read_all
from tests.integration.procs import ProcessorProcess, until

LEADS = 3000


async def _calls(url: str, at_least: int) -> bool:
    async with httpx.AsyncClient() as client:
        return int((await client.get(f"{url}/stats")).json()["calls"]) >= at_least


@pytest.mark.slow
async def test_instances_joining_and_leaving_keep_exactly_once(
    topics: Settings, tmp_path: Path
) -> None:
    """A second instance joins mid-run, then the first leaves, then a third joins: every lead
    lands exactly once."""
    records = [
        (f"R{i}".encode(), orjson.dumps({"lead_id": f"R{i}", "domain": f"r{i}.example"}))
        for i in range(LEADS)
    ]
    async with serve_mock_provider(
        MockProviderConfig(port=0, latency_ms=30, latency_jitter_ms=20, seed=4)
    ) as url:
        settings = configure(
            topics,
            provider_url=f"{url}/enrich",
            budget_daily_credits=10**9,
            max_in_flight=64,
            commit_interval_ms=100,
        )
        await produce(settings, records)
        a = ProcessorProcess(settings, tmp_path, "a")
        b = ProcessorProcess(settings, tmp_path, "b")
        c = ProcessorProcess(settings, tmp_path, "c")
        try:
            a.start()
            # Conditions, not fixed sleeps: on a loaded machine a process may not even have
            # imported its modules (nor set its SIGTERM handler) after a few seconds.
            await until(lambda: _calls(url, 300), 120)
            b.start("--stop-when-idle-s", "4")
            await until(lambda: b.logged("partitions.assigned"), 120)
            assert await asyncio.to_thread(a.terminate) == 0, a.log_tail()
            c.start("--stop-when-idle-s", "4")
            for p in (b, c):
                assert await asyncio.to_thread(p.wait, 180) == 0, p.log_tail()
        finally:
            for p in (a, b, c):
                p.stop()

    enriched = await read_all(settings, settings.topic_enriched)
    dlq = await read_all(settings, settings.topic_dlq)
    landed = Counter((r.key or b"").decode() for r in enriched + dlq)
    assert not dlq
    assert set(landed) == {f"R{i}" for i in range(LEADS)}
    assert set(landed.values()) == {1}, [k for k, n in landed.items() if n > 1][:5]


async def test_call_slower_than_transaction_timeout_does_not_fence(topics: Settings) -> None:
    """A provider call slower than the transaction timeout holds no transaction open: the
    lead and the ones behind it commit once, with no aborted transaction."""
    from streamproc.app import App

    records = [(b"slow", orjson.dumps({"lead_id": "slow", "domain": "x.slow.test"}))]
    records += [
        (f"f{i}".encode(), orjson.dumps({"lead_id": f"f{i}", "domain": f"f{i}.example"}))
        for i in range(30)
    ]
    # latency 500 ms x slow factor 5 = 2.5 s, over the 1 s transaction timeout
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=500, seed=2)) as url:
        settings = configure(
            topics,
            provider_url=f"{url}/enrich",
            transaction_timeout_ms=1000,
            provider_timeout_s=10,
            topic_partitions=1,
        )
        await produce(settings, records)
        app = App(settings)
        await asyncio.wait_for(app.run(stop_when_idle_s=3.0), timeout=60)
    enriched = await read_all(settings, settings.topic_enriched)
    keys = Counter((r.key or b"").decode() for r in enriched)
    assert keys["slow"] == 1
    assert sum(keys.values()) == 31
    assert app.processor.stats.aborted_transactions == 0

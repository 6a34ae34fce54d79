"""A processor killed with SIGKILL in the middle of spending strands at most one small lease."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson

from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from streamproc.state.config import StateConfig
from streamproc.state.group_state import GroupState
from streamproc.state.view import load_state
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce
from tests.integration.procs import ProcessorProcess

LEADS = 400
LIMIT = 6_000
#: 2% of 6,000 credits at 6 a lead: 20 leads, 120 credits (budget_claim_leads is 50).
LEASE = 120


async def test_a_kill_strands_at_most_one_small_lease(topics: Settings, tmp_path: Path) -> None:
    """6,000 credits a day, 6 a lead, 50-lead leases: killed (SIGKILL) mid-spend, the
    processor leaves at most one 120-credit lease reserved, and the books count at least
    every credit the provider charged."""
    records = [
        (f"K{i}".encode(), orjson.dumps({"lead_id": f"K{i}", "domain": f"k{i}.example"}))
        for i in range(LEADS)
    ]
    config = MockProviderConfig(port=0, latency_ms=150, latency_jitter_ms=100, seed=3)
    async with serve_mock_provider(config) as url, httpx.AsyncClient() as client:
        settings = configure(
            topics,
            provider_url=f"{url}/enrich",
            budget_daily_credits=LIMIT,
            credits_per_lead=6,
            budget_claim_leads=50,
            max_in_flight=8,
            breaker_failure_threshold=1000,
            cache_key="off",
        )
        await produce(settings, records)
        proc = ProcessorProcess(settings, tmp_path, "killed")
        proc.start()
        try:
            for _ in range(1200):
                if (await client.get(f"{url}/stats")).json()["calls"] >= 70:
                    break
                await asyncio.sleep(0.05)
            await asyncio.to_thread(proc.kill)
        finally:
            proc.stop()
        await asyncio.sleep(1.0)  # calls in flight at the kill are answered (and billed)
        charged = int((await client.get(f"{url}/stats")).json()["credits"])
    state = StateConfig.from_settings(settings)
    budget = (await load_state(state, GroupState.reader(state)))["budget"]
    print(f"killed after {charged} credits charged: {budget}")
    assert charged >= 70 * 6
    assert budget["reserved"] <= LEASE
    assert budget["spent"] + budget["reserved"] >= charged
    assert budget["limit"] == LIMIT

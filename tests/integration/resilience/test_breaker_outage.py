"""A provider outage: the breaker opens, lets only probes through, and resumes by itself."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import orjson

from streamproc.app import App
from streamproc.resilience.breaker import BreakerState
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce, read_all

LEADS = 400
PROBES = 1
THRESHOLD = 5
COOLDOWN_S = 1.5


async def test_outage_opens_breaker_holds_leads_and_resumes(topics: Settings) -> None:
    """During an outage the breaker opens, the provider sees no more than the configured
    probe per half-open period, and when it returns every lead is enriched: none lost."""
    records = [
        (f"O{i}".encode(), orjson.dumps({"lead_id": f"O{i}", "domain": f"o{i}.example"}))
        for i in range(LEADS)
    ]
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=10, seed=9)) as url:
        settings = configure(
            topics,
            provider_url=f"{url}/enrich",
            budget_daily_credits=10**9,
            breaker_failure_threshold=THRESHOLD,
            breaker_cooldown_s=COOLDOWN_S,
            breaker_half_open_probes=PROBES,
            on_breaker_open="hold",
            provider_max_retries=2,
            provider_backoff_base_s=0.1,
            provider_backoff_max_s=0.2,
            max_in_flight=16,
        )
        await produce(settings, records)
        app = App(settings)
        run = asyncio.ensure_future(app.run(stop_when_idle_s=3.0))
        samples: list[tuple[float, int, str]] = []
        async with httpx.AsyncClient() as client:

            async def calls() -> int:
                return int((await client.get(f"{url}/stats")).json()["calls"])

            while app.processor.stats.enriched < 100:
                await asyncio.sleep(0.02)
            await client.post(f"{url}/admin/outage", json={"on": True})
            outage_started = time.time()
            while time.time() - outage_started < 4 * COOLDOWN_S:
                samples.append((time.time(), await calls(), app.guard.breaker.state(time.time())))
                await asyncio.sleep(0.02)
            held_during_outage = app.processor.stats.dlq
            await client.post(f"{url}/admin/outage", json={"on": False})
            await asyncio.wait_for(run, timeout=120)
            stats = (await client.get(f"{url}/stats")).json()

    transitions = [(t.from_state, t.to_state, t.reason) for t in app.guard.transitions]
    opened = [t for t in app.guard.transitions if t.to_state is BreakerState.OPEN]
    assert opened, f"the breaker never opened: {transitions}"
    assert opened[0].reason == "failure_threshold"
    # Calls the provider received while the breaker was open or half-open, after the calls
    # already on the wire when it opened had landed (0.3 s), are probes only.
    first_open = opened[0].at
    during = [c for (t, c, _) in samples if t >= first_open + 0.3]
    half_opens = sum(1 for t in app.guard.transitions if t.to_state is BreakerState.HALF_OPEN)
    probe_calls = (during[-1] - during[0]) if during else 0
    print(
        f"breaker: transitions={len(transitions)} half_open_periods={half_opens} "
        f"calls_while_open={probe_calls} provider_503={stats['by_status'].get('503', 0)} "
        f"dlq_during_outage={held_during_outage}"
    )
    assert probe_calls <= max(half_opens, 1) * PROBES
    assert transitions[-1][1] is BreakerState.CLOSED, "resumed by itself"

    enriched = await read_all(settings, settings.topic_enriched)
    dlq = await read_all(settings, settings.topic_dlq)
    assert not dlq, (
        f"leads dead-lettered: {Counter(r.headers['streamproc.error.class'] for r in dlq)}"
    )
    assert sorted((r.key or b"").decode() for r in enriched) == sorted(
        f"O{i}" for i in range(LEADS)
    )

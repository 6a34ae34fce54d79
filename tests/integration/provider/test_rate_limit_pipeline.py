"""A provider's plan limit, over real HTTP and the real broker: paced at its rate, the
pipeline never goes over it; unpaced, the simulator answers 429s.

Scaled down for CI: a plan of 30 calls per 5 s window (the shape of a per-minute plan,
twelve times as fast), paced at 4 calls/s (a fifth below the plan, so a call delayed by up
to 2 s on a loaded machine still lands inside it), 40 leads, every lead free to be in
flight at once (``max_in_flight`` 256)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import orjson

from streamproc.app import App
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.kafka_io import produce, read_all
from tests.integration.provider.test_providers_pipeline import _settings as _pipeline_settings
from tests.integration.provider.test_providers_pipeline import _stats

LEADS = 40
PLAN = MockProviderConfig(
    port=0, latency_ms=1, seed=5, plan_limit=30, plan_window_s=5.0, plan_window="fixed"
)


def _leads(n: int) -> list[tuple[bytes | None, bytes | None]]:
    return [
        (f"l{i}".encode(), orjson.dumps({"lead_id": f"l{i}", "domain": f"co{i}.example"}))
        for i in range(n)
    ]


def _settings(topics: Settings, url: str, **changes: Any) -> Settings:
    return _pipeline_settings(
        topics, provider="http", provider_url=f"{url}/enrich", max_in_flight=256, **changes
    )


async def test_a_paced_provider_never_goes_over_its_plan(topics: Settings) -> None:
    """Paced at 4/s against a plan of 30 per 5 s: every lead enriched exactly once, and
    the simulator answered not one 429."""
    async with serve_mock_provider(PLAN) as url:
        settings = _settings(topics, url, provider_rate_per_s=4.0)
        await produce(settings, _leads(LEADS))
        app = App(settings)
        await asyncio.wait_for(app.run(stop_when_idle_s=1.0), timeout=120)
        stats = await _stats(url)
    assert stats["plan_limited"] == 0
    assert stats["by_status"] == {"200": LEADS}
    enriched = await read_all(settings, settings.topic_enriched)
    assert not await read_all(settings, settings.topic_dlq)
    seen = Counter((r.key or b"").decode() for r in enriched)
    assert set(seen) == {f"l{i}" for i in range(LEADS)}
    assert max(seen.values()) == 1


async def test_an_unpaced_provider_meets_its_plan_with_429s(topics: Settings) -> None:
    """The same leads without a rate setting go out at once, and the simulator refuses
    those over the plan (what the paced test is measured against)."""
    async with serve_mock_provider(PLAN) as url:
        settings = _settings(topics, url)
        await produce(settings, _leads(LEADS))
        app = App(settings)
        run = asyncio.ensure_future(app.run())
        try:

            async def refused() -> None:
                while (await _stats(url))["plan_limited"] == 0:
                    await asyncio.sleep(0.1)

            await asyncio.wait_for(refused(), 60)
        finally:
            app.request_stop()
            await asyncio.wait_for(run, 60)
        stats = await _stats(url)
    assert stats["plan_limited"] > 0
    assert stats["by_status"]["429"] == stats["plan_limited"]

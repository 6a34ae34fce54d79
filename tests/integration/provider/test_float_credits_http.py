"""A 200 whose ``credits`` is a JSON float, through the real mock provider over HTTP."""

from __future__ import annotations

from typing import Any

import httpx

from streamproc.provider.client import ProviderClient
from streamproc.provider.config import ProviderConfig
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider


async def _stats(base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{base_url}/stats")
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


async def _reset(base_url: str) -> None:
    async with httpx.AsyncClient() as http:
        (await http.post(f"{base_url}/admin/reset")).raise_for_status()


async def test_float_credits_are_charged_once_and_not_retried() -> None:
    """credits 6.0 on the wire is a charge of 6 on the first call: no retry, no second charge."""
    config = MockProviderConfig(port=0, latency_ms=1, seed=7, credits_per_call=6)
    async with serve_mock_provider(config) as base_url:
        async with httpx.AsyncClient() as http:
            raw = await http.post(
                f"{base_url}/enrich",
                json={"domain": "probe.floatcredits.test"},
                headers={"Idempotency-Key": "probe"},
            )
        await _reset(base_url)
        settings = Settings(
            provider_url=f"{base_url}/enrich",
            provider_max_retries=3,
            provider_backoff_base_s=0.001,
            provider_backoff_max_s=0.005,
        )
        async with ProviderClient(ProviderConfig.from_settings(settings, "http")) as client:
            result = await client.enrich(
                {"lead_id": "l1", "domain": "acme.floatcredits.test"}, "l1"
            )
        stats = await _stats(base_url)
    # The scenario really sends a float, or this test would prove nothing.
    assert b'"credits":6.0' in raw.content
    assert (result.credits, result.attempts) == (6, 1)
    assert (stats["calls"], stats["credits"], stats["duplicates_charged"]) == (1, 6, 0)

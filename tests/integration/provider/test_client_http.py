"""ProviderClient against the real mock provider server over HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from streamproc.errors import (
    ProviderAuthError,
    ProviderCreditsExhausted,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
)
from streamproc.provider.client import ProviderClient
from streamproc.provider.config import ProviderConfig
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider

API_KEY = "mock-secret-key"
MAX_RETRIES = 2


@dataclass
class Provider:
    """A running mock provider, and a client pointed at it that records each attempt."""

    base_url: str
    client: ProviderClient
    statuses: list[int | None] = field(default_factory=list)

    async def stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{self.base_url}/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    async def admin(self, path: str, body: dict[str, Any]) -> httpx.Response:
        async with httpx.AsyncClient() as http:
            return await http.post(f"{self.base_url}/admin/{path}", json=body)


@asynccontextmanager
async def running(
    config: MockProviderConfig | None = None, **settings: Any
) -> AsyncIterator[Provider]:
    """Serve a mock provider on a free port and yield a started client for it."""
    config = config or MockProviderConfig(port=0, latency_ms=1, api_key=API_KEY, seed=7)
    async with serve_mock_provider(config) as base_url:
        values: dict[str, Any] = {
            "provider_url": f"{base_url}/enrich",
            "provider_api_key": API_KEY,
            "provider_max_retries": MAX_RETRIES,
            # A tiny backoff keeps the suite fast; the policy itself is unit-tested.
            "provider_backoff_base_s": 0.001,
            "provider_backoff_max_s": 0.005,
            "provider_timeout_s": 2.0,
        }
        values.update(settings)
        statuses: list[int | None] = []
        client = ProviderClient(
            ProviderConfig.from_settings(Settings(**values), "http"),
            on_attempt=lambda status, _s: statuses.append(status),
        )
        async with client:
            yield Provider(base_url, client, statuses)


def lead(lead_id: str, domain: str) -> dict[str, str]:
    return {"lead_id": lead_id, "domain": domain, "email": f"jane@{domain}"}


async def test_success_returns_data_and_is_charged_once() -> None:
    """A healthy call returns the provider's data and credits; the mock charged exactly that."""
    async with running() as provider:
        result = await provider.client.enrich(lead("l1", "acme.com"), "l1")
        stats = await provider.stats()
    assert result.data["company"] == "Acme"
    assert result.data["domain"] == "acme.com"
    assert (result.credits, result.attempts) == (6, 1)
    assert result.latency_s > 0
    assert stats["calls"] == 1
    assert stats["credits"] == 6
    assert stats["by_status"] == {"200": 1}
    assert (stats["by_lead"], stats["duplicates_charged"]) == (1, 0)


async def test_5xx_beyond_retries_is_provider_error_after_max_retries_plus_one_calls() -> None:
    """An always-failing lead costs max_retries + 1 calls (client and server agree), no credits."""
    async with running() as provider:
        with pytest.raises(ProviderError, match="provider answered 500"):
            await provider.client.enrich(lead("l1", "acme.fail.test"), "l1")
        stats = await provider.stats()
    assert provider.statuses == [500] * (MAX_RETRIES + 1)
    assert stats["calls"] == MAX_RETRIES + 1
    assert stats["credits"] == 0


@pytest.mark.parametrize(
    ("domain", "first"), [("acme.ratelimit.test", 429), ("acme.flaky.test", 500)]
)
async def test_transient_failure_then_success_is_charged_once(domain: str, first: int) -> None:
    """A 429 (or a 500) on the first call and 200 on the retry: two calls, one charge."""
    async with running() as provider:
        result = await provider.client.enrich(lead("l1", domain), "l1")
        stats = await provider.stats()
    assert result.attempts == 2
    assert provider.statuses == [first, 200]
    assert stats["by_status"] == {str(first): 1, "200": 1}
    assert (stats["credits"], stats["duplicates_charged"]) == (6, 0)


async def test_422_is_rejected_after_exactly_one_call() -> None:
    """A rejected lead is not retried: one HTTP call, ProviderRejected."""
    async with running() as provider:
        with pytest.raises(ProviderRejected, match="422"):
            await provider.client.enrich(lead("l1", "acme.reject.test"), "l1")
        stats = await provider.stats()
    assert stats["calls"] == 1
    assert provider.statuses == [422]


async def test_wrong_api_key_is_an_auth_error_after_one_call() -> None:
    """A key the provider refuses gives ProviderAuthError after one call, key not in the message."""
    async with running(provider_api_key="not-the-key") as provider:
        with pytest.raises(ProviderAuthError) as info:
            await provider.client.enrich(lead("l1", "acme.com"), "l1")
        stats = await provider.stats()
    assert "not-the-key" not in str(info.value)
    assert stats["by_status"] == {"401": 1}


async def test_authfail_scenario_is_an_auth_error() -> None:
    """The .authfail.test scenario answers 401 even to the right key."""
    async with running() as provider:
        with pytest.raises(ProviderAuthError):
            await provider.client.enrich(lead("l1", "acme.authfail.test"), "l1")
    assert provider.statuses == [401]


async def test_402_is_credits_exhausted_after_one_call() -> None:
    """The provider's own credits running out (402) is not retried."""
    async with running() as provider:
        with pytest.raises(ProviderCreditsExhausted):
            await provider.client.enrich(lead("l1", "acme.nocredits.test"), "l1")
        stats = await provider.stats()
    assert stats["by_status"] == {"402": 1}


async def test_provider_slower_than_timeout_is_provider_timeout() -> None:
    """A provider whose latency exceeds provider_timeout_s gives ProviderTimeout, per attempt."""
    config = MockProviderConfig(port=0, latency_ms=1_000, api_key=API_KEY)
    async with running(config, provider_timeout_s=0.1, provider_max_retries=1) as provider:
        with pytest.raises(ProviderTimeout):
            await asyncio.wait_for(provider.client.enrich(lead("l1", "acme.com"), "l1"), 3)
        stats = await provider.stats()
    assert provider.statuses == [None, None]
    assert stats["calls"] == 2


async def test_outage_toggle_fails_calls_then_recovers() -> None:
    """During a manual outage every attempt gets 503; after it ends the same lead succeeds."""
    async with running() as provider:
        assert (await provider.admin("outage", {"on": True})).json() == {"outage": True}
        with pytest.raises(ProviderError, match="503"):
            await provider.client.enrich(lead("l1", "acme.com"), "l1")
        assert (await provider.stats())["outage"] is True
        await provider.admin("outage", {"on": False})
        result = await provider.client.enrich(lead("l1", "acme.com"), "l1")
        stats = await provider.stats()
    assert result.attempts == 1
    assert provider.statuses == [503] * (MAX_RETRIES + 1) + [200]
    assert stats["by_status"] == {"503": MAX_RETRIES + 1, "200": 1}
    assert stats["outage"] is False


async def test_scheduled_outage_window_answers_503() -> None:
    """An outage window covering the server's start makes every call a 503."""
    config = MockProviderConfig(port=0, latency_ms=1, outages=((0.0, 60.0),))
    async with running(config, provider_max_retries=0) as provider:
        with pytest.raises(ProviderError, match="503"):
            await provider.client.enrich(lead("l1", "acme.com"), "l1")
        assert (await provider.stats())["outage"] is True


async def test_runtime_config_and_reset() -> None:
    """/admin/config switches error_rate at run time; /admin/reset zeroes the counters."""
    async with running(provider_max_retries=0) as provider:
        changed = await provider.admin("config", {"error_rate": 1.0})
        assert changed.json()["error_rate"] == 1.0
        with pytest.raises(ProviderError, match="500"):
            await provider.client.enrich(lead("l1", "acme.com"), "l1")
        bad = await provider.admin("config", {"error_rate": 3, "api_key": "x"})
        assert bad.status_code == 400
        await provider.admin("reset", {})
        stats = await provider.stats()
    assert (stats["calls"], stats["credits"], stats["by_status"]) == (0, 0, {})


async def test_mock_counts_a_lead_charged_twice() -> None:
    """Enriching the same Idempotency-Key twice shows up as duplicates_charged: the metric works."""
    async with running() as provider:
        await provider.client.enrich(lead("l1", "acme.com"), "l1")
        await provider.client.enrich(lead("l1", "acme.com"), "l1")
        await provider.client.enrich(lead("l2", "acme.com"), "l2")
        stats = await provider.stats()
    assert (stats["credits"], stats["by_lead"], stats["duplicates_charged"]) == (18, 2, 1)


async def test_concurrent_calls_are_served_concurrently() -> None:
    """Twenty leads at once overlap on the server (pooled connections, no serialisation)."""
    config = MockProviderConfig(port=0, latency_ms=100, api_key=API_KEY)
    async with running(config, max_in_flight=32) as provider:
        results = await asyncio.gather(
            *(provider.client.enrich(lead(f"l{i}", "acme.com"), f"l{i}") for i in range(20))
        )
        stats = await provider.stats()
    assert all(r.credits == 6 for r in results)
    assert stats["max_in_flight"] > 1


async def test_mock_refuses_calls_without_idempotency_key_and_serves_healthz() -> None:
    """The mock enforces the contract's Idempotency-Key (400) and answers /healthz."""
    config = MockProviderConfig(port=0, latency_ms=0)
    async with serve_mock_provider(config) as base_url, httpx.AsyncClient() as http:
        missing = await http.post(f"{base_url}/enrich", json={"domain": "acme.com"})
        health = await http.get(f"{base_url}/healthz")
    assert missing.status_code == 400
    assert health.json() == {"status": "ok"}

"""SIGTERM during a busy batch: clean exit, then exactly-once output after a restart."""

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

LEADS = 1500


async def _calls(url: str, at_least: int) -> bool:
    async with httpx.AsyncClient() as client:
        return int((await client.get(f"{url}/stats")).json()["calls"]) >= at_least


def _domain(i: int, slow_every: int) -> str:
    # Only early leads are slow: with outputs committed in order, each slow lead holds its
    # partition's window for its whole call, so many of them would make the test long.
    slow = slow_every and i < 256 and i % slow_every == 0
    return f"s{i}.slow.test" if slow else f"s{i}.example"


async def _scenario(topics: Settings, tmp_path: Path, signals: int, slow_every: int = 0) -> int:
    records = [
        (f"S{i}".encode(), orjson.dumps({"lead_id": f"S{i}", "domain": _domain(i, slow_every)}))
        for i in range(LEADS)
    ]
    async with serve_mock_provider(
        # *.slow.test leads take slow_factor x latency: 125 x 80 ms = 10 s
        MockProviderConfig(port=0, latency_ms=80, latency_jitter_ms=60, seed=8, slow_factor=125)
    ) as url:
        settings = configure(
            topics,
            provider_url=f"{url}/enrich",
            budget_daily_credits=10**9,
            max_in_flight=128,
            shutdown_grace_s=60,
            provider_timeout_s=30,
        )
        await produce(settings, records)
        proc = ProcessorProcess(settings, tmp_path, f"sig{signals}")
        try:
            proc.start()
            # Busy (and its SIGTERM handler set): a fixed sleep could signal a process that
            # had not finished importing on a loaded machine. Early in the run: the first
            # wave's slow leads (10 s calls) are then surely still in flight; at 200 calls a
            # loaded machine could be past them (abandoned 0 in 2 runs of 3 under load).
            await until(lambda: _calls(url, 50), 120)
            assert proc.proc is not None
            for _ in range(signals):
                proc.proc.send_signal(15)
                await asyncio.sleep(0.05)
            code = await asyncio.to_thread(proc.wait, 90)
            async with httpx.AsyncClient() as client:
                # calls the provider was still serving when the process had exited
                abandoned = int((await client.get(f"{url}/stats")).json()["in_flight"])
            assert code == 0, proc.log_tail()
        finally:
            proc.stop()
    # The restart meets a provider without slow leads: each slow lead would hold its
    # partition's window for 10 s again, and what is tested here is what the restart
    # finds (every lead once), not how long the slow ones take (60 s of CI otherwise).
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=20, seed=8)) as url:
        settings = configure(settings, provider_url=f"{url}/enrich")
        restart = ProcessorProcess(settings, tmp_path, f"sig{signals}-restart")
        try:
            restart.start("--stop-when-idle-s", "3")
            assert await asyncio.to_thread(restart.wait, 120) == 0, restart.log_tail()
        finally:
            restart.stop()
    await _assert_each_lead_landed_once(settings, {f"S{i}" for i in range(LEADS)})
    return abandoned


async def _assert_each_lead_landed_once(settings: Settings, lead_ids: set[str]) -> None:
    enriched = await read_all(settings, settings.topic_enriched)
    dlq = await read_all(settings, settings.topic_dlq)
    landed = Counter((r.key or b"").decode() for r in enriched + dlq)
    assert set(landed) == lead_ids
    assert set(landed.values()) == {1}


@pytest.mark.slow
async def test_sigterm_finishes_the_batch_and_exits_zero(topics: Settings, tmp_path: Path) -> None:
    """One SIGTERM: leads in flight finish, are committed, the group is left, exit 0."""
    abandoned = await _scenario(topics, tmp_path, signals=1)
    assert abandoned == 0, "a graceful stop waits for its calls in flight"


@pytest.mark.slow
async def test_second_sigterm_exits_at_once_without_loss(topics: Settings, tmp_path: Path) -> None:
    """Two SIGTERMs: the process leaves without waiting for the 10 s calls in flight; the
    restart still lands each lead once."""
    abandoned = await _scenario(topics, tmp_path, signals=2, slow_every=7)
    assert abandoned > 0, "the process waited for its calls in flight"


async def test_sigterm_releases_leads_held_by_the_open_breaker(
    topics: Settings, tmp_path: Path
) -> None:
    """The provider is down and the breaker holds the leads (cooldown 15 min). One SIGTERM
    with a 120 s grace: the held leads are released at once (they were not calling anyone),
    the process exits 0 long before the grace, and a restart after the outage lands every
    lead exactly once."""
    leads = 200
    records = [
        (f"H{i}".encode(), orjson.dumps({"lead_id": f"H{i}", "domain": f"h{i}.example"}))
        for i in range(leads)
    ]
    async with (
        serve_mock_provider(MockProviderConfig(port=0, latency_ms=5, seed=3)) as url,
        httpx.AsyncClient() as client,
    ):
        await client.post(f"{url}/admin/outage", json={"on": True})
        settings = configure(
            topics,
            provider_url=f"{url}/enrich",
            budget_daily_credits=10**9,
            breaker_failure_threshold=3,
            breaker_cooldown_s=900,
            provider_max_retries=0,
            shutdown_grace_s=120,
        )
        await produce(settings, records)
        proc = ProcessorProcess(settings, tmp_path, "held")
        try:
            proc.start()
            for _ in range(120):
                status = (await client.get(f"{url}/stats")).json()
                if status["calls"] >= 3 and "breaker.transition" in proc.log_tail(200):
                    break
                await asyncio.sleep(0.25)
            await asyncio.sleep(1.0)  # the rest of the window reaches the hold
            # A graceful stop that waited for the held leads would take the whole 120 s.
            assert await asyncio.to_thread(proc.terminate, 30) == 0, proc.log_tail()
            assert "shutdown.released_holds" in proc.log_tail(400)
            await client.post(f"{url}/admin/outage", json={"on": False})
            # The breaker's open state is in the state topic: the restart would hold again
            # for the cooldown, so this run may call the provider at once.
            proc.start("--stop-when-idle-s", "3", "--breaker-cooldown-s", "0")
            assert await asyncio.to_thread(proc.wait, 120) == 0, proc.log_tail()
        finally:
            proc.stop()
    await _assert_each_lead_landed_once(settings, {f"H{i}" for i in range(leads)})

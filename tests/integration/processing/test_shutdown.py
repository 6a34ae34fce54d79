"""SIGTERM during a busy batch: clean exit, then exactly-once output after a restart."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from streamproc.provider.mock import MockProviderConfig, serve_mock_provider
from streamproc.settings import Settings
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce, read_all
from tests.integration.procs import ProcessorProcess

LEADS = 1500


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
            await asyncio.sleep(4)
            assert proc.proc is not None
            for _ in range(signals):
                proc.proc.send_signal(15)
                await asyncio.sleep(0.05)
            code = await asyncio.to_thread(proc.wait, 90)
            async with httpx.AsyncClient() as client:
                # calls the provider was still serving when the process had exited
                abandoned = int((await client.get(f"{url}/stats")).json()["in_flight"])
            assert code == 0, proc.log_tail()
            proc.start("--stop-when-idle-s", "3")
            assert await asyncio.to_thread(proc.wait, 120) == 0, proc.log_tail()
        finally:
            proc.stop()
    enriched = await read_all(settings, settings.topic_enriched)
    dlq = await read_all(settings, settings.topic_dlq)
    landed = Counter((r.key or b"").decode() for r in enriched + dlq)
    assert set(landed) == {f"S{i}" for i in range(LEADS)}
    assert set(landed.values()) == {1}
    return abandoned


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

"""One of two instances frozen mid-run (SIGSTOP, as a GC pause, a stalled VM or CPU
throttling would): its calls in flight time out the moment it wakes, and those timeouts are
its own stall, not the provider's. The breaker stays closed, and every lead lands once."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from streamproc.state.group_state import BREAKER_KEY
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce, read_all
from tests.integration.procs import ProcessorProcess

LEADS = 3000
#: Leads a second, written in slices every tenth of a second (the issue's ~300/s).
RATE = 300
#: Longer than provider_timeout_s (5 s), so the calls in flight time out on waking, and
#: than the group's session timeout (10 s), so the group also moves the frozen member's
#: partitions (25 s before: 13 s more of CI for the same two thresholds crossed).
FREEZE_S = 12.0


async def _produce_steadily(settings: Settings, records: list[tuple[bytes, bytes]]) -> None:
    step = RATE // 10
    for start in range(0, len(records), step):
        began = time.monotonic()
        await produce(settings, records[start : start + step])
        await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - began)))


def _log(proc: ProcessorProcess) -> bytes:
    return proc.log_path.read_bytes() if proc.log_path.exists() else b""


@pytest.mark.slow
async def test_a_frozen_instance_does_not_open_the_breaker(
    topics: Settings, tmp_path: Path
) -> None:
    """Two `streamproc run` processes, leads at ~300/s against a provider answering in
    100 ms; one is SIGSTOPped for 12 s mid-run and woken: the state topic never records an
    open breaker, every lead is enriched exactly once, and the provider was called again
    for the calls the freeze cut short (the freeze did hit calls in flight)."""
    records = [
        (f"F{i}".encode(), orjson.dumps({"lead_id": f"F{i}", "domain": f"f{i}.example"}))
        for i in range(LEADS)
    ]
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=100)) as url:
        settings = configure(
            topics,
            provider_url=f"{url}/enrich",
            budget_daily_credits=10**9,
            provider_timeout_s=5.0,
            commit_interval_ms=100,
        )
        procs = [ProcessorProcess(settings, tmp_path, name) for name in ("a", "b")]
        for proc in procs:
            proc.start()
        frozen = procs[0]
        assert frozen.proc is not None
        try:
            # Both members hold partitions before the first lead, so the freeze hits one
            # that is at work.
            deadline = time.monotonic() + 90
            while not all(b"partitions.assigned" in _log(proc) for proc in procs):
                assert time.monotonic() < deadline, "the two members never both got partitions"
                await asyncio.sleep(0.5)
            writing = asyncio.ensure_future(_produce_steadily(settings, records))
            # Both members at work: a third of the leads written, so calls are in flight.
            await asyncio.sleep(LEADS / RATE / 3)
            frozen.proc.send_signal(signal.SIGSTOP)
            try:
                await asyncio.sleep(FREEZE_S)
            finally:
                frozen.proc.send_signal(signal.SIGCONT)
            await writing
            deadline = time.monotonic() + 180
            while True:
                enriched = await read_all(settings, settings.topic_enriched)
                if len(enriched) >= LEADS:
                    break
                assert time.monotonic() < deadline, f"only {len(enriched)} of {LEADS} landed"
                await asyncio.sleep(1.0)
            async with httpx.AsyncClient() as client:
                calls = (await client.get(f"{url}/stats")).json()["calls"]
        finally:
            for proc in procs:
                proc.stop()

    breaker = [
        orjson.loads(r.value)
        for r in await read_all(settings, settings.topic_state)
        if r.key == BREAKER_KEY.encode() and r.value is not None
    ]
    print(f"provider calls {calls} for {LEADS} leads; breaker records {breaker}")
    assert [b["state"] for b in breaker if b["state"] != "closed"] == [], (
        "the breaker opened on a stall of our own"
    )
    assert await read_all(settings, settings.topic_dlq) == []
    counts = Counter((r.key or b"").decode() for r in enriched)
    assert sorted(counts) == sorted(f"F{i}" for i in range(LEADS))
    assert max(counts.values()) == 1, "a lead was published twice"
    assert calls > LEADS, "no call was in flight at the freeze: the test froze nothing"

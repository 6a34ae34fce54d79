"""The operator's levers on a running group: today's limit lowered and a pause, through
``streamproc budget`` on the real broker, with the mock provider over HTTP.

Scaled down for CI time: tens of leads at one credit each, in two batches with the
change between them while the instances run (so the test knows what was spent when the
change landed), and conditions waited on, never sleeps.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson

from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce, read_all
from tests.integration.procs import ProcessorProcess, settings_env, until


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _leads(prefix: str, n: int) -> list[tuple[bytes | None, bytes | None]]:
    return [
        (
            f"{prefix}{i}".encode(),
            orjson.dumps({"lead_id": f"{prefix}{i}", "domain": f"{prefix}{i}.example"}),
        )
        for i in range(n)
    ]


async def _stats(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        return dict((await client.get(f"{url}/stats")).json())


async def _budget_cli(settings: Settings, *args: str) -> dict[str, Any]:
    """``streamproc budget ARGS --json`` as a child process (not blocking the event loop that
    serves the mock provider); its JSON."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamproc", "budget", *args, "--json",
        env=settings_env(settings), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return dict(orjson.loads(out))


async def _status(port: int) -> dict[str, Any] | None:
    try:
        async with httpx.AsyncClient() as client:
            return dict((await client.get(f"http://127.0.0.1:{port}/status")).json())
    except httpx.HTTPError:
        return None


async def _keys(settings: Settings, topic: str) -> Counter[str]:
    return Counter((r.key or b"").decode() for r in await read_all(settings, topic))


async def test_a_limit_lowered_mid_run_stops_every_instance_at_it(
    topics: Settings, tmp_path: Path
) -> None:
    """Two instances, 1 credit a lead, leases of 10 leads, limit 1,000; after a first batch
    of 15 (so the open leases hold at least 5 unused credits) `budget set-limit` to what was
    charged plus 3,
    then a second batch: the provider charges no more than the new limit in all, the
    group's books equal what it charged, and every lead lands once (enriched or
    budget_exhausted)."""
    first, second = 15, 40
    async with serve_mock_provider(
        MockProviderConfig(port=0, latency_ms=50, credits_per_call=1, seed=3)
    ) as url:
        settings = configure(
            topics,
            provider_url=f"{url}/enrich",
            budget_daily_credits=1_000,
            credits_per_lead=1,
            budget_claim_leads=10,
            # Leases stay open until full: what they still hold when the limit comes is
            # spent only if the new limit does not retire them.
            budget_claim_max_age_s=600,
            breaker_failure_threshold=1000,
        )
        await produce(settings, _leads("A", first))
        ports = [_free_port(), _free_port()]
        procs = [
            ProcessorProcess(settings, tmp_path, f"p{n}", http_port=port)
            for n, port in enumerate(ports)
        ]
        try:
            for p in procs:
                p.start()

            async def first_done() -> bool:
                return int((await _stats(url))["calls"]) >= first

            await until(first_done, 120)
            limit = first + 3
            after = await _budget_cli(
                settings, "set-limit", str(limit), "--reason", "test", "--by", "ci"
            )
            assert after["limit"] == limit and after["control"]["by"] == "ci"

            async def every_instance_obeys() -> bool:
                statuses = [await _status(port) for port in ports]
                return all(s is not None and s["budget"]["limit"] == limit for s in statuses)

            await until(every_instance_obeys, 60)
            await produce(settings, _leads("B", second))

            async def all_landed() -> bool:
                landed = await _keys(settings, settings.topic_enriched)
                landed.update(await _keys(settings, settings.topic_dlq))
                return len(landed) >= first + second

            await until(all_landed, 120)
            for p in procs:
                assert await asyncio.to_thread(p.terminate) == 0, p.log_tail()
        finally:
            for p in procs:
                p.stop()
        stats = await _stats(url)
        books = await _budget_cli(settings, "show")
    enriched = await _keys(settings, settings.topic_enriched)
    dlq = await _keys(settings, settings.topic_dlq)
    print(f"limit {limit}: charged {stats['credits']} in {stats['calls']} calls; {books}")
    assert stats["credits"] <= limit
    assert books["spent"] == stats["credits"] and books["reserved"] == 0
    assert sum(enriched.values()) == stats["calls"]
    assert len(enriched) + len(dlq) == first + second
    assert set((enriched + dlq).values()) == {1}


async def test_a_pause_holds_every_lead_through_a_restart_and_resume_enriches_each_once(
    topics: Settings, tmp_path: Path
) -> None:
    """`budget pause` after a first batch: a second batch is held, no provider call while
    paused, nothing in the DLQ (held past hold_max_age_s), and an instance restarted during
    the pause stays paused; `budget resume`: every lead is enriched exactly once, one call
    each."""
    first, second = 5, 30
    port = _free_port()
    async with serve_mock_provider(
        MockProviderConfig(port=0, latency_ms=50, credits_per_call=1, seed=4)
    ) as url:
        settings = configure(
            topics,
            provider_url=f"{url}/enrich",
            budget_daily_credits=1_000,
            credits_per_lead=1,
            hold_max_age_s=1,
            breaker_failure_threshold=1000,
        )
        await produce(settings, _leads("P", first))
        proc = ProcessorProcess(settings, tmp_path, "p", http_port=port)
        try:
            proc.start()

            async def first_done() -> bool:
                return int((await _stats(url))["calls"]) >= first

            await until(first_done, 120)
            paused = await _budget_cli(settings, "pause", "--reason", "test", "--by", "ci")
            assert paused["paused"] and paused["control"]["action"] == "pause"

            async def paused_seen() -> bool:
                status = await _status(port)
                return status is not None and status["budget"]["paused"]

            await until(paused_seen, 60)
            await produce(settings, _leads("Q", second))

            async def holding() -> bool:
                status = await _status(port)
                return status is not None and status["budget"]["paused"] and status["holding"] > 0

            await until(holding, 60)
            assert await asyncio.to_thread(proc.terminate) == 0, proc.log_tail()
            proc.start()
            await until(holding, 60)
            assert int((await _stats(url))["calls"]) == first
            assert await read_all(settings, settings.topic_dlq) == []
            resumed = await _budget_cli(settings, "resume", "--reason", "done", "--by", "ci")
            assert not resumed["paused"]

            async def all_enriched() -> bool:
                return len(await _keys(settings, settings.topic_enriched)) >= first + second

            await until(all_enriched, 120)
            assert await asyncio.to_thread(proc.terminate) == 0, proc.log_tail()
        finally:
            proc.stop()
        stats = await _stats(url)
    enriched = await _keys(settings, settings.topic_enriched)
    assert len(enriched) == first + second and set(enriched.values()) == {1}
    assert stats["calls"] == first + second
    assert await read_all(settings, settings.topic_dlq) == []

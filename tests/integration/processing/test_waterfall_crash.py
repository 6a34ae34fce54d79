"""A SIGKILL mid-waterfall pays no provider twice: the step journal in the state topic
(processing/waterfall.py) gives the lead run again the answers its first run paid for.
Scaled down to 150 leads and a 2 s second provider to keep CI time short."""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from streamproc.settings import Settings
from streamproc.simulators.apis import ApiSimConfig, serve_api
from tests.integration.conftest import ROOT, configure
from tests.integration.kafka_io import produce, read_all
from tests.integration.procs import ProcessorProcess, wait_for_no_members

EXAMPLE = ROOT / "examples" / "waterfall" / "email_waterfall.toml"
LEADS = 150
#: The second provider's latency: calls to it are in flight at the kill, each behind a
#: paid answer of the first. A first call charged this close to the kill may itself have
#: been in flight then, and may be billed again.
PEOPLE_LATENCY_MS = 2_000
IN_FLIGHT_WINDOW_S = 0.5


async def _stats(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    stats: dict[str, Any] = (await client.get(f"{url}/stats")).json()
    return stats


@pytest.mark.slow
async def test_a_sigkill_mid_waterfall_pays_no_provider_twice(
    topics: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every lead needs both providers (an e-mail from the finder, a title from the person
    API); the processor is SIGKILLed while person calls are in flight behind paid finder
    answers, then restarted: each lead is published once, the finder bills no lead twice
    but one whose call was in flight at the kill, the restart took journaled answers, and
    the person API bills twice only calls in flight at the kill."""
    async with (
        serve_api(ApiSimConfig("email-finder", latency_ms=1)) as finder_url,
        serve_api(ApiSimConfig("person-match", latency_ms=PEOPLE_LATENCY_MS)) as people_url,
        httpx.AsyncClient() as client,
    ):
        monkeypatch.setenv("EMAIL_API_URL", finder_url)
        monkeypatch.setenv("EMAIL_API_KEY", "test-key")
        monkeypatch.setenv("PERSON_API_URL", people_url)
        monkeypatch.setenv("PERSON_API_KEY", "test-key")
        table: dict[str, Any] = tomllib.loads(EXAMPLE.read_text())["streamproc"]
        table["waterfall"] = {
            **table["waterfall"],
            "stop_when": ["email", "title"],
            "max_credits_per_lead": 2,
            "routes": [],
            "adaptive": {"mode": "off"},
        }
        settings = configure(
            topics,
            **table,
            budget_daily_credits=10**9,
            cache_key="off",
            max_in_flight=50,
            max_in_flight_per_partition=50,
        )
        records: list[tuple[bytes | None, bytes | None]] = [
            (
                f"l{i}".encode(),
                orjson.dumps(
                    {
                        "lead_id": f"l{i}",
                        "email": f"pat{i}@co{i}.example",
                        "domain": f"co{i}.example",
                        "first_name": "Pat",
                    }
                ),
            )
            for i in range(LEADS)
        ]
        await produce(settings, records)
        proc = ProcessorProcess(settings, tmp_path, "waterfall")
        try:
            proc.start()
            # Killed half-way through a wave of person calls: their finder answers were
            # paid well before the kill (outside IN_FLIGHT_WINDOW_S), so only the journal
            # keeps the finder from billing them again.
            deadline = time.monotonic() + 120
            answered_at: float | None = None
            while True:
                people = await _stats(client, people_url)
                in_flight = people["requests"] - people["leads"]
                if answered_at is None and people["leads"] >= 20:
                    answered_at = time.monotonic()
                halfway = answered_at is not None and (
                    time.monotonic() >= answered_at + PEOPLE_LATENCY_MS / 2_000
                )
                if halfway and in_flight >= 10:
                    break
                assert proc.alive(), proc.log_tail()
                assert time.monotonic() < deadline, proc.log_tail()
                await asyncio.sleep(0.05)
            proc.kill()
            killed_at = time.monotonic()
            await wait_for_no_members(settings)
            proc.start("--stop-when-idle-s", "3")
            code = await asyncio.to_thread(proc.wait, 300)
            assert code == 0, proc.log_tail()
        finally:
            proc.stop()
        finder, people = await _stats(client, finder_url), await _stats(client, people_url)

    enriched = await read_all(settings, settings.topic_enriched)
    assert await read_all(settings, settings.topic_dlq) == []
    landed = Counter((r.key or b"").decode() for r in enriched)
    assert set(landed) == {f"l{i}" for i in range(LEADS)} and max(landed.values()) == 1
    for read in enriched:
        lead = orjson.loads(read.value or b"")
        assert lead["enrichment"]["email"] and lead["enrichment"]["title"], lead
    replayed = proc.log_path.read_text(errors="replace").count("waterfall.step_replayed")
    print(
        f"waterfall crash: finder twice={finder['twice_first_at']} people twice="
        f"{len(people['twice_first_at'])} replayed={replayed} killed_at={killed_at}"
    )
    for who, first_at in finder["twice_first_at"].items():
        assert first_at >= killed_at - IN_FLIGHT_WINDOW_S, f"the finder billed {who} twice"
    for who, first_at in people["twice_first_at"].items():
        assert first_at >= killed_at - IN_FLIGHT_WINDOW_S, f"the person API billed {who} twice"
    assert replayed > 0, "no lead was run again mid-waterfall: the test tested nothing"

"""`topics describe`, `group describe` and `group reset-offsets` against the real broker."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import orjson

from streamproc.app import App
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.in_process import run_main
from tests.integration.kafka_io import produce
from tests.integration.procs import settings_env


async def _cli(settings: Settings, *argv: str) -> subprocess.CompletedProcess[str]:
    """The command in this process (no child's start-up per command), as from a shell."""
    return await run_main(settings_env(settings), argv)


async def _json(settings: Settings, *argv: str) -> Any:
    done = await _cli(settings, *argv, "--json")
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)


def _leads(n: int) -> list[tuple[bytes, bytes]]:
    return [
        (f"g-{i}".encode(), orjson.dumps({"lead_id": f"g-{i}", "domain": "g.test"}))
        for i in range(n)
    ]


async def test_topics_describe(topics: Settings) -> None:
    """The five topics with partitions, replication and the state topic's compaction; a
    missing topic is named and the exit code says so."""
    described = {t["name"]: t for t in await _json(topics, "topics", "describe")}
    assert set(described) == {
        topics.topic_raw, topics.topic_enriched, topics.topic_dlq, topics.topic_parked,
        topics.topic_state,
    }  # fmt: skip
    assert all(t["exists"] and t["partitions"] == 3 for t in described.values())
    assert described[topics.topic_state]["configs"]["cleanup.policy"] == "compact"
    assert described[topics.topic_raw]["configs"]["cleanup.policy"] == "delete"

    missing = configure(topics, topic_parked=topics.topic_parked + ".absent")
    done = await _cli(missing, "topics", "describe")
    assert done.returncode == 1
    assert "MISSING" in done.stdout and "streamproc topics create" in done.stdout


async def test_lag_then_a_backfill_by_moving_the_groups_offsets(topics: Settings) -> None:
    """After a run the group's lag is 0 on every partition; a reset to earliest is a dry
    run first (nothing moves), then --execute moves it, refused while a member runs, and a
    second run enriches every lead again (the backfill)."""
    await produce(topics, _leads(12))
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=5)) as url:
        settings = configure(topics, provider_url=f"{url}/enrich", cache_ttl_s=0)
        await asyncio.wait_for(App(settings).run(stop_when_idle_s=2.0), timeout=90)

        group = await _json(settings, "group", "describe")
        assert group["state"] in ("Empty", "Dead") and group["members"] == []
        assert group["lag"] == 0
        assert sum(p["committed"] for p in group["partitions"]) == 12

        plan = await _json(settings, "group", "reset-offsets", "--to-earliest")
        assert plan["executed"] is False
        assert {m["target"] for m in plan["moves"]} == {0}
        assert (
            sum(p["committed"] for p in (await _json(settings, "group", "describe"))["partitions"])
            == 12
        )

        # A member is running: the move is refused in one line, nothing moves.
        app = App(settings)
        running = asyncio.ensure_future(app.run())
        try:
            async with asyncio.timeout(60):
                while not app.processor.assigned.is_set():
                    await asyncio.sleep(0.1)
            refused = await _cli(settings, "group", "reset-offsets", "--to-earliest", "--execute")
            assert refused.returncode == 2, refused.stderr
            assert "active member" in refused.stderr
            assert len(refused.stderr.strip().splitlines()) == 1
        finally:
            app.request_stop()
            await asyncio.wait_for(running, timeout=60)

        moved = await _json(settings, "group", "reset-offsets", "--to-earliest", "--execute")
        assert moved["executed"] is True
        after = await _json(settings, "group", "describe")
        assert after["lag"] == 12 and {p["committed"] for p in after["partitions"]} == {0}

        one = await _json(
            settings, "group", "reset-offsets", "--to-offset", "2", "--partition", "0"
        )
        assert [m["partition"] for m in one["moves"]] == [0]

"""Where a new group starts on a topic with history, on the real broker (start_offset)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from structlog.testing import capture_logs

from streamproc.app import App
from streamproc.kafka.config import KafkaConnection, TopicsConfig
from streamproc.kafka.groups import group_position
from streamproc.kafka.topics import create_topics
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure, delete_topics
from tests.integration.kafka_io import produce, read_all


def _leads(prefix: str, n: int) -> list[tuple[bytes, bytes]]:
    return [
        (f"{prefix}-{i}".encode(), orjson.dumps({"lead_id": f"{prefix}-{i}", "domain": "a.test"}))
        for i in range(n)
    ]


async def _enriched_ids(settings: Settings) -> list[str]:
    return [
        orjson.loads(r.value or b"")["lead_id"]
        for r in await read_all(settings, settings.topic_enriched)
    ]


async def _calls(url: str) -> int:
    async with httpx.AsyncClient() as client:
        stats: dict[str, Any] = (await client.get(f"{url}/stats")).json()
    return int(stats["calls"])


async def _run_until(app: App, done: Any, timeout_s: float = 60) -> None:
    """Run ``app`` until ``done()`` is true, then stop it gracefully."""
    task = asyncio.ensure_future(app.run())
    try:
        async with asyncio.timeout(timeout_s):
            while not await done():
                assert not task.done(), "the processor stopped on its own"
                await asyncio.sleep(0.2)
    finally:
        app.request_stop()
        await asyncio.wait_for(task, timeout=60)


async def test_latest_skips_history_and_keeps_its_place_across_a_restart(
    topics: Settings,
) -> None:
    """With `latest`, a new group enriches none of the topic's history (no provider call for
    it), says so at start-up, and a lead written while it is stopped is not skipped."""
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=5)) as url:
        settings = configure(
            topics, start_offset="latest", provider_url=f"{url}/enrich", cache_ttl_s=0
        )
        await produce(settings, _leads("history", 30))
        app = App(settings)
        with capture_logs() as logs:

            async def joined() -> bool:
                return app.processor.assigned.is_set()

            await _run_until(app, joined)
        plan = [line for line in logs if line["event"] == "run.plan"]
        assert plan and plan[0]["position"] == "new group: starts at latest (start_offset)"
        assert plan[0]["budget_leads"] == plan[0]["budget_remaining"] // settings.credits_per_lead
        # Written while no process runs: the start position was committed, not decided again.
        await produce(settings, _leads("later", 5))

        app = App(settings)

        async def five() -> bool:
            return len(await _enriched_ids(settings)) >= 5

        await _run_until(app, five)
        ids = await _enriched_ids(settings)
        calls = await _calls(url)
    assert sorted(ids) == sorted(f"later-{i}" for i in range(5))
    assert calls == 5, "the history was sent to the provider"


async def test_earliest_and_a_time(kafka_bootstrap: str, topics: Settings) -> None:
    """`earliest` reads the whole history; a time reads from the first lead written at or
    after it; the group's position says how far behind it is."""
    await produce(topics, _leads("old", 4))
    await asyncio.sleep(1.0)  # record timestamps are in milliseconds: leave a clear gap
    cut = datetime.now(UTC).isoformat()
    await asyncio.sleep(1.0)
    await produce(topics, _leads("new", 3))
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=5)) as url:
        from_time = configure(topics, start_offset=cut, provider_url=f"{url}/enrich", cache_ttl_s=0)
        await asyncio.wait_for(App(from_time).run(stop_when_idle_s=2.0), timeout=90)
        assert sorted(await _enriched_ids(from_time)) == sorted(f"new-{i}" for i in range(3))

        # The same topic, another group and output topics: earliest sees all seven.
        other = configure(
            topics,
            group_id=topics.group_id + "-earliest",
            topic_enriched=topics.topic_enriched + ".e",
            start_offset="earliest",
            provider_url=f"{url}/enrich",
            cache_ttl_s=0,
        )
        await create_topics(TopicsConfig.from_settings(other))
        try:
            before = await group_position(
                KafkaConnection.from_settings(other), other.group_id, other.topic_raw
            )
            assert before.is_new and before.lag == 0
            await asyncio.wait_for(App(other).run(stop_when_idle_s=2.0), timeout=90)
            assert len(await _enriched_ids(other)) == 7
            after = await group_position(
                KafkaConnection.from_settings(other), other.group_id, other.topic_raw
            )
            assert not after.is_new and after.lag == 0
            assert sum(p.committed or 0 for p in after.partitions) == 7
        finally:
            await delete_topics(other)


async def test_replication_factor_minus_one_is_the_brokers(topics: Settings) -> None:
    """`topic_replication_factor = -1` creates the topics with the broker's default."""
    settings = configure(
        topics,
        topic_raw=topics.topic_raw + ".rf",
        topic_enriched=topics.topic_enriched + ".rf",
        topic_dlq=topics.topic_dlq + ".rf",
        topic_parked=topics.topic_parked + ".rf",
        topic_state=topics.topic_state + ".rf",
        topic_replication_factor=-1,
    )
    try:
        reports = await create_topics(TopicsConfig.from_settings(settings))
        assert [r.created for r in reports] == [True] * 5
        position = await group_position(
            KafkaConnection.from_settings(settings), settings.group_id, settings.topic_raw
        )
        assert len(position.partitions) == settings.topic_partitions
    finally:
        await delete_topics(settings)

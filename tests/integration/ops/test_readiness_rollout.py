"""/readyz in a real group: a standby without partitions and an open breaker stay ready.

The case of a rollout: more replicas than partitions, and the provider down while it
runs. Before, the standby never became ready and an open breaker would (after a while)
take every replica out of the Service at once.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson

from streamproc.app import App
from streamproc.kafka.config import TopicsConfig
from streamproc.kafka.topics import create_topics
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure, wait_for_topics
from tests.integration.kafka_io import produce


async def _readyz(client: httpx.AsyncClient, app: App) -> httpx.Response:
    return await client.get(f"{app.ops.url}/readyz")


async def test_a_standby_and_an_open_breaker_stay_ready(topics: Settings) -> None:
    """One partition, two processes, the provider down: the breaker opens, one process owns
    the partition, the other owns none, and both answer /readyz 200 while /status shows
    the breaker open; a stop request makes /readyz 503 "shutting down" at once."""
    records = [
        (f"R{i}".encode(), orjson.dumps({"lead_id": f"R{i}", "domain": f"r{i}.example"}))
        for i in range(20)
    ]
    async with (
        serve_mock_provider(MockProviderConfig(port=0, latency_ms=5)) as url,
        httpx.AsyncClient() as client,
    ):
        await client.post(f"{url}/admin/outage", json={"on": True})
        settings = configure(
            topics,
            topic_raw=f"{topics.topic_raw}.one",
            topic_partitions=1,
            provider_url=f"{url}/enrich",
            budget_daily_credits=10**9,
            breaker_failure_threshold=3,
            breaker_cooldown_s=900,
            on_breaker_open="hold",
            provider_max_retries=0,
        )
        await create_topics(
            TopicsConfig.from_settings(settings)
        )  # the new one-partition input; the others exist
        await wait_for_topics(settings)
        await produce(settings, records)
        apps = [App(settings), App(settings)]
        runs = [asyncio.ensure_future(app.run()) for app in apps]
        try:
            deadline = time.monotonic() + 60
            while True:
                owners = [app.processor.assigned.is_set() for app in apps]
                states = [app.guard.status().breaker.state for app in apps]
                ready = [app.readiness()[0] for app in apps]
                if sorted(owners) == [False, True] and "open" in states and all(ready):
                    break
                assert time.monotonic() < deadline, (owners, states, ready)
                await asyncio.sleep(0.1)
            answers = [await _readyz(client, app) for app in apps]
            status = [(await client.get(f"{app.ops.url}/status")).json() for app in apps]
            standby = apps[owners.index(False)]
            standby.request_stop()
            stopping = await _readyz(client, standby)
        finally:
            for app in apps:
                app.request_stop()
            await asyncio.wait_for(asyncio.gather(*runs), timeout=60)

    assert [a.status_code for a in answers] == [200, 200]
    assert [a.json() for a in answers] == [{"ready": True}, {"ready": True}]
    owner_status = status[owners.index(True)]
    assert owner_status["breaker"]["state"] == "open"
    assert stopping.status_code == 503
    assert stopping.json()["reasons"] == ["shutting down"]

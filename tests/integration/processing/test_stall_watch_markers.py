"""The stall watch on the real broker: a transaction's commit marker is not a lead behind."""

from __future__ import annotations

import asyncio

import orjson
from aiokafka import AIOKafkaProducer

from streamproc.app import App
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure


async def test_leads_written_in_a_transaction_leave_no_partition_stalled(
    topics: Settings,
) -> None:
    """Leads written by a transactional producer (a replay, an exactly-once upstream) end
    with a commit marker past the last lead: once they are processed the process stays
    ready, and no partition is reported stalled however long it idles."""
    producer = AIOKafkaProducer(
        bootstrap_servers=topics.bootstrap_servers, transactional_id=f"{topics.group_id}-up"
    )
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(9):
                lead = {"lead_id": f"tx-{i}", "domain": f"tx{i}.example"}
                await producer.send(topics.topic_raw, orjson.dumps(lead), key=f"tx-{i}".encode())
    finally:
        await producer.stop()
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=5)) as url:
        settings = configure(topics, provider_url=f"{url}/enrich", stall_after_s=0.5)
        app = App(settings)
        running = asyncio.ensure_future(app.run())
        try:
            async with asyncio.timeout(60):
                while app.processor.stats.committed < 9:
                    assert not running.done()
                    await asyncio.sleep(0.1)
            # Several looks of the watch (every stall_after_s / 3) while idle.
            for _ in range(30):
                await asyncio.sleep(0.1)
                assert app.readiness() == (True, [])
            assert app.processor.stats.stalls == 0
        finally:
            app.request_stop()
            await asyncio.wait_for(running, timeout=60)

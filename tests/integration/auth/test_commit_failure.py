"""A persistent commit failure on a real broker: the Write ACL on the enriched topic taken
from the processor's user while it runs.

Every commit of the partitions with finished leads then fails (the broker refuses the
transaction's writes), round after round, until the ACL is granted again. The provider is
a real HTTP server counting its calls: a failing commit must cost no call (the finished
leads are kept, not bought again), its retries must back off, and once the ACL is back
every lead is published once with no call more.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from streamproc.app import App
from streamproc.kafka.acls import Operation, ResourceType, processor_acls
from streamproc.kafka.config import TopicsConfig
from streamproc.logs import configure_logging
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.auth.acl_admin import grant, revoke
from tests.integration.auth.broker import AuthBroker
from tests.integration.auth.test_least_privilege import as_user, lead
from tests.integration.kafka_io import produce, read_all
from tests.integration.security.broker import requires_java

pytestmark = requires_java

FIRST, SECOND = 10, 30


async def until(what: str, condition: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_revoked_write_acl_costs_no_provider_call_and_backs_off(
    auth_topics: Settings, auth_broker: AuthBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    """Write on leads.enriched revoked mid-run: commits fail again and again with growing
    waits while the provider's call count stays flat; granted again, every lead is
    published once, and the provider was called once per lead in all."""
    every = processor_acls(TopicsConfig.from_settings(auth_topics), auth_topics.group_id)
    write = [
        a
        for a in every
        if (a.resource, a.name, a.operation)
        == (ResourceType.TOPIC, auth_topics.topic_enriched, Operation.WRITE)
    ]
    await grant(auth_broker.plaintext, "User:proc", every)
    configure_logging("INFO", "json")
    async with (
        serve_mock_provider(MockProviderConfig(port=0, latency_ms=1, seed=7)) as url,
        httpx.AsyncClient() as http,
    ):

        async def calls() -> int:
            stats: dict[str, Any] = (await http.get(f"{url}/stats")).json()
            return int(stats["calls"])

        settings = as_user(
            auth_topics,
            auth_broker,
            "proc",
            provider_url=f"{url}/enrich",
            provider_batch_size=1,
            cache_ttl_s=0,
            commit_interval_ms=100,
            lane_retry_initial_s=0.5,
            lane_retry_max_s=2.0,
        )
        app = App(settings)
        running = asyncio.ensure_future(app.run())
        try:
            stats = app.processor.stats
            await produce(auth_topics, [lead(f"a-{i}", f"a{i}.example") for i in range(FIRST)])
            await until("the first leads", lambda: stats.enriched == FIRST, 90)

            await revoke(auth_broker.plaintext, "User:proc", write)
            await produce(auth_topics, [lead(f"b-{i}", f"b{i}.example") for i in range(SECOND)])
            await until("a failed commit", lambda: stats.commit_failures >= 1)
            await until("the second leads consumed", lambda: stats.consumed == FIRST + SECOND)
            # Failures go on; from the second on, every lead was paid for once already.
            failed = stats.commit_failures
            await until("two more failures", lambda: stats.commit_failures >= failed + 2)
            paid = await calls()
            await until("three more failures", lambda: stats.commit_failures >= failed + 5)
            assert await calls() == paid == FIRST + SECOND
            assert stats.consumed == FIRST + SECOND and stats.enriched == FIRST
            lanes = app.status()["lanes"]
            failing = [lane for lane in lanes if lane["failures"] > 0]
            assert failing and all(lane["paused"] for lane in failing), lanes
            metrics = app.metrics.render().decode()
            assert "streamproc_lane_failures{partition=" in metrics
            assert "streamproc_lane_retry_seconds{partition=" in metrics

            await grant(auth_broker.plaintext, "User:proc", write)
            await until("every lead", lambda: stats.enriched == FIRST + SECOND, 60)
            assert await calls() == FIRST + SECOND
            assert all(lane["failures"] == 0 for lane in app.status()["lanes"])
        finally:
            app.request_stop()
            await asyncio.wait_for(running, timeout=60)
    err = capsys.readouterr().err
    configure_logging("INFO", "json")
    enriched = Counter(r.key for r in await read_all(auth_topics, auth_topics.topic_enriched))
    expected = [f"a-{i}" for i in range(FIRST)] + [f"b-{i}" for i in range(SECOND)]
    assert enriched == Counter(k.encode() for k in expected)
    failures: dict[int, list[dict[str, Any]]] = {}
    for line in err.splitlines():
        if '"lane.commit_failed"' in line:
            event = orjson.loads(line)
            failures.setdefault(event["partition"], []).append(event)
    assert failures, err[-3000:]
    for events in failures.values():
        assert [e["attempt"] for e in events] == list(range(1, len(events) + 1))
        waits = [e["retry_in_s"] for e in events]
        assert waits == [min(0.5 * 2**i, 2.0) for i in range(len(waits))], waits
    assert sum(len(events) for events in failures.values()) >= 6

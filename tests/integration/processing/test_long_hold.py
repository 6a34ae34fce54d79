"""A breaker hold longer than max_poll_interval_ms: the consumers keep polling with their
held partitions paused, so no member leaves the group, and nothing is published twice."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import orjson

from streamproc.app import App
from streamproc.resilience.breaker import BreakerState
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce, read_all

LEADS = 300
MAX_POLL_INTERVAL_MS = 4_000
#: Five poll intervals: a consumer that stopped polling leaves (the group noticed it
#: after 14 s in a run of the code before the fix), and is seen to.
HOLD_S = 5 * MAX_POLL_INTERVAL_MS / 1000


async def test_two_instances_stay_in_the_group_through_a_long_hold(topics: Settings) -> None:
    """Two instances, the provider down for five max-poll intervals with the breaker
    holding every lead and both windows full: no partition is revoked during the hold, and
    when the provider returns every lead is enriched exactly once."""
    records = [
        (f"H{i}".encode(), orjson.dumps({"lead_id": f"H{i}", "domain": f"h{i}.example"}))
        for i in range(LEADS)
    ]
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=5)) as url:
        settings = configure(
            topics,
            provider_url=f"{url}/enrich",
            budget_daily_credits=10**9,
            breaker_failure_threshold=3,
            breaker_cooldown_s=2.0,
            breaker_half_open_probes=1,
            on_breaker_open="hold",
            provider_max_retries=0,
            max_in_flight=8,
            max_in_flight_per_partition=4,
            max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
            revoke_grace_s=2.0,
        )
        apps = [App(settings), App(settings)]
        runs = [asyncio.ensure_future(app.run()) for app in apps]
        async with httpx.AsyncClient() as client:
            await client.post(f"{url}/admin/outage", json={"on": True})
            await produce(settings, records)
            # Both members hold partitions and the breaker has opened.
            deadline = time.monotonic() + 60
            while not (
                all(app.processor.assigned.is_set() for app in apps)
                and any(
                    app.guard.breaker.state(time.time()) is not BreakerState.CLOSED for app in apps
                )
            ):
                assert time.monotonic() < deadline, "the breaker never opened on two members"
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # the rebalance of the second member's join settles
            revoked_before = [app.processor.stats.revoked for app in apps]
            held_at_start = sum(app.processor.stats.in_flight for app in apps)
            await asyncio.sleep(HOLD_S)
            revoked_after = [app.processor.stats.revoked for app in apps]
            await client.post(f"{url}/admin/outage", json={"on": False})
            deadline = time.monotonic() + 90
            while sum(app.processor.stats.committed for app in apps) < LEADS:
                assert time.monotonic() < deadline, "the leads did not drain after the hold"
                await asyncio.sleep(0.2)
        for app in apps:
            app.request_stop()
        await asyncio.wait_for(asyncio.gather(*runs), timeout=60)

    print(
        f"hold: {HOLD_S}s, held at start {held_at_start}, revoked before/after "
        f"{revoked_before}/{revoked_after}"
    )
    assert held_at_start > 0, "no lead was held: the test did not test a hold"
    assert revoked_after == revoked_before, "a member lost its partitions during the hold"
    enriched = await read_all(settings, settings.topic_enriched)
    dlq = await read_all(settings, settings.topic_dlq)
    # The calls that opened the breaker failed before there was anything to hold.
    assert {r.headers["streamproc.error.class"] for r in dlq} <= {b"provider_error"}
    counts = Counter((r.key or b"").decode() for r in enriched + dlq)
    assert sorted(counts) == sorted(f"H{i}" for i in range(LEADS))
    assert max(counts.values()) == 1, "a lead was published twice"

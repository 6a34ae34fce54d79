"""Two instances of the group receive the same callbacks at the same moment: each lead is
published once, because finishing is fenced per state partition across the group."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
import orjson

from streamproc.app import App
from streamproc.clay.callback import sign
from streamproc.settings import Settings
from streamproc.simulators.clay import ClaySimulatorConfig, serve_clay_simulator
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce, read_all

LEADS = 150
HEADER = "X-Streamproc-Signature"


async def test_duplicate_callbacks_on_two_instances_publish_each_lead_once(
    topics: Settings,
) -> None:
    """Every callback is POSTed to both instances at once: per lead, one answer is
    'published' and the other 'duplicate', and leads.enriched holds each lead once."""
    secret = uuid.uuid4().hex
    # The simulator never calls back: the test sends the callbacks itself.
    sim_config = ClaySimulatorConfig(
        callback_url="http://127.0.0.1:9/unused", port=0, missing_rate=1.0, seed=1
    )
    records = [
        (f"L{i}".encode(), orjson.dumps({"lead_id": f"L{i}", "domain": f"d{i}.example"}))
        for i in range(LEADS)
    ]
    # 300 callbacks at once through one client: httpx's 5 s pool timeout ran out on a
    # loaded machine (PoolTimeout) while the instances fenced each other.
    async with serve_clay_simulator(sim_config) as sim, httpx.AsyncClient(timeout=60) as client:
        settings = configure(
            topics,
            provider_mode="clay",
            clay_webhook_urls=sim.webhook("w"),
            clay_callback_secret=secret,
            clay_callback_auth="hmac",
            clay_callback_auth_header=HEADER,
            clay_deadline_s=120,
            clay_rate_per_s=500,
            budget_daily_credits=10**7,
            commit_interval_ms=100,
        )
        await produce(settings, records)
        apps = [App(settings), App(settings)]
        runs = [asyncio.ensure_future(app.run()) for app in apps]
        try:
            async with asyncio.timeout(60):
                while not all(a.clay is not None and len(a.clay.registry) == LEADS for a in apps):
                    assert not any(r.done() for r in runs), [r.exception() for r in runs]
                    await asyncio.sleep(0.2)
            urls = [f"{app.ops.url}{settings.clay_callback_path}" for app in apps]
            assert apps[0].clay is not None
            correlation = {p.lead_id: p.correlation_id for p in apps[0].clay.registry}

            async def both(lead_id: str) -> list[str]:
                body = orjson.dumps(
                    {
                        "lead_id": lead_id,
                        "correlation_id": correlation[lead_id],
                        "data": {"company": lead_id},
                    }
                )
                headers = {HEADER: sign(secret, body)}
                answers = await asyncio.gather(
                    *(client.post(url, content=body, headers=headers) for url in urls)
                )
                assert [a.status_code for a in answers] == [200, 200]
                return sorted(a.json()["status"] for a in answers)

            results = await asyncio.gather(*(both(f"L{i}") for i in range(LEADS)))
            fencings = [app.clay.finisher.stats()["fencings"] for app in apps if app.clay]
        finally:
            for app in apps:
                app.request_stop()
            await asyncio.gather(*runs, return_exceptions=True)

    assert results == [["duplicate", "published"]] * LEADS
    enriched = await read_all(settings, settings.topic_enriched)
    landed = Counter((r.key or b"").decode() for r in enriched)
    assert landed == Counter({f"L{i}": 1 for i in range(LEADS)})
    # Both instances finished leads of the same partitions, so the id changed hands.
    assert min(fencings) >= 1 and sum(fencings) > 2
    print(f"two instances: {LEADS} leads, each published once; fencings={fencings}")

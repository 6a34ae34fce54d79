"""A lead that fails every time is parked after exactly --max-attempts attempts."""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from streamproc.app import App
from streamproc.replay.config import ReplayConfig
from streamproc.replay.replayer import Replayer, ReplayOptions
from streamproc.settings import Settings
from streamproc.simulators.provider import MockProviderConfig, serve_mock_provider
from tests.integration.conftest import configure
from tests.integration.kafka_io import produce, read_all
from tests.integration.replay.dlq_io import lead


async def test_always_failing_lead_is_parked_after_max_attempts_never_looping(
    topics: Settings,
) -> None:
    """The processor and a --follow replayer run together; a *.fail.test lead goes
    raw → DLQ → raw ... and lands in leads.parked after exactly 3 provider calls, then
    nothing moves any more."""
    async with serve_mock_provider(MockProviderConfig(port=0, latency_ms=2, seed=9)) as url:
        settings = configure(
            topics,
            provider_url=f"{url}/enrich",
            provider_max_retries=0,
            commit_interval_ms=100,
            breaker_failure_threshold=1000,  # the breaker is not what this test is about
        )
        await produce(settings, [(b"doomed", lead("doomed", "doomed.fail.test"))])
        app = App(settings)
        replayer = Replayer(
            ReplayConfig.from_settings(settings), ReplayOptions(follow=True, max_attempts=3)
        )
        tasks = [asyncio.ensure_future(app.run()), asyncio.ensure_future(replayer.run())]
        try:
            async with asyncio.timeout(60):
                while not await read_all(settings, settings.topic_parked):
                    assert not any(t.done() for t in tasks), [t.exception() for t in tasks]
                    await asyncio.sleep(0.3)
            await asyncio.sleep(2.0)  # long enough for a loop to show
        finally:
            app.request_stop()
            replayer.request_stop()
            for task in tasks:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 30)
        async with httpx.AsyncClient() as client:
            calls = (await client.get(f"{url}/stats")).json()["calls"]

    parked = await read_all(settings, settings.topic_parked)
    dlq = await read_all(settings, settings.topic_dlq)
    raw = await read_all(settings, settings.topic_raw)
    assert len(parked) == 1
    assert parked[0].headers["streamproc.attempt"] == b"3"
    assert parked[0].headers["streamproc.parked.reason"] == (
        b"out of attempts (3 of max 3, last provider_error)"
    )
    assert [r.headers["streamproc.attempt"] for r in sorted(dlq, key=lambda r: r.offset)] == [
        b"1",
        b"2",
        b"3",
    ]
    assert len(raw) == 3  # the original and two replays
    assert await read_all(settings, settings.topic_enriched) == []
    assert calls == 3
    assert replayer.report.total("replay") == 2
    assert replayer.report.total("park") == 1

"""Clay's rate is shared by the group: each member is told its share on every rebalance."""

from __future__ import annotations

import asyncio
import contextlib

from streamproc.processing.config import HandlerConfig, ProcessorConfig
from streamproc.processing.handler import LeadHandler
from streamproc.processing.pacing import Pacer
from streamproc.processing.processor import Processor
from streamproc.resilience.token_bucket import TokenBucket
from streamproc.settings import Settings
from tests.unit.processing.stub_guard import OpenGuard


class _NoProvider:
    async def enrich(self, *args: object, **kwargs: object) -> object:
        raise AssertionError("no lead is produced in this test")


async def test_two_members_pace_at_shares_that_add_up_to_the_tables_rate(
    topics: Settings,
) -> None:
    """One member alone paces at the full rate; when a second joins, the two paces (by
    their partitions, 3 in all) add up to the table's rate, neither at the full one."""
    settings = topics
    pacers = [Pacer(TokenBucket(30.0, 6)) for _ in range(2)]
    handler = LeadHandler(
        HandlerConfig.from_settings(settings),
        _NoProvider(),  # type: ignore[arg-type]
        OpenGuard(),
        processor_version="t",
    )
    members = [
        Processor(ProcessorConfig.from_settings(settings), handler, on_assignment=p.share)
        for p in pacers
    ]
    runs: list[asyncio.Task[None]] = []
    try:
        await members[0].start()
        runs.append(asyncio.ensure_future(members[0].run_until_stopped()))
        await asyncio.wait_for(members[0].assigned.wait(), 60)
        assert pacers[0].bucket.rate_per_s == 30.0
        await members[1].start()
        runs.append(asyncio.ensure_future(members[1].run_until_stopped()))

        async def shared() -> None:
            while not (
                pacers[1].fraction < 1.0
                and pacers[0].fraction < 1.0
                and pacers[0].bucket.rate_per_s + pacers[1].bucket.rate_per_s == 30.0
            ):
                await asyncio.sleep(0.1)

        await asyncio.wait_for(shared(), 60)
        assert sorted(p.bucket.rate_per_s for p in pacers) == [10.0, 20.0]
    finally:
        for member in members:
            member.request_stop()
        for run in runs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(run, 30)
        for member in members:
            await member.stop()

"""--rate's asyncio shell: waits for the bucket's slot, gives up at once when stopping."""

from __future__ import annotations

import asyncio

from streamproc.replay.rate import pace
from streamproc.resilience.token_bucket import TokenBucket


async def test_pace_returns_early_when_stopping() -> None:
    """pace() gives up its wait at once when the stop event is set."""
    bucket = TokenBucket(0.01, 1)  # one slot per 100 s
    stop = asyncio.Event()
    assert await pace(bucket, stop)  # the first slot is free
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, stop.set)
    started = loop.time()
    assert not await pace(bucket, stop)
    assert loop.time() - started < 5


async def test_pace_waits_for_the_slot_on_the_given_clock() -> None:
    """The wait is the bucket's, read on the clock passed in: 0.02 s after a free slot."""
    bucket = TokenBucket(50.0, 1)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    assert await pace(bucket, stop, clock=loop.time)
    started = loop.time()
    assert await pace(bucket, stop, clock=loop.time)
    assert loop.time() - started >= 0.015


async def test_pace_without_limiter_only_checks_stop() -> None:
    """No --rate: pace() never waits, and says False once stopping."""
    stop = asyncio.Event()
    assert await pace(None, stop)
    stop.set()
    assert not await pace(None, stop)

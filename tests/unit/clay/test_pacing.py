"""The async shell that paces Clay submissions, with an injected clock and sleep."""

from __future__ import annotations

import pytest

from streamproc.clay.pacing import Pacer
from streamproc.resilience.token_bucket import TokenBucket


async def test_pacer_waits_out_a_pause_set_while_it_slept() -> None:
    """A 429 seen by another caller during our wait holds us until its pause ends."""
    clock = [0.0]
    slept: list[float] = []
    bucket = TokenBucket(1.0, 1)
    bucket.take(0.0)  # the next slot is at t=1

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 1:
            pacer.pause(5.0)  # someone got a 429 with Retry-After: 5 while we slept
        clock[0] += seconds

    pacer = Pacer(bucket, clock=lambda: clock[0], sleep=sleep)
    await pacer.acquire()
    assert slept[0] == pytest.approx(1.0)
    assert clock[0] == pytest.approx(5.0)

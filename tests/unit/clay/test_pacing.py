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


def test_a_group_share_paces_at_a_fraction_of_the_tables_rate() -> None:
    """Reading 1 of 3 partitions, a process paces at a third of Clay's rate and burst."""
    pacer = Pacer(TokenBucket(30.0, 9), clock=lambda: 0.0)
    pacer.share(1, 3)
    assert (pacer.bucket.rate_per_s, pacer.bucket.burst) == (10.0, 3)
    pacer.share(3, 3)
    assert (pacer.bucket.rate_per_s, pacer.bucket.burst) == (30.0, 9)


def test_the_shares_of_a_group_add_up_to_the_tables_rate() -> None:
    """Six partitions over four members (2, 2, 1, 1): the four rates sum to the table's."""
    rates = []
    for assigned in (2, 2, 1, 1):
        pacer = Pacer(TokenBucket(12.0, 4), clock=lambda: 0.0)
        pacer.share(assigned, 6)
        rates.append(pacer.bucket.rate_per_s)
    assert sum(rates) == 12.0


def test_a_member_without_partitions_keeps_one_partitions_share() -> None:
    """No partition (for now): the share of one, for leads of a revoked one finishing."""
    pacer = Pacer(TokenBucket(12.0, 4), clock=lambda: 0.0)
    pacer.share(0, 6)
    assert pacer.bucket.rate_per_s == 2.0


def test_a_new_rate_spaces_the_next_slot_after_the_ones_reserved() -> None:
    """Five slots taken at 10/s, then 5/s: the next comes 0.2 s after the last one."""
    bucket = TokenBucket(10.0, 1)
    waits = [bucket.take(0.0) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    bucket.set_rate(5.0, 1, 0.0)
    assert bucket.take(0.0) == pytest.approx(0.6)

"""The async shell that paces calls to a rate-limited API, with an injected clock and sleep."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.processing.pacing import Pacer, provider_pacer
from streamproc.provider.config import ProviderConfig
from streamproc.resilience.rate_limit import Quota
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


async def test_a_quota_running_short_lowers_the_pace_until_its_reset() -> None:
    """10/s configured, 20 left for 10 s: 2/s, no burst, until the reset; then 10/s again."""
    clock = [0.0]
    pacer = Pacer(TokenBucket(10.0, 5), clock=lambda: clock[0])
    pacer.learn(Quota(20, 10.0))
    assert (pacer.bucket.rate_per_s, pacer.bucket.burst) == (2.0, 1)
    clock[0] = 10.0
    await pacer.acquire()
    assert (pacer.bucket.rate_per_s, pacer.bucket.burst) == (10.0, 5)


def test_a_quota_with_room_leaves_the_configured_pace() -> None:
    """1,000 left for 10 s allows 100/s: the configured 10/s stands."""
    pacer = Pacer(TokenBucket(10.0, 5), clock=lambda: 0.0)
    pacer.learn(Quota(1_000, 10.0))
    assert (pacer.bucket.rate_per_s, pacer.bucket.burst) == (10.0, 5)


def test_a_quota_used_up_pauses_every_call_until_its_reset() -> None:
    """Nothing left, reset in 7 s: no slot before then for anyone."""
    pacer = Pacer(TokenBucket(10.0, 5), clock=lambda: 100.0)
    pacer.learn(Quota(0, 7.0))
    assert pacer.bucket.blocked_until == 107.0
    assert pacer.bucket.take(100.0) == pytest.approx(7.0)


def test_the_learned_pace_is_this_members_share_of_the_quota() -> None:
    """With half the partitions, 20 left for 10 s allows this member 1/s."""
    pacer = Pacer(TokenBucket(10.0, 4), clock=lambda: 0.0)
    pacer.share(2, 4)
    pacer.learn(Quota(20, 10.0))
    assert pacer.bucket.rate_per_s == 1.0


@given(
    rate=st.floats(0.1, 1_000),
    remaining=st.integers(1, 10_000),
    reset=st.floats(0.01, 3_600),
)
def test_the_pace_is_never_above_the_configured_one_nor_the_quotas(
    rate: float, remaining: int, reset: float
) -> None:
    """Whatever the answer says, the pace is the lower of the configured and the quota's."""
    pacer = Pacer(TokenBucket(rate, 3), clock=lambda: 0.0)
    pacer.learn(Quota(remaining, reset))
    assert pacer.bucket.rate_per_s == pytest.approx(min(rate, remaining / reset))


def test_a_provider_without_a_rate_limit_is_not_paced() -> None:
    """No rate set: no pacer; the lower of per-second and per-minute limits otherwise."""
    assert provider_pacer(ProviderConfig("http")) is None
    pacer = provider_pacer(ProviderConfig("http", rate_per_s=5.0, rate_per_min=120, rate_burst=3))
    assert pacer is not None
    assert (pacer.bucket.rate_per_s, pacer.bucket.burst) == (2.0, 3)

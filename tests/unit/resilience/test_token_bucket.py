"""The token bucket that paces Clay submissions and replay --rate; time is an argument."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.resilience.token_bucket import TokenBucket


def test_a_full_bucket_lets_the_burst_through_at_once() -> None:
    """At 10/s with bursts of 20, twenty takes at one instant wait 0 and the 21st 0.1 s."""
    bucket = TokenBucket(10.0, 20)
    waits = [bucket.take(100.0) for _ in range(21)]
    assert waits[:20] == [0.0] * 20
    assert waits[20] == pytest.approx(0.1)


def test_queued_callers_are_spread_at_the_sustained_rate() -> None:
    """Callers past the burst get consecutive slots 1/rate apart, in arrival order."""
    bucket = TokenBucket(10.0, 2)
    waits = [bucket.take(0.0) for _ in range(6)]
    assert waits == pytest.approx([0.0, 0.0, 0.1, 0.2, 0.3, 0.4])


def test_the_bucket_refills_after_a_quiet_period() -> None:
    """After enough idle time the whole burst is available again, and no more than it."""
    bucket = TokenBucket(10.0, 5)
    for _ in range(5):
        bucket.take(0.0)
    assert bucket.available(0.0) == 0
    assert bucket.available(10.0) == 5
    assert [bucket.take(10.0) for _ in range(6)][-1] == pytest.approx(0.1)


def test_a_retry_after_pause_holds_every_slot_and_allows_no_burst_after_it() -> None:
    """Nothing goes before the pause ends; after it, slots come at the sustained rate."""
    bucket = TokenBucket(10.0, 20)
    bucket.take(0.0)
    bucket.pause_until(2.0)
    first = bucket.take(0.5)
    second = bucket.take(0.5)
    assert first == pytest.approx(1.5)
    assert second == pytest.approx(1.6)
    assert bucket.available(1.0) == 0


def test_a_caller_that_waits_out_each_delay_gets_exactly_the_rate() -> None:
    """At 10/s with no burst, fifty callers that each sleep their wait span 4.9 s."""
    bucket = TokenBucket(10.0, 1)
    now = 1000.0
    for _ in range(50):
        now += bucket.take(now)
    assert now - 1000.0 == pytest.approx(4.9)


def test_an_idle_pause_is_not_made_up_by_a_burst() -> None:
    """With burst 1, a long quiet period allows one slot at once, then the normal pace."""
    bucket = TokenBucket(2.0, 1)
    bucket.take(1000.0)
    assert bucket.take(1060.0) == 0.0
    assert bucket.take(1060.0) == pytest.approx(0.5)


def test_invalid_rates_are_refused() -> None:
    """A zero or infinite rate, or an empty burst, is a ValueError."""
    with pytest.raises(ValueError, match="rate_per_s"):
        TokenBucket(0.0, 1)
    with pytest.raises(ValueError, match="rate_per_s"):
        TokenBucket(float("inf"), 1)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(1.0, 0)


@given(
    rate=st.floats(0.5, 200.0),
    burst=st.integers(1, 30),
    gaps=st.lists(st.floats(0.0, 0.5), min_size=1, max_size=120),
)
def test_no_window_ever_sees_more_than_burst_plus_rate_times_its_length(
    rate: float, burst: int, gaps: list[float]
) -> None:
    """Token-bucket conformance: between any two granted slots i < j, the number of slots
    is at most burst + rate * (t_j - t_i)."""
    bucket = TokenBucket(rate, burst)
    now, granted = 0.0, []
    for gap in gaps:
        now += gap
        granted.append(now + bucket.take(now))
    granted.sort()
    for i in range(len(granted)):
        for j in range(i, len(granted)):
            assert j - i + 1 <= burst + rate * (granted[j] - granted[i]) + 1e-6

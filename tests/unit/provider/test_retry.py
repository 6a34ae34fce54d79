"""RetryPolicy: bounded, jittered backoff that honours Retry-After, retrying only what helps."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.errors import (
    BreakerOpen,
    BudgetExhausted,
    InternalError,
    InvalidPayload,
    LeadError,
    ProviderAuthError,
    ProviderCreditsExhausted,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    RateLimited,
)
from streamproc.provider.retry import DEFAULT_RETRY_AFTER_MAX_S, RetryPolicy

RETRIED = (ProviderError, ProviderTimeout, RateLimited)
NOT_RETRIED = (
    InvalidPayload,
    ProviderRejected,
    ProviderAuthError,
    ProviderCreditsExhausted,
    BreakerOpen,
    BudgetExhausted,
    InternalError,
)

policies = st.builds(
    lambda retries, base, extra, cap: RetryPolicy(
        max_retries=retries, base_s=base, max_s=base + extra, retry_after_max_s=cap
    ),
    st.integers(min_value=0, max_value=20),
    st.floats(min_value=0, max_value=60),
    st.floats(min_value=0, max_value=600),
    st.floats(min_value=0, max_value=86_400),
)
unit = st.floats(min_value=0, max_value=1)
attempts = st.integers(min_value=-5, max_value=10_000)


@given(policies, attempts, unit)
def test_delay_without_retry_after_stays_within_zero_and_max(
    policy: RetryPolicy, attempt: int, draw: float
) -> None:
    """Without Retry-After, every delay lies in [0, max_s], whatever the attempt number."""
    delay = policy.delay_s(attempt, lambda: draw, None)
    assert 0.0 <= delay <= policy.max_s


@given(policies, attempts, unit, st.floats(min_value=0, max_value=1e9))
def test_delay_honours_retry_after_up_to_the_cap(
    policy: RetryPolicy, attempt: int, draw: float, retry_after: float
) -> None:
    """With Retry-After, the delay is at least it up to the cap, and never above cap or max_s."""
    delay = policy.delay_s(attempt, lambda: draw, retry_after)
    cap = policy.retry_after_max_s
    assert min(retry_after, cap) <= delay <= max(cap, policy.max_s)


@given(policies, attempts, st.floats(allow_nan=True, allow_infinity=True))
def test_delay_is_finite_and_bounded_for_any_rng_output(
    policy: RetryPolicy, attempt: int, draw: float
) -> None:
    """A misbehaving rng (negative, >1, NaN, inf) cannot push the delay out of [0, max_s]."""
    delay = policy.delay_s(attempt, lambda: draw, None)
    assert math.isfinite(delay)
    assert 0.0 <= delay <= policy.max_s


@given(policies, attempts, unit, st.sampled_from([-1.0, -0.001, math.nan]))
def test_unusable_retry_after_is_ignored(
    policy: RetryPolicy, attempt: int, draw: float, retry_after: float
) -> None:
    """A negative or NaN Retry-After falls back to plain backoff."""
    assert policy.delay_s(attempt, lambda: draw, retry_after) == policy.delay_s(
        attempt, lambda: draw, None
    )


def test_backoff_ceiling_doubles_then_caps() -> None:
    """The jitter window doubles per retry from base_s and stops growing at max_s."""
    policy = RetryPolicy(max_retries=10, base_s=0.1, max_s=0.5)
    ceilings = [policy.delay_s(n, lambda: 1.0) for n in range(1, 6)]
    assert ceilings == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


def test_full_jitter_scales_the_ceiling_by_the_draw() -> None:
    """The delay is draw x ceiling: 0 when the rng says 0, half the window at 0.5."""
    policy = RetryPolicy(max_retries=3, base_s=1.0, max_s=10.0)
    assert policy.delay_s(3, lambda: 0.0) == 0.0
    assert policy.delay_s(3, lambda: 0.5) == pytest.approx(2.0)


def test_huge_retry_after_waits_only_retry_after_max_s() -> None:
    """A Retry-After of a day (or infinity) waits retry_after_max_s, 60 s by default."""
    policy = RetryPolicy(max_retries=3, base_s=0.1, max_s=5.0)
    assert policy.delay_s(1, lambda: 0.0, 86_400.0) == DEFAULT_RETRY_AFTER_MAX_S == 60.0
    assert policy.delay_s(1, lambda: 0.0, math.inf) == 60.0
    short = RetryPolicy(max_retries=3, base_s=0.1, max_s=5.0, retry_after_max_s=30.0)
    assert short.delay_s(1, lambda: 0.0, 86_400.0) == 30.0
    assert short.delay_s(1, lambda: 0.0, 12.5) == 12.5


def test_a_zero_retry_after_max_s_ignores_retry_after() -> None:
    """retry_after_max_s = 0 leaves only the plain jittered backoff, whatever the server says."""
    policy = RetryPolicy(max_retries=3, base_s=1.0, max_s=4.0, retry_after_max_s=0.0)
    assert policy.delay_s(2, lambda: 0.5, 86_400.0) == pytest.approx(1.0)


@given(policies, st.sampled_from(NOT_RETRIED), st.integers(min_value=0, max_value=50))
def test_non_retriable_classes_are_never_retried_in_process(
    policy: RetryPolicy, error: type[LeadError], retries_done: int
) -> None:
    """Rejections, auth failures, 402s, breaker/budget refusals and bugs are never retried here."""
    assert policy.should_retry(error("x"), retries_done) is False


@given(policies, st.sampled_from(RETRIED), st.integers(min_value=0, max_value=50))
def test_transient_failures_are_retried_exactly_while_retries_remain(
    policy: RetryPolicy, error: type[LeadError], retries_done: int
) -> None:
    """5xx, timeouts and 429s are retried iff fewer than max_retries retries were made."""
    assert policy.should_retry(error("x"), retries_done) is (retries_done < policy.max_retries)


def test_zero_max_retries_never_retries() -> None:
    """max_retries=0 means one call and no retry, even for a 503."""
    assert (
        RetryPolicy(max_retries=0, base_s=0.1, max_s=1).should_retry(ProviderError("x"), 0) is False
    )


@pytest.mark.parametrize(
    ("retries", "base", "maximum", "cap"),
    [
        (-1, 0.1, 1.0, 300.0),
        (1, -0.1, 1.0, 300.0),
        (1, 1.0, 0.5, 300.0),
        (1, math.nan, 1.0, 300.0),
        (1, 0.1, math.inf, 300.0),
        (1, 0.1, 1.0, -1.0),
        (1, 0.1, 1.0, math.inf),
        (1, 0.1, 1.0, math.nan),
    ],
)
def test_incoherent_policies_are_refused(
    retries: int, base: float, maximum: float, cap: float
) -> None:
    """Negative retries, negative or non-finite delays or caps and max < base raise ValueError."""
    with pytest.raises(ValueError, match="must be"):
        RetryPolicy(max_retries=retries, base_s=base, max_s=maximum, retry_after_max_s=cap)

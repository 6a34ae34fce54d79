"""A partition's retry backoff: doubled per failure in a row, capped, forgotten on success."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from streamproc.processing.backoff import Backoff


def test_each_failure_in_a_row_doubles_the_wait_up_to_the_cap() -> None:
    """1, 2, 4, 8 s, then the 10 s cap however many more failures follow."""
    backoff = Backoff(initial_s=1.0, max_s=10.0)
    assert [backoff.failed(now=100.0) for _ in range(7)] == [1, 2, 4, 8, 10, 10, 10]
    assert backoff.failures == 7


def test_the_next_try_is_due_only_after_the_wait() -> None:
    """Failed at t=50 with a 4 s wait: not due at 53.9, due at 54, retry_in_s counts down."""
    backoff = Backoff(initial_s=4.0, max_s=60.0)
    assert backoff.due(now=0.0) and backoff.retry_in_s(now=0.0) == 0.0
    backoff.failed(now=50.0)
    assert not backoff.due(now=53.9)
    assert backoff.retry_in_s(now=51.0) == 3.0
    assert backoff.due(now=54.0)


def test_a_success_forgets_the_failures() -> None:
    """After a success the next failure waits the initial time again."""
    backoff = Backoff(initial_s=1.0, max_s=60.0)
    for _ in range(5):
        backoff.failed(now=0.0)
    backoff.succeeded()
    assert backoff.failures == 0 and backoff.due(now=0.0)
    assert backoff.failed(now=0.0) == 1.0


@given(
    initial=st.floats(min_value=0.001, max_value=100),
    cap=st.floats(min_value=0.001, max_value=3600),
    failures=st.integers(min_value=1, max_value=2000),
)
def test_the_wait_never_shrinks_and_never_passes_the_cap(
    initial: float, cap: float, failures: int
) -> None:
    """Whatever the settings and however many failures, waits grow monotonically to the cap."""
    backoff = Backoff(initial_s=initial, max_s=cap)
    waits = [backoff.failed(now=0.0) for _ in range(failures)]
    assert all(a <= b for a, b in itertools.pairwise(waits))
    assert all(0 < w <= cap for w in waits)

"""RetryDriver: bounded attempts, capped waits, the breaker's say, every timeout maybe billed.

The driver never suspends on its own (the sleep here is a fake clock's), so each run is
completed without an event loop: one ``send`` finishes it.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.errors import (
    LeadError,
    LocalStall,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    RateLimited,
)
from streamproc.provider.driver import MAX_STALLS, Attempted, RetryDriver
from streamproc.provider.retry import RetryPolicy

T = TypeVar("T")


class LibraryTimeout(Exception):
    """Stands for an HTTP library's own timeout error (``httpx.TimeoutException``)."""


@dataclass
class Run:
    """A fake clock and what one run of the driver did."""

    now: float = 1_000.0
    waits: list[float] = field(default_factory=list)
    calls: int = 0
    heard: list[LeadError] = field(default_factory=list)
    asked: list[LeadError] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


# One scripted attempt: what it raises, or "ok" for a success.
Step = str | Exception | type[Exception]


def driver(policy: RetryPolicy, run: Run, draw: float = 0.5) -> RetryDriver:
    return RetryDriver(
        policy,
        peer="provider",
        timeout_s=5.0,
        timeouts=(LibraryTimeout,),
        sleep=run.sleep,
        rng=lambda: draw,
        clock=run.clock,
    )


def complete(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends to its end, without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the driver suspended without a real sleep in it")


def drive(
    policy: RetryPolicy,
    script: list[Step],
    answers: list[bool] | None = None,
    draw: float = 0.5,
) -> tuple[Run, Attempted[str] | LeadError]:
    """Run the driver over ``script`` (the last step repeats); ``answers`` are keep_trying's
    (yes once they run out)."""
    run = Run()
    pending = list(answers or [])

    async def attempt() -> str:
        step = script[min(run.calls, len(script) - 1)]
        run.calls += 1
        if step == "ok":
            return "done"
        assert not isinstance(step, str)
        raise step() if isinstance(step, type) else step

    async def keep_trying(exc: LeadError) -> bool:
        run.asked.append(exc)
        return pending.pop(0) if pending else True

    try:
        result: Attempted[str] | LeadError = complete(
            driver(policy, run, draw).run(
                attempt, keep_trying=keep_trying, on_failure=run.heard.append
            )
        )
    except LeadError as exc:
        result = exc
    return run, result


policies = st.builds(
    lambda retries, base, extra, cap: RetryPolicy(
        max_retries=retries, base_s=base, max_s=base + extra, retry_after_max_s=cap
    ),
    st.integers(min_value=0, max_value=8),
    st.floats(min_value=0, max_value=10),
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=3_600),
)
steps: st.SearchStrategy[Step] = st.one_of(
    st.just("ok"),
    st.builds(lambda: ProviderError("provider answered 503")),
    st.builds(lambda: ProviderError("provider unreachable: ConnectError")),
    st.builds(lambda: ProviderError("dropped after sending", maybe_charged=True)),
    st.builds(
        lambda after: RateLimited("provider answered 429", retry_after_s=after),
        st.none() | st.floats(min_value=0, max_value=172_800),
    ),
    st.just(TimeoutError),
    st.just(LibraryTimeout),
    st.builds(lambda: ProviderRejected("provider answered 422")),
)
scripts = st.lists(steps, min_size=1, max_size=12)
answers = st.lists(st.booleans(), max_size=12)
draws = st.floats(min_value=0, max_value=1, exclude_max=True)


@given(policies, scripts, answers, draws)
def test_attempts_never_exceed_max_retries_plus_one(
    policy: RetryPolicy, script: list[Step], said: list[bool], draw: float
) -> None:
    """Whatever the answers, at most max_retries + 1 attempts and one wait between each two."""
    run, result = drive(policy, script, said, draw)
    assert 1 <= run.calls <= policy.max_retries + 1
    assert len(run.waits) == run.calls - 1
    if isinstance(result, Attempted):
        assert result.attempts == run.calls


@given(policies, scripts, answers, draws)
def test_waits_never_exceed_the_caps(
    policy: RetryPolicy, script: list[Step], said: list[bool], draw: float
) -> None:
    """A 429's wait is its Retry-After cut to retry_after_max_s (never less than the backoff
    would be); any other wait is the jittered backoff, at most max_s."""
    run, _ = drive(policy, script, said, draw)
    for attempt, (failure, wait) in enumerate(zip(run.heard, run.waits, strict=False), 1):
        backoff = draw * policy.backoff_ceiling_s(attempt)
        assert wait <= max(policy.max_s, policy.retry_after_max_s)
        if isinstance(failure, RateLimited) and failure.retry_after_s is not None:
            asked = min(failure.retry_after_s, policy.retry_after_max_s)
            assert wait == pytest.approx(max(asked, backoff))
        else:
            assert wait == pytest.approx(backoff)
            assert wait <= policy.max_s


@given(policies, scripts, answers)
def test_every_timeout_is_a_maybe_billed_provider_timeout(
    policy: RetryPolicy, script: list[Step], said: list[bool]
) -> None:
    """A TimeoutError or the library's timeout becomes ProviderTimeout, maybe_charged,
    chained to it: as heard by on_failure, asked of keep_trying and raised."""
    run, result = drive(policy, script, said)
    seen = [*run.heard, *run.asked, *([result] if isinstance(result, LeadError) else [])]
    timeouts = [exc for exc in seen if isinstance(exc, ProviderTimeout)]
    for exc in timeouts:
        assert exc.maybe_charged is True
        assert isinstance(exc.__cause__, TimeoutError | LibraryTimeout)
        assert exc.message == "provider did not answer within 5s"
    made = script[: run.calls] + [script[-1]] * max(0, run.calls - len(script))
    timed_out = sum(1 for step in made if step in (TimeoutError, LibraryTimeout))
    assert len({id(exc) for exc in timeouts}) == timed_out


@given(policies, scripts, answers)
def test_the_run_stops_only_for_a_reason(
    policy: RetryPolicy, script: list[Step], said: list[bool]
) -> None:
    """It ends on a success, a failure not retried in-process, the last retry spent, or the
    breaker's no; keep_trying is asked only of failures the policy would retry."""
    run, result = drive(policy, script, said)
    for n, exc in enumerate(run.asked):
        assert policy.should_retry(exc, n)
    if isinstance(result, Attempted):
        assert result.value == "done"
        assert result.elapsed_s == pytest.approx(sum(run.waits))
        return
    assert result is run.heard[-1]
    retried = policy.should_retry(result, run.calls - 1)
    assert not retried or (run.asked and run.asked[-1] is result)
    assert len(run.heard) == run.calls


def test_a_failure_after_retries_notes_the_number_of_calls() -> None:
    """Three 503s with two retries raise the last, noted "gave up after 3 provider calls"."""
    run, result = drive(RetryPolicy(max_retries=2, base_s=0.1, max_s=1.0), [ProviderError("503")])
    assert isinstance(result, ProviderError)
    assert run.calls == 3
    assert result.__notes__ == ["gave up after 3 provider calls"]


def test_a_rejection_is_raised_at_once_without_asking_the_breaker() -> None:
    """A 4xx rejection: one call, no wait, keep_trying not asked, no note."""
    rejected = ProviderRejected("provider answered 422")
    run, result = drive(RetryPolicy(max_retries=3, base_s=0.1, max_s=1.0), [rejected])
    assert result is rejected
    assert (run.calls, run.waits, run.asked) == (1, [], [])
    assert not hasattr(result, "__notes__")


def test_the_breakers_no_ends_the_run_before_any_wait() -> None:
    """keep_trying answering no after the first 503 raises it with no wait and one call."""
    run, result = drive(
        RetryPolicy(max_retries=5, base_s=0.1, max_s=1.0), [ProviderError("503")], [False]
    )
    assert isinstance(result, ProviderError)
    assert (run.calls, run.waits, len(run.asked)) == (1, [], 1)


def test_a_429_of_a_day_waits_retry_after_max_s_then_succeeds() -> None:
    """Retry-After: 86400 with a 120 s cap waits 120 s; the elapsed time counts the wait."""
    policy = RetryPolicy(max_retries=2, base_s=0.1, max_s=1.0, retry_after_max_s=120.0)
    run, result = drive(policy, [RateLimited("429", retry_after_s=86_400.0), "ok"])
    assert isinstance(result, Attempted)
    assert run.waits == [120.0]
    assert (result.attempts, result.elapsed_s) == (2, 120.0)


def stalling(
    policy: RetryPolicy, script: list[Step], stalls: set[int]
) -> tuple[Run, Attempted[str] | LeadError]:
    """Run the driver over ``script`` with a stall detector that says attempt ``n`` (0-based)
    was cut short by our own stall when ``n`` is in ``stalls``."""
    run = Run()

    async def attempt() -> str:
        step = script[min(run.calls, len(script) - 1)]
        run.calls += 1
        if step == "ok":
            return "done"
        assert not isinstance(step, str)
        raise step() if isinstance(step, type) else step

    async def keep_trying(exc: LeadError) -> bool:
        run.asked.append(exc)
        return True

    retry = RetryDriver(
        policy,
        peer="provider",
        timeout_s=5.0,
        sleep=run.sleep,
        rng=lambda: 0.5,
        clock=run.clock,
        stalled=lambda start, end: run.calls - 1 in stalls,
    )
    try:
        result: Attempted[str] | LeadError = complete(
            retry.run(attempt, keep_trying=keep_trying, on_failure=run.heard.append)
        )
    except LeadError as exc:
        result = exc
    return run, result


def test_a_timeout_while_we_could_not_run_is_a_local_stall_retried_at_once() -> None:
    """A timeout the stall detector blames on us is a LocalStall (not counted against the
    breaker, maybe billed), retried at once even with no retries configured."""
    run, result = stalling(
        RetryPolicy(max_retries=0, base_s=0.1, max_s=1.0), [TimeoutError, "ok"], {0}
    )
    assert isinstance(result, Attempted)
    assert (result.attempts, run.waits) == (2, [])
    (stall,) = run.asked
    assert isinstance(stall, LocalStall)
    assert not stall.counts_against_breaker
    assert stall.maybe_charged


def test_a_stall_does_not_use_one_of_the_policys_retries() -> None:
    """With one retry, a stalled attempt then two 503s makes three calls: the stall was free."""
    policy = RetryPolicy(max_retries=1, base_s=0.1, max_s=1.0)
    run, result = stalling(policy, [TimeoutError, ProviderError("503")], {0})
    assert isinstance(result, ProviderError)
    assert run.calls == 3


def test_a_process_that_keeps_stalling_gives_up_with_the_local_stall() -> None:
    """Every attempt stalled: MAX_STALLS retries, then the LocalStall is raised."""
    stalls = set(range(10))
    run, result = stalling(
        RetryPolicy(max_retries=5, base_s=0.1, max_s=1.0), [TimeoutError], stalls
    )
    assert isinstance(result, LocalStall)
    assert run.calls == MAX_STALLS + 1


def test_a_timeout_without_a_stall_is_the_providers() -> None:
    """The detector saying no leaves a timeout a ProviderTimeout that counts."""
    _, result = stalling(RetryPolicy(max_retries=0, base_s=0.1, max_s=1.0), [TimeoutError], set())
    assert type(result) is ProviderTimeout
    assert result.counts_against_breaker

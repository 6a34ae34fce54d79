"""The --rate limiter, with an injected clock."""

from __future__ import annotations

import asyncio

import pytest

from streamproc.replay.rate import RateLimiter, pace


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_slots_are_one_interval_apart() -> None:
    """At 4/s, back-to-back reservations wait 0, 0.25, 0.5, 0.75 s."""
    clock = Clock()
    limiter = RateLimiter(4, clock=clock)
    assert [limiter.reserve() for _ in range(4)] == [0.0, 0.25, 0.5, 0.75]


def test_waiting_out_the_delay_keeps_the_rate() -> None:
    """A caller that sleeps each delay gets exactly rate reservations per second."""
    clock = Clock()
    limiter = RateLimiter(10, clock=clock)
    start = clock.now
    for _ in range(50):
        clock.now += limiter.reserve()
    assert clock.now - start == pytest.approx(4.9)


def test_an_idle_pause_is_not_made_up_by_a_burst() -> None:
    """After a long pause, burst=1 allows one immediate slot, then the normal pace."""
    clock = Clock()
    limiter = RateLimiter(2, clock=clock)
    limiter.reserve()
    clock.now += 60
    assert limiter.reserve() == 0.0
    assert limiter.reserve() == pytest.approx(0.5)


def test_burst_allows_that_many_at_once() -> None:
    """burst=3 lets three reservations through at once after idling."""
    clock = Clock()
    limiter = RateLimiter(1, burst=3, clock=clock)
    clock.now += 10
    assert [limiter.reserve() for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]


def test_rate_must_be_positive() -> None:
    """A zero rate is a programming error, refused at construction."""
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


async def test_pace_returns_early_when_stopping() -> None:
    """pace() gives up its wait at once when the stop event is set."""
    limiter = RateLimiter(0.01)  # one slot per 100 s
    stop = asyncio.Event()
    assert await pace(limiter, stop)  # the first slot is free
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, stop.set)
    started = loop.time()
    assert not await pace(limiter, stop)
    assert loop.time() - started < 5


async def test_pace_without_limiter_only_checks_stop() -> None:
    """No --rate: pace() never waits, and says False once stopping."""
    stop = asyncio.Event()
    assert await pace(None, stop)
    stop.set()
    assert not await pace(None, stop)

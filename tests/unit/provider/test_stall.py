"""LoopTicks: a call's timeout is ours when the loop went silent while the call was pending."""

from __future__ import annotations

import asyncio
import itertools
import time

from hypothesis import given
from hypothesis import strategies as st

from streamproc.provider.stall import LoopTicks, LoopWatch


def ticking(start: float, end: float, every: float = 0.1) -> LoopTicks:
    ticks = LoopTicks(tick_s=0.1, stall_s=1.0)
    at = start
    while at <= end:
        ticks.tick(at)
        at += every
    return ticks


def test_a_loop_that_ticked_throughout_was_not_stalled() -> None:
    """Ticks every 100 ms over the whole call: the timeout is the provider's."""
    ticks = ticking(0.0, 20.0)
    assert not ticks.stalled(5.0, 15.0)


def test_a_freeze_during_the_call_is_a_stall() -> None:
    """A 25 s silence between two ticks inside the call's window is a stall."""
    ticks = ticking(0.0, 10.0)
    ticks.tick(35.0)
    assert ticks.stalled(8.0, 35.0)


def test_a_timeout_judged_on_waking_before_the_tick_is_a_stall() -> None:
    """Woken after 25 s, the timeout runs before the tick does: the silence since the last
    tick up to now is the stall."""
    ticks = ticking(0.0, 10.0)
    assert ticks.stalled(8.0, 35.0)


def test_a_freeze_before_the_call_started_is_not_its_stall() -> None:
    """A gap that ended before the call began does not excuse the call's timeout."""
    ticks = ticking(0.0, 10.0)
    ticks.tick(35.0)
    for at in range(351, 600):
        ticks.tick(at / 10)
    assert not ticks.stalled(40.0, 50.0)


def test_a_busy_loop_late_by_less_than_the_limit_is_not_a_stall() -> None:
    """Ticks 900 ms apart (a loaded loop) are no stall with a one-second limit."""
    ticks = ticking(0.0, 30.0, every=0.9)
    assert not ticks.stalled(0.0, 30.0)


def test_nothing_known_is_no_stall() -> None:
    """Before the first tick (or after reset) no timeout is blamed on us."""
    ticks = LoopTicks()
    assert not ticks.stalled(0.0, 100.0)
    ticks.tick(0.0)
    ticks.reset()
    assert not ticks.stalled(0.0, 100.0)


@given(st.lists(st.floats(min_value=0.01, max_value=5.0), min_size=1, max_size=50), st.data())
def test_a_stall_is_reported_exactly_when_a_long_silence_overlaps_the_window(
    steps: list[float], data: st.DataObject
) -> None:
    """Against a brute-force reading of the same ticks: stalled iff some silence longer than
    tick + limit (between ticks, or from the last tick to the window's end) overlaps it."""
    ticks = LoopTicks(tick_s=0.1, stall_s=1.0)
    times = [0.0]
    for step in steps:
        times.append(times[-1] + step)
    for at in times:
        ticks.tick(at)
    start = data.draw(st.floats(min_value=0.0, max_value=times[-1] + 5))
    end = data.draw(st.floats(min_value=start, max_value=times[-1] + 10))
    silences = [*itertools.pairwise(times), (times[-1], end)]
    expected = end > start and any(b - a > 1.1 and b > start and a < end for a, b in silences)
    assert ticks.stalled(start, end) == expected


def test_the_watch_ticks_on_the_running_loop_and_sees_a_blocked_loop() -> None:
    """A loop blocked by a synchronous sleep of 1.5 s shows as a stall once it runs again."""

    async def scenario() -> tuple[bool, bool]:
        watch = LoopWatch(tick_s=0.05, stall_s=1.0)
        watch.start()
        try:
            loop = asyncio.get_running_loop()
            await asyncio.sleep(0.2)
            began = loop.time()
            calm = watch.stalled(began - 0.2, began)
            time.sleep(1.5)  # noqa: ASYNC251 -- the loop must not run, as in a freeze
            return calm, watch.stalled(began, loop.time())
        finally:
            watch.stop()

    calm, frozen = asyncio.run(scenario())
    assert not calm
    assert frozen

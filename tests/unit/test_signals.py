"""SIGINT/SIGTERM handling shared by run, replay and the simulators."""

from __future__ import annotations

import asyncio
import os
import signal

from streamproc.signals import StopSignals, until_signalled


async def _deliver(sig: signal.Signals, signals: StopSignals) -> None:
    seen = signals.count
    os.kill(os.getpid(), sig)
    for _ in range(200):  # the loop runs the handler soon after the signal arrives
        if signals.count > seen:
            return
        await asyncio.sleep(0.01)


async def test_the_first_signal_stops_and_a_later_one_aborts() -> None:
    """First SIGTERM calls ``first``, the second SIGINT calls ``again``; both are counted."""
    calls: list[str] = []
    with StopSignals(lambda: calls.append("stop"), lambda: calls.append("abort")) as signals:
        await _deliver(signal.SIGTERM, signals)
        await _deliver(signal.SIGINT, signals)
    assert calls == ["stop", "abort"]
    assert signals.count == 2


async def test_handlers_are_gone_after_the_block() -> None:
    """Leaving the block gives SIGTERM back its default disposition."""
    with StopSignals(lambda: None):
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


async def test_until_signalled_returns_at_the_first_signal() -> None:
    """The simulators' servers return from until_signalled() at a SIGTERM."""
    waiting = asyncio.ensure_future(until_signalled())
    await asyncio.sleep(0.01)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(waiting, timeout=2)

"""One pacing threshold for the whole group: two instances on the real broker gate with the
same step, computed by the instance that holds partition 0 of the input and read back by
both from the state topic.

Scaled down for CI: ``pacing_step_s`` 2 and a dozen leads; the controller's arithmetic is
covered on an injected clock in tests/unit/resilience/test_pacing_step.py."""

from __future__ import annotations

import asyncio

from streamproc.app import App
from streamproc.resilience.pacing_step import SharedStep
from streamproc.settings import Settings
from tests.integration.kafka_io import produce
from tests.integration.processing.test_pacing_deferral import _gate, _lead, _paced
from tests.integration.procs import until


def _holds_partition_0(app: App) -> bool:
    return any(lane.partition == 0 for lane in app.processor.lane_status())


async def test_two_instances_gate_with_the_same_threshold_after_a_step(
    topics: Settings,
) -> None:
    """Two instances of one group, steps of 2 s: once the group has taken a few steps, both
    hold the same latest step (day, step, threshold), both gate with its threshold, and
    it was written by the instance that holds input partition 0; the offers it ranks on
    include leads offered by both instances."""
    async with _paced(topics, pacing_step_s=2.0) as settings:
        await produce(settings, [_lead(f"S{i}", 20.0 + i) for i in range(12)])
        apps = [App(settings), App(settings)]
        runs = [asyncio.ensure_future(app.run()) for app in apps]
        gates = [_gate(app) for app in apps]
        try:
            await until(lambda: all(app.processor.joined.is_set() for app in apps), 120)
            await until(lambda: sum(1 for app in apps if _holds_partition_0(app)) == 1, 120)

            def stepped(after: tuple[str, int]) -> bool:
                steps = [gate.fold.current for gate in gates]
                return all(s is not None and (s.day, s.step) > after for s in steps) and (
                    steps[0] == steps[1]
                )

            await until(lambda: stepped(("", 0)), 120)
            first = gates[0].fold.current
            assert first is not None
            # Two steps on: the leader by then is the holder of partition 0.
            await until(lambda: stepped((first.day, first.step + 2)), 120)
            shared = gates[0].fold.current
            assert isinstance(shared, SharedStep) and shared == gates[1].fold.current
            leader = next(app for app in apps if _holds_partition_0(app))
            assert shared.writer == leader.guard.owner
            assert gates[0].threshold == gates[1].threshold == shared.threshold
            offered = sum(int(s["credits"]) for s in shared.pacer["history"])
            assert 0 < offered <= 12
        finally:
            for app in apps:
                app.request_stop()
            await asyncio.wait_for(asyncio.gather(*runs), 60)

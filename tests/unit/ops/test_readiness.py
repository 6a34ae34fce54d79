"""ReadinessCheck: ready means restored, in the group and not stopping; nothing else."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from streamproc.ops.readiness import ReadinessCheck


@dataclass
class World:
    restored: bool = True
    in_group: bool = True
    stopping: bool = False


def check(world: World) -> ReadinessCheck:
    return ReadinessCheck(
        state_restored=lambda: world.restored,
        in_group=lambda: world.in_group,
        stopping=lambda: world.stopping,
    )


def test_ready_when_restored_and_in_the_group() -> None:
    """State restored, consumer in the group, not stopping: ready, no reasons."""
    assert check(World())() == (True, [])


def test_before_restore_names_each_missing_condition() -> None:
    """At start-up the answer lists every unmet condition, in a stable order."""
    ready = check(World(restored=False, in_group=False))
    assert ready() == (False, ["state not restored", "consumer not in the group"])


def test_restored_but_not_yet_joined_is_not_ready() -> None:
    """Between the restore and the group's first assignment, the process is not ready."""
    assert check(World(in_group=False))() == (False, ["consumer not in the group"])


def test_shutting_down_is_not_ready() -> None:
    """Once a stop is requested the process leaves the Service before it leaves the group."""
    assert check(World(stopping=True))() == (False, ["shutting down"])


def test_stopping_defaults_to_never() -> None:
    """Without a stopping callable the check reads only restore and group membership."""
    ready = ReadinessCheck(state_restored=lambda: True, in_group=lambda: True)
    assert ready() == (True, [])


def test_readiness_reads_neither_partitions_nor_the_breaker() -> None:
    """A standby without partitions and a process whose breaker is open stay ready: the
    check cannot even be given either (a rollout beyond the partition count, and the
    group-wide breaker opening on every pod at once, must not empty the Service)."""
    parameters = set(inspect.signature(ReadinessCheck).parameters)
    assert parameters == {"state_restored", "in_group", "stopping", "stalled"}


def test_a_stalled_partition_fails_readiness_and_names_it() -> None:
    """A partition left behind (records waiting, nothing in flight, no progress) takes the
    process out of the Service, the partitions named in the reason."""
    stalled: list[int] = [2, 5]
    ready = ReadinessCheck(
        state_restored=lambda: True, in_group=lambda: True, stalled=lambda: stalled
    )
    assert ready() == (False, ["partitions stalled: 2, 5"])
    stalled.clear()
    assert ready() == (True, [])


def test_conditions_are_read_on_each_call() -> None:
    """The answer follows the world: a process that leaves the group stops being ready."""
    world = World()
    ready = check(world)
    assert ready()[0]
    world.in_group = False
    assert ready() == (False, ["consumer not in the group"])
    world.in_group = True
    assert ready() == (True, [])

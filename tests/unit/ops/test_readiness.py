"""ReadinessCheck: the reasons /readyz gives, and when a breaker counts as stuck."""

from __future__ import annotations

from dataclasses import dataclass

from streamproc.ops.readiness import ReadinessCheck


@dataclass
class World:
    restored: bool = True
    assigned: bool = True
    breaker: str = "closed"
    now: float = 1000.0


def check(world: World, cooldown_s: float = 100.0, **kwargs: bool) -> ReadinessCheck:
    return ReadinessCheck(
        state_restored=lambda: world.restored,
        partitions_assigned=lambda: world.assigned,
        breaker_state=lambda: world.breaker,
        cooldown_s=cooldown_s,
        clock=lambda: world.now,
        **kwargs,
    )


def test_ready_when_restored_assigned_and_closed() -> None:
    """State restored, partitions assigned, breaker closed: ready, no reasons."""
    assert check(World())() == (True, [])


def test_before_restore_names_each_missing_condition() -> None:
    """At start-up the answer lists every unmet condition, in a stable order."""
    ready = check(World(restored=False, assigned=False))
    assert ready() == (False, ["state not restored", "no partitions assigned"])


def test_partitions_need_not_be_required() -> None:
    """An instance beyond the partition count may be declared ready without partitions."""
    assert check(World(assigned=False), require_partitions=False)() == (True, [])


def test_breaker_open_for_a_while_is_not_stuck() -> None:
    """An open spell shorter than three cooldowns is the breaker working, still ready."""
    world = World(breaker="open")
    ready = check(world)
    assert ready()[0]
    world.now += 299
    world.breaker = "half_open"
    assert ready() == (True, [])


def test_breaker_out_of_closed_beyond_three_cooldowns_is_stuck() -> None:
    """Open/half-open for more than 3 cooldowns without closing: not ready, and says why."""
    world = World(breaker="open")
    ready = check(world)
    ready()
    world.now += 150
    world.breaker = "half_open"
    ready()
    world.now += 151
    world.breaker = "open"
    ok, reasons = ready()
    assert not ok
    assert reasons == ["breaker stuck open for 301 s (> 3 cooldowns, 300 s)"]


def test_closing_resets_the_stuck_clock() -> None:
    """A breaker that closed in between starts a new spell: it is not stuck."""
    world = World(breaker="open")
    ready = check(world)
    ready()
    world.now += 250
    ready.breaker_changed("closed")
    world.now += 1
    ready.breaker_changed("open")
    world.now += 100
    assert ready() == (True, [])


def test_short_cooldowns_are_floored() -> None:
    """With a 1 s cooldown (tests, demos) stuck still needs a minute, so it cannot flap."""
    world = World(breaker="open")
    ready = check(world, cooldown_s=1.0)
    ready()
    world.now += 30
    assert ready()[0]
    world.now += 31
    assert not ready()[0]
    assert ready.stuck_after_s == 60.0

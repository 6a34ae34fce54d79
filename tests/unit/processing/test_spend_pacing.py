"""Priority and pacing around the provider call: floor, defer, best-first turn, expiry,
and the controller's step frozen by the breaker (no broker; an injected clock)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
import pytest

from streamproc.errors import BelowFloor, DeferralExpired, KafkaSetupError
from streamproc.kafka.config import KafkaConnection
from streamproc.processing.config import PacingConfig
from streamproc.processing.spend_pacing import (
    DEFERRED_AT_HEADER,
    ORIGIN_HEADER,
    DeferredView,
    LeadPacing,
    PacingGate,
    SpendView,
    learn_plan_shape,
)
from streamproc.resilience.pacer import Threshold, density_bucket
from streamproc.resilience.pacing_step import PlanShape
from streamproc.resilience.priority import PriorityScore
from streamproc.resilience.spend_plan import uniform_shape
from streamproc.settings import Settings

#: Admits every density: the plan is open.
OPEN = Threshold(-10_000, 1.0)


def closed_below(density: float) -> Threshold:
    """Admits densities in buckets above ``density``'s only."""
    return Threshold(density_bucket(density), 0.0)


@dataclass
class _Record:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _pacing(clock: _Clock, *, halflife_s: float | None = None, **changes: object) -> LeadPacing:
    settings = Settings.model_validate(
        {
            "priority_score": "double(lead.score)",
            "priority_floor": 2.0,
            "pacing_enabled": True,
            "pacing_band_edges": (10.0, 30.0),
            "credits_per_lead": 1,  # density = score
            **changes,
        }
    )
    assert settings.priority_score is not None
    score = PriorityScore.compile(
        settings.priority_score, floor=settings.priority_floor, halflife_s=halflife_s
    )
    gate = PacingGate(len(settings.deferral_topics), None, clock=clock)
    return LeadPacing(PacingConfig.from_settings(settings), score, gate, clock=clock)


def _worth(density: float) -> Callable[[], float]:
    """A waiting lead's density, the same at every check."""
    return lambda: density


def _raw(offset: int, score: float) -> _Record:
    value = orjson.dumps({"lead_id": f"L{offset}", "score": score})
    return _Record("leads.raw", 1, offset, 1_000_000, f"L{offset}".encode(), value, [("h", b"v")])


def test_band_edges_split_scores_lowest_band_first() -> None:
    """A score below the first edge is band 0, one at an edge is in the band it begins."""
    pacing = _pacing(_Clock(1000.0))
    assert [pacing.band(s) for s in (3.0, 10.0, 29.9, 30.0, 1e6)] == [0, 1, 1, 2, 2]
    assert Settings(pacing_enabled=True, pacing_band_edges=(1.0,)).deferral_topics == (
        "leads.deferred.b0",
        "leads.deferred.b1",
    )
    assert Settings().deferral_topics == ()


def test_band_edges_must_ascend() -> None:
    """Edges out of order are one settings error."""
    with pytest.raises(ValueError, match="strictly ascending"):
        Settings.model_validate({"pacing_band_edges": "10,5"})
    assert Settings.model_validate({"pacing_band_edges": "1, 2.5"}).pacing_band_edges == (1.0, 2.5)


async def test_a_lead_under_the_floor_is_below_floor_and_a_failing_expression_scores_default() -> (
    None
):
    """Score 1 under floor 2: BelowFloor (not retriable); no `score` field: the default
    score (0, under the floor too), counted."""
    pacing = _pacing(_Clock(1000.0))
    pacing.gate.set_threshold(OPEN)  # type: ignore[union-attr]
    with pytest.raises(BelowFloor) as caught:
        await pacing.admit(_raw(1, 1.0), "L1", {"lead_id": "L1", "score": 1.0})
    assert not caught.value.retriable
    with pytest.raises(BelowFloor):
        await pacing.admit(_raw(2, 0.0), "L2", {"lead_id": "L2"})
    assert pacing.score_errors == 1
    assert await pacing.admit(_raw(3, 50.0), "L3", {"lead_id": "L3", "score": 50.0}) is None


async def test_a_lead_under_the_threshold_is_deferred_to_its_band_with_its_origin() -> None:
    """Threshold between 20 and 50: score 50 goes on; score 20 becomes a record to band 1's
    topic, same key and value, its origin and deferral time in headers, which the view of
    that record gives back as the original coordinates."""
    clock = _Clock(2000.0)
    pacing = _pacing(clock)
    assert pacing.gate is not None
    pacing.gate.set_threshold(closed_below(25.0))
    assert await pacing.admit(_raw(1, 50.0), "L1", {"score": 50.0}) is None
    out = await pacing.admit(_raw(2, 20.0), "L2", {"score": 20.0})
    assert out is not None and out.topic == "leads.deferred.b1" and out.key == b"L2"
    assert out.value == _raw(2, 20.0).value
    origin = orjson.loads(dict(out.headers)[ORIGIN_HEADER])
    assert origin == {"topic": "leads.raw", "partition": 1, "offset": 2, "timestamp": 1_000_000}
    assert dict(out.headers)[DEFERRED_AT_HEADER] == b"2000000"
    deferred = _Record("leads.deferred.b1", 0, 7, 2_000_000, out.key, out.value, out.headers)
    view = pacing.view(deferred)
    assert isinstance(view, DeferredView)
    assert (view.topic, view.partition, view.offset, view.band) == ("leads.raw", 1, 2, 1)
    assert view.headers == [("h", b"v")] and view.deferred_at_s == 2000.0
    assert view.place == ("leads.deferred.b1", 0, 7)
    raw = _raw(3, 5.0)
    assert pacing.view(raw) is raw


async def test_a_lower_band_waits_until_no_higher_band_is_pending() -> None:
    """With the plan open, a band-0 lead waits while a band-2 lead is waiting or being
    enriched, and goes once that lead is done; a new lead is deferred meanwhile too."""
    clock = _Clock(1000.0)
    gate = PacingGate(3, None, clock=clock)
    gate.set_threshold(closed_below(1e9))
    high = asyncio.ensure_future(gate.turn(2, ("d.b2", 0, 0), _worth(50.0), "H", expires_s=9999.0))
    low = asyncio.ensure_future(gate.turn(0, ("d.b0", 0, 0), _worth(5.0), "L", expires_s=9999.0))
    await asyncio.sleep(0.05)
    assert gate.pending == (1, 0, 1) and not high.done() and not low.done()
    gate.set_threshold(OPEN)
    await asyncio.wait_for(high, 5)
    await asyncio.sleep(0.05)
    assert not low.done()  # the high lead is still being enriched
    assert not gate.admits_new(1, 20.0, "N")
    gate.done(2)
    await asyncio.wait_for(low, 5)
    gate.done(0)
    assert gate.pending == (0, 0, 0) and gate.admits_new(1, 20.0, "N")


async def test_a_deferred_lead_past_its_age_expires_retriable() -> None:
    """A deferred lead that never clears, once the clock passes its deferral time plus
    deferral_max_age_s: DeferralExpired, retriable, and it is no longer pending."""
    clock = _Clock(1000.0)
    pacing = _pacing(clock, deferral_max_age_s=60.0)
    assert pacing.gate is not None
    pacing.gate.set_threshold(closed_below(1e9))
    out = await pacing.admit(_raw(1, 20.0), "L1", {"score": 20.0})
    assert out is not None
    view = pacing.view(_Record(out.topic, 0, 0, 0, out.key, out.value, out.headers))
    waiting = asyncio.ensure_future(pacing.admit(view, "L1", {"score": 20.0}))
    await asyncio.sleep(0.05)
    assert pacing.gate.pending == (0, 1, 0)
    clock.now = 1061.0
    pacing.gate.set_threshold(closed_below(1e9))  # any wake-up; the hold also polls
    with pytest.raises(DeferralExpired) as caught:
        await asyncio.wait_for(waiting, 5)
    assert caught.value.retriable and caught.value.error_class.value == "deferral_expired"
    assert pacing.gate.pending == (0, 0, 0)


def test_the_step_freezes_while_the_provider_is_out_and_replans_after() -> None:
    """Breaker not closed: the threshold holds whatever the spend; closed again: the plan
    is re-anchored at the spend then, the part missed meanwhile to be paid back over the
    next half hour, so the controller does not chase it in one burst."""
    clock = _Clock(0.0)
    spent = {"now": 0.0}
    out = {"now": False}
    view = SpendView(
        lambda now: ("2026-12-07", 0.0),
        lambda day: 10_000,
        lambda day: spent["now"],
        lambda now: out["now"],
    )
    gate = PacingGate(2, view, step_s=60.0, clock=clock)
    for minute in range(1, 30):
        clock.now = 36_000.0 + minute * 60
        gate.offer(float(minute % 7 + 1), 1)
        gate.tick()
        gate.step()
    before = gate.threshold
    out["now"] = True
    for minute in range(30, 90):
        clock.now = 36_000.0 + minute * 60
        gate.offer(float(minute % 7 + 1), 1)
        gate.tick()
        gate.step()
        assert gate.threshold == before and gate.frozen
    out["now"] = False
    clock.now = 36_000.0 + 90 * 60
    gate.step()
    shared = gate.fold.current
    assert shared is not None and shared.anchor_s == 36_000.0 + 90 * 60
    assert shared.anchor_spent == spent["now"] and not gate.frozen
    # What the plan asked for during the outage is paid back over the next half hour.
    assert shared.owed > 0


async def test_a_higher_lead_that_does_not_clear_blocks_no_lower_band() -> None:
    """Threshold between 5 and 50: a band-2 lead of density 2 (decayed) waits, and a band-0
    lead of density 8 goes past it; a new lead of band 1 that clears goes too."""
    gate = PacingGate(3, None, clock=_Clock(1000.0))
    gate.set_threshold(closed_below(5.0))
    stuck = asyncio.ensure_future(gate.turn(2, ("d.b2", 0, 0), _worth(2.0), "S", expires_s=9999.0))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(gate.turn(0, ("d.b0", 0, 0), _worth(8.0), "L", expires_s=9999.0), 5)
    assert gate.admits_new(1, 8.0, "N") and not stuck.done()
    gate.done(0)
    # As a shutdown does: a task cancelled in the tick that woke it may swallow a bare
    # cancel() (Python 3.11's wait_for); a released one is cancelled again at its next hold.
    assert gate.release([stuck]) == 1
    await asyncio.wait_for(asyncio.gather(stuck, return_exceptions=True), 5)
    assert gate.pending == (0, 0, 0)


async def test_a_deferral_partition_goes_in_offset_order() -> None:
    """Two leads of one deferral partition: the later one clears, the earlier does not;
    the later goes only once the earlier has left (here: to be deferred again at its
    band's tail), so the partition's commit never holds a bought answer behind a waiting
    lead; another partition is not held."""
    clock = _Clock(1000.0)
    gate = PacingGate(1, None, clock=clock)
    gate.set_threshold(closed_below(5.0))
    first = asyncio.ensure_future(gate.turn(0, ("d.b0", 0, 10), _worth(2.0), "A", expires_s=1050.0))
    await asyncio.wait_for(gate.turn(0, ("d.b0", 1, 3), _worth(8.0), "C", expires_s=9999.0), 5)
    await asyncio.sleep(0.05)
    assert not first.done()
    second = asyncio.ensure_future(
        gate.turn(0, ("d.b0", 0, 11), _worth(8.0), "B", expires_s=9999.0)
    )
    assert await asyncio.wait_for(first, 5) is False
    assert await asyncio.wait_for(second, 5) is True
    gate.done(0)
    gate.done(0)
    assert gate.pending == (0,)


async def test_the_plan_is_learnt_from_offsets_by_time_each_time_asked_once() -> None:
    """learn_plan_shape asks each bound once (days share theirs) on topic_raw and shapes the
    plan from the counts between them; with no history asked it asks nothing."""
    asked: list[tuple[str, list[float]]] = []

    async def offsets(kafka: KafkaConnection, topic: str, times: list[float]) -> list[list[int]]:
        asked.append((topic, times))
        # One partition, one record per bound: an even hour everywhere but one a day.
        return [[i * 2 if i % 24 == 9 else i for i in range(len(times))]]

    kafka = KafkaConnection.from_settings(Settings())
    shape = await learn_plan_shape(
        kafka, "2026-12-07", "UTC", topic="in.raw", history_days=2, offsets=offsets
    )
    ((topic, times),) = asked
    assert topic == "in.raw" and len(times) == len(set(times)) == 49
    assert shape.source == "in.raw: 2 days"
    off = await learn_plan_shape(
        kafka, "2026-12-07", "UTC", topic="in.raw", history_days=0, offsets=offsets
    )
    assert off.source is None
    assert len(asked) == 1


async def test_the_gate_learns_its_plan_once_a_day_and_again_later_after_a_failure() -> None:
    """Asked at start for the day, not again that day; a failure keeps the last shape and
    is retried ten minutes later; a new day is learnt anew."""
    clock = _Clock(1_000.0)
    day = {"now": "2026-12-07"}
    calls: list[str] = []
    fail = {"now": True}

    async def learn(for_day: str) -> PlanShape:
        calls.append(for_day)
        if fail["now"]:
            raise KafkaSetupError("no answer")
        return PlanShape(uniform_shape(12), "leads.raw: 1 days")

    view = SpendView(lambda now: (day["now"], 0.0), lambda d: 100, lambda d: 0.0, lambda n: False)
    gate = PacingGate(1, view, clock=clock, learn=learn)

    async def relearn() -> None:
        gate._relearn()
        if gate._learning is not None:
            await gate._learning

    await relearn()
    assert calls == ["2026-12-07"] and gate.shape.source is None
    clock.now += 599
    await relearn()
    assert len(calls) == 1
    clock.now += 1
    fail["now"] = False
    await relearn()
    assert gate.shape.source == "leads.raw: 1 days" and len(calls) == 2
    await relearn()
    assert len(calls) == 2
    day["now"] = "2026-12-08"
    await relearn()
    assert calls[-1] == "2026-12-08" and len(calls) == 3


async def test_the_status_shows_the_threshold_the_waiting_leads_and_the_groups_step() -> None:
    """/status's pacing: the threshold gated with, a deferred lead waiting in its band, the
    plan's source, not frozen, and the group's step once one was taken."""
    clock = _Clock(36_000.0)
    view = SpendView(lambda now: ("2026-12-07", 0.0), lambda d: 100, lambda d: 0.0, lambda n: False)
    pacing = _pacing(clock)
    gate = PacingGate(3, view, clock=clock)
    pacing.gate = gate
    gate.set_threshold(closed_below(40.0))
    waiting = asyncio.ensure_future(
        gate.turn(1, ("leads.deferred.b1", 0, 7), _worth(20.0), "L7", clock.now + 3600)
    )
    await asyncio.sleep(0)
    status = pacing.status()
    assert status["score_errors"] == 0
    shown = status["gate"]
    assert shown["waiting"] == [0, 1, 0] and shown["frozen"] is False
    assert shown["threshold"]["bucket"] == density_bucket(40.0)
    assert shown["plan"] == "straight line" and shown["step"] is None
    gate.tick()
    gate.step()
    step = gate.status()["step"]
    assert step is not None and (step["day"], step["step"]) == ("2026-12-07", 600)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)


def _top_gate(clock: _Clock, committed: dict[str, float]) -> PacingGate:
    """A gate whose θ defers every lead here and whose top layer takes densities from 10:
    what goes, goes by the top layer alone. The plan: the straight line of 10,000."""
    view = SpendView(
        lambda now: ("2026-12-07", 0.0),
        lambda day: 10_000,
        lambda day: committed["now"],
        lambda now: False,
        lambda day: committed["now"],
    )
    gate = PacingGate(2, view, clock=clock, lead_credits=4)
    gate.set_threshold(closed_below(1_000.0), closed_below(10.0))
    return gate


def test_a_top_lead_is_deferred_past_the_plans_top_ceiling_and_a_burst_counts_its_own() -> None:
    """The top layer goes whatever θ says, but only within the plan + 4.5 % of the limit:
    past it a top lead is deferred; the top leads let through and not done yet count
    against the ceiling, so a burst cannot all pass one reading of the ledger."""
    clock = _Clock(12 * 3600.0)
    ceiling = PlanShape(uniform_shape(24)).plan(10_000).target(clock.now) + 450.0
    committed = {"now": ceiling + 1}
    gate = _top_gate(clock, committed)
    assert not gate.admits_new(1, 50.0, "L1", ("leads.raw", 0, 1))
    committed["now"] = ceiling - 4 * 3
    went = [gate.admits_new(1, 50.0, f"L{i}", ("leads.raw", 0, i)) for i in range(5)]
    assert went == [True, True, True, False, False]
    gate.lead_done(("leads.raw", 0, 0))
    assert gate.admits_new(1, 50.0, "L9", ("leads.raw", 0, 9))
    # A top lead that clears θ too meets the same ceiling (the simulator's gate).
    gate.set_threshold(closed_below(20.0), closed_below(10.0))
    assert not gate.admits_new(1, 50.0, "L10", ("leads.raw", 0, 10))
    gate.lead_done(("leads.raw", 0, 9))
    assert gate.admits_new(1, 50.0, "L10", ("leads.raw", 0, 10))


async def test_a_deferred_top_lead_waits_for_the_plan_and_goes_when_it_has_room() -> None:
    """A deferred top lead past the ceiling waits (nothing spent on it); once the plan has
    room at the next step, it goes and counts against the ceiling until it is done."""
    clock = _Clock(12 * 3600.0)
    committed = {"now": 10_000.0}
    gate = _top_gate(clock, committed)
    place = ("leads.deferred.b1", 0, 3)
    waiting = asyncio.ensure_future(gate.turn(1, place, _worth(50.0), "L3", clock.now + 3600))
    await asyncio.sleep(0)
    assert not waiting.done()
    committed["now"] = 0.0
    gate.set_threshold(closed_below(1_000.0), closed_below(10.0))  # the next step wakes it
    await asyncio.wait_for(waiting, 5.0)
    committed["now"] = PlanShape(uniform_shape(24)).plan(10_000).target(clock.now) + 450 - 4
    assert not gate.room(top=True)
    gate.lead_done(place)
    gate.done(1)
    assert gate.room(top=True)


def _theta_gate(clock: _Clock, committed: dict[str, float]) -> PacingGate:
    """A gate whose θ admits every lead here and which has no top layer: what it holds
    back, only the plan's gate holds back. The plan: the straight line of 10,000."""
    view = SpendView(
        lambda now: ("2026-12-07", 0.0),
        lambda day: 10_000,
        lambda day: committed["now"],
        lambda now: False,
        lambda day: committed["now"],
    )
    gate = PacingGate(2, view, clock=clock, lead_credits=4)
    gate.set_threshold(OPEN)
    return gate


def test_a_lead_that_clears_theta_is_deferred_past_the_plan_and_2_percent() -> None:
    """A lead that clears θ goes only while the group's committed credits, this
    instance's leads in flight and its own stay within the plan + 2 % of the limit (the
    simulator's gate): past it a new lead is deferred, not sent on."""
    clock = _Clock(12 * 3600.0)
    ceiling = PlanShape(uniform_shape(24)).plan(10_000).target(clock.now) + 200.0
    committed = {"now": ceiling - 4 * 2}
    gate = _theta_gate(clock, committed)
    went = [gate.admits_new(1, 50.0, f"L{i}", ("leads.raw", 0, i)) for i in range(3)]
    assert went == [True, True, False]
    gate.lead_done(("leads.raw", 0, 0))
    assert gate.admits_new(1, 50.0, "L3", ("leads.raw", 0, 3))
    # The top layer's ceiling is 2.5 % of the limit further.
    assert gate.room(top=True) and not gate.room()


async def test_a_deferred_lead_that_clears_theta_goes_when_the_plan_has_room() -> None:
    """A deferred lead that clears θ waits while the group's spend is past the plan + 2 %
    (nothing spent on it), and goes at the step at which the plan has grown past it."""
    clock = _Clock(12 * 3600.0)
    plan = PlanShape(uniform_shape(24)).plan(10_000)
    committed = {"now": plan.target(clock.now) + 200.0}
    gate = _theta_gate(clock, committed)
    place = ("leads.deferred.b1", 0, 3)
    waiting = asyncio.ensure_future(gate.turn(1, place, _worth(50.0), "L3", clock.now + 3600))
    await asyncio.sleep(0)
    gate.set_threshold(OPEN)  # a step wakes it: still no room
    await asyncio.sleep(0)
    assert not waiting.done()
    assert gate.pending == (0, 1)
    clock.now += 60.0  # the plan grows by ~7 credits a minute: room for one lead
    gate.set_threshold(OPEN)
    await asyncio.wait_for(waiting, 5.0)
    assert not gate.room()  # it is in flight: the next one waits
    gate.lead_done(place)
    gate.done(1)
    assert gate.room()


def test_leads_in_flight_inside_the_instances_own_lease_are_not_counted_twice() -> None:
    """The ledger's committed credits already hold this instance's granted lease; its
    leads in flight take their slices from it, so only what they need beyond the lease
    counts again (else spend would trail the plan by a lease)."""
    clock = _Clock(12 * 3600.0)
    ceiling = PlanShape(uniform_shape(24)).plan(10_000).target(clock.now) + 200.0
    held = {"now": 12.0}  # this instance's own lease: 3 leads at 4 credits
    view = SpendView(
        lambda now: ("2026-12-07", 0.0),
        lambda day: 10_000,
        lambda day: ceiling - 4 * 2,
        lambda now: False,
        lambda day: ceiling - 4 * 2,
        lambda day: held["now"],
    )
    gate = PacingGate(2, view, clock=clock, lead_credits=4)
    gate.set_threshold(OPEN)
    went = [gate.admits_new(1, 50.0, f"L{i}", ("leads.raw", 0, i)) for i in range(6)]
    assert went == [True, True, True, True, True, False]
    held["now"] = 0.0  # the lease settled: the leads in flight count in full again
    assert not gate.room()


def test_the_instances_own_lease_no_lead_has_taken_leaves_room_under_the_plan() -> None:
    """Credits of this instance's open lease that no lead has taken yet are its own to
    spend: a fresh lease does not take the gate's slack, so leads the plan has room for
    (as the simulator counts it: what was admitted) go; as leads take them they count."""
    clock = _Clock(12 * 3600.0)
    ceiling = PlanShape(uniform_shape(24)).plan(10_000).target(clock.now) + 200.0
    spent = ceiling - 4 * 3  # room for three leads of 4 credits
    lease = {"held": 40.0, "unused": 40.0}  # just granted: 10 leads' worth, none taken
    view = SpendView(
        lambda now: ("2026-12-07", 0.0),
        lambda day: 10_000,
        lambda day: spent,
        lambda now: False,
        lambda day: spent + lease["held"],
        lambda day: lease["held"],
        lambda day: lease["unused"],
    )
    gate = PacingGate(2, view, clock=clock, lead_credits=4)
    gate.set_threshold(OPEN)
    went = [gate.admits_new(1, 50.0, f"L{i}", ("leads.raw", 0, i)) for i in range(4)]
    assert went == [True, True, True, False]
    lease["unused"] = 28.0  # the three took their slices
    assert not gate.room()
    for i in range(3):
        gate.lead_done(("leads.raw", 0, i))
    assert not gate.room()  # charged inside the lease: 12 of its 40 used
    lease["unused"] = 40.0 - 4.0 * 2  # one was charged nothing: its slice came back
    assert gate.room()


def test_another_instances_untaken_lease_credits_leave_room_under_the_plan() -> None:
    """Credits of another instance's open lease that no lead had taken when it published
    its offers are not spent: while its claim is outstanding they do not take the gate's
    slack (two instances' fresh leases held the group to the plan itself), and once the
    claim is settled, or the instance reports its lease taken, they no longer count."""
    clock = _Clock(12 * 3600.0)
    ceiling = PlanShape(uniform_shape(24)).plan(10_000).target(clock.now) + 200.0
    spent = ceiling - 4 * 2 - 8  # room for two leads of 4 credits and 8 the other took
    others = {"B1": 40.0}  # the other instance's lease: granted, in committed, not settled
    view = SpendView(
        lambda now: ("2026-12-07", 0.0),
        lambda day: 10_000,
        lambda day: spent,
        lambda now: False,
        lambda day: spent + sum(others.values()),
        lambda day: 0.0,
        lambda day: 0.0,
        own_lease=lambda day: ("A1", 0),
        others_claims=lambda day: others,
    )
    mine = PacingGate(2, view, clock=clock, lead_credits=4, writer="A")
    mine.set_threshold(OPEN)
    assert not mine.room()  # the other's lease counted whole: as before
    mine.fold.apply(
        "pacing/offers/B", {"step": 1, "credits": 0, "lease": {"claim": "B1", "untaken": 32}}
    )
    went = [mine.admits_new(1, 50.0, f"L{i}", ("leads.raw", 0, i)) for i in range(3)]
    assert went == [True, True, False]  # 8 of the other's 40 taken: they count
    for i in range(2):
        mine.lead_done(("leads.raw", 0, i))
    mine.fold.apply("pacing/offers/B", {"step": 2, "credits": 0})  # its lease closed
    assert not mine.room()
    mine.fold.apply(
        "pacing/offers/B", {"step": 3, "credits": 0, "lease": {"claim": "B1", "untaken": 40}}
    )
    assert mine.room()
    spent += 40  # it took them all after all, and was settled: the report is stale
    del others["B1"]
    assert not mine.room()
    mine.tick()  # its own lease goes out with its offers, and is not its own room twice
    assert mine.fold.leases["A"] == ("A1", 0)


def test_another_instances_untaken_lease_is_no_room_when_the_ledger_cannot_pay() -> None:
    """At the end of the day another instance's lease may hold the last credits: its
    untaken ones are then no room for this instance, whose lead the ledger would refuse a
    claim and dead-letter (``budget_exhausted``) for credits not spent yet; it waits
    deferred until they are settled back. With untaken credits of its own it may go."""
    clock = _Clock(23.9 * 3600.0)
    limit = 10_000
    spent = limit - 40.0  # the other's lease of 40 holds the last credits
    own = {"unused": 0.0}
    view = SpendView(
        lambda now: ("2026-12-07", 0.0),
        lambda day: limit,
        lambda day: spent,
        lambda now: False,
        lambda day: spent + 40.0 + own["unused"],
        lambda day: own["unused"],
        lambda day: own["unused"],
        own_lease=lambda day: None,
        others_claims=lambda day: {"B1": 40.0},
    )
    mine = PacingGate(2, view, clock=clock, lead_credits=4, writer="A")
    mine.set_threshold(OPEN)
    mine.fold.apply(
        "pacing/offers/B", {"step": 1, "credits": 0, "lease": {"claim": "B1", "untaken": 40}}
    )
    assert not mine.room()
    spent -= 8.0  # a lease of 8 of its own, untaken (the plan still has room for it)
    own["unused"] = 8.0
    assert mine.room()


def test_a_frozen_group_defers_leads_until_a_step_re_anchors_the_plan() -> None:
    """While the provider is out (or spending paused) a lead that clears θ is deferred,
    not let through to wait in the guard's hold and go in one burst after; back from it,
    leads wait until the first step after the freeze has re-anchored the plan."""
    clock = _Clock(12 * 3600.0)
    out = {"now": True}
    view = SpendView(
        lambda now: ("2026-12-07", 0.0),
        lambda day: 10_000,
        lambda day: 0.0,
        lambda now: out["now"],
        lambda day: 0.0,
    )
    gate = PacingGate(2, view, clock=clock, lead_credits=4)
    gate.set_threshold(OPEN)
    assert not gate.admits_new(1, 50.0, "L1", ("leads.raw", 0, 1))
    gate.tick()
    gate.step()  # the group's step, taken frozen
    out["now"] = False
    assert not gate.room()  # the step is still the frozen one
    clock.now += 60.0
    gate.tick()
    gate.step()  # back: the plan re-anchored, what was missed spread over 30 min
    assert gate.admits_new(1, 50.0, "L2", ("leads.raw", 0, 2))


async def test_a_lead_below_the_floor_counts_among_the_steps_arrivals() -> None:
    """A new lead below the floor is never offered, but it arrived: the step's offers
    count it among the leads the plan is re-estimated from (history counts every offset
    of the input), and its credits not among the supply θ ranks."""
    clock = _Clock(1000.0)
    pacing = _pacing(clock)
    published: list[dict[str, object]] = []
    gate = PacingGate(3, None, clock=clock, publish=lambda key, value: published.append(value))
    pacing.gate = gate
    gate.set_threshold(OPEN)
    with pytest.raises(BelowFloor):
        await pacing.admit(_raw(1, 1.0), "L1", {"score": 1.0})
    assert await pacing.admit(_raw(2, 50.0), "L2", {"score": 50.0}) is None
    clock.now += 60.0
    gate.tick()
    assert [(p["leads"], p["credits"]) for p in published] == [(2, 1)]


async def test_a_deferred_lead_waits_with_its_worth_decaying() -> None:
    """A deferred lead is checked against θ at its worth now, not at what it was worth
    when its record was read back: score 40 clears θ 25 when read, but after a half-life
    behind an earlier lead of its partition it is worth 20 and waits, until θ falls."""
    clock = _Clock(1000.0)
    # No floor here: what decays is judged against θ and the bands alone. Worth 20 after
    # a half-life: still band 2.
    edges = (10.0, 15.0)
    pacing = _pacing(clock, halflife_s=3600.0, priority_floor=None, pacing_band_edges=edges)
    gate = pacing.gate
    assert gate is not None
    gate.set_threshold(closed_below(1e9))
    out = await pacing.admit(_raw(2, 40.0), "L2", {"score": 40.0})
    assert out is not None and out.topic == "leads.deferred.b2"
    gate.set_threshold(closed_below(25.0))
    blocker = asyncio.ensure_future(
        gate.turn(2, ("leads.deferred.b2", 0, 6), _worth(1.0), "B", expires_s=1500.0)
    )
    view = pacing.view(_Record(out.topic, 0, 7, 1_000_000, out.key, out.value, out.headers))
    lead = asyncio.ensure_future(pacing.admit(view, "L2", {"score": 40.0}))
    await asyncio.sleep(0.05)
    assert not lead.done()  # behind the blocker, though it clears θ now
    clock.now += 3600.0
    gate.set_threshold(closed_below(25.0))  # wakes both: the blocker expires
    with pytest.raises(DeferralExpired):
        await asyncio.wait_for(blocker, 5)
    await asyncio.sleep(0.05)
    assert not lead.done()  # first of its partition now, but worth 20 < 25
    gate.set_threshold(closed_below(15.0))
    assert await asyncio.wait_for(lead, 5) is None


async def test_a_head_that_blocks_a_better_lead_of_its_partition_is_deferred_again() -> None:
    """The first waiting lead of a deferral partition that does not clear θ, while a lead
    behind it does, is written again at its band's tail (its origin and first deferral
    time kept) and the lead behind goes; with nothing better behind it, it just waits."""
    clock = _Clock(2000.0)
    pacing = _pacing(clock)
    gate = pacing.gate
    assert gate is not None
    gate.set_threshold(closed_below(1e9))
    low = await pacing.admit(_raw(1, 12.0), "L1", {"score": 12.0})
    high = await pacing.admit(_raw(2, 20.0), "L2", {"score": 20.0})
    assert low is not None and high is not None and low.topic == high.topic
    clock.now += 60.0
    gate.set_threshold(closed_below(15.0))
    head = pacing.view(_Record(low.topic, 0, 6, 2_000_000, low.key, low.value, low.headers))
    waits = asyncio.ensure_future(pacing.admit(head, "L1", {"score": 12.0}))
    await asyncio.sleep(0.05)
    assert not waits.done()  # alone in its partition: it waits, not rewritten
    behind = pacing.view(_Record(high.topic, 0, 7, 2_000_000, high.key, high.value, high.headers))
    goes = asyncio.ensure_future(pacing.admit(behind, "L2", {"score": 20.0}))
    again = await asyncio.wait_for(waits, 5)
    assert again is not None and again.topic == low.topic and again.value == low.value
    assert dict(again.headers)[ORIGIN_HEADER] == dict(low.headers)[ORIGIN_HEADER]
    assert dict(again.headers)[DEFERRED_AT_HEADER] == b"2000000"  # not the clock's now
    assert await asyncio.wait_for(goes, 5) is None


async def test_a_higher_band_lead_worth_less_now_does_not_go_first() -> None:
    """Bands are by score, but a waiting lead of a higher band that may go now and whose
    worth has decayed below a lower band's lead does not hold that lead back (the
    simulator ranks by worth now); one worth less than it still waits for it."""
    clock = _Clock(1000.0)
    gate = PacingGate(3, None, clock=clock)
    gate.set_threshold(closed_below(1e9))
    stale = asyncio.ensure_future(gate.turn(2, ("d.b2", 0, 0), _worth(3.0), "S", expires_s=9999.0))
    await asyncio.sleep(0.05)
    assert not stale.done()
    gate.set_threshold(closed_below(2.0))  # it may go now, at its next check
    assert gate.admits_new(0, 8.0, "N")  # worth 8 now: the band-2 lead worth 3 is no better
    assert not gate.admits_new(0, 2.5, "M")  # worth 2.5: the band-2 lead worth 3 goes first
    assert await asyncio.wait_for(stale, 5) is True


async def test_a_deferred_lead_worth_less_than_its_band_goes_to_the_band_of_its_worth() -> None:
    """A deferred lead that waits until its worth decays below its band's lowest score is
    written again to the band its worth is in now (its origin and first deferral time
    kept), so the newer leads of its band are not held behind it; before that it waits."""
    clock = _Clock(1000.0)
    # No floor here: what decays is judged against θ and the bands alone.
    edges = (10.0, 30.0)
    pacing = _pacing(clock, halflife_s=3600.0, priority_floor=None, pacing_band_edges=edges)
    gate = pacing.gate
    assert gate is not None
    gate.set_threshold(closed_below(1e9))
    out = await pacing.admit(_raw(2, 40.0), "L2", {"score": 40.0})
    assert out is not None and out.topic == "leads.deferred.b2"
    view = pacing.view(_Record(out.topic, 0, 7, 1_000_000, out.key, out.value, out.headers))
    lead = asyncio.ensure_future(pacing.admit(view, "L2", {"score": 40.0}))
    await asyncio.sleep(0.05)
    assert not lead.done()
    clock.now = 1000.0 + 1400.0  # worth 30.6: still band 2's
    gate.set_threshold(closed_below(1e9))
    await asyncio.sleep(0.05)
    assert not lead.done()
    clock.now = 1000.0 + 1600.0  # worth 29.4: band 1's
    gate.set_threshold(closed_below(1e9))
    again = await asyncio.wait_for(lead, 5)
    assert again is not None and again.topic == "leads.deferred.b1" and again.value == out.value
    assert dict(again.headers)[ORIGIN_HEADER] == dict(out.headers)[ORIGIN_HEADER]
    assert dict(again.headers)[DEFERRED_AT_HEADER] == dict(out.headers)[DEFERRED_AT_HEADER]

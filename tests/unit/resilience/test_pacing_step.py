"""The group's shared pacing step: the fold every instance applies to ``pacing/`` records,
and the step that whoever computes it, and a restart, continue alike (injected clock)."""

from __future__ import annotations

import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.resilience.arrivals import learn_shape
from streamproc.resilience.pacer import PacerConfig, StepStats
from streamproc.resilience.pacing_step import (
    STEP_KEY,
    PacingFold,
    PlanShape,
    SharedStep,
    next_step,
    offers_key,
    step_plan,
)
from streamproc.resilience.spend_plan import (
    SURGE_BUCKETS,
    gate_admits,
    surge_due,
    surge_shape,
    uniform_shape,
)

CONFIG = PacerConfig(step_s=60.0)
SHAPE = PlanShape(uniform_shape(24))
DAY = "2026-12-07"
#: The day starts at this epoch second (a multiple of the step).
START = 1_796_601_600.0


def _offers(epoch_step: int, seed: int = 0) -> StepStats:
    rng = random.Random(seed * 7919 + epoch_step)
    return StepStats.of(epoch_step, ((rng.lognormvariate(0, 1), 1) for _ in range(20)))


def _step(
    previous: SharedStep | None,
    minute: int,
    *,
    spent: float,
    writer: str = "a",
    frozen: bool = False,
    day: str = DAY,
    offers: tuple[StepStats, ...] = (),
) -> SharedStep:
    return next_step(
        previous,
        offers,
        config=CONFIG,
        shape=SHAPE,
        day=day,
        t=minute * 60.0,
        now=START + minute * 60.0,
        writer=writer,
        limit=10_000,
        spent=spent,
        frozen=frozen,
    )


def _through_json(step: SharedStep) -> SharedStep:
    """As another instance reads it back from the state topic."""
    return SharedStep.from_dict(orjson.loads(orjson.dumps(step.to_dict())))


def _run(minutes: range, spend_per_minute: float, *, handover: int | None = None) -> SharedStep:
    """Steps over ``minutes``; from ``handover`` on, another writer goes on from the JSON of
    the last record (a new leader, or a restart)."""
    previous: SharedStep | None = None
    for minute in minutes:
        if handover is not None and minute == handover and previous is not None:
            previous = _through_json(previous)
        epoch_step = int((START + minute * 60.0) // 60.0)
        previous = _step(
            previous,
            minute,
            spent=spend_per_minute * minute,
            writer="a" if handover is None or minute < handover else "b",
            offers=(_offers(epoch_step - 1),),
        )
    assert previous is not None
    return previous


def test_a_new_writer_or_a_restart_goes_on_exactly_as_one_that_never_stopped() -> None:
    """The record holds the controller's whole state: handing it over mid-day through JSON
    changes no threshold, integral or anchor."""
    straight = _run(range(600, 720), 9.0)
    handed = _run(range(600, 720), 9.0, handover=660)
    assert straight.pacer == handed.pacer
    assert (straight.anchor_s, straight.target) == (handed.anchor_s, handed.target)
    assert handed.writer == "b"


def test_the_threshold_rises_when_the_group_runs_ahead_of_the_plan() -> None:
    """The same offers, spend far ahead of the plan: a higher θ than spend behind it."""
    ahead = _run(range(600, 660), 40.0)
    behind = _run(range(600, 660), 1.0)
    assert ahead.threshold.theta > behind.threshold.theta


def test_a_frozen_step_holds_the_threshold_and_the_next_one_re_anchors_the_plan() -> None:
    """Provider out: θ holds whatever the spend; back: the plan starts from the spend then."""
    warm = _run(range(600, 640), 9.0)
    frozen = _step(warm, 640, spent=9_000.0, frozen=True)
    assert frozen.frozen and frozen.threshold == warm.threshold
    back = _step(_through_json(frozen), 641, spent=9_000.0)
    assert not back.frozen
    assert (back.anchor_s, back.anchor_spent) == (641 * 60.0, 9_000.0)
    assert back.target == pytest.approx(9_000.0)


def test_after_an_outage_the_missed_spend_is_paid_back_over_half_an_hour_by_any_writer() -> None:
    """Out two hours with nothing spent: back, the plan owes what it asked for meanwhile and
    pays it back on a line over 30 minutes (not at once, not over the day), and the debt
    travels in the record to whoever computes the next step."""
    warm = _run(range(600, 640), 3.0)  # on plan at 10:40, about
    spent = warm.spent
    frozen = warm
    for minute in range(640, 760):
        frozen = _step(frozen, minute, spent=spent, frozen=True)
    back = _step(_through_json(frozen), 760, spent=spent)
    assert back.owed > 0 and back.target == pytest.approx(spent)
    handed = _through_json(back)
    assert handed.owed == back.owed and handed.top == back.top
    half = _step(handed, 775, spent=spent, writer="b")
    whole = _step(half, 790, spent=spent, writer="b")
    # Half the debt a quarter of an hour in (plus the day's own share), all of it by 30 min.
    assert half.target - spent >= back.owed / 2
    assert whole.target - spent >= back.owed
    assert whole.target <= whole.limit


def test_a_new_day_starts_a_new_plan_and_integral_but_keeps_the_offers_it_ranks_on() -> None:
    """Day change: anchor and integral reset; the window of offers is carried over."""
    late = _run(range(1200, 1260), 6.5)
    assert late.pacer["state"]["integral"] != 0.0
    first = _step(late, 0, spent=0.0, day="2026-12-08")
    assert (first.anchor_s, first.anchor_spent) == (0.0, 0.0)
    assert len(first.pacer["history"]) == len(late.pacer["history"])
    assert first.day == "2026-12-08" and first.step == 0


def _record(day: str, step: int, writer: str) -> dict[str, object]:
    shared = _step(None, step, spent=0.0, writer=writer, day=day)
    return shared.to_dict()


_records = st.lists(
    st.tuples(st.sampled_from([DAY, "2026-12-08"]), st.integers(0, 5), st.sampled_from("abc")),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(_records)
def test_every_reader_folds_the_latest_step_and_the_first_record_of_it(
    records: list[tuple[str, int, str]],
) -> None:
    """Whatever the records, a reader holds the greatest (day, step), first in log order of
    that step (a second writer of a step during a rebalance is ignored)."""
    fold = PacingFold()
    for day, step, writer in records:
        fold.apply(STEP_KEY, _record(day, step, writer))
    best = max((day, step) for day, step, _ in records)
    first_writer = next(w for d, s, w in records if (d, s) == best)
    assert fold.current is not None
    assert (fold.current.day, fold.current.step, fold.current.writer) == (*best, first_writer)


def test_a_record_that_does_not_validate_changes_nothing() -> None:
    """A broken step is refused (ValueError) and the fold keeps the step it had."""
    fold = PacingFold()
    good = _record(DAY, 3, "a")
    assert fold.apply(STEP_KEY, good)
    broken = {**_record(DAY, 4, "b"), "at": "soon"}
    with pytest.raises(ValueError, match="at must be a finite number"):
        fold.apply(STEP_KEY, broken)
    assert fold.current is not None and fold.current.step == 3
    assert not fold.apply(STEP_KEY, None)
    assert fold.current is not None and fold.current.step == 3


def test_offers_taken_into_a_step_are_dropped_by_every_reader_and_late_ones_counted() -> None:
    """The group's offers are merged per step; a step's ``observed`` drops those it took;
    an offer of a step already taken is late and counted, and kept for the next step
    without what the step took."""
    fold = PacingFold()
    fold.apply(offers_key("a"), StepStats.of(100, [(2.0, 1)]).to_dict())
    fold.apply(offers_key("b"), StepStats.of(100, [(4.0, 3)]).to_dict())
    fold.apply(offers_key("a"), StepStats.of(101, [(8.0, 1)]).to_dict())
    before = fold.offers_before(101)
    assert [(s.step, s.credits) for s in before] == [(100, 4)]
    shared = _step(None, 5, spent=0.0, offers=before)
    assert shared.observed == 100
    fold.apply(STEP_KEY, shared.to_dict())
    assert [s.step for s in fold.offers_before(10**9)] == [101]
    fold.apply(offers_key("c"), StepStats.of(100, [(1.0, 1)]).to_dict())
    assert fold.late_offers == 1
    assert [(s.step, s.credits) for s in fold.offers_before(10**9)] == [(100, 1), (101, 1)]


def test_a_late_offer_is_taken_by_the_next_step_once() -> None:
    """Offers written after the step that would have taken them (a slow publish) count in
    the next step: its leads are in the day's arrivals and its credits in θ's window, and
    the step after that does not take them again."""
    fold = PacingFold()
    day_step = int(START // 60)
    fold.apply(offers_key("a"), StepStats.of(day_step + 4, [(2.0, 1)] * 3).to_dict())
    first = _step(None, 5, spent=0.0, offers=fold.offers_before(day_step + 5))
    fold.apply(STEP_KEY, first.to_dict())
    # Instance b's offers of the same minute come after the step.
    fold.apply(offers_key("b"), StepStats.of(day_step + 4, [(4.0, 1)] * 5).to_dict())
    fold.apply(offers_key("a"), StepStats.of(day_step + 5, [(8.0, 1)] * 2).to_dict())
    second = _step(first, 6, spent=0.0, offers=fold.offers_before(day_step + 6))
    assert sum(second.arrivals) == 3 + 5 + 2
    assert second.observed == day_step + 5
    fold.apply(STEP_KEY, second.to_dict())
    assert fold.offers_before(10**9) == ()
    third = _step(second, 7, spent=0.0, offers=fold.offers_before(day_step + 7))
    assert sum(third.arrivals) == 10


def test_offers_no_step_takes_are_kept_for_a_day_of_steps_at_most() -> None:
    """A reader of a group that no longer steps keeps the newest 1440 steps of offers."""
    fold = PacingFold()
    for step in range(1500):
        fold.apply(offers_key("a"), StepStats.of(step, [(1.0, 1)]).to_dict())
    kept = fold.offers_before(10**9)
    assert len(kept) == 1440 and kept[0].step == 60


#: A learnt day: a lead a minute expected all day (a straight line), so a plan drawn
#: toward a surge can only have been drawn by the day's arrivals.
LEARNT = PlanShape(uniform_shape(24), "leads.raw: 14 days", (60.0,) * 24)


def _arrivals_run(
    minutes: range,
    leads_per_minute: dict[range, int],
    *,
    shape: PlanShape = LEARNT,
    handover: int | None = None,
    frozen: range = range(0),
) -> list[SharedStep]:
    """The steps over ``minutes`` with ``leads_per_minute`` offered (1 credit each), spend
    on the plan; from ``handover`` on another writer goes on from the JSON record."""
    steps: list[SharedStep] = []
    previous: SharedStep | None = None
    for minute in minutes:
        if handover is not None and minute == handover and previous is not None:
            previous = _through_json(previous)
        epoch_step = int((START + minute * 60.0) // 60.0)
        leads = next((n for span, n in leads_per_minute.items() if minute - 1 in span), 0)
        offers = StepStats.of(epoch_step - 1, [(1.0, 1)] * leads)
        previous = next_step(
            previous,
            (offers,),
            config=CONFIG,
            shape=shape,
            day=DAY,
            t=minute * 60.0 + 15.0,  # a quarter of a step after the boundary, as in run
            now=START + minute * 60.0 + 15.0,
            writer="a" if handover is None or minute < handover else "b",
            limit=10_000,
            spent=0.0 if previous is None else previous.target,
            frozen=minute in frozen,
        )
        steps.append(previous)
    return steps


def _rise(steps: list[SharedStep], first: int, last: int) -> float:
    """How much the plan's target rose between two minutes of a run starting at 13:00."""
    return steps[last - 780].target - steps[first - 780].target


def test_a_surge_of_arrivals_draws_the_plan_toward_it_and_lets_go_after() -> None:
    """Three times the expected leads 14:00-15:00: the plan then asks for well more than
    the learnt one over the next half hour, and an hour after the surge about the same
    again; the day's arrivals are counted per quarter-hour in the record."""
    minutes = range(780, 1080)
    quiet = _arrivals_run(minutes, {range(0, 1440): 1})
    surge = _arrivals_run(minutes, {range(840, 900): 3, range(0, 1440): 1})
    assert surge[-1].arrivals[55:60] == (15, 45, 45, 45, 45)
    assert quiet[-1].arrivals[55:60] == (15, 15, 15, 15, 15)
    assert _rise(surge, 900, 930) > 1.5 * _rise(quiet, 900, 930)
    assert (
        0.8 * _rise(quiet, 1020, 1050) < _rise(surge, 1020, 1050) < 1.1 * _rise(quiet, 1020, 1050)
    )
    assert all(step.target <= step.limit for step in surge)


def test_the_re_estimated_plan_is_handed_over_exactly() -> None:
    """A new writer (or a restart) mid-surge goes on from the JSON record with the same
    plan, arrivals and threshold as one that never stopped."""
    minutes = range(780, 960)
    spans = {range(840, 900): 3, range(0, 1440): 1}
    straight = _arrivals_run(minutes, spans)
    handed = _arrivals_run(minutes, spans, handover=905)
    assert handed[-1].writer == "b"
    assert [s.target for s in handed] == [s.target for s in straight]
    assert handed[-1].to_dict() == {**straight[-1].to_dict(), "writer": "b"}


def test_the_step_re_estimates_the_plan_as_the_day_simulator_does() -> None:
    """One code path: the group's step, fed the offers minute by minute, plans exactly
    what the simulator's loop does with the same leads counted by arrival time
    (``SpendPlan.surge`` at the first step of each quarter-hour)."""
    minutes = range(780, 1000)
    spans = {range(840, 900): 3, range(930, 940): 9, range(0, 1440): 1}
    steps = _arrivals_run(minutes, spans)
    expected = LEARNT.expected_quarters
    assert expected is not None
    seen = [0] * SURGE_BUCKETS
    plan = LEARNT.plan(10_000)
    before = None
    for minute, step in zip(minutes, steps, strict=True):
        t = minute * 60.0 + 15.0
        # Each step takes the offers of the minute before: the leads that arrived in it.
        seen[(minute - 1) // 15] += next(n for span, n in spans.items() if minute - 1 in span)
        if before is not None and surge_due(before, t):
            plan = plan.surge(t, expected, seen, counted_s=779 * 60.0)
        before = t
        assert step.target == pytest.approx(plan.target(t), abs=1e-6)
    assert list(steps[-1].arrivals) == seen


def test_a_group_that_begins_mid_day_waits_for_a_whole_hour_of_arrivals() -> None:
    """Pacing from 14:00 on: an hour counted in part would look like a lull, so the plan is
    the learnt one until the hour read back is all counted (the first re-estimate at
    15:00 reads 14:00-15:00, counted from 13:59)."""
    steps = _arrivals_run(range(840, 930), {range(0, 1440): 3})
    first = next(i for i, s in enumerate(steps) if s.shape is not None) + 840
    assert first == 900
    assert steps[first - 840].counted_s == 839 * 60.0


def test_a_frozen_step_counts_the_arrivals_but_keeps_the_plan() -> None:
    """Provider out over a quarter-hour boundary: the leads are counted, the plan is not
    re-estimated (θ holds); the first step back re-estimates it."""
    spans = {range(0, 1440): 3}
    steps = _arrivals_run(range(780, 880), spans, frozen=range(855, 870))
    assert steps[855 - 780].frozen and steps[855 - 780].shape == steps[854 - 780].shape
    assert steps[869 - 780].arrivals[56] == 45
    back = steps[870 - 780]
    assert not back.frozen and back.shape != steps[869 - 780].shape


def test_a_shape_with_no_expected_arrivals_is_never_re_estimated() -> None:
    """The straight line (no history) has nothing to compare the day with: no re-estimate."""
    steps = _arrivals_run(range(780, 900), {range(0, 1440): 5}, shape=SHAPE)
    assert all(step.shape is None for step in steps)
    assert steps[-1].arrivals[55] == 75


def test_a_step_record_of_an_earlier_version_starts_counting_the_day_at_once() -> None:
    """A record without arrivals (written before they were counted) is read as none
    counted: counting starts with the next step, and its debt keeps the usual half hour."""
    old = _arrivals_run(range(780, 800), {range(0, 1440): 1})[-1].to_dict()
    for name in ("arrivals", "counted_s", "shape", "owed_s"):
        del old[name]
    read = SharedStep.from_dict({**old, "owed": 5.0})
    assert read.arrivals == () and read.owed_s == 1800.0
    epoch_step = int((START + 800 * 60.0) // 60.0)
    nxt = next_step(
        read,
        (StepStats.of(epoch_step - 1, [(1.0, 1)]),),
        config=CONFIG,
        shape=LEARNT,
        day=DAY,
        t=800 * 60.0 + 15.0,
        now=START + 800 * 60.0 + 15.0,
        writer="b",
        limit=10_000,
        spent=read.target,
        frozen=False,
    )
    assert nxt.counted_s == 799 * 60.0 and sum(nxt.arrivals) == 1


def test_a_step_record_with_a_broken_shape_is_refused() -> None:
    """A re-estimated shape that does not rise to 1 does not validate: the fold keeps its step."""
    good = _arrivals_run(range(780, 790), {range(0, 1440): 1})[-1].to_dict()
    with pytest.raises(ValueError, match="shape"):
        SharedStep.from_dict({**good, "shape": [0.5, 0.2, 1.0]})
    with pytest.raises(ValueError, match="arrivals"):
        SharedStep.from_dict({**good, "arrivals": [-1] * SURGE_BUCKETS})


@pytest.mark.parametrize(
    ("name", "value"), [("limit", -1), ("anchor_spent", -1.0), ("owed", -1.0), ("owed_s", -1.0)]
)
def test_a_step_record_the_plan_cannot_be_drawn_from_is_refused(name: str, value: float) -> None:
    """A step whose limit, anchor spend or debt is negative does not validate: adopted, it
    would make the gate's plan (every lead's) and the next step raise until the next day."""
    fold = PacingFold()
    good = _arrivals_run(range(780, 790), {range(0, 1440): 1})[-1]
    assert fold.apply(STEP_KEY, good.to_dict())
    with pytest.raises(ValueError, match="must be >= 0"):
        fold.apply(STEP_KEY, {**good.to_dict(), "step": good.step + 1, name: value})
    assert fold.current is not None and fold.current.step == good.step
    assert step_plan(fold.current, LEARNT, day=DAY, limit=10_000).limit == 10_000


def test_spend_plan_surge_is_the_reshape_into_the_surge_shape() -> None:
    """``SpendPlan.surge`` at a quarter-hour is ``reshape`` into ``surge_shape`` over the
    last hour, and nothing while that hour is not all counted."""
    plan = LEARNT.plan(10_000)
    expected = (10.0,) * SURGE_BUCKETS
    seen = [30] * 60 + [0] * 36
    t = 15 * 3600.0
    assert plan.surge(t, expected, seen) == plan.reshape(t, surge_shape(expected, seen, 60))
    assert plan.surge(t, expected, seen, counted_s=14.5 * 3600) is plan


def _top_room(committed: float, t: float, current: SharedStep | None = None) -> bool:
    plan = step_plan(current, SHAPE, day=DAY, limit=10_000)
    return gate_admits(plan, t, committed=committed, credits=4, top=True)


def test_a_top_lead_goes_only_within_the_plans_top_ceiling() -> None:
    """The top layer's gate: the plan plus 4.5 % of the limit, never into the closing
    reserve before 23:00, from 23:00 into the whole of it."""
    noon = 12 * 3600.0
    ceiling = SHAPE.plan(10_000).target(noon) + 450.0
    assert _top_room(ceiling - 4, noon) and not _top_room(ceiling - 3, noon)
    late = 22.99 * 3600.0
    assert not _top_room(10_000 - 400 - 3, late)  # the reserve (4 %) is held back
    assert _top_room(10_000 - 4, 23.5 * 3600.0)
    assert not _top_room(10_000 - 3, 23.5 * 3600.0)


def test_the_top_ceiling_follows_the_groups_step_plan() -> None:
    """Re-anchored after an outage (nothing spent meanwhile), the ceiling is the step's
    plan's, not the learnt day's: the top layer cannot catch up the missed spend at once."""
    warm = _run(range(600, 640), 3.0)
    frozen = warm
    for minute in range(640, 760):
        frozen = _step(frozen, minute, spent=warm.spent, frozen=True)
    back = _step(frozen, 760, spent=warm.spent)
    t = 760 * 60.0
    assert _top_room(warm.spent + 440, t, back)
    assert not _top_room(warm.spent + 460, t, back)
    assert _top_room(warm.spent + 460, t, None)  # the learnt day's plan is far ahead


_lead_runs = st.lists(
    st.tuples(st.floats(0.0, 86_399.0), st.integers(1, 12)), min_size=1, max_size=300
)


@settings(max_examples=80, deadline=None)
@given(
    _lead_runs,
    st.integers(100, 20_000),
    st.integers(1, 20),
    st.lists(st.integers(0, 50), min_size=24, max_size=24),
)
def test_the_top_layer_never_spends_past_the_plans_ceiling_and_one_lease(
    leads: list[tuple[float, int]], limit: int, leads_per_lease: int, history: list[int]
) -> None:
    """Whatever the day's shape, its limit and the top leads' times and credits, leads let
    through by the gate alone, their claims taken in leases of ``leads_per_lease`` leads,
    never spend past the plan + 4.5 % of the limit + one lease at any time."""
    shape = learn_shape([history], source="test")
    plan = shape.plan(limit)
    gated = step_plan(None, shape, day=DAY, limit=limit)
    spent = committed = 0.0
    room_in_lease = 0.0
    for t, credits in sorted(leads):
        if not gate_admits(gated, t, committed=committed, credits=credits, top=True):
            continue
        spent += credits
        if room_in_lease < credits:  # the claimant claims the next lease
            lease = credits * leads_per_lease
            committed += lease
            room_in_lease += lease
        room_in_lease -= credits
        lease_max = 12 * leads_per_lease
        assert spent <= committed
        assert spent <= plan.target(t) + 0.045 * limit + lease_max + 1e-6
        assert spent <= limit + lease_max


def test_a_lead_that_clears_theta_goes_only_within_the_plan_and_2_percent() -> None:
    """Every lead meets the gate, not only the top layer's: the plan plus 2 % of the
    limit, never into the closing reserve, and the top layer 2.5 % further."""
    plan = step_plan(None, SHAPE, day=DAY, limit=10_000)
    noon = 12 * 3600.0
    ceiling = plan.target(noon) + 200.0
    assert gate_admits(plan, noon, committed=ceiling - 4, credits=4, top=False)
    assert not gate_admits(plan, noon, committed=ceiling - 3, credits=4, top=False)
    assert gate_admits(plan, noon, committed=ceiling - 3, credits=4, top=True)
    assert not gate_admits(plan, 23.5 * 3600.0, committed=plan.limit - 4, credits=4, top=False)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.0, 86_399.0), st.integers(0, 3), st.integers(0, 3)),
        min_size=1,
        max_size=400,
    ),
    st.integers(100, 20_000),
    st.integers(1, 20),
    st.integers(1, 4),
    st.lists(st.integers(0, 50), min_size=24, max_size=24),
)
def test_leads_that_clear_theta_never_spend_past_the_plan_and_one_lease_per_instance(
    arrivals: list[tuple[float, int, int]],
    limit: int,
    leads_per_lease: int,
    instances: int,
    history: list[int],
) -> None:
    """Whatever the day's shape, its limit and when leads that clear θ arrive at which of
    ``instances``, each gating with the group's ledger (claims of leases of
    ``leads_per_lease`` leads, less each other instance's latest, perhaps not read back
    yet) and its own leads in flight: the group never commits past the plan + 2 % of the
    limit + one lease per instance, nor past the limit."""
    credits = 4  # credits_per_lead: what every lead reserves
    lease = credits * leads_per_lease
    shape = learn_shape([history], source="test")
    plan = step_plan(None, shape, day=DAY, limit=limit)
    claimed = [0] * instances  # credits each instance's leases claimed (the ledger)
    latest = [0] * instances  # each one's latest claim, which the others may not see yet
    room = [0] * instances  # what is left of each one's lease
    in_flight = [0] * instances
    for t, which, finished in sorted(arrivals):
        me = which % instances
        in_flight[me] = max(0, in_flight[me] - finished)  # leads done meanwhile
        unseen = sum(latest[i] for i in range(instances) if i != me)
        committed = sum(claimed) - unseen + in_flight[me] * credits
        if not gate_admits(plan, t, committed=committed, credits=credits, top=False):
            continue
        if room[me] < credits:  # the claimant claims the next lease, as the ledger allows
            amount = min(lease, limit - sum(claimed))
            if amount < credits:
                continue  # the budget cannot pay: held, not sent on
            claimed[me] += amount
            latest[me] = amount
            room[me] += amount
        room[me] -= credits
        in_flight[me] += 1
        assert sum(claimed) <= plan.target(t) + 0.02 * limit + instances * lease + 1e-6
        assert sum(claimed) <= limit

"""Pacer: the threshold rises when spend runs ahead of the plan, falls when it lags,
holds while frozen, and every instance computes the same one."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.resilience.pacer import (
    Pacer,
    PacerConfig,
    PacerState,
    StepStats,
    Threshold,
    density_bucket,
    tie_draw,
)
from streamproc.resilience.spend_plan import SpendPlan, uniform_shape

DAY_S = 86400.0
#: About a third of what offers() brings in a day (20 leads of 6 credits a minute).
PLAN = SpendPlan(limit=50_000, day_s=DAY_S, finish_s=DAY_S, shape=uniform_shape(24), blend=0.0)


def offers(step: int, seed: int = 0, leads: int = 20) -> StepStats:
    rng = random.Random(seed * 100_003 + step)
    return StepStats.of(step, ((rng.lognormvariate(0, 1) / 6, 6) for _ in range(leads)))


def warmed(config: PacerConfig | None = None, steps: int = 60) -> Pacer:
    pacer = Pacer(config)
    for step in range(steps):
        pacer.observe(offers(step))
    return pacer


@settings(max_examples=60, deadline=None)
@given(gap=st.floats(100, 3000), minute=st.integers(60, 1000))
def test_ahead_of_plan_raises_theta_and_behind_lowers_it(gap: float, minute: int) -> None:
    """From the same history, spend above the plan gives a higher θ than spend on it,
    and spend below the plan a lower one (or everything admitted already)."""
    t = minute * 60.0
    on = warmed().update(minute, t, PLAN.target(t), PLAN)
    ahead = warmed().update(minute, t, PLAN.target(t) + gap, PLAN)
    behind = warmed().update(minute, t, max(0.0, PLAN.target(t) - gap), PLAN)
    assert ahead.admit <= on.admit <= behind.admit
    assert ahead.admit < behind.admit
    assert ahead.threshold.theta >= on.threshold.theta >= behind.threshold.theta


def test_the_integral_moves_against_the_error() -> None:
    """Steadily ahead of plan, the integral falls step after step (the admit share
    shrinks further); steadily behind, it rises; it stays within its limit."""
    ahead, behind = warmed(), warmed()
    for step in range(60, 90):
        t = step * 60.0
        ahead.update(step, t, PLAN.target(t) + 500, PLAN)
        behind.update(step, t, PLAN.target(t) - 500, PLAN)
    limit = PacerConfig().integral_limit
    assert -limit <= ahead.state.integral < 0 < behind.state.integral <= limit


def test_a_freeze_holds_theta_the_share_and_the_integral() -> None:
    """While the provider is out, however far the spend falls behind, θ, the admit share
    and the integral stay where they were: nothing builds up to be dumped later."""
    pacer = warmed()
    before = pacer.update(60, 3600.0, PLAN.target(3600.0), PLAN)
    for step in range(61, 181):
        pacer.observe(offers(step))
        state = pacer.update(step, step * 60.0, before.step, PLAN, frozen=True)
        assert state.frozen
        assert (state.threshold, state.admit, state.integral) == (
            before.threshold,
            before.admit,
            before.integral,
        )


def test_no_integration_while_everything_is_admitted_and_still_behind() -> None:
    """Anti-windup: lagging with the admit share pinned at 1, the integral does not grow,
    so catching up later does not overshoot."""
    pacer = warmed()
    for step in range(600, 700):
        pacer.observe(offers(step))
        state = pacer.update(step, step * 60.0, 0.0, PLAN)  # nothing spent by 10:00
    assert state.admit == 1.0
    assert state.integral == 0.0


def test_theta_lets_through_the_asked_share_of_credits() -> None:
    """θ is the credit-weighted quantile: of the window's offers, about the admit share
    clears it (ties split by the stable draw)."""
    pacer = warmed()
    threshold = pacer._quantile(0.25)
    passed = offered = 0
    for step in range(60):
        rng = random.Random(step)
        for i in range(20):
            density = rng.lognormvariate(0, 1) / 6
            offered += 6
            passed += 6 * threshold.admits(density, tie_draw(f"{step}-{i}"))
    assert abs(passed / offered - 0.25) < 0.05


def test_equal_scores_are_throttled_by_the_draw() -> None:
    """With every score equal, θ sits on their one bucket and the draw admits its share."""
    pacer = Pacer()
    for step in range(30):
        pacer.observe(StepStats.of(step, [(1.0, 5)] * 10))
    threshold = pacer._quantile(0.3)
    assert threshold.bucket == density_bucket(1.0)
    admitted = sum(threshold.admits(1.0, tie_draw(f"lead-{i}")) for i in range(2000))
    assert 500 < admitted < 700


def test_before_any_offer_the_pacer_starts_slow() -> None:
    """No history: the start share of leads pass, never all of them."""
    state = Pacer().update(0, 0.0, 0.0, PLAN)
    assert state.threshold.bucket is None
    assert state.admit == PacerConfig().start_admit < 1


def test_every_instance_computes_the_same_threshold_and_a_restore_continues_it() -> None:
    """Two pacers fed the same records agree at every step; one restored from a JSON
    snapshot mid-day goes on exactly as the one that never stopped."""
    a, b = Pacer(), Pacer()
    restored: Pacer | None = None
    for step in range(240):
        t = step * 60.0
        spent = PLAN.target(t) * (1.1 if step % 7 == 0 else 0.95)
        stats = offers(step, seed=3)
        for pacer in (a, b) if restored is None else (a, b, restored):
            pacer.observe(stats)
        sa = a.update(step, t, spent, PLAN)
        assert b.update(step, t, spent, PLAN) == sa
        if restored is not None:
            assert restored.update(step, t, spent, PLAN) == sa
        if step == 120:
            restored = Pacer.restore(json.loads(json.dumps(a.snapshot())))


def test_state_and_stats_survive_their_dict_form() -> None:
    """to_dict/from_dict give back the same state and the same step record."""
    state = PacerState(7, -0.4, 0.3, Threshold(-3, 0.25), frozen=True)
    assert PacerState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    stats = offers(5)
    assert StepStats.from_dict(json.loads(json.dumps(stats.to_dict()))) == stats


def test_the_draw_is_stable_and_uniform_enough() -> None:
    """The same key always draws the same value; keys spread over [0, 1)."""
    assert tie_draw("lead-1") == tie_draw("lead-1")
    draws = [tie_draw(f"k{i}") for i in range(4000)]
    assert all(0 <= d < 1 for d in draws)
    assert 0.45 < sum(draws) / len(draws) < 0.55


def test_the_top_layer_is_the_asked_share_of_the_best_offers() -> None:
    """The top layer lets through about ``top_share`` of the offered credits, the best;
    a top lead is above θ whenever θ admits more than the top share."""
    pacer = warmed()
    state = pacer.update(60, 3600.0, PLAN.target(3600.0), PLAN)
    assert state.top is not None
    passed = offered = 0
    for step in range(60):
        rng = random.Random(step)
        for i in range(20):
            density = rng.lognormvariate(0, 1) / 6
            offered += 6
            passed += 6 * state.admits_top(density, tie_draw(f"{step}-{i}"))
    assert abs(passed / offered - PacerConfig().top_share) < 0.03
    if state.admit > PacerConfig().top_share:
        assert state.top.theta >= state.threshold.theta


def test_the_top_layer_holds_while_theta_swings_with_the_spend() -> None:
    """Far ahead of the plan θ rises to the top of its window, but the top layer, ranked on
    the longer window and not on the spend, stays where it was: the best leads still go."""
    on = warmed().update(60, 3600.0, PLAN.target(3600.0), PLAN)
    ahead = warmed().update(60, 3600.0, PLAN.target(3600.0) + 5000, PLAN)
    assert ahead.threshold.theta > on.threshold.theta
    assert ahead.top == on.top is not None


def test_the_top_layer_is_ranked_on_the_longer_window() -> None:
    """An hour of offers ten times worse than the morning's moves θ's window but not the
    top layer's: a burst of poor leads does not make its own best tenth the top."""
    config = PacerConfig(window_steps=60, top_window_steps=720)
    pacer = warmed(config, steps=300)
    before = pacer.update(300, 18_000.0, PLAN.target(18_000.0), PLAN)
    for step in range(300, 360):
        rng = random.Random(step)
        pacer.observe(StepStats.of(step, ((rng.lognormvariate(0, 1) / 60, 6) for _ in range(20))))
    after = pacer.update(360, 21_600.0, PLAN.target(21_600.0), PLAN)
    assert after.threshold.theta < before.threshold.theta / 4
    assert before.top is not None and after.top is not None
    assert after.top.theta >= before.top.theta / 1.5


def test_a_freeze_holds_the_top_layer_too() -> None:
    """While the provider is out the top layer holds with θ."""
    pacer = warmed()
    before = pacer.update(60, 3600.0, PLAN.target(3600.0), PLAN)
    for step in range(61, 121):
        pacer.observe(StepStats.of(step, [(100.0, 6)] * 20))
        assert pacer.update(step, step * 60.0, 0.0, PLAN, frozen=True).top == before.top


def test_a_snapshot_without_a_top_layer_restores_with_none() -> None:
    """A state written before the top layer existed restores with no top layer; one with
    it keeps it."""
    old = {"step": 3, "integral": 0.1, "admit": 0.2, "bucket": -4, "share": 0.5}
    assert PacerState.from_dict(old).top is None
    state = PacerState(7, -0.4, 0.3, Threshold(-3, 0.25), top=Threshold(2, 0.5))
    assert PacerState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_step_stats_count_the_leads_offered_and_a_record_without_them_counts_none() -> None:
    """The leads of a step (the day's arrivals) are counted, summed by merge and kept
    through JSON; a record of an earlier version is read as none."""
    a = StepStats.of(7, [(1.0, 4), (2.0, 4)])
    b = StepStats.of(7, [(3.0, 5)])
    merged = a.merge(b)
    assert (a.leads, merged.leads, merged.credits) == (2, 3, 13)
    assert StepStats.from_dict(merged.to_dict()) == merged
    old = {k: v for k, v in merged.to_dict().items() if k != "leads"}
    assert StepStats.from_dict(old).leads == 0

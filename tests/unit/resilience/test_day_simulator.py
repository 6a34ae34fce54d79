"""The day simulator on a tiny day: the orderings that are properties of the algorithm."""

from __future__ import annotations

import pytest

from bench.daysim import DayConfig, measure, run, run_oracle, scenario


@pytest.mark.parametrize("seed", [1, 2])
def test_oracle_beats_paced_beats_first_come_on_value(seed: int) -> None:
    """On a small oversubscribed day, value captured orders oracle >= paced >= first come,
    the paced day spends nearly all the budget, and never more than it."""
    cfg = DayConfig(budget=600, seed=seed, history_days=4)
    day = scenario("base", cfg)
    oracle = run_oracle(day, cfg)
    paced = run("paced", day, cfg)
    first = run("first_come", day, cfg)
    assert oracle.value >= paced.value >= first.value
    row = measure(paced, day, cfg, oracle)
    assert 95.0 <= row.spent_pct <= 100.0
    assert max(paced.spent_by_minute) <= cfg.budget


def test_an_outage_freezes_spending_and_the_plan_follows() -> None:
    """During the outage nothing is spent, and the live plan is re-anchored to the
    spend, so nothing is owed to be dumped afterwards."""
    cfg = DayConfig(budget=600, seed=3, history_days=4)
    day = scenario("outage_10_12", cfg)
    paced = run("paced", day, cfg)
    during = paced.spent_by_minute[600:719]
    assert during[0] == during[-1]
    assert abs(paced.plan_by_minute[718] - paced.spent_by_minute[718]) < 0.01 * cfg.budget


def test_the_service_s_drain_and_no_gate_cost_value_and_spend_out_early() -> None:
    """Run the way streamproc run is now (a deferred lead keeps the worth it had when
    deferred, no per-claim gate), the paced day captures less value than with live decay
    and the gate, spends further from the plan, and never past the budget (the e2e's
    comparison row, bench/dayrun.py)."""
    cfg = DayConfig(budget=600, seed=1, history_days=4, credits_min=6, credits_max=6)
    day = scenario("base", cfg)
    oracle = run_oracle(day, cfg)
    paced = measure(run("paced", day, cfg), day, cfg, oracle)
    service = DayConfig(
        budget=600,
        seed=1,
        history_days=4,
        credits_min=6,
        credits_max=6,
        fixed_deferred_worth=True,
        ledger_gate=False,
    )
    as_run = run("paced", day, service)
    row = measure(as_run, day, service, oracle)
    assert row.value_pct < paced.value_pct
    assert row.max_dev_pct is not None and paced.max_dev_pct is not None
    assert row.max_dev_pct > paced.max_dev_pct
    assert max(as_run.spent_by_minute) <= service.budget

"""A budget day, simulated: the pacing core of issue 21 on a virtual clock, against baselines.

A discrete-event loop steps a virtual minute at a time (1,440 steps a day, as Yahoo's
pacing simulator does) and drives the pure :mod:`streamproc.resilience` pieces: the spend
plan, the pacer and the score decay. No broker, no provider, no wall clock: one day of one
policy takes well under a second.

The day: non-homogeneous arrivals (45 % between 08:00 and 11:00), three times more
credits asked for than the budget holds, lognormal scores (sigma = 1), 4-8 credits a lead,
a value that halves every 60 minutes a lead waits. Policies:

* ``first_come``: today's streamproc, first come until the budget is gone;
* ``paced``: plan + pacer + score + deferral (what issue 21 builds): the top layer goes
  whatever θ says (into the closing reserve from 23:00), the plan is reshaped every
  quarter-hour from the arrivals seen, and after an outage the spend it missed is paid
  back over an hour;
* ``pacing_only``: the same with every score equal (LinkedIn-style throttling);
* ``priority_only``: no plan, a fixed density cutoff learned from past days, first come
  above it until the budget is gone;
* ``oracle``: knows the whole day: best value per credit first, on arrival (a lead that
  arrives during an outage is worth what it is worth when the provider is back).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from streamproc.resilience.pacer import Pacer, PacerConfig, StepStats, Threshold, tie_draw
from streamproc.resilience.priority import decay
from streamproc.resilience.spend_plan import (
    GATE_SLACK,
    SURGE_BUCKETS,
    TOP_SLACK,
    SpendPlan,
    forecast_shape,
    gate_admits,
    surge_due,
)

MINUTES = 1440
DAY_S = 86400.0
#: Forecast buckets: a quarter of an hour, the grain of the counts the forecast reads (and
#: of the arrivals the plan is re-estimated from, as in ``streamproc run``).
BUCKETS = SURGE_BUCKETS
POLICIES = ("first_come", "pacing_only", "priority_only", "paced", "oracle")
VARIANTS = ("base", "burst_23h", "outage_10_12", "restart_14h", "forecast_off_30")


@dataclass(frozen=True, slots=True)
class DayConfig:
    budget: int = 3000
    oversubscription: float = 3.0
    credits_min: int = 4
    credits_max: int = 8
    score_sigma: float = 1.0
    halflife_min: float = 60.0
    #: A deferred lead older than this expires to the DLQ (retriable).
    max_age_min: float = 480.0
    #: The plan is met by here, before the reset (the fast finish: forecasts miss).
    finish_min: float = 23 * 60 + 55
    #: alpha: the forecast's weight in the plan against the straight line.
    blend: float = 0.9
    #: Share of the budget held for the last stretch, from ``close_min`` to the finish.
    reserve: float = 0.04
    close_min: float = 23 * 60
    #: The ledger's gate: no claim past ``plan + slack`` (share of the budget; ``streamproc
    #: run``'s, :func:`gate_admits`).
    slack_share: float = GATE_SLACK
    #: How much further a top-layer lead may go past the plan (share of the budget), into
    #: the closing reserve too: slack plus this stays inside the 5 % the plan allows.
    top_slack_share: float = TOP_SLACK
    #: After an outage, what the plan asked for while the provider was out is paid back
    #: over this long, the controller's own catch-up time (0: never; the rest of the
    #: day's plan is spread as before). 60 min: 89.9 % of the oracle's value on seed 5.
    owed_min: float = 30.0
    #: Re-estimate the plan's shape each forecast bucket from the arrivals seen
    #: (:func:`surge_shape`); off: the history's shape all day.
    surge: bool = True
    #: A deferred lead keeps the worth it had when deferred while it waits (no decay),
    #: as ``streamproc run``'s drain does now (a deferred lead's density is computed once,
    #: when its deferral record is read back): the end-to-end comparison's row.
    fixed_deferred_worth: bool = False
    #: The plan's gate (plan + slack) on every admission; off: only the limit, as
    #: ``streamproc run`` had it before its plan gate (bench/RESULTS.md, the e2e day).
    ledger_gate: bool = True
    #: The top score band: this share of the day's best scores.
    top_share: float = 0.10
    history_days: int = 14
    seed: int = 1
    pacer: PacerConfig = field(default_factory=PacerConfig)

    @property
    def leads(self) -> int:
        mean = (self.credits_min + self.credits_max) / 2
        return round(self.oversubscription * self.budget / mean)


@dataclass(frozen=True, slots=True)
class Lead:
    key: str
    arrival: float  # minutes into the day
    score: float
    credits: int


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    leads: tuple[Lead, ...]
    history: tuple[tuple[int, ...], ...]  # per-bucket counts of past days, oldest first
    outage: tuple[float, float] | None = None  # minutes: the provider is out in between
    restart_at: float | None = None  # minute: instances restart, the pacer is restored
    #: Credits a crashed lease strands at the restart (one lease: two leads' worth).
    stranded: int = 12


def _hour_weights(campaign: bool = False) -> list[float]:
    """Arrival weight per hour: 45 % in 08-11, a busy working day, a quiet night."""
    other = {
        h: (0.5 if h < 7 else 1.5 if h == 7 or 18 <= h < 22 else 0.7 if h >= 22 else 3.0)
        for h in range(24)
    }
    for h in (8, 9, 10):
        other.pop(h)
    scale = 0.55 / sum(other.values())
    weights = [0.15 if h in (8, 9, 10) else other[h] * scale for h in range(24)]
    if campaign:
        # A launch nobody forecast: 30 % more leads than usual, all of them 14:00-17:00.
        weights = [w + (0.1 if 14 <= h < 17 else 0.0) for h, w in enumerate(weights)]
    return weights


def _arrivals(rng: random.Random, count: int, weights: Sequence[float]) -> list[float]:
    hours = rng.choices(range(24), weights=weights, k=count)
    return sorted(h * 60 + rng.random() * 60 for h in hours)


def _counts(times: Sequence[float]) -> tuple[int, ...]:
    counts = [0] * BUCKETS
    for t in times:
        counts[min(BUCKETS - 1, int(t / (MINUTES / BUCKETS)))] += 1
    return tuple(counts)


def _leads(rng: random.Random, cfg: DayConfig, times: Sequence[float], prefix: str) -> list[Lead]:
    return [
        Lead(
            f"{prefix}-{i}",
            t,
            rng.lognormvariate(0.0, cfg.score_sigma),
            rng.randint(cfg.credits_min, cfg.credits_max),
        )
        for i, t in enumerate(times)
    ]


def scenario(name: str, cfg: DayConfig) -> Scenario:
    """One variant of the day, drawn from ``cfg.seed`` (the same base day for every variant)."""
    rng = random.Random(cfg.seed)
    weights = _hour_weights()
    history = tuple(
        _counts(_arrivals(rng, round(cfg.leads * rng.uniform(0.85, 1.15)), weights))
        for _ in range(cfg.history_days)
    )
    leads = _leads(rng, cfg, _arrivals(rng, cfg.leads, weights), "lead")
    if name == "base":
        return Scenario(name, tuple(leads), history)
    if name == "burst_23h":
        extra = round(cfg.leads * 0.10)
        burst = sorted(23 * 60 + rng.random() * 10 for _ in range(extra))
        together = sorted(leads + _leads(rng, cfg, burst, "burst"), key=lambda lead: lead.arrival)
        return Scenario(name, tuple(together), history)
    if name == "outage_10_12":
        return Scenario(name, tuple(leads), history, outage=(600.0, 720.0))
    if name == "restart_14h":
        return Scenario(name, tuple(leads), history, restart_at=840.0)
    if name == "forecast_off_30":
        times = _arrivals(rng, round(cfg.leads * 1.3), _hour_weights(campaign=True))
        # Same budget, 30 % more leads: the oversubscription grows with the surprise.
        return Scenario(name, tuple(_leads(rng, cfg, times, "lead")), history)
    raise ValueError(f"unknown variant {name!r}")


@dataclass(slots=True)
class Outcome:
    policy: str
    variant: str
    budget: int
    admitted: dict[str, float] = field(default_factory=dict)  # key -> minute admitted
    expired: set[str] = field(default_factory=set)
    value: float = 0.0
    spent_by_minute: list[float] = field(default_factory=list)  # at each minute's end
    plan_by_minute: list[float] = field(default_factory=list)
    theta_by_minute: list[float] = field(default_factory=list)
    #: The paced policies' θ and top layer each minute (a lead-by-lead comparison's).
    threshold_by_minute: list[tuple[Threshold, Threshold | None]] = field(default_factory=list)


def _out(s: Scenario, minute: float) -> bool:
    return s.outage is not None and s.outage[0] <= minute < s.outage[1]


def _back_at(s: Scenario, arrival: float) -> float:
    """When the lead could first be served: its arrival, or the end of an outage."""
    if s.outage is not None and s.outage[0] <= arrival < s.outage[1]:
        return s.outage[1]
    return arrival


def _plan(s: Scenario, cfg: DayConfig) -> SpendPlan:
    return SpendPlan(
        limit=cfg.budget,
        day_s=DAY_S,
        finish_s=cfg.finish_min * 60,
        shape=forecast_shape(s.history),
        blend=cfg.blend,
        reserve=cfg.reserve,
        close_s=cfg.close_min * 60,
    )


def _worth(lead: Lead, minute: float, cfg: DayConfig) -> float:
    return lead.score * decay((minute - lead.arrival) * 60, cfg.halflife_min * 60)


def run_fifo(
    s: Scenario, cfg: DayConfig, cutoff: float | None = None, policy: str = "first_come"
) -> Outcome:
    """First come until the budget is gone; ``cutoff``: only leads of density above it."""
    out = Outcome(policy, s.name, cfg.budget)
    plan = _plan(s, cfg)
    spent = 0.0
    waiting: list[Lead] = []  # held in place while the provider is out (the breaker)
    leads = iter(s.leads)
    nxt = next(leads, None)
    for minute in range(MINUTES):
        while nxt is not None and nxt.arrival < minute + 1:
            waiting.append(nxt)
            nxt = next(leads, None)
        if not _out(s, minute) and not (s.restart_at is not None and minute == int(s.restart_at)):
            for lead in waiting:
                if cutoff is not None and lead.score / lead.credits < cutoff:
                    continue
                if spent + lead.credits <= cfg.budget:
                    spent += lead.credits
                    at = max(lead.arrival, float(minute))
                    out.admitted[lead.key] = at
                    out.value += _worth(lead, at, cfg)
            waiting = []
        if s.restart_at is not None and minute == int(s.restart_at):
            spent = min(float(cfg.budget), spent + s.stranded)
        out.spent_by_minute.append(spent)
        out.plan_by_minute.append(plan.target((minute + 1) * 60))
        out.theta_by_minute.append(cutoff or 0.0)
    return out


def static_cutoff(s: Scenario, cfg: DayConfig) -> float:
    """The density above which past days' leads would have filled the budget: the
    priority-only policy's fixed cutoff (drawn from the same distributions, no plan)."""
    rng = random.Random(cfg.seed + 7919)
    offers = sorted(
        (rng.lognormvariate(0.0, cfg.score_sigma) / c, c)
        for c in (rng.randint(cfg.credits_min, cfg.credits_max) for _ in range(cfg.leads * 10))
    )
    room = cfg.budget * 10.0
    for density, credits in reversed(offers):
        room -= credits
        if room <= 0:
            return density
    return 0.0


def run_oracle(s: Scenario, cfg: DayConfig) -> Outcome:
    """Best value per credit first over the whole day, each admitted as early as it can be."""
    out = Outcome("oracle", s.name, cfg.budget)
    spent = 0
    ranked = sorted(
        s.leads,
        key=lambda lead: _worth(lead, _back_at(s, lead.arrival), cfg) / lead.credits,
        reverse=True,
    )
    for lead in ranked:
        if spent + lead.credits <= cfg.budget:
            spent += lead.credits
            at = _back_at(s, lead.arrival)
            out.admitted[lead.key] = at
            out.value += _worth(lead, at, cfg)
    by_minute = [0.0] * MINUTES
    credits = {lead.key: lead.credits for lead in s.leads}
    for key, at in out.admitted.items():
        by_minute[min(MINUTES - 1, int(at))] += credits[key]
    running = 0.0
    for minute in range(MINUTES):
        running += by_minute[minute]
        out.spent_by_minute.append(running)
    return out


def run_paced(s: Scenario, cfg: DayConfig, equal_scores: bool = False) -> Outcome:
    """Plan, pacer, score and deferral: what issue 21 builds, on the virtual clock."""
    out = Outcome("pacing_only" if equal_scores else "paced", s.name, cfg.budget)
    plan = _plan(s, cfg)
    pacer = Pacer(cfg.pacer)
    spent = 0.0
    pool: list[Lead] = []

    deferred_at: dict[str, float] = {}

    def density(lead: Lead, minute: float) -> float:
        score = 1.0 if equal_scores else lead.score
        minute = min(minute, deferred_at.get(lead.key, minute))
        return score * decay((minute - lead.arrival) * 60, cfg.halflife_min * 60) / lead.credits

    def try_admit(lead: Lead, minute: float, top: bool = False) -> bool:
        nonlocal spent
        # The ledger's gate (streamproc run's): nothing past the plan plus the slack,
        # whatever θ says; a top lead may go a little further, into the closing reserve.
        # Without it (ledger_gate off): the limit only.
        if not (
            gate_admits(
                plan,
                minute * 60,
                committed=spent,
                credits=lead.credits,
                top=top,
                slack_share=cfg.slack_share,
                top_share=cfg.top_slack_share,
            )
            if cfg.ledger_gate
            else spent + lead.credits <= cfg.budget
        ):
            return False
        spent += lead.credits
        out.admitted[lead.key] = minute
        out.value += _worth(lead, minute, cfg)
        return True

    best_waiting = 0.0  # the best deferred lead that passed θ but found no room
    before_out: SpendPlan | None = None  # the plan when the provider went out
    bucket_min = MINUTES // BUCKETS
    expected = [sum(day[i] for day in s.history) / len(s.history) for i in range(BUCKETS)]
    seen = [0] * BUCKETS  # today's arrivals per forecast bucket, so far
    leads = iter(s.leads)
    nxt = next(leads, None)
    for minute in range(MINUTES):
        t = minute * 60.0
        frozen = _out(s, minute)
        if s.restart_at is not None and minute == int(s.restart_at):
            # What the state topic holds: the last snapshot and the step records. The
            # deferred leads are in their topics; a crashed lease strands its credits.
            snapshot = json.loads(
                json.dumps(
                    {"pacer": pacer.snapshot(), "anchor": [plan.anchor_s, plan.anchor_spent]}
                )
            )
            pacer = Pacer.restore(snapshot["pacer"], cfg.pacer)
            plan = replace(plan, anchor_s=snapshot["anchor"][0], anchor_spent=snapshot["anchor"][1])
            spent = min(float(cfg.budget), spent + s.stranded)
        if frozen:
            if before_out is None:
                before_out = plan
            plan = plan.replan(t, spent)
        elif before_out is not None:
            # Back: the leads that waited are the freshest in the pool; the spend the
            # plan missed is paid back over the next stretch, not at once.
            owed = max(0.0, before_out.target(t) - spent) if cfg.owed_min > 0 else 0.0
            plan = plan.replan(t, spent, owed=owed, over_s=cfg.owed_min * 60)
            before_out = None
        if cfg.surge and not frozen and surge_due(t - 60.0, t):
            # The same re-estimate as the group's step in ``streamproc run`` (pacing_step).
            plan = plan.surge(t, expected, seen)
        state = pacer.update(minute, t, spent, plan, frozen=frozen)
        threshold = state.threshold
        arrived: list[Lead] = []
        while nxt is not None and nxt.arrival < minute + 1:
            arrived.append(nxt)
            seen[min(BUCKETS - 1, int(nxt.arrival // bucket_min))] += 1
            nxt = next(leads, None)
        pacer.observe(
            StepStats.of(minute, ((density(lead, lead.arrival), lead.credits) for lead in arrived))
        )
        restarting = s.restart_at is not None and minute == int(s.restart_at)
        for lead in arrived:
            if cfg.fixed_deferred_worth:
                deferred_at[lead.key] = lead.arrival  # read back at once: its worth then
            if frozen or restarting:
                pool.append(lead)
                continue
            at = lead.arrival
            worth = density(lead, at)
            top = state.admits_top(worth, tie_draw(lead.key))
            passes = top or threshold.admits(worth, tie_draw(lead.key))
            # Never ahead of a better lead that waits for room: the sweeper serves it first.
            if not (passes and worth >= best_waiting and try_admit(lead, at, top)):
                pool.append(lead)
                if passes:
                    best_waiting = max(best_waiting, worth)
        # The sweeper: deferred leads re-offered best-first; from the finish, the rest of
        # the budget goes top-first whatever θ says.
        end = minute + 1.0
        if not frozen and not restarting and pool:
            finishing = end * 60 >= cfg.finish_min * 60
            pool.sort(key=lambda lead: density(lead, end), reverse=True)
            kept: list[Lead] = []
            best_waiting = 0.0
            for lead in pool:
                worth = density(lead, end)
                if end - lead.arrival > cfg.max_age_min:
                    out.expired.add(lead.key)
                    continue
                top = state.admits_top(worth, tie_draw(lead.key))
                passes = finishing or top or threshold.admits(worth, tie_draw(lead.key))
                if not (passes and try_admit(lead, end, top)):
                    kept.append(lead)
                    if passes:
                        best_waiting = max(best_waiting, worth)
            pool = kept
        elif pool:
            kept = []
            for lead in pool:
                if end - lead.arrival > cfg.max_age_min:
                    out.expired.add(lead.key)
                else:
                    kept.append(lead)
            pool = kept
        out.spent_by_minute.append(spent)
        out.plan_by_minute.append(plan.target(end * 60))
        out.theta_by_minute.append(threshold.theta)
        out.threshold_by_minute.append((threshold, state.top))
    return out


def run(policy: str, s: Scenario, cfg: DayConfig) -> Outcome:
    if policy == "first_come":
        return run_fifo(s, cfg)
    if policy == "priority_only":
        return run_fifo(s, cfg, static_cutoff(s, cfg), "priority_only")
    if policy == "oracle":
        return run_oracle(s, cfg)
    if policy == "paced":
        return run_paced(s, cfg)
    if policy == "pacing_only":
        return run_paced(s, cfg, equal_scores=True)
    raise ValueError(f"unknown policy {policy!r}")


@dataclass(frozen=True, slots=True)
class Row:
    variant: str
    policy: str
    spent_pct: float
    exhausted_at: float | None  # minute the spend reached 99 % of the budget
    max_dev_pct: float | None  # max |spent - plan| over the minutes, % of budget
    rmse_pct: float | None
    max_step_dev_pct: float | None  # max |Δspent - Δplan| in one minute, % of budget
    value_pct: float  # of the oracle's
    top_p95_wait_min: float
    top_lost_pct: float  # top-band leads not served by the reset (expired or waiting)
    top_expired_pct: float


def _p95(values: Sequence[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def top_band(s: Scenario, cfg: DayConfig) -> list[Lead]:
    """The day's best ``top_share`` of leads by worth per credit when they can first be
    served (their arrival, or the provider's return): what the rule and the oracle rank
    by, and what the deferral topics band by (with equal credits: by score)."""
    ranked = sorted(
        s.leads,
        key=lambda lead: _worth(lead, _back_at(s, lead.arrival), cfg) / lead.credits,
        reverse=True,
    )
    return ranked[: max(1, round(cfg.top_share * len(ranked)))]


def measure(out: Outcome, s: Scenario, cfg: DayConfig, oracle: Outcome) -> Row:
    budget = float(cfg.budget)
    spent = out.spent_by_minute
    exhausted = next((m + 1.0 for m, v in enumerate(spent) if v >= 0.99 * budget), None)
    dev: float | None = None
    rmse: float | None = None
    step_dev: float | None = None
    if out.plan_by_minute:
        gaps = [abs(a - b) for a, b in zip(spent, out.plan_by_minute, strict=True)]
        dev = 100 * max(gaps) / budget
        rmse = 100 * math.sqrt(sum(g * g for g in gaps) / len(gaps)) / budget
        steps = [
            abs((spent[m] - spent[m - 1]) - (out.plan_by_minute[m] - out.plan_by_minute[m - 1]))
            for m in range(1, len(spent))
        ]
        step_dev = 100 * max(steps) / budget
    top = top_band(s, cfg)
    waits = [
        out.admitted[lead.key] - _back_at(s, lead.arrival) if lead.key in out.admitted else math.inf
        for lead in top
    ]
    lost = sum(1 for lead in top if lead.key not in out.admitted)
    expired = sum(1 for lead in top if lead.key in out.expired)
    return Row(
        s.name,
        out.policy,
        100 * spent[-1] / budget,
        exhausted,
        dev,
        rmse,
        step_dev,
        100 * out.value / oracle.value if oracle.value else 0.0,
        max(0.0, _p95(waits)),
        100 * lost / len(top),
        100 * expired / len(top),
    )


def simulate(
    cfg: DayConfig, variants: Sequence[str] = VARIANTS
) -> tuple[list[Row], dict[tuple[str, str], Outcome]]:
    rows: list[Row] = []
    outcomes: dict[tuple[str, str], Outcome] = {}
    for name in variants:
        s = scenario(name, cfg)
        oracle = run_oracle(s, cfg)
        for policy in POLICIES:
            out = oracle if policy == "oracle" else run(policy, s, cfg)
            outcomes[(name, policy)] = out
            rows.append(measure(out, s, cfg, oracle))
    return rows, outcomes

"""One pacing threshold for the whole group: the controller's step shared on the state topic.

One instance at a time (the one that holds partition 0 of the input topic, or any, once the
last step is stale) computes the step (:func:`next_step`) and writes it under the compacted
key :data:`STEP_KEY`; every instance folds it (:class:`PacingFold`) and gates with its
threshold, so the whole group admits and defers by the same θ. The record carries the
controller's whole state (:meth:`Pacer.snapshot`: its integral and the window of offers it
ranks on) and the plan's anchor, so the next step, whoever computes it, and a restart go
on exactly from it. It also carries the day's arrivals per quarter-hour (the leads of the
offers it took) and the plan as last re-estimated from them (:meth:`SpendPlan.surge`, the
day simulator's re-estimate, at the first step of each quarter-hour).

What the controller ranks on is what the group was offered: every instance writes its
offers of each step under ``pacing/offers/<writer>`` (:class:`StepStats`, numbered
``epoch // step_s`` so that the numbers go on across days); the fold keeps those not yet
taken into a step, and the step records the last offers step it took (``observed``), so
every reader drops the same ones. Offers written after the step that would have taken
them are kept for the next one (counted as ``late_offers``).

Fold rule, the same on every reader: a step replaces the current one only when it is
later, ``(day, step)``; the first of a step in log order wins, a second one of the same
step (two writers during a rebalance) is ignored. Compaction keeps the last record of the
key, so in that rare case a restart may start from the second one until the next step.

Pure: no Kafka; times are passed in (epoch seconds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamproc.resilience.pacer import Pacer, PacerConfig, StepStats, Threshold
from streamproc.resilience.spend_plan import (
    SURGE_BUCKETS,
    SURGE_S,
    SpendPlan,
    surge_due,
)

__all__ = [
    "OFFERS_PREFIX",
    "STEP_KEY",
    "PacingFold",
    "PlanShape",
    "SharedStep",
    "next_step",
    "offers_key",
    "step_plan",
]

STEP_KEY = "pacing/step"
OFFERS_PREFIX = "pacing/offers/"
#: Steps of offers a fold keeps untaken at most: a day of minutes.
_OFFERS_KEPT = 1440

#: The plan's constants, as the day simulator settled them (docs/budget.md, "The levers").
DAY_S = 86_400.0
FINISH_S = 23 * 3600 + 55 * 60.0
CLOSE_S = 23 * 3600.0
BLEND = 0.9
RESERVE = 0.04
#: After an outage, what the plan asked for while the provider was out is paid back over
#: this long, the controller's catch-up time (the leads that waited are the best in the
#: deferral topics), not at once.
OWED_S = 1800.0


def offers_key(writer: str) -> str:
    return f"{OFFERS_PREFIX}{writer}"


@dataclass(frozen=True, slots=True)
class PlanShape:
    """The forecast cumulative arrival share at each bucket's end (``spend_plan``), and
    where it was learnt from (None: the straight line). ``expected``: the mean arrivals
    per bucket of the days it was learnt from (None: not known, the plan is not
    re-estimated during the day)."""

    shape: tuple[float, ...]
    source: str | None = None
    expected: tuple[float, ...] | None = None

    def plan(
        self,
        limit: int,
        anchor_s: float = 0.0,
        anchor_spent: float = 0.0,
        owed: float = 0.0,
        *,
        owed_s: float | None = None,
        shape: tuple[float, ...] | None = None,
    ) -> SpendPlan:
        """The day's plan; ``shape``: as re-estimated during the day (None: this one)."""
        return SpendPlan(
            limit,
            DAY_S,
            FINISH_S,
            self.shape if shape is None else shape,
            BLEND,
            RESERVE,
            CLOSE_S,
            anchor_s=anchor_s,
            anchor_spent=anchor_spent,
            owed=owed,
            owed_s=(OWED_S if owed > 0 else 0.0) if owed_s is None else owed_s,
        )

    @property
    def expected_quarters(self) -> tuple[float, ...] | None:
        """``expected`` spread evenly over the quarter-hours the day's arrivals are counted
        in (None: not known, or its buckets do not split into them)."""
        expected = self.expected
        if not expected or SURGE_BUCKETS % len(expected):
            return None
        parts = SURGE_BUCKETS // len(expected)
        return tuple(count / parts for count in expected for _ in range(parts))


def _number(data: Mapping[str, Any], name: str) -> float:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")
    return float(value)


@dataclass(frozen=True, slots=True)
class SharedStep:
    """The group's controller after step ``step`` (of ``step_s``) of budget day ``day``,
    computed by ``writer`` at ``at`` (epoch s): the spend and the plan then, the plan's
    anchor (re-anchored after an outage), the offers step it took last, and the
    controller's state (:meth:`Pacer.snapshot`)."""

    day: str
    step: int
    at: float
    writer: str
    limit: int
    spent: float
    target: float
    anchor_s: float
    anchor_spent: float
    observed: int
    pacer: Mapping[str, Any]
    #: What the plan owed at its anchor (an outage's missed spend), paid back after it.
    owed: float = 0.0
    #: Over how long after the anchor the debt is paid back.
    owed_s: float = 0.0
    #: The day's arrivals per quarter-hour as the steps took the offers (the plan is
    #: re-estimated from them), counted from ``counted_s`` into the day.
    arrivals: tuple[int, ...] = ()
    counted_s: float = 0.0
    #: The plan's shape as last re-estimated today (None: the learnt one).
    shape: tuple[float, ...] | None = None

    @property
    def frozen(self) -> bool:
        return bool(self.pacer["state"].get("frozen", False))

    @property
    def threshold(self) -> Threshold:
        return Pacer.restore(self.pacer).state.threshold

    @property
    def top(self) -> Threshold | None:
        """The top layer's threshold: a lead above it goes whatever θ says."""
        return Pacer.restore(self.pacer).state.top

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "step": self.step,
            "at": self.at,
            "writer": self.writer,
            "limit": self.limit,
            "spent": self.spent,
            "target": self.target,
            "anchor_s": self.anchor_s,
            "anchor_spent": self.anchor_spent,
            "observed": self.observed,
            "pacer": dict(self.pacer),
            "owed": self.owed,
            "owed_s": self.owed_s,
            "arrivals": list(self.arrivals),
            "counted_s": self.counted_s,
            "shape": None if self.shape is None else list(self.shape),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SharedStep:
        day, writer, pacer = data["day"], data["writer"], data["pacer"]
        if not isinstance(day, str) or not isinstance(writer, str):
            raise ValueError("day and writer must be strings")
        if not isinstance(pacer, Mapping):
            raise ValueError("pacer must be an object")
        Pacer.restore(pacer)  # validates the controller's state before it is adopted
        owed = _number(data, "owed") if "owed" in data else 0.0
        arrivals = tuple(int(count) for count in data.get("arrivals", ()))
        if any(count < 0 for count in arrivals):
            raise ValueError("arrivals must be counts >= 0")
        shape = data.get("shape")
        if shape is not None:
            shape = tuple(float(share) for share in shape)
        step = cls(
            day=day,
            step=int(data["step"]),
            at=_number(data, "at"),
            writer=writer,
            limit=int(data["limit"]),
            spent=_number(data, "spent"),
            target=_number(data, "target"),
            anchor_s=_number(data, "anchor_s"),
            anchor_spent=_number(data, "anchor_spent"),
            observed=int(data["observed"]),
            pacer=dict(pacer),
            # A record of an earlier version owes nothing, counted no arrivals and kept
            # the learnt shape (its debt is paid back over the usual half hour).
            owed=owed,
            owed_s=_number(data, "owed_s") if "owed_s" in data else OWED_S if owed else 0.0,
            arrivals=arrivals,
            counted_s=_number(data, "counted_s") if "counted_s" in data else 0.0,
            shape=shape,
        )
        # Its plan is drawn before it is adopted: one that cannot be would make every
        # lead's gate (step_plan) and every next step raise until the day is over.
        PlanShape((1.0,)).plan(
            step.limit,
            step.anchor_s,
            step.anchor_spent,
            step.owed,
            owed_s=step.owed_s,
            shape=step.shape,
        )
        return step

    def status(self) -> dict[str, Any]:
        """What ``state show`` and ``/status`` print of it (not the window of offers)."""
        threshold = self.threshold
        return {
            "day": self.day,
            "step": self.step,
            "at": self.at,
            "writer": self.writer,
            "limit": self.limit,
            "spent": self.spent,
            "target": round(self.target, 3),
            "theta": threshold.theta,
            "admit": self.pacer["state"].get("admit"),
            "frozen": self.frozen,
        }


class PacingFold:
    """The group's latest :class:`SharedStep` and the offers not taken into one yet,
    folded from the ``pacing/`` records in log order."""

    def __init__(self) -> None:
        self.current: SharedStep | None = None
        #: Offers step → the group's offers of that step, not yet taken into a step.
        self._offers: dict[int, StepStats] = {}
        #: Offers records that came after a step had taken their step (carried to the
        #: next step).
        self.late_offers = 0
        #: Writer → its open lease at its last offers record: (claim id, credits no lead
        #: had taken). The gate counts them as room while the claim is outstanding.
        self.leases: dict[str, tuple[str, float]] = {}

    def apply(self, key: str, value: Mapping[str, Any] | None) -> bool:
        """Apply one record; True when it moved the group's step. ``ValueError`` (or
        ``KeyError``/``TypeError``) for a record that does not validate: nothing changes."""
        if key == STEP_KEY:
            return self._step(value)
        if key.startswith(OFFERS_PREFIX) and value is not None:
            stats = StepStats.from_dict(value)
            lease = value.get("lease")
            writer = key[len(OFFERS_PREFIX) :]
            if isinstance(lease, Mapping):
                self.leases[writer] = (str(lease["claim"]), max(0.0, _number(lease, "untaken")))
            else:
                self.leases.pop(writer, None)
            self._offer(stats)
        return False

    def _step(self, value: Mapping[str, Any] | None) -> bool:
        if value is None:
            return False  # a tombstone: the step stands until a later one
        step = SharedStep.from_dict(value)
        current = self.current
        if current is not None and (step.day, step.step) <= (current.day, current.step):
            return False
        self.current = step
        for taken in [s for s in self._offers if s <= step.observed]:
            del self._offers[taken]
        return True

    def _offer(self, stats: StepStats) -> None:
        if self.current is not None and stats.step <= self.current.observed:
            # Written after a step took its step (a slow publish, a busy instance): the
            # next step takes it, so no lead goes uncounted in θ's window or in the day's
            # arrivals the plan is re-estimated from (dropped, a busy morning's late
            # offers drew the plan below the simulator's; bench/RESULTS.md).
            self.late_offers += 1
        held = self._offers.get(stats.step)
        self._offers[stats.step] = stats if held is None else held.merge(stats)
        if len(self._offers) > _OFFERS_KEPT:
            # No step has taken them for a day (a reader of a group that no longer paces).
            del self._offers[min(self._offers)]

    def offers_before(self, step: int) -> tuple[StepStats, ...]:
        """The group's offers of the steps before ``step`` not taken yet, oldest first."""
        return tuple(self._offers[s] for s in sorted(self._offers) if s < step)


def next_step(
    previous: SharedStep | None,
    offers: Sequence[StepStats],
    *,
    config: PacerConfig,
    shape: PlanShape,
    day: str,
    t: float,
    now: float,
    writer: str,
    limit: int,
    spent: float,
    frozen: bool,
) -> SharedStep:
    """The group's step at ``t`` seconds into budget ``day`` from the last one: a pure
    function of its arguments, so whoever computes it, and a restart, go on from the same
    state. A new day starts a new plan and integral (θ still ranks on the last hour's
    offers); back from an outage (``previous`` frozen, now not) the plan is re-anchored at
    the spend now and what it asked for meanwhile is paid back over ``OWED_S``, so the
    missed spend is never demanded in one burst. The offers' leads are the day's
    arrivals: at the first step of each quarter-hour the plan is re-estimated from them
    (:meth:`SpendPlan.surge`, as the day simulator does), unless frozen or ``shape``
    knows no expected arrivals."""
    step = int(t // config.step_s)
    if previous is not None and previous.day == day:
        pacer = Pacer.restore(previous.pacer, config)
        plan = shape.plan(
            previous.limit,
            previous.anchor_s,
            previous.anchor_spent,
            previous.owed,
            owed_s=previous.owed_s,
            shape=previous.shape,
        )
        if previous.frozen and not frozen:
            plan = plan.replan(t, spent, owed=max(0.0, plan.target(t) - spent), over_s=OWED_S)
        before_s = previous.step * config.step_s
        arrivals, counted_s = list(previous.arrivals), previous.counted_s
    else:
        history = () if previous is None else Pacer.restore(previous.pacer, config).history
        pacer = Pacer(config, history=history)
        plan = shape.plan(limit)
        before_s, arrivals, counted_s = t, [], 0.0
    if len(arrivals) != SURGE_BUCKETS:
        # The day's first step (or one after a record that counted none): counting starts
        # with the offers of the step before it.
        arrivals, counted_s = [0] * SURGE_BUCKETS, max(0.0, (step - 1) * config.step_s)
    observed = -1 if previous is None else previous.observed
    if offers:
        merged = offers[0]
        for stats in offers[1:]:
            merged = merged.merge(stats)
        pacer.observe(StepStats(step, merged.credits, merged.histogram, merged.leads))
        observed = max(observed, max(s.step for s in offers))
        day_start = now - t
        for stats in offers:
            at = stats.step * config.step_s - day_start
            if at >= 0:  # offers of the day before are not today's arrivals
                arrivals[min(SURGE_BUCKETS - 1, int(at // SURGE_S))] += stats.leads
    plan = plan.with_limit(limit)
    expected = shape.expected_quarters
    if expected is not None and not frozen and surge_due(before_s, t):
        plan = plan.surge(t, expected, arrivals, counted_s=counted_s)
    pacer.update(step, t, spent, plan, frozen=frozen)
    return SharedStep(
        day=day,
        step=step,
        at=now,
        writer=writer,
        limit=limit,
        spent=spent,
        target=plan.target(t),
        anchor_s=plan.anchor_s,
        anchor_spent=plan.anchor_spent,
        observed=observed,
        pacer=pacer.snapshot(),
        owed=plan.owed,
        owed_s=plan.owed_s,
        arrivals=tuple(arrivals),
        counted_s=counted_s,
        shape=None if plan.shape == shape.shape else plan.shape,
    )


def step_plan(current: SharedStep | None, shape: PlanShape, *, day: str, limit: int) -> SpendPlan:
    """The plan the group gates with on budget ``day`` (:func:`gate_admits`, the
    simulator's gate): its step's (anchor, debt and re-estimated shape) under ``limit``, a
    new day's from ``shape``. So a lead cannot catch up at once what an outage kept from
    being spent, nor run the day off its plan."""
    if current is not None and current.day == day:
        return shape.plan(
            current.limit,
            current.anchor_s,
            current.anchor_spent,
            current.owed,
            owed_s=current.owed_s,
            shape=current.shape,
        ).with_limit(limit)
    return shape.plan(limit)

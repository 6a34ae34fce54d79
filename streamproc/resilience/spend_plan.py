"""The spend plan of a budget day: how many credits should be spent by each moment of it.

``S*(t) = B · base(t)`` where ``base`` blends the forecast cumulative share of the day's
arrivals ``F̂`` with a straight line and reaches 1 at ``finish_s`` (the *fast finish*,
before the reset, because forecasts miss), a *closing reserve* ``r`` of the limit held
back until ``close_s`` and released by ``finish_s`` (a late burst finds credits for its
best leads, and the day is not spent out before its last hour)::

    raw(t)  = alpha·F̂(t) + (1-alpha)·t/day_s
    base(t) = (1 - r)·min(1, raw(t) / raw(finish_s)) + r·ramp(close_s .. finish_s)(t)

``F̂`` is learned from per-bucket arrival counts of past days (:func:`forecast_shape`): a
pure function of counts, so every instance that reads the same counts gets the same plan.
After a provider outage the plan is **re-anchored** (:meth:`SpendPlan.replan`): what is left
of the budget is spread over what is left of the day in the same shape, rather than
demanding the missed spend at once. Times are seconds since the day's start; docs/budget.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

__all__ = [
    "GATE_SLACK",
    "SURGE_BUCKETS",
    "SURGE_S",
    "TOP_SLACK",
    "SpendPlan",
    "forecast_shape",
    "gate_admits",
    "surge_due",
    "surge_shape",
    "uniform_shape",
]

#: The ledger's gate, as shares of the limit past the plan: a slack for a lead or two of
#: jitter for every lead, and the top layer's own room beyond it (4.5 % in all, inside the
#: 5 % the plan allows), as the day simulator settled them.
GATE_SLACK = 0.02
TOP_SLACK = 0.025

#: A bucket no past day had a lead in still gets a sliver of the day: a forecast of
#: exactly zero would make the plan flat there, and a first lead would wait for nothing.
_PRIOR_PER_BUCKET = 0.5


#: The plan is re-estimated from the day's arrivals once a quarter of an hour, and counts
#: them in quarter-hours: the grain the day simulator settled the re-estimate on.
SURGE_S = 900.0
SURGE_BUCKETS = 96
#: Buckets of arrivals each re-estimate reads back (:func:`surge_shape`): the last hour.
_SURGE_LOOKBACK = 4


def surge_due(before_s: float, t: float, every_s: float = SURGE_S) -> bool:
    """Whether the plan is re-estimated at ``t`` when the last step was at ``before_s``
    (seconds into the day): at the first step of each quarter-hour but the day's first."""
    return int(t // every_s) > max(0, int(before_s // every_s))


def uniform_shape(buckets: int) -> tuple[float, ...]:
    """The cumulative share at each bucket's end when arrivals are spread evenly."""
    if buckets <= 0:
        raise ValueError("buckets must be positive")
    return tuple((i + 1) / buckets for i in range(buckets))


def surge_shape(
    expected: Sequence[float],
    observed: Sequence[int],
    bucket: int,
    *,
    lookback: int = 4,
    horizon: int = 4,
    most: float = 3.0,
) -> tuple[float, ...]:
    """A day's shape re-estimated during the day (as Kumar et al. re-estimate the spend
    plan): the arrivals ``observed`` in the ``lookback`` buckets before ``bucket``
    against those ``expected`` there (mean counts per bucket of past days) give a ratio
    ``k`` (within ``1/most .. most``), which scales the next ``horizon`` buckets'
    expectation: a campaign nobody forecast draws the plan toward it while it lasts, and
    an hour after it ends the plan is the forecast again. Before ``bucket``: what was
    observed. The result rises from above 0 to exactly 1."""
    buckets = len(expected)
    if buckets == 0 or len(observed) != buckets or not 0 <= bucket <= buckets:
        raise ValueError("expected and observed need one count per bucket, bucket within")
    seen = sum(observed[max(0, bucket - lookback) : bucket])
    usual = sum(expected[max(0, bucket - lookback) : bucket])
    ratio = 1.0 if usual <= 0 else max(1.0 / most, min(most, seen / usual))
    counts = [
        float(observed[i]) if i < bucket else expected[i] * (ratio if i < bucket + horizon else 1.0)
        for i in range(buckets)
    ]
    return forecast_shape([counts])


def forecast_shape(
    days: Sequence[Sequence[float]], halflife_days: float = 7.0
) -> tuple[float, ...]:
    """The forecast cumulative share of a day's arrivals at each bucket's end.

    ``days`` are per-bucket arrival counts of past days, oldest first, all of one length.
    Each day is turned into shares first (a busy day does not outweigh a quiet one), then
    the days are averaged with weights halving every ``halflife_days`` into the past. No
    history: the uniform shape. The result rises from above 0 to exactly 1.
    """
    if not days:
        raise ValueError("forecast_shape needs at least one day (use uniform_shape)")
    buckets = len(days[0])
    if buckets == 0 or any(len(day) != buckets for day in days):
        raise ValueError("every day must have the same, positive number of buckets")
    if halflife_days <= 0:
        raise ValueError("halflife_days must be positive")
    mix = [0.0] * buckets
    weight_sum = 0.0
    for age, day in enumerate(reversed(days)):
        if any(count < 0 for count in day):
            raise ValueError("arrival counts must be >= 0")
        weight = 0.5 ** (age / halflife_days)
        total = sum(day) + _PRIOR_PER_BUCKET * buckets
        for i, count in enumerate(day):
            mix[i] += weight * (count + _PRIOR_PER_BUCKET) / total
        weight_sum += weight
    shape: list[float] = []
    running = 0.0
    for share in mix:
        running += share / weight_sum
        shape.append(running)
    shape[-1] = 1.0  # rounding must not leave the plan a hair short of the budget
    return tuple(min(1.0, value) for value in shape)


@dataclass(frozen=True, slots=True)
class SpendPlan:
    """``S*(t)`` for one budget day of ``limit`` credits and ``day_s`` seconds.

    ``shape`` is the forecast cumulative arrival share at the end of each of its equal
    buckets (:func:`forecast_shape`); ``blend`` is alpha, the forecast's weight against the
    straight line; the plan reaches ``limit`` at ``finish_s``. ``anchor_s`` and
    ``anchor_spent``: the plan was re-anchored there (:meth:`replan`).
    """

    limit: int
    day_s: float
    finish_s: float
    shape: tuple[float, ...]
    blend: float = 0.7
    #: Share of the limit held back until ``close_s`` (None: no reserve).
    reserve: float = 0.0
    close_s: float | None = None
    anchor_s: float = 0.0
    anchor_spent: float = 0.0
    #: Credits the plan owed at the anchor (what an outage kept from being spent), paid
    #: back evenly over ``owed_s`` after it, inside the limit (:meth:`replan`).
    owed: float = 0.0
    owed_s: float = 0.0

    def __post_init__(self) -> None:
        if self.limit < 0:
            raise ValueError("limit must be >= 0")
        if not 0 < self.finish_s <= self.day_s:
            raise ValueError("finish_s must be in (0, day_s]")
        if not self.shape or any(b < a for a, b in zip(self.shape, self.shape[1:], strict=False)):
            raise ValueError("shape must be a non-empty, non-decreasing sequence")
        if self.shape[0] < 0 or abs(self.shape[-1] - 1.0) > 1e-9:
            raise ValueError("shape must rise from >= 0 to 1")
        if not 0.0 <= self.blend <= 1.0:
            raise ValueError("blend must be in [0, 1]")
        if not 0.0 <= self.reserve < 1.0:
            raise ValueError("reserve must be in [0, 1)")
        if self.close_s is not None and not 0 <= self.close_s < self.finish_s:
            raise ValueError("close_s must be in [0, finish_s)")
        if self.anchor_spent < 0 or self.owed < 0 or self.owed_s < 0:
            raise ValueError("anchor_spent, owed and owed_s must be >= 0")

    def forecast(self, t: float) -> float:
        """``F̂(t)``: the forecast share of the day's arrivals before ``t``, in [0, 1]."""
        if t <= 0:
            return 0.0
        if t >= self.day_s:
            return 1.0
        width = self.day_s / len(self.shape)
        index = int(t // width)
        before = 0.0 if index == 0 else self.shape[index - 1]
        return before + (self.shape[index] - before) * (t - index * width) / width

    def base(self, t: float) -> float:
        """The share of the limit planned by ``t`` before any re-anchoring, in [0, 1]."""
        if t >= self.finish_s:
            return 1.0
        if t <= 0:
            return 0.0

        def raw(x: float) -> float:
            return self.blend * self.forecast(x) + (1.0 - self.blend) * x / self.day_s

        shaped = min(1.0, raw(t) / raw(self.finish_s))
        if self.reserve <= 0 or self.close_s is None:
            return shaped
        ramp = max(0.0, (t - self.close_s) / (self.finish_s - self.close_s))
        return (1.0 - self.reserve) * shaped + self.reserve * min(1.0, ramp)

    def target(self, t: float) -> float:
        """``S*(t)``: credits that should be spent by ``t``; never more than the limit."""
        start = self.base(self.anchor_s)
        spent = min(self.anchor_spent, float(self.limit))
        if t <= self.anchor_s:
            return spent
        if start >= 1.0:
            return float(self.limit)
        share = (self.base(t) - start) / (1.0 - start)
        owed = min(self.owed, self.limit - spent)
        # The debt is paid on a straight line, the rest of the limit in the plan's shape:
        # both are whole by the finish, so their sum never passes the limit.
        paid = owed * self._paid(t, share)
        return min(float(self.limit), spent + paid + (self.limit - spent - owed) * share)

    def _paid(self, t: float, share: float) -> float:
        """The share of the debt paid by ``t`` (``share``: of the plan's shape by then)."""
        if self.owed_s <= 0:
            return 1.0 if self.owed > 0 else 0.0
        return min(1.0, max(share, (t - self.anchor_s) / self.owed_s))

    def held(self, t: float) -> float:
        """Credits of the closing reserve still held back at ``t``: all of it until
        ``close_s``, then less and less until none at ``finish_s``."""
        if self.reserve <= 0 or self.close_s is None:
            return 0.0
        ramp = max(0.0, (t - self.close_s) / (self.finish_s - self.close_s))
        return self.reserve * self.limit * (1.0 - min(1.0, ramp))

    def ceiling(self, t: float, slack: float, *, top: float | None = None) -> float:
        """The most a group may have spent by ``t`` (the ledger's gate): the plan plus
        ``slack`` credits, never into what the closing reserve still holds, never past
        the limit. ``top``: the gate of a top-layer lead, which may go ``top`` credits
        further and, from ``close_s``, take the closing reserve at once (what it is held
        for: a late burst's best leads); before ``close_s`` not even a top lead may."""
        if top is not None:
            closed = self.close_s is not None and t < self.close_s
            reserve = self.held(t) if closed else 0.0
            return max(0.0, min(self.target(t) + slack + top, self.limit - reserve))
        return max(0.0, min(self.target(t) + slack, self.limit - self.held(t), float(self.limit)))

    def rate(self, t: float, horizon_s: float) -> float:
        """Credits per second the plan asks for over the next ``horizon_s``."""
        return (self.target(t + horizon_s) - self.target(t)) / horizon_s

    def replan(
        self, t: float, spent: float, *, owed: float = 0.0, over_s: float = 0.0
    ) -> SpendPlan:
        """The same plan, re-anchored so that ``spent`` at ``t`` is on plan: what is left
        of the limit is spread over the rest of the day in the plan's shape. ``owed``:
        credits of it to pay back first, on a straight line over ``over_s`` (after an
        outage, what the plan asked for while the provider was out: the leads that
        waited for it are worth most now, but not dumped in one step)."""
        return replace(
            self, anchor_s=t, anchor_spent=max(0.0, spent), owed=max(0.0, owed), owed_s=over_s
        )

    def reshape(self, t: float, shape: tuple[float, ...]) -> SpendPlan:
        """The same plan from ``t`` on in a new ``shape`` (:func:`surge_shape`): its
        target at ``t`` does not move, what is left of the limit and of any debt is
        spread over the rest of the day in the new shape. So a gap to the plan stays a
        gap (the controller still sees it) while the plan follows the day's arrivals."""
        if t <= self.anchor_s:
            return replace(self, shape=shape)
        at = self.target(t)
        start = self.base(self.anchor_s)
        share = 1.0 if start >= 1.0 else (self.base(t) - start) / (1.0 - start)
        owed = min(self.owed, self.limit - min(self.anchor_spent, float(self.limit)))
        left = owed * (1.0 - self._paid(t, share))
        over = max(0.0, self.anchor_s + self.owed_s - t)
        return replace(self, shape=shape, anchor_s=t, anchor_spent=at, owed=left, owed_s=over)

    def surge(
        self,
        t: float,
        expected: Sequence[float],
        observed: Sequence[int],
        *,
        counted_s: float = 0.0,
    ) -> SpendPlan:
        """The plan re-estimated at ``t`` from the day's arrivals so far (:meth:`reshape`
        into :func:`surge_shape`): ``expected`` and ``observed`` are counts per equal
        bucket of the day (the history's mean, today's). ``counted_s``: today's arrivals
        were counted from then on only (a group that began pacing during the day); until
        the hour read back is all counted, the plan stays as it is (an hour half counted
        would look like a lull)."""
        buckets = len(expected)
        width = self.day_s / buckets
        bucket = min(buckets, int(t // width))
        if max(0, bucket - _SURGE_LOOKBACK) * width < counted_s - 1e-9:
            return self
        return self.reshape(t, surge_shape(expected, observed, bucket, lookback=_SURGE_LOOKBACK))

    def with_limit(self, limit: int) -> SpendPlan:
        """The plan for a limit changed during the day (kept anchored where it was)."""
        return replace(self, limit=limit)


def gate_admits(
    plan: SpendPlan,
    t: float,
    *,
    committed: float,
    credits: float,
    top: bool,
    slack_share: float = GATE_SLACK,
    top_share: float = TOP_SLACK,
) -> bool:
    """The ledger's gate: whether a lead of ``credits`` may go at ``t`` when ``committed``
    credits (settled, held by granted claims, and in flight) are the group's already. It
    goes only while they and its own stay within :meth:`SpendPlan.ceiling`: the plan plus
    ``slack_share`` of the limit whatever θ says; a ``top``-layer lead ``top_share``
    further, and into the closing reserve from ``close_s``. A lead it refuses waits
    (deferred) for the plan to catch up. The simulator and ``streamproc run`` both gate
    with this one function, so they cannot drift apart."""
    top_room = top_share * plan.limit if top else None
    return committed + credits <= plan.ceiling(t, slack_share * plan.limit, top=top_room)

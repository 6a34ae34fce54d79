"""The pacing controller: from spend against the plan to an admission threshold θ.

A lead is admitted when its **density** ``score · decay(age) / credits`` clears θ: the
dual-multiplier rule of budget pacing (Balseiro et al.), which for a fractional knapsack is
the optimal rule, and which with equal scores reduces to LinkedIn's throttling (ties are
admitted by a stable hash of the lead, in the share the controller asks for).

Once per step (a minute) the group's instances each publish what they were offered
(:class:`StepStats`: credits and a histogram of log-densities); every instance folds the
same records in the same order into a :class:`Pacer`, which computes:

* the **admit share** ``a``: the credits the plan asks for over the next minutes, plus the
  gap to the plan closed over ``catchup_s`` (the proportional part), divided by the credits
  offered per second lately, times ``exp(integral)`` (the integral part, which removes a
  steady bias), clamped to ``[min_admit, 1]``; the integral stops while ``a`` is clamped
  in the direction the error pushes it (anti-windup);
* **θ**: the ``(1 - a)`` credit-weighted quantile of the densities offered over the last
  ``window_steps`` (as Uber's Cinnamon turns a rejection ratio into a priority cutoff), so
  the rule is scale-free: scores that all inflate still ration.

While the provider is out (breaker open, 402, 429) the step is **frozen**: θ, ``a`` and the
integral hold, so no error builds up to be dumped in one burst after. Deterministic: the
same records in the same order give the same θ on every instance. Pure; docs/budget.md.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from streamproc.resilience.spend_plan import SpendPlan

__all__ = [
    "Pacer",
    "PacerConfig",
    "PacerState",
    "StepStats",
    "Threshold",
    "density_bucket",
    "tie_draw",
]

#: Histogram resolution: four buckets per doubling of density (19 % apart).
_BUCKETS_PER_OCTAVE = 4
#: Densities are clamped into 2^-32 .. 2^32 of the score unit: buckets stay a small set.
_LOWEST = -32 * _BUCKETS_PER_OCTAVE
_HIGHEST = 32 * _BUCKETS_PER_OCTAVE - 1


def density_bucket(density: float) -> int:
    """The histogram bucket of a density (0 and below: the lowest bucket)."""
    if density <= 0 or math.isnan(density):
        return _LOWEST
    if math.isinf(density):
        return _HIGHEST
    bucket = math.floor(_BUCKETS_PER_OCTAVE * math.log2(density))
    return max(_LOWEST, min(_HIGHEST, bucket))


def bucket_floor(bucket: int) -> float:
    """The smallest density of a bucket."""
    return 0.0 if bucket <= _LOWEST else 2.0 ** (bucket / _BUCKETS_PER_OCTAVE)


def tie_draw(key: str) -> float:
    """A stable draw in [0, 1) from a lead's key: every instance draws the same for it."""
    # FNV-1a: stable across processes and Python versions, unlike hash().
    value = 0xCBF29CE484222325
    for byte in key.encode():
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    # FNV alone leaves keys that differ in their last characters close together in the
    # high bits; a splitmix64 finish spreads them over the whole range.
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    value ^= value >> 31
    return (value >> 11) / float(1 << 53)


@dataclass(frozen=True, slots=True)
class Threshold:
    """θ: densities in buckets above ``bucket`` pass; in ``bucket`` itself, the ``share``
    of leads whose :func:`tie_draw` is below it. ``bucket`` None: no distribution is known
    yet, and ``share`` of all leads pass."""

    bucket: int | None
    share: float

    @property
    def theta(self) -> float:
        """θ as a density (for charts and logs): the floor of its bucket."""
        return 0.0 if self.bucket is None else bucket_floor(self.bucket)

    def admits(self, density: float, draw: float) -> bool:
        if self.bucket is None:
            return draw < self.share
        own = density_bucket(density)
        return own > self.bucket or (own == self.bucket and draw < self.share)


@dataclass(frozen=True, slots=True)
class StepStats:
    """What was offered in one step: ``credits`` of leads, and those credits by density
    bucket, and how many ``leads`` (the day's arrivals the plan is re-estimated from). One
    record per instance per step; :meth:`merge` sums them."""

    step: int
    credits: int = 0
    histogram: Mapping[int, int] = field(default_factory=dict)
    leads: int = 0

    @classmethod
    def of(cls, step: int, offers: Iterable[tuple[float, int]]) -> StepStats:
        """The stats of ``(density, credits)`` offers."""
        histogram: dict[int, int] = {}
        total = leads = 0
        for density, credits in offers:
            bucket = density_bucket(density)
            histogram[bucket] = histogram.get(bucket, 0) + credits
            total += credits
            leads += 1
        return cls(step, total, histogram, leads)

    def merge(self, other: StepStats) -> StepStats:
        histogram = dict(self.histogram)
        for bucket, credits in other.histogram.items():
            histogram[bucket] = histogram.get(bucket, 0) + credits
        return StepStats(
            max(self.step, other.step),
            self.credits + other.credits,
            histogram,
            self.leads + other.leads,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "credits": self.credits,
            "histogram": {str(k): v for k, v in sorted(self.histogram.items())},
            "leads": self.leads,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepStats:
        histogram = {int(k): int(v) for k, v in dict(data.get("histogram", {})).items()}
        # A record of an earlier version counted no leads: its arrivals are not seen.
        leads = int(data.get("leads", 0))
        return cls(int(data["step"]), int(data["credits"]), histogram, leads)


@dataclass(frozen=True, slots=True)
class PacerConfig:
    """The controller's constants (why each value: docs/budget.md, "The levers")."""

    step_s: float = 60.0
    #: Steps of offers θ is the quantile of: three hours. The day's volume swings are
    #: the supply rate's to follow (``rate_steps``), not the quantile's; an hour at night
    #: held a score of leads, and θ's noise cost top leads minutes and the day 1 point of
    #: value against the oracle in the day simulator (docs/budget.md).
    window_steps: int = 180
    #: Steps the supply rate is measured over: short enough to follow the morning ramp.
    rate_steps: int = 15
    #: The plan's rate is read this far ahead (smooths the bucket edges of the forecast).
    horizon_s: float = 600.0
    #: A gap to the plan is closed over this long (the proportional gain is 1/catchup_s):
    #: half an hour; at ten minutes a small lead over the plan drove the admit share to
    #: its minimum and θ to the top of the window (the day simulator showed θ spikes).
    catchup_s: float = 1800.0
    #: Integral gain per step per unit of error (error: (spent - plan) / limit).
    integral_gain: float = 2.0
    #: |integral| bound: the admit share is never scaled by more than e^±limit.
    integral_limit: float = 1.5
    min_admit: float = 0.01
    #: Share admitted before any offer was seen: start slow, never at 1.
    start_admit: float = 0.1
    #: The top layer: this credit-weighted share of the window's best offers. As in Yahoo's
    #: Smart Pacing the layers are throttled lowest first: a top lead clears whatever θ
    #: says (it is worth many times a marginal one, and waiting halves it in an hour); the
    #: gate it meets is the plan's top ceiling (:meth:`SpendPlan.ceiling`, ``top``).
    top_share: float = 0.1
    #: Steps of offers the top layer is ranked on: half a day. An hour at night holds a
    #: score of leads, and a burst would make its own best tenth the top.
    top_window_steps: int = 720

    def __post_init__(self) -> None:
        if self.step_s <= 0 or self.horizon_s <= 0 or self.catchup_s <= 0:
            raise ValueError("step_s, horizon_s and catchup_s must be positive")
        if self.window_steps < 1 or self.rate_steps < 1 or self.top_window_steps < 1:
            raise ValueError("window_steps, rate_steps and top_window_steps must be >= 1")
        if not 0 < self.min_admit <= self.start_admit <= 1:
            raise ValueError("need 0 < min_admit <= start_admit <= 1")
        if self.integral_gain < 0 or self.integral_limit < 0:
            raise ValueError("integral_gain and integral_limit must be >= 0")
        if not 0 <= self.top_share < 1:
            raise ValueError("top_share must be in [0, 1)")


@dataclass(frozen=True, slots=True)
class PacerState:
    """What the controller decided at its last step, and what it carries to the next:
    the snapshot an instance writes to the state topic and a restart restores."""

    step: int = -1
    integral: float = 0.0
    admit: float = 0.0
    threshold: Threshold = Threshold(None, 0.0)
    frozen: bool = False
    #: The top layer's threshold (None: no offers seen yet, no lead is top).
    top: Threshold | None = None

    def admits_top(self, density: float, draw: float) -> bool:
        """Whether a lead of ``density`` is in the top layer: it goes whatever θ says."""
        top = self.top
        return top is not None and top.admits(density, draw)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "integral": self.integral,
            "admit": self.admit,
            "bucket": self.threshold.bucket,
            "share": self.threshold.share,
            "frozen": self.frozen,
            "top": None if self.top is None else [self.top.bucket, self.top.share],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PacerState:
        bucket = data.get("bucket")
        top = data.get("top")
        return cls(
            step=int(data["step"]),
            integral=float(data["integral"]),
            admit=float(data["admit"]),
            threshold=Threshold(None if bucket is None else int(bucket), float(data["share"])),
            frozen=bool(data.get("frozen", False)),
            # Snapshots written before the top layer existed have none.
            top=None if top is None else Threshold(int(top[0]), float(top[1])),
        )


def _count(totals: dict[int, int], histogram: Mapping[int, int], sign: int) -> None:
    for bucket, credits in histogram.items():
        left = totals.get(bucket, 0) + sign * credits
        if left:
            totals[bucket] = left
        else:
            del totals[bucket]


class Pacer:
    """The controller of one budget day, fed the group's step records in log order."""

    def __init__(
        self,
        config: PacerConfig | None = None,
        state: PacerState | None = None,
        history: Sequence[StepStats] = (),
    ) -> None:
        self.config = config or PacerConfig()
        start = PacerState(
            admit=self.config.start_admit, threshold=Threshold(None, self.config.start_admit)
        )
        self.state = state or start
        #: The steps kept: the longer of θ's window and the top layer's.
        self._window: deque[StepStats] = deque()
        #: θ's window's histogram (its last ``window_steps``) and the top layer's (all
        #: kept), kept up to date as steps come and go.
        self._totals: dict[int, int] = {}
        self._top_totals: dict[int, int] = {}
        for stats in history:
            self.observe(stats)

    def observe(self, stats: StepStats) -> None:
        """Add one step's offers. The records of one step from several instances may
        come one after another (they are merged), all before the next step's."""
        cfg = self.config
        if self._window and self._window[-1].step == stats.step:
            self._window[-1] = self._window[-1].merge(stats)
        else:
            self._window.append(stats)
            if len(self._window) > cfg.window_steps:
                # The step that just left θ's window (it may stay in the top layer's).
                _count(self._totals, self._window[-1 - cfg.window_steps].histogram, -1)
        _count(self._totals, stats.histogram, 1)
        _count(self._top_totals, stats.histogram, 1)
        while len(self._window) > max(cfg.window_steps, cfg.top_window_steps):
            _count(self._top_totals, self._window.popleft().histogram, -1)

    @property
    def history(self) -> tuple[StepStats, ...]:
        return tuple(self._window)

    def supply_rate(self) -> float:
        """Credits offered per second over the last ``rate_steps`` steps (0: none seen)."""
        if not self._window:
            return 0.0
        steps = min(len(self._window), self.config.rate_steps)
        recent = [self._window[-1 - i] for i in range(steps)]
        return sum(s.credits for s in recent) / (len(recent) * self.config.step_s)

    def update(
        self, step: int, t: float, spent: float, plan: SpendPlan, *, frozen: bool = False
    ) -> PacerState:
        """The threshold for the step starting at ``t`` (seconds into the day), given
        ``spent`` so far against ``plan``. ``frozen``: the provider is out; hold all."""
        cfg = self.config
        old = self.state
        if frozen:
            self.state = replace(old, step=step, frozen=True)
            return self.state
        limit = max(1, plan.limit)
        target = plan.target(t)
        error = (spent - target) / limit  # > 0: ahead of the plan
        want = max(0.0, plan.rate(t, cfg.horizon_s) - (spent - target) / cfg.catchup_s)
        supply = self.supply_rate()
        # Nothing offered yet: start slow; offers seen but none lately: take what comes.
        feed = want / supply if supply > 0 else (1.0 if self._window else cfg.start_admit)
        raw = feed * math.exp(old.integral)
        admit = min(1.0, max(cfg.min_admit, raw))
        # Anti-windup: no integrating while the admit share is pinned in the direction
        # the error pushes it (lagging at 1, or ahead at the minimum).
        pinned = (raw >= 1.0 and error < 0) or (raw <= cfg.min_admit and error > 0)
        integral = old.integral
        if not pinned:
            integral -= cfg.integral_gain * error
            integral = max(-cfg.integral_limit, min(cfg.integral_limit, integral))
        top = self._quantile(cfg.top_share, self._top_totals) if cfg.top_share > 0 else None
        if top is not None and top.bucket is None:
            top = None  # no offers seen yet: no lead is known to be top
        self.state = PacerState(step, integral, admit, self._quantile(admit), False, top)
        return self.state

    def _quantile(self, admit: float, histogram: Mapping[int, int] | None = None) -> Threshold:
        """The threshold that lets through ``admit`` of the window's offered credits."""
        histogram = self._totals if histogram is None else histogram
        total = sum(histogram.values())
        if total <= 0:
            return Threshold(None, admit)
        if admit >= 1.0:
            return Threshold(_LOWEST - 1, 1.0)
        wanted = admit * total
        above = 0.0
        for bucket in sorted(histogram, reverse=True):
            credits = histogram[bucket]
            if above + credits >= wanted:
                return Threshold(bucket, (wanted - above) / credits)
            above += credits
        return Threshold(_LOWEST - 1, 1.0)

    def snapshot(self) -> dict[str, Any]:
        """The state and the window, as the state topic would hold them."""
        return {"state": self.state.to_dict(), "history": [s.to_dict() for s in self._window]}

    @classmethod
    def restore(cls, snapshot: Mapping[str, Any], config: PacerConfig | None = None) -> Pacer:
        return cls(
            config,
            PacerState.from_dict(snapshot["state"]),
            [StepStats.from_dict(s) for s in snapshot["history"]],
        )

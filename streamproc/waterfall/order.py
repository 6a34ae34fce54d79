"""The adaptive order of a waterfall: cheapest expected credits per found answer first.

For providers that find a lead independently of each other, trying them in ascending
order of ``cost / hit rate`` (expected credits per call over the chance the call finds)
minimises the expected credits spent until the first find (the exchange argument: swapping
two neighbours ``i, j`` changes the cost by ``c_j q_i - c_i q_j``). The hit rate per
segment is not known; it is estimated from the group's answers (:mod:`.ledger`) as a Beta
posterior, and the order is drawn by **Thompson sampling**: each provider's hit rate is
drawn from its posterior and the order is that of ``cost / drawn rate``. A provider seldom
tried keeps a wide posterior and is sometimes drawn high, so it is tried again (bounded
exploration: it fades as the evidence grows); ``epsilon`` adds a floor of whole shuffles.

The **fill-rate guard** skips, in a segment, a provider whose posterior mean hit rate fell
below ``floor_hit_rate`` after ``guard_min_calls`` calls there; a share ``guard_probe`` of
leads still tries it last, so its recovery is seen. Pure: the draws come from the ``rng``
given.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from streamproc.waterfall.config import Adaptive, WaterfallConfig
from streamproc.waterfall.ledger import Tally
from streamproc.waterfall.routing import Routed

__all__ = ["Estimate", "Plan", "estimate", "plan_order"]

#: The tallies of a segment: ``(segment, provider) -> Tally`` (the ledger over its window).
Tallies = Callable[[str, str], Tally]


@dataclass(frozen=True, slots=True)
class Estimate:
    """What the group knows of a provider in a segment."""

    provider: str
    hits: float  # posterior alpha
    misses: float  # posterior beta
    cost_per_call: float
    calls: int

    @property
    def hit_rate(self) -> float:
        return self.hits / (self.hits + self.misses)

    @property
    def credits_per_found(self) -> float:
        """Expected credits per found answer, from the posterior mean."""
        return self.cost_per_call / self.hit_rate


@dataclass(frozen=True, slots=True)
class Plan:
    """The providers to try for one lead, in order, and those the guard skipped."""

    order: tuple[str, ...]
    skipped: tuple[str, ...]


def estimate(config: WaterfallConfig, provider: str, tally: Tally) -> Estimate:
    """The posterior of ``provider``'s hit rate and its expected cost per call, its charges
    seen blended with its configured price (the prior weighs as many calls as the hit
    rate's prior does)."""
    adaptive = config.adaptive
    hits = adaptive.prior_hits + tally.hits
    misses = adaptive.prior_misses + (tally.calls - tally.hits)
    price = config.price(provider)
    mean = hits / (hits + misses)
    weight = adaptive.prior_hits + adaptive.prior_misses
    priced = price.credits_per_call + price.credits_per_hit * mean
    cost = (tally.credits + weight * priced) / (tally.calls + weight)
    return Estimate(provider, hits, misses, cost, tally.calls)


def _guarded(adaptive: Adaptive, found: Estimate) -> bool:
    return found.calls >= adaptive.guard_min_calls and found.hit_rate < adaptive.floor_hit_rate


def plan_order(
    config: WaterfallConfig, routed: Routed, tallies: Tallies, rng: random.Random
) -> Plan:
    """The order of ``routed``'s providers for one lead of its segment."""
    adaptive = config.adaptive
    if adaptive.mode == "off":
        return Plan(routed.providers, ())
    estimates = [estimate(config, p, tallies(routed.segment, p)) for p in routed.providers]
    kept = [e for e in estimates if not _guarded(adaptive, e)]
    guarded = [e for e in estimates if _guarded(adaptive, e)]
    probes = [e for e in guarded if rng.random() < adaptive.guard_probe]
    if adaptive.mode == "thompson":
        drawn = {e.provider: rng.betavariate(e.hits, e.misses) for e in kept}
    else:
        drawn = {e.provider: e.hit_rate for e in kept}
    kept.sort(key=lambda e: _ratio(e.cost_per_call, drawn[e.provider]))
    order = [e.provider for e in kept]
    if adaptive.epsilon and rng.random() < adaptive.epsilon:
        rng.shuffle(order)
    order += [e.provider for e in probes]
    skipped = tuple(e.provider for e in guarded if e not in probes)
    return Plan(tuple(order), skipped)


def _ratio(cost: float, rate: float) -> float:
    if rate <= 0:
        return math.inf
    return cost / rate

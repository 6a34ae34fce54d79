"""``python -m bench.waterfall``: credits per found answer of fixed, adaptive and oracle orders.

A simulated population (no network, no broker: the waterfall's pure core only, so it runs
in seconds): leads of four segments (company size x title kind), three providers whose hit
rates and prices depend on the segment, each lead's hits drawn independently per provider.
Every strategy tries providers in its order until one finds (the stop rule: anything
found), paying each provider's price:

* each **fixed order** (all six), the same for every lead;
* the **adaptive** order (:func:`streamproc.waterfall.order.plan_order`, Thompson sampling)
  learning online, lead after lead, from the answers it gets (:mod:`.ledger`'s fold, as the
  group would share it), starting from nothing;
* the adaptive order with the **fill-rate guard** on (floor 5 %): cheaper, a little less
  found;
* the **oracle**: in each segment, ascending price over true hit rate.

Fill rate is against the union: leads that at least one provider would have found.
The goal (issue 20): adaptive within 10 % of the oracle's credits per found answer, and at
least 25 % below the worse fixed order (the worst of the six), at the same fill rate.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from streamproc.waterfall.config import Adaptive, ProviderPrice, Route, WaterfallConfig
from streamproc.waterfall.ledger import HitLedger, LocalCounts, Tally
from streamproc.waterfall.order import plan_order
from streamproc.waterfall.routing import Router
from streamproc.waterfall.run import Found, LeadWaterfall, Missed


@dataclass(frozen=True, slots=True)
class Population:
    """Prices and hit rates (segment -> provider -> rate) of a simulated population."""

    providers: tuple[ProviderPrice, ...]
    hit_rates: dict[str, dict[str, float]]


POPULATIONS = {
    # Segments differ a lot: the premium API costs 5 a call and is the one that finds
    # enterprise technical people; the cheap finder is good only on small companies.
    "strong": Population(
        (
            # An e-mail finder billed per call, strong on small companies.
            ProviderPrice(name="finder", credits_per_call=1),
            # A person API billed per match only (People Data Labs style).
            ProviderPrice(name="people", credits_per_hit=4),
            # A premium API billed per call, best on technical titles.
            ProviderPrice(name="premium", credits_per_call=5),
        ),
        {
            "smb-business": {"finder": 0.60, "people": 0.15, "premium": 0.20},
            "smb-technical": {"finder": 0.45, "people": 0.10, "premium": 0.50},
            "enterprise-business": {"finder": 0.05, "people": 0.50, "premium": 0.30},
            "enterprise-technical": {"finder": 0.03, "people": 0.20, "premium": 0.70},
        },
    ),
    # Milder: the premium API at 3 a call, rates closer together.
    "mild": Population(
        (
            ProviderPrice(name="finder", credits_per_call=1),
            ProviderPrice(name="people", credits_per_hit=4),
            ProviderPrice(name="premium", credits_per_call=3),
        ),
        {
            "smb-business": {"finder": 0.55, "people": 0.20, "premium": 0.25},
            "smb-technical": {"finder": 0.40, "people": 0.10, "premium": 0.60},
            "enterprise-business": {"finder": 0.08, "people": 0.45, "premium": 0.35},
            "enterprise-technical": {"finder": 0.04, "people": 0.25, "premium": 0.75},
        },
    ),
}
PROVIDERS = POPULATIONS["strong"].providers
HIT_RATES = POPULATIONS["strong"].hit_rates
ROUTES = tuple(
    Route(when=f"size == '{size}' && kind == '{kind}'", segment=f"{size}-{kind}")
    for size in ("smb", "enterprise")
    for kind in ("business", "technical")
)


@dataclass(frozen=True, slots=True)
class Lead:
    fields: dict[str, str]
    segment: str
    hits: dict[str, bool]


@dataclass(frozen=True, slots=True)
class Row:
    strategy: str
    credits: int
    found: int
    union: int
    leads: int

    @property
    def per_found(self) -> float:
        return self.credits / self.found

    @property
    def fill(self) -> float:
        return self.found / self.union


def population(n: int, rng: random.Random) -> list[Lead]:
    leads = []
    for _ in range(n):
        size = rng.choice(("smb", "enterprise"))
        kind = rng.choice(("business", "technical"))
        segment = f"{size}-{kind}"
        rates = HIT_RATES[segment]
        hits = {p.name: rng.random() < rates[p.name] for p in PROVIDERS}
        leads.append(Lead({"size": size, "kind": kind}, segment, hits))
    return leads


def _charge(name: str, hit: bool) -> int:
    price = next(p for p in PROVIDERS if p.name == name)
    return int(price.credits_per_call + (price.credits_per_hit if hit else 0))


def _run(
    name: str,
    leads: Sequence[Lead],
    config: WaterfallConfig,
    order_of: Callable[[Lead], tuple[str, ...]],
    learn: Callable[[Lead, str, bool, int], None] | None = None,
) -> Row:
    credits = found = union = 0
    for lead in leads:
        union += any(lead.hits.values())
        fall = LeadWaterfall(config, order_of(lead))
        while (provider := fall.next_provider()) is not None:
            hit = lead.hits[provider]
            charged = _charge(provider, hit)
            fall.record(provider, Found({"email": "x"}, charged) if hit else Missed(charged))
            if learn is not None:
                learn(lead, provider, hit, charged)
        result = fall.result()
        credits += result.credits
        found += result.verdict == "publish"
    return Row(name, credits, found, union, len(leads))


def adaptive_row(name: str, leads: Sequence[Lead], adaptive: Adaptive, seed: int) -> Row:
    config = WaterfallConfig(providers=PROVIDERS, routes=ROUTES, adaptive=adaptive)
    router = Router(config)
    ledger = HitLedger()
    counts = LocalCounts("bench")
    day = date(2026, 12, 7)
    rng = random.Random(seed)

    def tallies(segment: str, provider: str) -> Tally:
        return ledger.tally(segment, provider, day, adaptive.window_days)

    def order_of(lead: Lead) -> tuple[str, ...]:
        return plan_order(config, router.route(lead.fields), tallies, rng).order

    def learn(lead: Lead, provider: str, hit: bool, charged: int) -> None:
        segment = router.route(lead.fields).segment
        ledger.apply(*counts.observe(segment, provider, day, hit=hit, credits=charged))

    return _run(name, leads, config, order_of, learn)


def oracle_order(segment: str) -> tuple[str, ...]:
    rates = HIT_RATES[segment]

    def per_found(p: ProviderPrice) -> float:
        q = rates[p.name]
        return (p.credits_per_call + p.credits_per_hit * q) / q

    return tuple(p.name for p in sorted(PROVIDERS, key=per_found))


def _always(order: tuple[str, ...]) -> Callable[[Lead], tuple[str, ...]]:
    return lambda _lead: order


def bench(n: int, seed: int) -> list[Row]:
    leads = population(n, random.Random(seed))
    fixed = WaterfallConfig(providers=PROVIDERS, adaptive=Adaptive(mode="off"))
    rows = [
        _run("fixed " + " > ".join(order), leads, fixed, _always(order))
        for order in itertools.permutations(p.name for p in PROVIDERS)
    ]
    rows.append(adaptive_row("adaptive (Thompson)", leads, Adaptive(), seed + 1))
    rows.append(
        adaptive_row(
            "adaptive + fill-rate guard (floor 5 %)",
            leads,
            Adaptive(floor_hit_rate=0.05, guard_min_calls=200),
            seed + 1,
        )
    )
    rows.append(_run("oracle", leads, fixed, lambda lead: oracle_order(lead.segment)))
    return rows


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| strategy | credits | found | fill vs union | credits per found |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.strategy} | {r.credits:,} | {r.found:,} | {r.fill:.2%} | {r.per_found:.3f} |"
        for r in rows
    ]
    return "\n".join(lines)


def verdict(rows: Sequence[Row]) -> tuple[str, bool]:
    by_name = {r.strategy: r for r in rows}
    adaptive, oracle = by_name["adaptive (Thompson)"], by_name["oracle"]
    fixed = [r for r in rows if r.strategy.startswith("fixed")]
    worst = max(fixed, key=lambda r: r.per_found)
    best = min(fixed, key=lambda r: r.per_found)
    over_oracle = adaptive.per_found / oracle.per_found - 1
    under_worst = 1 - adaptive.per_found / worst.per_found
    under_best = 1 - adaptive.per_found / best.per_found
    ok = over_oracle <= 0.10 and under_worst >= 0.25 and adaptive.fill == oracle.fill
    text = (
        f"adaptive vs oracle: +{over_oracle:.1%} credits per found (goal <= 10 %); "
        f"vs the worst fixed order ({worst.strategy}): -{under_worst:.1%} (goal >= 25 %); "
        f"vs the best fixed order ({best.strategy}): -{under_best:.1%}; "
        f"fill {adaptive.fill:.2%} (oracle {oracle.fill:.2%}): "
        + ("goal met" if ok else "GOAL NOT MET")
    )
    return text, ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.waterfall", description=__doc__)
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--population", choices=sorted(POPULATIONS), default="strong")
    args = parser.parse_args(argv)
    global PROVIDERS, HIT_RATES
    PROVIDERS = POPULATIONS[args.population].providers
    HIT_RATES = POPULATIONS[args.population].hit_rates
    rows = bench(args.leads, args.seed)
    print(
        f"{args.leads:,} leads, 4 segments, 3 providers, population {args.population}, "
        f"seed {args.seed}"
    )
    print(table(rows))
    text, ok = verdict(rows)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""The adaptive order: cost over hit rate, learnt from the ledger, explored, guarded."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.waterfall.config import Adaptive, ProviderPrice, WaterfallConfig
from streamproc.waterfall.ledger import Tally
from streamproc.waterfall.order import plan_order
from streamproc.waterfall.routing import Routed

NAMES = ("a", "b", "c")


def _config(costs: tuple[float, ...], **adaptive: object) -> WaterfallConfig:
    providers = tuple(
        ProviderPrice(name=n, credits_per_call=c) for n, c in zip(NAMES, costs, strict=True)
    )
    return WaterfallConfig(providers=providers, adaptive=Adaptive.model_validate(adaptive))


def _expected_cost(order: tuple[str, ...], cost: dict[str, float], rate: dict[str, float]) -> float:
    total, reach = 0.0, 1.0
    for name in order:
        total += reach * cost[name]
        reach *= 1 - rate[name]
    return total


@settings(max_examples=200)
@given(
    costs=st.tuples(*[st.floats(0.5, 10)] * 3),
    rates=st.tuples(*[st.floats(0.05, 0.95)] * 3),
)
def test_with_known_rates_greedy_order_is_the_cheapest_of_every_order(
    costs: tuple[float, ...], rates: tuple[float, ...]
) -> None:
    """Given hit rates the ledger knows for sure (a million calls), the greedy order costs
    no more, in expected credits until the first find, than any other order."""
    config = _config(costs, mode="greedy")
    rate = dict(zip(NAMES, rates, strict=True))
    cost = dict(zip(NAMES, costs, strict=True))
    calls = 1_000_000

    def tallies(_segment: str, name: str) -> Tally:
        hits = round(rate[name] * calls)
        return Tally(calls, hits, round(cost[name] * calls))

    plan = plan_order(config, Routed("s", NAMES), tallies, random.Random(0))
    best = min(_expected_cost(o, cost, rate) for o in itertools.permutations(NAMES))
    assert _expected_cost(plan.order, cost, rate) <= best * (1 + 1e-6) + 1e-9


def test_thompson_tries_an_unseen_provider_first_sometimes_and_a_proven_one_mostly() -> None:
    """Against one provider proven good and cheap, an unseen one of the same price is still
    drawn first now and then (exploration), and less than a fifth of the time."""
    config = WaterfallConfig(
        providers=(
            ProviderPrice(name="a", credits_per_call=1),
            ProviderPrice(name="b", credits_per_call=1),
        )
    )

    def tallies(_segment: str, name: str) -> Tally:
        return Tally(200, 180, 200) if name == "a" else Tally()

    rng = random.Random(7)
    firsts = [
        plan_order(config, Routed("s", ("a", "b")), tallies, rng).order[0] for _ in range(2000)
    ]
    share_b = firsts.count("b") / len(firsts)
    assert 0 < share_b < 0.2


def test_the_fill_rate_guard_skips_a_provider_below_its_floor_but_probes_it() -> None:
    """A provider below the floor after enough calls is skipped, but for a few probes, which
    put it last; one with too few calls is never guarded."""
    config = _config((1, 1, 1), floor_hit_rate=0.1, guard_min_calls=50, guard_probe=0.05)
    seen = {"a": Tally(500, 10, 500), "b": Tally(500, 200, 500), "c": Tally(10, 0, 10)}
    rng = random.Random(3)
    plans = [
        plan_order(config, Routed("s", NAMES), lambda _s, n: seen[n], rng) for _ in range(2000)
    ]
    skipped = [p for p in plans if "a" in p.skipped]
    probed = [p for p in plans if "a" in p.order]
    assert len(skipped) + len(probed) == len(plans)
    assert 0 < len(probed) < 0.1 * len(plans)
    assert all(p.order[-1] == "a" for p in probed)
    assert all("c" in p.order for p in plans)


def test_off_keeps_the_configured_order() -> None:
    """``mode = off``: the route's order, whatever the ledger says."""
    config = _config((9, 1, 1), mode="off")
    plan = plan_order(
        config, Routed("s", NAMES), lambda _s, _n: Tally(100, 1, 900), random.Random()
    )
    assert plan.order == NAMES and plan.skipped == ()

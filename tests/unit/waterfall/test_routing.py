"""Routes: the first JMESPath condition that holds picks the segment and the providers."""

from __future__ import annotations

import pytest

from streamproc.errors import ConfigError
from streamproc.waterfall.config import ProviderPrice, Route, WaterfallConfig
from streamproc.waterfall.routing import Router

PROVIDERS = tuple(ProviderPrice(name=n) for n in ("finder", "people", "premium"))


def test_the_first_route_that_holds_wins_and_keeps_the_waterfalls_order() -> None:
    """An enterprise lead takes the enterprise route with its providers in the waterfall's
    order; a lead no route picks takes every provider and the default segment."""
    config = WaterfallConfig(
        providers=PROVIDERS,
        routes=(
            Route(when="employees > `1000`", segment="enterprise", providers=("premium", "people")),
            Route(when="contains(title || '', 'CTO')", segment="technical"),
        ),
    )
    router = Router(config)
    big = router.route({"employees": 5000, "title": "CTO"})
    assert (big.segment, big.providers) == ("enterprise", ("people", "premium"))
    assert router.route({"employees": 10, "title": "CTO"}).segment == "technical"
    other = router.route({"employees": 10})
    assert (other.segment, other.providers) == ("default", ("finder", "people", "premium"))


def test_a_condition_that_errs_on_a_leads_data_does_not_hold() -> None:
    """A comparison of text with a number fails on that lead: the route does not apply."""
    config = WaterfallConfig(
        providers=PROVIDERS, routes=(Route(when="contains(size, 'x')", segment="s"),)
    )
    assert Router(config).route({"size": 5}).segment == "default"


def test_a_bad_condition_or_an_unknown_provider_is_one_line() -> None:
    """A condition that is not JMESPath, and a route naming an unknown provider, are refused."""
    with pytest.raises(ConfigError, match=r"routes\[0\]\.when"):
        Router(WaterfallConfig(providers=PROVIDERS, routes=(Route(when="a ==", segment="s"),)))
    with pytest.raises(ValueError, match="unknown providers"):
        WaterfallConfig(
            providers=PROVIDERS, routes=(Route(when="a", segment="s", providers=("nope",)),)
        )

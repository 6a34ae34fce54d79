"""One lead's waterfall: the stop rule, the ceiling, the merge, the last resort."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from streamproc.waterfall.config import ProviderPrice, WaterfallConfig
from streamproc.waterfall.run import (
    Found,
    LeadWaterfall,
    Missed,
    ProviderAnswer,
    Unavailable,
    merge,
    stop_rule_met,
)

PROVIDERS = (
    ProviderPrice(name="a", credits_per_call=1),
    ProviderPrice(name="b", credits_per_call=2),
    ProviderPrice(name="c", credits_per_hit=5),
)


def _drive(fall: LeadWaterfall, answers: Mapping[str, ProviderAnswer]) -> list[str]:
    asked = []
    while (name := fall.next_provider()) is not None:
        asked.append(name)
        fall.record(name, answers[name])
    return asked


def test_a_miss_goes_on_and_an_answer_that_passes_the_stop_rule_stops() -> None:
    """a misses, b finds a phone but no e-mail (the rule wants email), c finds the e-mail:
    every provider asked, the merge keeps b's phone and c's e-mail, each cost listed."""
    config = WaterfallConfig(providers=PROVIDERS, stop_when=("email",))
    fall = LeadWaterfall(config, ("a", "b", "c"))
    asked = _drive(
        fall,
        {
            "a": Missed(1),
            "b": Found({"phone": "+1", "email": None}, 2),
            "c": Found({"email": "x@y"}, 5),
        },
    )
    result = fall.result()
    assert asked == ["a", "b", "c"]
    assert result.data == {"phone": "+1", "email": "x@y"}
    assert result.stopped and result.verdict == "publish"
    assert [(t.provider, t.outcome, t.credits) for t in result.tried] == [
        ("a", "missed", 1), ("b", "found", 2), ("c", "found", 5),
    ]  # fmt: skip
    assert result.answered_by == ("b", "c") and result.credits == 8


def test_the_first_answer_that_passes_stops_the_waterfall() -> None:
    """Once the rule is met, no further provider is asked (no paying after a good answer)."""
    config = WaterfallConfig(providers=PROVIDERS, stop_when=("email",))
    fall = LeadWaterfall(config, ("a", "b", "c"))
    assert _drive(fall, {"a": Found({"email": "x@y"}, 1), "b": Missed(), "c": Missed()}) == ["a"]


@given(
    ceiling=st.integers(0, 10),
    answers=st.lists(st.sampled_from(["miss", "unavailable"]), min_size=3, max_size=3),
)
def test_the_ceiling_is_never_passed(ceiling: int, answers: list[str]) -> None:
    """Whatever the answers, a lead never costs more than the ceiling: a provider whose
    worst case would pass it is skipped as over_ceiling."""
    config = WaterfallConfig(providers=PROVIDERS, max_credits_per_lead=ceiling)
    fall = LeadWaterfall(config, ("a", "b", "c"))
    price = {"a": 1, "b": 2, "c": 0}
    reply = {
        name: (Missed(price[name]) if kind == "miss" else Unavailable("breaker open"))
        for name, kind in zip("abc", answers, strict=True)
    }
    _drive(fall, reply)
    result = fall.result()
    assert result.credits <= ceiling
    assert all(t.outcome != "over_ceiling" or t.credits == 0 for t in result.tried)


def test_nothing_found_is_dlq_or_hold_as_configured() -> None:
    """Nothing found: dlq; with last_resort hold and a provider unavailable: hold; with
    publish: the empty enrichment is published."""
    answers: dict[str, ProviderAnswer] = {
        "a": Missed(),
        "b": Unavailable("breaker open"),
        "c": Missed(),
    }
    for resort, verdict in (("dlq", "dlq"), ("hold", "hold"), ("publish", "publish")):
        config = WaterfallConfig(providers=PROVIDERS, last_resort=resort)
        fall = LeadWaterfall(config, ("a", "b", "c"))
        _drive(fall, answers)
        assert fall.result().verdict == verdict


def test_merge_first_found_wins_unless_a_field_prefers_a_provider() -> None:
    """First found wins per field; a field with preferred providers takes theirs."""
    answers: list[tuple[str, dict[str, Any]]] = [
        ("a", {"email": "a@x", "title": None}),
        ("b", {"email": "b@x", "title": "CTO"}),
    ]
    assert merge(answers, "first") == {"email": "a@x", "title": "CTO"}
    assert merge(answers, {"email": ("b",)}) == {"email": "b@x", "title": "CTO"}


def test_stop_rule_reads_dotted_paths_and_wants_a_value() -> None:
    """A nested field is found by its dotted path; null or "" is not a value."""
    assert stop_rule_met({"phone": {"mobile": "+1"}}, ("phone.mobile",))
    assert not stop_rule_met({"phone": {"mobile": ""}}, ("phone.mobile",))
    assert not stop_rule_met({}, ())

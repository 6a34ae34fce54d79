"""One lead's waterfall: the stop rule, the ceiling, the merge, the last resort."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streamproc.errors import ConfigError
from streamproc.waterfall.config import ProviderPrice, Verify, WaterfallConfig, load_waterfall
from streamproc.waterfall.run import (
    Failed,
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


VERIFY = Verify(provider="v", field="email", accept="status == 'valid'", credits_per_call=1)


def _drive_verified(
    fall: LeadWaterfall,
    answers: Mapping[str, ProviderAnswer],
    verdicts: Mapping[str, ProviderAnswer],
) -> list[str]:
    """Drive ``fall`` as the pipeline does: each held-back find goes to the verifier,
    whose answer for the finder's value is ``verdicts[finder]``."""
    asked = []
    while (name := fall.next_provider()) is not None:
        asked.append(name)
        fall.record(name, answers[name])
        check = fall.to_verify()
        if check is not None:
            assert check.finder == name and check.field == "email"
            asked.append(check.provider)
            fall.verified(verdicts[name])
    return asked


def test_a_rejected_value_is_dropped_and_the_next_provider_is_asked() -> None:
    """a's e-mail is invalid (the verifier's answer fails ``accept``): it is dropped (a's
    other fields kept) and b's e-mail, valid, stops the waterfall; every step listed."""
    config = WaterfallConfig(providers=PROVIDERS, stop_when=("email",), verify=VERIFY)
    fall = LeadWaterfall(config, ("a", "b", "c"))
    asked = _drive_verified(
        fall,
        {"a": Found({"email": "bad@x", "phone": "+1"}, 1), "b": Found({"email": "ok@y"}, 2)},
        {"a": Found({"status": "invalid"}, 1), "b": Found({"status": "valid"}, 1)},
    )
    result = fall.result()
    assert asked == ["a", "v", "b", "v"]
    assert result.data == {"email": "ok@y", "phone": "+1"} and result.stopped
    assert [(t.provider, t.outcome, t.credits) for t in result.tried] == [
        ("a", "found", 1), ("v", "rejected", 1), ("b", "found", 2), ("v", "verified", 1),
    ]  # fmt: skip
    assert result.credits == 5


def test_a_verifier_miss_rejects_and_an_answer_without_the_field_is_not_verified() -> None:
    """A verifier's miss rejects the value; a find without the verified field is merged
    as it is, no verifier asked."""
    config = WaterfallConfig(providers=PROVIDERS, verify=VERIFY)
    fall = LeadWaterfall(config, ("a", "b", "c"))
    asked = _drive_verified(
        fall,
        {"a": Found({"email": "bad@x"}, 1), "b": Found({"phone": "+1"}, 2)},
        {"a": Missed(0)},
    )
    assert asked == ["a", "v", "b"]
    assert fall.result().data == {"phone": "+1"}


def test_a_verifier_that_cannot_answer_follows_on_error() -> None:
    """Its breaker open: ``accept`` keeps the value unverified and stops; ``next`` drops it
    and goes on."""
    answers: dict[str, ProviderAnswer] = {
        "a": Found({"email": "a@x"}, 1), "b": Found({"email": "b@y"}, 2), "c": Missed(),
    }  # fmt: skip
    down: dict[str, ProviderAnswer] = {n: Unavailable("breaker open") for n in "abc"}
    for on_error, asked, email in (
        ("accept", ["a", "v"], "a@x"),
        ("next", ["a", "v", "b", "v", "c"], None),
    ):
        verify = VERIFY.model_copy(update={"on_error": on_error})
        config = WaterfallConfig(providers=PROVIDERS, stop_when=("email",), verify=verify)
        fall = LeadWaterfall(config, ("a", "b", "c"))
        assert _drive_verified(fall, answers, down) == asked
        assert fall.result().data.get("email") == email
        assert {t.outcome for t in fall.result().tried if t.provider == "v"} == {"unverified"}


_FINDS = st.sampled_from(["miss", "unavailable", "email", "email+phone", "phone", "empty"])
_VERDICTS = st.one_of(
    st.builds(Missed, st.integers(0, 1)),
    st.builds(Failed, st.just("timeout"), st.integers(0, 1)),
    st.builds(Unavailable, st.just("breaker open")),
    st.builds(
        Found, st.sampled_from([{"status": "valid"}, {"status": "invalid"}, {}]), st.integers(0, 1)
    ),
)


def _find(name: str, kind: str, credits: int) -> ProviderAnswer:
    if kind == "miss":
        return Missed(credits)
    if kind == "unavailable":
        return Unavailable("breaker open")
    data: dict[str, Any] = {"email": f"{name}@x"} if kind.startswith("email") else {}
    if kind.endswith("phone"):
        data["phone"] = "+1"
    return Found(data, credits)


@settings(max_examples=400)
@example(  # a find at the ceiling whose verification would pass it
    finds=[("email", 2), ("miss", 0), ("miss", 0)],
    verdicts=[Found({"status": "valid"}, 1)] * 3,
    stop_when=(),
    on_error="accept",
    ceiling=2,
)
@given(
    finds=st.lists(st.tuples(_FINDS, st.integers(0, 2)), min_size=3, max_size=3),
    verdicts=st.lists(_VERDICTS, min_size=3, max_size=3),
    stop_when=st.sampled_from([(), ("email",)]),
    on_error=st.sampled_from(["accept", "next"]),
    ceiling=st.one_of(st.none(), st.integers(0, 12)),
)
def test_a_rejected_value_never_stops_and_the_ceiling_holds_with_verification(
    finds: list[tuple[str, int]],
    verdicts: list[ProviderAnswer],
    stop_when: tuple[str, ...],
    on_error: str,
    ceiling: int | None,
) -> None:
    """Whatever the finds and the verdicts: a rejection leaves the waterfall going, a
    rejected value is never published, and the lead never costs more than the ceiling
    (each charge within its price, the verifier's included)."""
    verify = VERIFY.model_copy(update={"on_error": on_error})
    providers = (
        ProviderPrice(name="a", credits_per_call=1, credits_per_hit=1),
        ProviderPrice(name="b", credits_per_call=2),
        ProviderPrice(name="c", credits_per_hit=5),
    )
    config = WaterfallConfig(
        providers=providers, stop_when=stop_when, verify=verify, max_credits_per_lead=ceiling
    )
    fall = LeadWaterfall(config, ("a", "b", "c"))
    answers = {n: _find(n, kind, credits) for n, (kind, credits) in zip("abc", finds, strict=True)}
    by_finder = dict(zip("abc", verdicts, strict=True))
    rejected: set[str] = set()
    while (name := fall.next_provider()) is not None:
        fall.record(name, answers[name])
        check = fall.to_verify()
        if check is not None:
            verdict = fall.verified(by_finder[name])
            if verdict == "rejected" or (verdict == "unverified" and on_error == "next"):
                rejected.add(check.value)
                assert not fall.result().stopped
    result = fall.result()
    assert result.data.get("email") not in rejected
    if ceiling is not None:
        assert result.credits <= ceiling


def test_a_verifier_is_not_a_waterfall_provider_and_accept_must_be_jmespath() -> None:
    """The verifier named among the providers, or an accept that does not parse, is a
    configuration error at start-up."""
    with pytest.raises(ConfigError, match="verify"):
        load_waterfall({"providers": [{"name": "v"}], "verify": {"provider": "v", "field": "e"}})
    with pytest.raises(ConfigError, match="not JMESPath"):
        load_waterfall(
            {
                "providers": [{"name": "a"}],
                "verify": {"provider": "v", "field": "e", "accept": "=="},
            }
        )

"""PriorityScore: a CEL expression checked at start-up, a floor, a decay by age."""

from __future__ import annotations

import pytest

from streamproc.errors import BelowFloor, ConfigError, ErrorClass
from streamproc.resilience.priority import PriorityScore, ScoreError, decay

EXPR = (
    '(lead.company_size >= 200 ? 50.0 : 10.0) + (lead.country in ["US", "GB"] ? 20.0 : 0.0)'
    ' - (lead.email.endsWith("@gmail.com") ? 30.0 : 0.0)'
)


def test_the_expression_scores_a_lead_from_its_fields() -> None:
    """Points for size and country, minus points for a free mail domain."""
    score = PriorityScore.compile(EXPR)
    lead = {"company_size": 500, "country": "US", "email": "a@acme.com"}
    assert score.score(lead) == 70.0
    assert score.score({**lead, "email": "a@gmail.com", "country": "FR"}) == 20.0


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("lead.company_size >=", "not a valid CEL expression"),
        ("account.size * 2", "only `lead`"),
        ("   ", "empty"),
    ],
    ids=["syntax", "unknown variable", "empty"],
)
def test_a_bad_expression_is_one_config_error_line(expression: str, says: str) -> None:
    """A bad expression fails at start-up with one line naming the setting."""
    with pytest.raises(ConfigError) as caught:
        PriorityScore.compile(expression, setting="priority_score")
    message = str(caught.value)
    assert message.startswith("priority_score: ") and says in message
    assert "\n" not in message


def test_a_non_positive_half_life_is_refused() -> None:
    """A half-life of 0 would make every lead worthless at once."""
    with pytest.raises(ConfigError, match="half-life"):
        PriorityScore.compile("1.0", halflife_s=0)


@pytest.mark.parametrize(
    ("expression", "lead"),
    [
        ("lead.company_size * 2", {}),
        ("lead.company_size * 1.5", {"company_size": 3}),
        ('"high"', {}),
        ("lead.a / lead.b", {"a": 1, "b": 0}),
        ("lead.company_size > 3", {"company_size": 5}),
    ],
    ids=["missing field", "int times double", "a string", "division by zero", "a bool"],
)
def test_an_expression_that_fails_on_a_lead_is_a_score_error(
    expression: str, lead: dict[str, object]
) -> None:
    """Evaluation errors and non-numbers are ScoreError (the caller uses its default)."""
    with pytest.raises(ScoreError):
        PriorityScore.compile(expression).score(lead)


def test_below_the_floor_is_a_not_retriable_below_floor() -> None:
    """Under the floor: BelowFloor, DLQ class below_floor, not retriable; at it: fine."""
    score = PriorityScore.compile(EXPR, floor=20.0)
    score.check_floor(20.0)
    with pytest.raises(BelowFloor) as caught:
        score.check_floor(19.5)
    assert caught.value.error_class is ErrorClass.BELOW_FLOOR
    assert caught.value.retriable is False


def test_worth_halves_every_half_life_and_never_grows() -> None:
    """An hour's half-life: worth 1/2 after an hour, 1/4 after two; no decay without one."""
    score = PriorityScore.compile("1.0", halflife_s=3600)
    assert score.worth(40.0, 0) == 40.0
    assert score.worth(40.0, 3600) == pytest.approx(20.0)
    assert score.worth(40.0, 7200) == pytest.approx(10.0)
    assert score.worth(40.0, -50) == 40.0
    assert decay(1e9, None) == 1.0

"""The operator's spending levers folded from control/spending, and the ledger's SetLimit."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.resilience.claims import (
    Claim,
    ClaimLedger,
    OpenDay,
    SetLimit,
    Settle,
    event_from_dict,
)
from streamproc.resilience.spending import (
    SpendingAction,
    SpendingControl,
    SpendingFold,
    change,
)

DAY = "2025-11-26"
T0 = 1_764_158_400.0


def _record(action: SpendingAction, at: float, limit: int | None = None) -> dict[str, Any]:
    return change(
        None, action, by="ops", why="test", now=at, limit=limit,
        day=DAY if action is SpendingAction.SET_LIMIT else None,
    ).to_dict()  # fmt: skip


def test_pause_then_resume_is_not_paused_and_keeps_who_and_why() -> None:
    """A pause then a resume leave spending on, and the fold keeps the resume's who, why, at."""
    fold = SpendingFold()
    fold.apply(_record(SpendingAction.PAUSE, T0))
    assert fold.paused
    resumed = change(fold.current, SpendingAction.RESUME, by="ana", why="fixed", now=T0 + 5)
    fold.apply(resumed.to_dict())
    assert not fold.paused
    assert fold.current is not None
    assert (fold.current.by, fold.current.why, fold.current.at) == ("ana", "fixed", T0 + 5)


def test_set_limit_keeps_the_pause_and_a_pause_keeps_the_limit() -> None:
    """A limit set while paused stays paused; a later resume still names the limit set."""
    paused = change(None, SpendingAction.PAUSE, by="a", why="w", now=T0)
    limited = change(
        paused, SpendingAction.SET_LIMIT, by="a", why="w", now=T0 + 1, limit=50, day=DAY
    )
    assert limited.paused and limited.limit == 50
    resumed = change(limited, SpendingAction.RESUME, by="a", why="w", now=T0 + 2)
    assert not resumed.paused and (resumed.limit, resumed.day) == (50, DAY)


@pytest.mark.parametrize(
    ("action", "kwargs", "message"),
    [
        (SpendingAction.PAUSE, {"why": "  "}, "--reason"),
        (SpendingAction.PAUSE, {"by": ""}, "--by"),
        (SpendingAction.SET_LIMIT, {"limit": -1}, "limit"),
        (SpendingAction.SET_LIMIT, {"limit": True}, "limit"),
        (SpendingAction.RESUME, {"limit": 5}, "takes no limit"),
    ],
)
def test_a_bad_change_is_one_line_naming_what_is_wrong(
    action: SpendingAction, kwargs: dict[str, Any], message: str
) -> None:
    """A missing reason or name, or a bad limit, is a ValueError naming it."""
    args: dict[str, Any] = {"by": "ops", "why": "because", "now": T0, "day": DAY, **kwargs}
    with pytest.raises(ValueError, match=message):
        change(None, action, **args)


@pytest.mark.parametrize(
    "bad",
    [
        {"paused": "yes", "action": "pause", "by": "a", "why": "w", "at": T0},
        {"paused": True, "action": "stop", "by": "a", "why": "w", "at": T0},
        {"paused": True, "action": "pause", "by": "a", "why": "w", "at": float("nan")},
        {"paused": True, "action": "pause", "by": "a", "at": T0},
        {"paused": False, "action": "set_limit", "by": "a", "why": "w", "at": T0, "limit": 5},
    ],
)
def test_an_invalid_record_changes_nothing(bad: dict[str, Any]) -> None:
    """A record that does not validate raises and leaves the current control as it was."""
    fold = SpendingFold()
    fold.apply(_record(SpendingAction.PAUSE, T0))
    with pytest.raises(ValueError, match=r"must|unknown|together"):
        fold.apply(bad)
    assert fold.paused


_actions = st.sampled_from(list(SpendingAction))
_records = st.lists(
    st.one_of(
        st.none(),
        st.tuples(_actions, st.floats(T0, T0 + 86_400), st.integers(0, 10_000)).map(
            lambda t: _record(t[0], t[1], t[2] if t[0] is SpendingAction.SET_LIMIT else None)
        ),
    ),
    max_size=30,
)


@given(_records)
def test_the_fold_is_its_last_record_as_compaction_keeps_it(
    records: list[dict[str, Any] | None],
) -> None:
    """Folding the whole history of the key gives what folding only its last record gives
    (what a restart reads after compaction): the latest in log order wins."""
    whole, compacted = SpendingFold(), SpendingFold()
    for record in records:
        whole.apply(record)
    if records:
        compacted.apply(records[-1])
    assert whole.current == compacted.current
    assert whole.paused == (records[-1] is not None and records[-1]["paused"] if records else False)


@given(st.lists(st.sampled_from([SpendingAction.PAUSE, SpendingAction.RESUME]), min_size=1))
def test_paused_is_the_last_pause_or_resume(actions: list[SpendingAction]) -> None:
    """Whatever the sequence of pauses and resumes, the group is paused iff the last was a pause."""
    fold, current = SpendingFold(), None
    for i, action in enumerate(actions):
        current = change(current, action, by="o", why="w", now=T0 + i)
        fold.apply(current.to_dict())
    assert fold.paused is (actions[-1] is SpendingAction.PAUSE)


def test_a_record_round_trips() -> None:
    """to_dict/from_dict are inverse."""
    control = change(None, SpendingAction.SET_LIMIT, by="o", why="w", now=T0, limit=7, day=DAY)
    assert SpendingControl.from_dict(control.to_dict()) == control


# --- the claims ledger under an operator's limit ----------------------------------------------


def test_a_lowered_limit_refuses_claims_from_its_record_on() -> None:
    """Limit 100, 40 granted; SetLimit 50: a 20-credit claim is refused, a 10-credit one
    granted; the claim granted before the change stays granted."""
    ledger = ClaimLedger(100)
    ledger.apply(OpenDay(DAY, "a", 100, "UTC"))
    assert ledger.apply(Claim("c1", "a", DAY, 40))
    ledger.apply(event_from_dict(SetLimit(DAY, 50).to_dict()))
    assert ledger.limit(DAY) == 50 and ledger.limit_set(DAY)
    assert not ledger.apply(Claim("c2", "a", DAY, 20))
    assert ledger.apply(Claim("c3", "a", DAY, 10))
    assert ledger.is_granted("c1") and ledger.remaining(DAY) == 0


def test_a_limit_below_what_is_spent_refuses_everything() -> None:
    """SetLimit under what is already spent: remaining 0, every claim refused."""
    ledger = ClaimLedger(100)
    ledger.apply(OpenDay(DAY, "a", 100, "UTC"))
    ledger.apply(Claim("c1", "a", DAY, 60))
    ledger.apply(Settle("c1", DAY, 60, "w", 60))
    ledger.apply(SetLimit(DAY, 30))
    assert ledger.remaining(DAY) == 0
    assert not ledger.apply(Claim("c2", "a", DAY, 1))


def test_an_operators_limit_rules_over_a_lower_openday() -> None:
    """A raise by SetLimit holds even when an instance configured lower opens the day after."""
    ledger = ClaimLedger(10)
    ledger.apply(OpenDay(DAY, "a", 10, "UTC"))
    ledger.apply(SetLimit(DAY, 200))
    ledger.apply(OpenDay(DAY, "b", 5, "UTC"))
    assert ledger.limit(DAY) == 200
    assert ledger.apply(Claim("c1", "b", DAY, 150))


def test_a_limit_is_for_its_day_only() -> None:
    """The next day's limit is the configured one again."""
    ledger = ClaimLedger(100)
    ledger.apply(OpenDay(DAY, "a", 100, "UTC"))
    ledger.apply(SetLimit(DAY, 5))
    ledger.apply(OpenDay("2025-11-27", "a", 100, "UTC"))
    assert ledger.limit("2025-11-27") == 100


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("claim"), st.integers(1, 30)),
            st.tuples(st.just("limit"), st.integers(0, 200)),
        ),
        max_size=40,
    )
)
def test_a_claim_is_granted_only_within_the_limit_in_force(steps: list[tuple[str, int]]) -> None:
    """Whatever limit changes come between claims, a claim is granted exactly when the
    outstanding credits plus it fit the limit in force at its place in the log."""
    ledger, limit, outstanding = ClaimLedger(100), 100, 0
    ledger.apply(OpenDay(DAY, "a", 100, "UTC"))
    for i, (kind, n) in enumerate(steps):
        if kind == "limit":
            ledger.apply(SetLimit(DAY, n))
            limit = n
            continue
        expected = outstanding + n <= limit
        assert ledger.apply(Claim(f"c{i}", "a", DAY, n)) is expected
        outstanding += n if expected else 0

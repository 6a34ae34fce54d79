"""A provider's credit cap per day: read from its table, and what one more call may do."""

from __future__ import annotations

from datetime import date

import pytest

from streamproc.errors import ConfigError
from streamproc.waterfall.caps import CreditCap, daily_cap
from streamproc.waterfall.ledger import HitLedger, tally_key

DAY = date(2026, 12, 7)


def test_the_cap_is_its_own_limit_or_a_share_of_the_budget_the_lower_of_both() -> None:
    """``max_credits_per_day`` as given, ``budget_share`` rounded down from the daily
    budget, both: the lower; neither: no cap."""
    assert daily_cap({"max_credits_per_day": 40}, "a", 500) == CreditCap(40)
    assert daily_cap({"budget_share": 0.25}, "a", 501) == CreditCap(125)
    assert daily_cap({"max_credits_per_day": 40, "budget_share": 0.5}, "a", 60) == CreditCap(30)
    assert daily_cap({"url": "http://x"}, "a", 500) is None


@pytest.mark.parametrize(
    "table",
    [
        {"max_credits_per_day": -1},
        {"max_credits_per_day": 1.5},
        {"max_credits_per_day": True},
        {"budget_share": 0},
        {"budget_share": 1.5},
        {"budget_share": "half"},
    ],
)
def test_a_bad_cap_is_one_line_naming_the_provider(table: dict[str, object]) -> None:
    """A negative, fractional or non-number limit, a share outside (0, 1]: a ConfigError."""
    with pytest.raises(ConfigError, match=r"^providers\.finder\.") as raised:
        daily_cap(table, "finder", 500)
    assert "\n" not in str(raised.value)


def test_one_more_call_fits_only_if_its_worst_case_stays_within_the_cap() -> None:
    """Spent plus in flight plus the call's worst case must not pass the cap; a call
    priced at 0 still counts 1."""
    cap = CreditCap(10)
    assert cap.admits(spent_today=6, in_flight=2, worst=2)
    assert not cap.admits(spent_today=6, in_flight=2, worst=3)
    assert cap.admits(spent_today=9, in_flight=0, worst=0)
    assert not cap.admits(spent_today=10, in_flight=0, worst=0)


def test_the_ledger_keeps_each_providers_credits_of_the_day_across_instances() -> None:
    """Every instance's latest total counts once; a newer total replaces its key's older
    one, a tombstone takes it out; another day or provider stays apart."""
    ledger = HitLedger()
    ledger.apply(tally_key("smb", "a", DAY, "i1"), {"calls": 2, "hits": 1, "credits": 3})
    ledger.apply(tally_key("ent", "a", DAY, "i2"), {"calls": 1, "hits": 1, "credits": 4})
    ledger.apply(tally_key("smb", "a", DAY, "i1"), {"calls": 3, "hits": 2, "credits": 5})
    ledger.apply(tally_key("smb", "b", DAY, "i1"), {"calls": 3, "hits": 2, "credits": 100})
    ledger.apply(
        tally_key("smb", "a", date(2026, 12, 6), "i1"), {"calls": 1, "hits": 1, "credits": 7}
    )
    assert ledger.credits("a", DAY) == 9
    ledger.apply(tally_key("ent", "a", DAY, "i2"), None)
    assert ledger.credits("a", DAY) == 5
    ledger.apply(tally_key("smb", "a", DAY, "i1"), {"calls": "bad"})
    assert ledger.credits("a", DAY) == 5

"""The hit ledger: the same fold in every process, whatever the order of the records."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from streamproc.waterfall.ledger import HitLedger, LocalCounts, Tally

DAY = date(2026, 12, 7)

answers = st.lists(
    st.tuples(
        st.sampled_from(["i1", "i2", "i3"]),
        st.sampled_from(["smb", "ent"]),
        st.sampled_from(["a", "b"]),
        st.booleans(),
        st.integers(0, 5),
    ),
    max_size=60,
)


@given(answers=answers, data=st.data())
def test_every_process_folds_the_same_tally_from_the_records_in_any_order(
    answers: list[tuple[str, str, str, bool, int]], data: st.DataObject
) -> None:
    """Each instance appends its running totals; a reader that gets every record (shuffled
    across keys, each key's records in order, some read twice) and one that gets only each
    key's last record (compaction) fold the same tally, equal to the answers counted."""
    counts = {name: LocalCounts(name) for name in ("i1", "i2", "i3")}
    records = [
        counts[inst].observe(seg, prov, DAY, hit=hit, credits=credits)
        for inst, seg, prov, hit, credits in answers
    ]
    by_key: dict[str, list[dict[str, int]]] = {}
    for key, value in records:
        by_key.setdefault(key, []).append(value)
    order = data.draw(st.permutations(list(by_key)))
    everything, compacted = HitLedger(), HitLedger()
    for key in order:
        for value in by_key[key] + by_key[key][-1:]:
            everything.apply(key, value)
        compacted.apply(key, by_key[key][-1])
    for seg in ("smb", "ent"):
        for prov in ("a", "b"):
            mine = [a for a in answers if a[1] == seg and a[2] == prov]
            expected = Tally(len(mine), sum(a[3] for a in mine), sum(a[4] for a in mine))
            assert everything.tally(seg, prov, DAY, 1) == expected
            assert compacted.tally(seg, prov, DAY, 1) == expected


def test_old_days_age_out_and_a_tombstone_forgets() -> None:
    """Only the window's days count; a deleted key counts no more; foreign keys are ignored."""
    ledger = HitLedger()
    ledger.apply("waterfall/hits/smb/a/2026-11-01/i1", {"calls": 9, "hits": 9, "credits": 9})
    ledger.apply("waterfall/hits/smb/a/2026-12-07/i1", {"calls": 2, "hits": 1, "credits": 2})
    ledger.apply("waterfall/hits/smb/a/2026-12-06/i2", {"calls": 4, "hits": 0, "credits": 4})
    ledger.apply("breaker/x", {"calls": 1})
    ledger.apply("waterfall/hits/smb/a/not-a-day/i1", {"calls": 1, "hits": 1, "credits": 1})
    assert ledger.tally("smb", "a", DAY, 14) == Tally(6, 1, 6)
    ledger.apply("waterfall/hits/smb/a/2026-12-06/i2", None)
    assert ledger.tally("smb", "a", DAY, 14) == Tally(2, 1, 2)


def test_the_per_provider_summary_sums_segments_and_instances_with_rates() -> None:
    """Each provider's calls, hits and credits are summed over segments and instances; its
    fill rate is hits over calls, its cost per found answer every credit over its hits."""
    ledger = HitLedger()
    a1, a2 = LocalCounts("i1"), LocalCounts("i2")
    for counts, segment, hit, credits in [
        (a1, "smb", True, 2),
        (a1, "ent", False, 1),
        (a2, "smb", True, 2),
        (a2, "smb", False, 1),
    ]:
        ledger.apply(*counts.observe(segment, "finder", DAY, hit=hit, credits=credits))
    ledger.apply(*a1.observe("smb", "people", DAY, hit=False, credits=0))
    summary = ledger.by_provider(DAY, 14)
    assert summary["finder"].tally == Tally(calls=4, hits=2, credits=6)
    assert summary["finder"].fill_rate == 0.5
    assert summary["finder"].credits_per_found == 3.0
    assert summary["people"].fill_rate == 0.0
    assert summary["people"].credits_per_found is None


def test_the_summary_keeps_today_apart_from_the_window_and_drops_older_days() -> None:
    """``today`` counts the day's answers only, ``window`` the last window_days days; an
    answer older than the window is in neither."""
    ledger = HitLedger()
    counts = LocalCounts("i1")
    ledger.apply(*counts.observe("s", "a", DAY, hit=True, credits=1))
    ledger.apply(*counts.observe("s", "a", date(2026, 12, 5), hit=True, credits=3))
    ledger.apply(*counts.observe("s", "a", date(2026, 11, 1), hit=True, credits=100))
    summary = ledger.summary(DAY, 7)
    assert summary["day"] == "2026-12-07"
    (row,) = summary["providers"]
    assert row["provider"] == "a"
    assert row["today"] == {
        "calls": 1,
        "hits": 1,
        "credits": 1,
        "fill_rate": 1.0,
        "credits_per_found": 1.0,
    }
    assert row["window"]["credits"] == 4
    assert row["window"]["credits_per_found"] == 2.0

"""BudgetJournal with ClaimLedger: the claims log stays small and compaction changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.resilience.claims import Claim, ClaimLedger, event_from_dict
from streamproc.resilience.journal import BudgetJournal, Record, parse_key

FAST = settings(max_examples=150, deadline=None)
D1, D2, D3 = "2024-06-01", "2024-06-02", "2024-06-03"
LIMIT = 40


def apply(ledger: ClaimLedger, record: Record, *journals: BudgetJournal) -> None:
    """What the guard does with a record of the claims log."""
    key, value = record
    for journal in journals:
        journal.track(key, value is not None, ledger.horizon)
    if value is not None:
        ledger.apply(event_from_dict(value))
        return
    parsed = parse_key(key)
    if parsed is not None and parsed.claim_id is not None:
        ledger.drop(parsed.claim_id)


def compact(log: list[Record], cut: int, keep_tombstones: bool) -> list[Record]:
    """Kafka's cleaner over ``log[:cut]`` (the segments it may clean): only each key's last
    record there survives, tombstones too for a while; ``log[cut:]`` is left as it is."""
    head = log[:cut]
    last = {key: index for index, (key, _) in enumerate(head)}
    kept = [head[i] for i in sorted(last.values()) if keep_tombstones or head[i][1] is not None]
    return kept + log[cut:]


@dataclass
class Group:
    """Writers sharing one claims log, each with its own journal, one live reader."""

    live: ClaimLedger = field(default_factory=lambda: ClaimLedger(LIMIT))
    journals: dict[str, BudgetJournal] = field(default_factory=dict)
    log: list[Record] = field(default_factory=list)
    open_claims: dict[str, list[Claim]] = field(default_factory=dict)
    granted: set[str] = field(default_factory=set)

    def emit(self, records: list[Record]) -> None:
        for record in records:
            self.log.append(record)
            apply(self.live, record, *self.journals.values())

    def claim(self, writer: str, day: str, amount: int, limit: int) -> None:
        journal = self.journals.setdefault(writer, BudgetJournal(writer))
        if not self.live.is_open(day):
            self.emit(journal.open_day(day, limit, "UTC"))
        claim = Claim(f"{writer}-{len(self.log)}", writer, day, amount)
        self.emit([journal.claim(claim)])
        if self.live.is_granted(claim.claim_id):
            self.granted.add(claim.claim_id)
            self.open_claims.setdefault(writer, []).append(claim)
        else:
            self.emit(journal.refused(claim))


@st.composite
def groups(draw: st.DrawFn) -> Group:
    group = Group()
    day = 0
    for _ in range(draw(st.integers(0, 60))):
        action = draw(st.sampled_from(["claim", "claim", "settle", "settle", "fix", "402", "day"]))
        writer = draw(st.sampled_from(["w0", "w1", "w2"]))
        today = (D1, D2, D3)[day]
        journal = group.journals.get(writer)
        if action == "claim":
            limit = draw(st.sampled_from([LIMIT, 2 * LIMIT]))  # settings differ per writer
            group.claim(writer, today, draw(st.integers(0, 15)), limit)
        elif action == "settle" and group.open_claims.get(writer) and journal is not None:
            claim = group.open_claims[writer].pop(
                draw(st.integers(0, 99)) % len(group.open_claims[writer])
            )
            actual = draw(st.integers(0, claim.amount + 3))
            group.emit(journal.settle(claim.claim_id, claim.day, actual))
        elif action == "fix" and journal is not None:
            group.emit(journal.correct(today, draw(st.integers(-4, 4))))
        elif action == "402" and journal is not None:
            group.emit(journal.exhaust(today))
        elif action == "day" and day < 2:
            day += 1
        if journal is not None and draw(st.booleans()):
            group.emit(journal.stale(group.live.horizon))
    return group


@FAST
@given(group=groups(), data=st.data())
def test_a_reader_of_the_compacted_log_ends_with_the_live_books(
    group: Group, data: st.DataObject
) -> None:
    """Whatever compaction keeps (any cleaned prefix, tombstones kept or not), a reader that
    restores from it ends with the live readers' books: the same spent, outstanding claims,
    limits and 402s for every day the live readers still keep."""
    cut = data.draw(st.integers(0, len(group.log)))
    restored = ClaimLedger(LIMIT)
    for record in compact(group.log, cut, data.draw(st.booleans())):
        apply(restored, record)
    live = group.live
    for day in (D1, D2, D3):
        if live.horizon is not None and day < live.horizon:
            continue
        assert restored.spent(day) == live.spent(day), day
        assert restored.outstanding(day) == live.outstanding(day), day
        assert restored.exhausted(day) == live.exhausted(day), day
        assert restored.limit(day) == live.limit(day), day
    assert {c.claim_id for c in restored.outstanding_claims()} == {
        c.claim_id for c in live.outstanding_claims()
    }


@FAST
@given(group=groups())
def test_a_claim_granted_live_is_granted_to_a_reader_of_the_compacted_log(group: Group) -> None:
    """Every claim the live readers granted (and the claimant used) that is still in the
    fully compacted log is granted on restore too: a restore never under-counts."""
    restored = ClaimLedger(LIMIT)
    for record in compact(group.log, len(group.log), keep_tombstones=False):
        apply(restored, record)
    for claim in restored.outstanding_claims():
        assert claim.claim_id in group.granted
    for claim in group.live.outstanding_claims():
        assert restored.is_granted(claim.claim_id) is True


def test_thousands_of_settled_leases_leave_a_log_and_a_ledger_of_constant_size() -> None:
    """3,000 leases claimed and settled by two writers: after compaction the log holds a
    handful of records, and the ledger (live or restored) a handful of entries."""
    group = Group(live=ClaimLedger(10**9))
    sizes = []
    for i in range(3_000):
        writer = f"w{i % 2}"
        group.claim(writer, D1, 300, 10**9)
        claim = group.open_claims[writer].pop()
        group.emit(group.journals[writer].settle(claim.claim_id, D1, 250))
        sizes.append(group.live.size())
    compacted = compact(group.log, len(group.log), keep_tombstones=False)
    restored = ClaimLedger(10**9)
    for record in compacted:
        apply(restored, record)
    assert len(group.log) > 9_000
    assert len(compacted) <= 6  # per writer: its OpenDay, newest claim and settle
    assert max(sizes[100:]) == sizes[-1] <= 6
    assert restored.size() <= 6
    assert restored.spent(D1) == group.live.spent(D1) == 3_000 * 250


def test_the_days_before_yesterday_are_tombstoned_once() -> None:
    """When D3 opens, every live key of D1 is handed out as a tombstone, once; D2's stay."""
    group = Group()
    for day in (D1, D2, D3):
        group.claim("w0", day, 6, LIMIT)
        claim = group.open_claims["w0"].pop()
        group.emit(group.journals["w0"].settle(claim.claim_id, day, 6))
    journal = group.journals["w0"]
    stale = journal.stale(group.live.horizon)
    assert stale and all(key.startswith(f"budget/{D1}/") and v is None for key, v in stale)
    assert journal.stale(group.live.horizon) == []
    group.emit(stale)
    compacted = compact(group.log, len(group.log), keep_tombstones=False)
    assert not any(key.startswith(f"budget/{D1}/") for key, _ in compacted)
    assert any(key.startswith(f"budget/{D2}/") for key, _ in compacted)


def test_a_correction_carries_the_writers_new_total() -> None:
    """A call of a settled lease charged 2 less than its estimate: a correction carries
    the writer's total 2 lower, and spent follows."""
    group = Group()
    group.claim("w0", D1, 12, LIMIT)
    claim = group.open_claims["w0"].pop()
    group.emit(group.journals["w0"].settle(claim.claim_id, D1, 12))
    group.emit(group.journals["w0"].correct(D1, -2))
    assert group.live.spent(D1) == 10
    assert group.journals["w0"].total(D1) == 10


def test_a_correction_never_moves_a_settle_behind_later_claims() -> None:
    """Found by hypothesis: a correction written as a new copy of the writer's newest
    settle was, after compaction, behind claims granted in between; a reader restoring
    from the compacted log counted the settled claim as outstanding and refused a claim
    that the live readers had granted (and its claimant was using)."""
    group = Group()
    group.claim("w0", D1, 1, LIMIT)
    first = group.open_claims["w0"].pop()
    group.emit(group.journals["w0"].settle(first.claim_id, D1, 0))
    for amount in (12, 4, 6, 6, 12):  # 40 outstanding: the limit, exactly
        group.claim("w1", D1, amount, LIMIT)
    group.emit(group.journals["w0"].correct(D1, 1))
    assert len(group.live.outstanding_claims()) == 5
    restored = ClaimLedger(LIMIT)
    for record in compact(group.log, len(group.log), keep_tombstones=False):
        apply(restored, record)
    for claim in group.live.outstanding_claims():
        assert restored.is_granted(claim.claim_id) is True
    assert restored.spent(D1) == group.live.spent(D1) == 1

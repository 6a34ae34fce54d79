"""ClaimLedger: deterministic group-wide grants over an ordered log of claim events."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.resilience.claims import (
    Claim,
    ClaimEvent,
    ClaimLedger,
    ClaimStatus,
    Exhaust,
    OpenDay,
    Settle,
    event_from_dict,
)

FAST = settings(max_examples=120, deadline=None)
D1, D2, D3 = "2024-06-01", "2024-06-02", "2024-06-03"


def claim(claim_id: str, amount: int = 6, day: str = D1, owner: str = "a", **kw: Any) -> Claim:
    return Claim(claim_id, owner, day, amount, **kw)


def test_claims_are_granted_up_to_the_limit_exactly() -> None:
    """A claim is granted iff spent + outstanding + amount <= limit."""
    ledger = ClaimLedger(18)
    assert [ledger.apply(claim(f"c{i}")) for i in range(4)] == [True, True, True, False]
    assert ledger.outstanding(D1) == 18
    assert ledger.remaining(D1) == 0
    assert ledger.is_granted("c3") is False
    assert ledger.is_granted("never") is None


def test_three_instances_share_one_limit() -> None:
    """Three owners claiming 6 credits in turn against 600 get 100 grants between them."""
    ledger = ClaimLedger(600)
    grants = [ledger.apply(claim(f"c{i}", owner=f"instance-{i % 3}")) for i in range(150)]
    assert grants.count(True) == 100
    assert ledger.outstanding(D1) == 600


def test_settle_moves_the_actual_charge_to_spent() -> None:
    """Settling frees the claimed amount and books the actual charge."""
    ledger = ClaimLedger(12)
    ledger.apply(claim("c1"))
    ledger.apply(claim("c2"))
    assert ledger.apply(Settle("c1", D1, 4)) is None
    assert (ledger.spent(D1), ledger.outstanding(D1), ledger.remaining(D1)) == (4, 6, 2)
    assert ledger.status("c1") is ClaimStatus.SETTLED


def test_a_repeated_settle_changes_nothing() -> None:
    """A settle seen twice (a producer retry) books its claim once."""
    ledger = ClaimLedger(30)
    ledger.apply(claim("c1"))
    ledger.apply(claim("c2"))
    ledger.apply(Settle("c1", D1, 5))
    ledger.apply(Settle("c1", D1, 5))
    assert (ledger.spent(D1), ledger.outstanding(D1)) == (5, 6)


def test_a_duplicate_claim_record_gets_the_same_answer_and_counts_once() -> None:
    """A claim seen twice in the log (a producer retry) is decided and counted once."""
    ledger = ClaimLedger(6)
    assert ledger.apply(claim("c1")) is True
    assert ledger.apply(claim("c1")) is True
    assert ledger.outstanding(D1) == 6


def test_exhaust_refuses_later_claims_and_keeps_outstanding_ones() -> None:
    """After a 402 for a day, its claims are refused; claims in flight still count."""
    ledger = ClaimLedger(600)
    ledger.apply(claim("c1"))
    ledger.apply(Exhaust(D1))
    assert ledger.apply(claim("c2")) is False
    assert ledger.exhausted(D1)
    assert ledger.remaining(D1) == 0
    assert ledger.outstanding(D1) == 6
    assert ledger.apply(claim("c3", day=D2)) is True


def test_days_have_separate_books() -> None:
    """Yesterday's spend does not reduce today's limit."""
    ledger = ClaimLedger(6)
    ledger.apply(claim("c1", day=D1))
    assert ledger.apply(claim("c2", day=D2)) is True
    ledger.apply(Settle("c1", D1, 6))
    assert (ledger.spent(D1), ledger.spent(D2), ledger.outstanding(D2)) == (6, 0, 6)


def test_claims_of_a_dead_owner_stay_counted() -> None:
    """A crashed instance's unsettled claims keep holding credits (over-count, not under)."""
    ledger = ClaimLedger(12)
    ledger.apply(claim("c1", owner="dead"))
    ledger.apply(claim("c2", owner="alive"))
    ledger.apply(Settle("c2", D1, 6))
    assert [c.claim_id for c in ledger.outstanding_claims("dead")] == ["c1"]
    assert ledger.outstanding_claims("alive") == []
    assert ledger.apply(claim("c3", owner="alive")) is False


def test_settle_of_a_refused_or_unknown_claim_still_books_the_spend() -> None:
    """Credits charged outside a granted claim are counted, once, on their day."""
    ledger = ClaimLedger(6)
    ledger.apply(claim("c1"))
    ledger.apply(claim("c2"))
    ledger.apply(Settle("c2", D1, 6))
    ledger.apply(Settle("ghost", D1, 3))
    ledger.apply(Settle("ghost", D1, 3))
    assert ledger.spent(D1) == 9
    assert ledger.is_granted("ghost") is None


def test_in_a_log_without_open_days_the_first_stamped_limit_is_the_days() -> None:
    """Older logs: the day's first claim carrying a limit fixes it, for every later claim
    (stamped otherwise or not), so readers with other settings still agree."""
    ledger = ClaimLedger(6)
    assert ledger.apply(claim("c1", amount=6, limit=12)) is True
    assert ledger.apply(claim("c2", amount=6, limit=600)) is True
    assert ledger.apply(claim("c3", amount=1)) is False
    assert ledger.limit(D1) == 12


def test_opening_a_day_forgets_the_days_before_yesterday() -> None:
    """A claim of D3 makes D3 the group's day: D1 is dropped (memory), its late claims are
    refused and its other events ignored; D2 (yesterday) is kept."""
    ledger = ClaimLedger(600)
    ledger.apply(claim("c1", day=D1))
    ledger.apply(claim("c0", day=D2))
    ledger.apply(claim("c2", day=D3))
    assert ledger.horizon == D2
    assert ledger.forget_before(D1) == 0
    assert ledger.is_granted("c1") is None
    assert ledger.is_granted("c0") is True
    assert ledger.apply(claim("c4", day=D1)) is False
    ledger.apply(Settle("c1", D1, 6))
    assert ledger.spent(D1) == 0
    assert ledger.remaining(D1) == 0
    assert ledger.is_granted("c2") is True


def _at(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_the_first_open_day_fixes_the_days_limit_and_zone() -> None:
    """Two instances open D1 with their own settings: the first in the log rules the day
    for every reader, whatever the reader's settings or the claims' stamps."""
    ledger = ClaimLedger(999, "UTC")
    ledger.apply(OpenDay(D1, "a", 12, "Pacific/Auckland"))
    ledger.apply(OpenDay(D1, "b", 600, "UTC"))
    assert (ledger.limit(D1), ledger.zone(D1)) == (12, "Pacific/Auckland")
    assert ledger.apply(claim("c1", amount=12, limit=600)) is True
    assert ledger.apply(claim("c2", amount=1)) is False


def test_a_lagging_clock_follows_the_groups_day() -> None:
    """Once D2 is opened, a reader whose clock still says D1 claims for D2, never for D1."""
    ledger = ClaimLedger(600, "UTC")
    ledger.apply(OpenDay(D2, "a", 600, "UTC"))
    assert ledger.day_at(_at("2024-06-01T23:59:00+00:00")) == D2


def test_the_day_ends_at_midnight_in_the_groups_zone_not_the_readers() -> None:
    """A reader set to America/New_York, in a group whose day was opened in UTC, moves to
    the next day at UTC midnight, and says so in resets_at."""
    ledger = ClaimLedger(600, "America/New_York")
    ledger.apply(OpenDay(D1, "a", 600, "UTC"))
    assert ledger.day_at(_at("2024-06-01T23:59:59+00:00")) == D1
    assert ledger.day_at(_at("2024-06-02T00:00:00+00:00")) == D2
    noon = _at("2024-06-01T12:00:00+00:00")
    assert ledger.resets_at(noon) == _at("2024-06-02T00:00:00+00:00")


def test_before_any_open_day_a_reader_uses_its_own_settings() -> None:
    """An empty log: the reader's own limit and zone until some instance opens the day."""
    ledger = ClaimLedger(600, "Asia/Tokyo")
    assert ledger.day_at(_at("2024-06-01T16:00:00+00:00")) == D2  # 01:00 in Tokyo
    assert ledger.limit(D2) == 600
    assert not ledger.is_open(D2)


def test_spent_is_the_sum_of_each_writers_latest_total() -> None:
    """Settles carry a writer's running total: spent follows the newest total per writer, a
    correction may lower it, a repeated record changes nothing."""
    ledger = ClaimLedger(100)
    ledger.apply(claim("c1"))
    ledger.apply(claim("c2", owner="b"))
    ledger.apply(Settle("c1", D1, 6, "w1", 6))
    ledger.apply(Settle("c1", D1, 6, "w1", 6))
    ledger.apply(Settle("c2", D1, 5, "w2", 5))
    ledger.apply(Settle("c1", D1, 6, "w1", 4))  # a call booked at 6 was charged 4
    assert (ledger.spent(D1), ledger.outstanding(D1)) == (9, 0)
    assert ledger.writer_total(D1, "w1") == 4


def test_a_tombstoned_claim_is_forgotten_and_its_credits_stay_spent() -> None:
    """drop() (the claim's record tombstoned) frees the entry; the writer's total keeps
    the spend, so the books do not change."""
    ledger = ClaimLedger(100)
    ledger.apply(claim("c1"))
    ledger.apply(Settle("c1", D1, 6, "w", 6))
    ledger.apply(claim("c2"))
    ledger.apply(Settle("c2", D1, 3, "w", 9))
    before = ledger.size()
    ledger.drop("c1")
    assert ledger.status("c1") is None
    assert (ledger.spent(D1), ledger.outstanding(D1), ledger.size()) == (9, 0, before - 1)


def test_a_settle_needs_both_writer_and_total_or_neither() -> None:
    """Half a running total is a malformed record, refused alike by every reader."""
    with pytest.raises(ValueError, match="writer and total"):
        Settle("c1", D1, 6, "w", None)


# --- events as JSON --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        Claim("c1", "instance-a", D1, 6),
        Claim("c1", "instance-a", D1, 6, limit=600),
        Settle("c1", D1, 4),
        Settle("c1", D1, 4, "writer-a", 40),
        OpenDay(D1, "instance-a", 600, "Europe/Paris"),
        Exhaust(D1),
    ],
)
def test_events_round_trip_through_json(event: ClaimEvent) -> None:
    """to_dict / event_from_dict is lossless through JSON for every event type."""
    assert event_from_dict(json.loads(json.dumps(event.to_dict()))) == event


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"type": "bribe", "day": D1},
        {"type": "claim", "claim_id": "c", "owner": "a", "day": D1},
        {"type": "claim", "claim_id": "", "owner": "a", "day": D1, "amount": 6},
        {"type": "claim", "claim_id": "c", "owner": "a", "day": "2024-6-1", "amount": 6},
        {"type": "claim", "claim_id": "c", "owner": "a", "day": D1, "amount": -6},
        {"type": "claim", "claim_id": "c", "owner": "a", "day": D1, "amount": True},
        {"type": "settle", "claim_id": "c", "day": D1, "actual": 1.5},
        {"type": "release", "claim_id": 7, "day": D1},
        {"type": "exhaust", "day": None},
        {"type": "settle", "claim_id": "c", "day": D1, "actual": 1, "writer": "w"},
        {"type": "day", "day": D1, "owner": "a", "limit": 6},
    ],
)
def test_malformed_events_are_rejected(data: dict[str, Any]) -> None:
    """A record that is not a well-formed event is a ValueError every reader skips alike."""
    with pytest.raises(ValueError, match=r"\S"):
        event_from_dict(data)


def test_from_dict_checks_the_type_tag() -> None:
    """A settle record is not accepted as a claim."""
    with pytest.raises(ValueError, match="type 'claim'"):
        Claim.from_dict(Settle("c1", D1, 4).to_dict())


# --- properties --------------------------------------------------------------------------------


@dataclass
class Reference:
    """A naive model of the rules: recomputes every day's charge from the whole history."""

    limit: int
    log: list[tuple[ClaimEvent, bool | None]] = field(default_factory=list)

    def _day_limit(self, day: str) -> int:
        """The limit of the day's first claim that carries one, else the reader's."""
        for event, _ in self.log:
            if isinstance(event, Claim) and event.day == day and event.limit is not None:
                return event.limit
        return self.limit

    def _first_mention(self, claim_id: str) -> tuple[int, ClaimEvent, bool | None] | None:
        for index, (event, result) in enumerate(self.log):
            if isinstance(event, Claim | Settle) and event.claim_id == claim_id:
                return index, event, result
        return None

    def _charge_of(self, claim_id: str) -> tuple[str, int]:
        """(day, credits) that one claim id holds: amount, actual or nothing."""
        found = self._first_mention(claim_id)
        assert found is not None
        index, first, granted = found
        if isinstance(first, Settle):
            return first.day, first.actual  # spend under a claim never seen
        assert isinstance(first, Claim)
        for event, _ in self.log[index + 1 :]:
            if isinstance(event, Settle) and event.claim_id == claim_id:
                return first.day, event.actual
        return first.day, first.amount if granted else 0

    def charge(self, day: str) -> int:
        ids = {e.claim_id for e, _ in self.log if isinstance(e, Claim | Settle)}
        return sum(credits for d, credits in map(self._charge_of, ids) if d == day)

    def apply(self, event: ClaimEvent) -> bool | None:
        result: bool | None = None
        if isinstance(event, Claim):
            found = self._first_mention(event.claim_id)
            if found is not None:
                result = found[2] if isinstance(found[1], Claim) else False
            else:
                exhausted = any(isinstance(e, Exhaust) and e.day == event.day for e, _ in self.log)
                self.log.append((event, None))  # its own limit may be the day's first
                limit = self._day_limit(event.day)
                self.log.pop()
                result = not exhausted and self.charge(event.day) + event.amount <= limit
        self.log.append((event, result))
        return result


LIMIT = 30


@st.composite
def event_logs(draw: st.DrawFn, *, honest: bool) -> list[ClaimEvent]:
    """A log of claim events; ``honest``: settles only of granted claims, with actual <= amount.

    Dishonest logs also carry stamped limits, settles of refused claims and of ids never
    claimed, and settles booked on the wrong day.
    """
    ledger = ClaimLedger(LIMIT)
    events: list[ClaimEvent] = []
    claims: list[Claim] = []
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(["claim", "claim", "claim", "dup", "settle", "402"]))
        day = draw(st.sampled_from([D1, D2]))
        event: ClaimEvent
        if kind == "claim" or (kind != "402" and not claims):
            event = Claim(
                f"c{len(claims)}",
                draw(st.sampled_from(["a", "b", "c"])),
                day,
                draw(st.integers(0, 15)),
                limit=None if honest else draw(st.none() | st.integers(0, 40)),
            )
            claims.append(event)
        elif kind == "dup":
            event = draw(st.sampled_from(claims))
        elif kind == "settle":
            pool = [c for c in claims if ledger.is_granted(c.claim_id)] if honest else claims
            if not pool:
                continue
            target = draw(st.sampled_from(pool))
            if honest:
                event = Settle(target.claim_id, target.day, draw(st.integers(0, target.amount)))
            else:
                claim_id = draw(st.sampled_from([target.claim_id, "ghost-1", "ghost-2"]))
                event = Settle(claim_id, day, draw(st.integers(0, 20)))
        else:
            event = Exhaust(day)
        ledger.apply(event)
        events.append(event)
    return events


def _books(ledger: ClaimLedger) -> tuple[object, ...]:
    """Everything a reader can ask the ledger, for the days the logs use."""
    days = [(ledger.spent(d), ledger.outstanding(d), ledger.exhausted(d)) for d in (D1, D2)]
    claims = sorted(c.claim_id for c in ledger.outstanding_claims())
    return (*days, claims, ledger.size(), ledger.current_day, ledger.horizon)


@FAST
@given(events=event_logs(honest=False))
def test_replaying_the_same_log_gives_the_same_grants(events: list[ClaimEvent]) -> None:
    """Two readers of one log, one through JSON, agree on every decision and every total."""
    first, second = ClaimLedger(LIMIT), ClaimLedger(LIMIT)
    for event in events:
        wire = event_from_dict(json.loads(json.dumps(event.to_dict())))
        assert first.apply(event) == second.apply(wire)
    assert _books(first) == _books(second)


@FAST
@given(events=event_logs(honest=False))
def test_ledger_matches_a_naive_reference_model(events: list[ClaimEvent]) -> None:
    """Every decision and day total equals a from-scratch recomputation over the history."""
    ledger, reference = ClaimLedger(LIMIT), Reference(LIMIT)
    for event in events:
        assert ledger.apply(event) == reference.apply(event)
    for day in (D1, D2):
        assert ledger.spent(day) + ledger.outstanding(day) == reference.charge(day)


@FAST
@given(events=event_logs(honest=True))
def test_honest_logs_never_exceed_the_limit(events: list[ClaimEvent]) -> None:
    """With settles of granted claims only, actual <= amount: a day's charge stays <= limit."""
    ledger = ClaimLedger(LIMIT)
    held: dict[str, tuple[str, int]] = {}  # granted claim id -> (day, credits it holds)
    closed: set[str] = set()  # settled: the first settle wins
    for event in events:
        granted = ledger.apply(event)
        if isinstance(event, Claim) and granted and event.claim_id not in held:
            held[event.claim_id] = (event.day, event.amount)
        elif isinstance(event, Settle) and event.claim_id not in closed:
            closed.add(event.claim_id)
            held[event.claim_id] = (held[event.claim_id][0], event.actual)
        for day in (D1, D2):
            total = sum(credits for d, credits in held.values() if d == day)
            assert total <= LIMIT
            assert ledger.spent(day) + ledger.outstanding(day) == total
